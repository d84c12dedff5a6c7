"""The backend contract fixtures: every test runs against SQLite and PostgreSQL.

PostgreSQL comes from ``$PERDURE_TEST_POSTGRES`` (else a local default if reachable).
When ``PERDURE_REQUIRE_POSTGRES=1`` (CI), an unreachable server fails the run; only a
developer run without that variable may skip, and the skip says why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from perdure.store.base import Store
from perdure.store.postgres.store import PostgresStore
from perdure.store.sqlite.store import SqliteStore

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

MakeStore = Callable[..., Store]


def postgres_url() -> str:
    """The test database URL; fails or skips (never silently) when it is unreachable."""
    url = os.environ.get("PERDURE_TEST_POSTGRES") or DEFAULT_POSTGRES
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {url} is unreachable: {exc}".strip()
        if os.environ.get("PERDURE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PERDURE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(f"{reason} (set PERDURE_TEST_POSTGRES to run the PostgreSQL cases)")
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url()


def new_hub() -> str:
    return "t" + uuid.uuid4().hex[:20]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``sqlite:///...`` (a fresh file) or the PostgreSQL URL; tests get a fresh hub."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_store(backend: str) -> Iterator[MakeStore]:
    """Open more stores on the same database: another hub, or another 'process'."""
    opened: list[Store] = []

    def make(hub: str | None = None) -> Store:
        store: Store
        if backend.startswith("sqlite:///"):
            store = SqliteStore(backend[len("sqlite:///") :], hub=hub or new_hub())
        else:
            store = PostgresStore(backend, hub=hub or new_hub(), max_size=4)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()
