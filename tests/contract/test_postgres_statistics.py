"""PostgreSQL only: the store gives its tables statistics once when the server has none
(a fresh database with autovacuum off plans the queue fetches badly without them)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import perdure.store.postgres.store as pg_store
from perdure.model.status import ACTIVE_STATUSES
from perdure.store.postgres.store import PostgresStore

from .support import new_instance


@pytest.fixture
def fresh_url(pg_url: str) -> Iterator[str]:
    name = "perdure_stats_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(pg_url, dbname=name)
    try:
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _analyzed(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
            " WHERE schemaname = 'perdure'"
        ).fetchall()
    return dict(rows)


def test_grown_tables_without_statistics_are_analyzed_once(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "_MAINTAIN_EVERY", 0.0)
    store = PostgresStore(fresh_url, hub="stats")
    try:
        with psycopg.connect(fresh_url, autocommit=True) as admin:  # only the store analyzes
            for table in ("instances", "history", "inbox", "tasks"):
                admin.execute(f"ALTER TABLE perdure.{table} SET (autovacuum_enabled = off)")
        store.maintain()
        assert not any(_analyzed(fresh_url).values())  # nothing has grown yet
        for n in range(pg_store._ANALYZE_AT_ROWS + 50):
            store.create_instance(new_instance(f"i{n}"), ACTIVE_STATUSES)
        deadline = time.monotonic() + 30  # the server's table counts lag its commits
        while not _analyzed(fresh_url).get("instances"):
            assert time.monotonic() < deadline, _analyzed(fresh_url)
            store.maintain()
            time.sleep(0.2)
        done = _analyzed(fresh_url)
        assert done["instances"] and done["inbox"]  # one start message each
        # Still empty (no episode ran): analyzing them now would mislead the planner.
        assert not done["history"] and not done["tasks"]
    finally:
        store.close()
