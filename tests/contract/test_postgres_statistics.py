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

from .support import at, checkpoint, new_instance


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


def _vacuumed(url: str) -> dict[str, tuple[bool, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, last_vacuum IS NOT NULL, n_dead_tup FROM pg_stat_user_tables"
            " WHERE schemaname = 'perdure'"
        ).fetchall()
    return {name: (done, dead) for name, done, dead in rows}


def test_queue_tables_with_more_dead_rows_than_live_ones_are_vacuumed(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "_MAINTAIN_EVERY", 0.0)
    monkeypatch.setattr(pg_store, "_VACUUM_AT_DEAD", 200)
    store = PostgresStore(fresh_url, hub="bloat")
    try:
        with psycopg.connect(fresh_url, autocommit=True) as admin:  # only the store vacuums
            for table in ("instances", "history", "inbox", "tasks"):
                admin.execute(f"ALTER TABLE perdure.{table} SET (autovacuum_enabled = off)")
        for n in range(300):
            store.create_instance(new_instance(f"i{n}"), ACTIVE_STATUSES)
        while items := store.fetch_orchestration_work("w1", at(), 100, 30.0):
            assert store.commit_checkpoints("w1", [checkpoint(i) for i in items], at()) == []
        # Every start message was consumed: 300 dead inbox rows, none live.
        deadline = time.monotonic() + 30  # the server's table counts lag its commits
        while not _vacuumed(fresh_url)["inbox"][0]:
            assert time.monotonic() < deadline, _vacuumed(fresh_url)
            store.maintain()
            time.sleep(0.2)
        after = _vacuumed(fresh_url)
        assert after["inbox"][1] < 200, after
        assert not after["history"][0]  # append-only: never vacuumed by the store
    finally:
        store.close()
