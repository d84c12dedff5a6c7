"""PostgreSQL only: where autovacuum has not, the store gives its tables statistics once
(a fresh database plans the queue fetches badly without them) and vacuums queue tables
full of dead rows (the fetches walk them)."""

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


@pytest.fixture
def unvacuumed(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    """A store on a fresh database whose tables autovacuum leaves alone (only the store
    analyzes or vacuums them), looking every time maintain() is called."""
    monkeypatch.setattr(pg_store, "_MAINTAIN_EVERY", 0.0)
    store = PostgresStore(fresh_url, hub="maint")
    try:
        with psycopg.connect(fresh_url, autocommit=True) as admin:
            for table in ("instances", "history", "inbox", "tasks"):
                admin.execute(f"ALTER TABLE perdure.{table} SET (autovacuum_enabled = off)")
        yield store
    finally:
        store.close()


def _tables(url: str) -> dict[str, tuple[bool, bool, int]]:
    """Per perdure table: (analyzed, vacuumed, dead rows), as the server counts them."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, last_analyze IS NOT NULL, last_vacuum IS NOT NULL, n_dead_tup"
            " FROM pg_stat_user_tables WHERE schemaname = 'perdure'"
        ).fetchall()
    return {name: (analyzed, vacuumed, dead) for name, analyzed, vacuumed, dead in rows}


def _maintain_until(store: PostgresStore, url: str, table: str, column: int) -> None:
    deadline = time.monotonic() + 30  # the server's table counts lag its commits
    while not _tables(url)[table][column]:
        assert time.monotonic() < deadline, _tables(url)
        store.maintain()
        time.sleep(0.2)


def _start_and_consume(store: PostgresStore, n: int, prefix: str) -> None:
    """Start n instances and run one episode of each: n start messages, all consumed."""
    for i in range(n):
        store.create_instance(new_instance(f"{prefix}{i}"), ACTIVE_STATUSES)
    while items := store.fetch_orchestration_work("w1", at(), 100, 30.0):
        assert store.commit_checkpoints("w1", [checkpoint(i) for i in items], at()) == []


def test_grown_tables_without_statistics_are_analyzed_once(
    unvacuumed: PostgresStore, fresh_url: str
) -> None:
    store = unvacuumed
    store.maintain()
    assert not any(a for a, _, _ in _tables(fresh_url).values())  # nothing has grown yet
    for n in range(pg_store._ANALYZE_AT_ROWS + 50):
        store.create_instance(new_instance(f"i{n}"), ACTIVE_STATUSES)
    _maintain_until(store, fresh_url, "instances", 0)
    done = _tables(fresh_url)
    assert done["instances"][0] and done["inbox"][0]  # one start message each
    # Still empty (no episode ran): analyzing them now would mislead the planner.
    assert not done["history"][0] and not done["tasks"][0]


def test_queue_tables_with_more_dead_rows_than_live_ones_are_vacuumed(
    unvacuumed: PostgresStore, fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unvacuumed
    monkeypatch.setattr(pg_store, "_VACUUM_AT_DEAD", 200)
    _start_and_consume(store, 300, "i")
    # Every start message was consumed: 300 dead inbox rows, none live.
    _maintain_until(store, fresh_url, "inbox", 1)
    after = _tables(fresh_url)
    assert after["inbox"][2] < 200, after
    assert not after["history"][1]  # append-only: never vacuumed by the store


def _reltuples(url: str, table: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (f"perdure.{table}",)
        ).fetchone()
    assert row is not None
    return float(row[0])


def _explain_generic(url: str, statement: str, args: str) -> str:
    """The generic plan a pooled connection would run ``statement`` with."""
    with psycopg.connect(url) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE p AS {statement}")
        return "\n".join(r[0] for r in conn.execute(f"EXPLAIN EXECUTE p({args})").fetchall())


def test_a_queue_table_grown_past_statistics_taken_while_empty_is_analyzed_again(
    unvacuumed: PostgresStore, fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unvacuumed
    monkeypatch.setattr(pg_store, "_ANALYZE_EVERY", 0.0)
    # Statistics taken while the inbox held only dead rows (an ANALYZE, or a VACUUM, at
    # the end of a burst): the planner believes it empty.
    _start_and_consume(store, 300, "old")
    with psycopg.connect(fresh_url, autocommit=True) as admin:
        admin.execute("ANALYZE perdure.inbox")
    assert _reltuples(fresh_url, "inbox") == 0
    delete = "DELETE FROM perdure.inbox WHERE hub = 'maint' AND id = ANY($1::bigint[])"
    for n in range(pg_store._ANALYZE_AT_ROWS * 3):
        store.create_instance(new_instance(f"new{n}"), ACTIVE_STATUSES)
    deadline = time.monotonic() + 30  # the server's live-row counts lag its commits
    while _reltuples(fresh_url, "inbox") < pg_store._ANALYZE_AT_ROWS:
        assert time.monotonic() < deadline, _reltuples(fresh_url, "inbox")
        store.maintain()
        time.sleep(0.2)
    # Told its size, the planner deletes consumed messages by looking their IDs up.
    assert "inbox_pkey" in _explain_generic(fresh_url, delete, "'{1,2,3}'")
    # Once told, it is left alone until the table outgrows its statistics again.
    analyzed = _tables(fresh_url)
    store.maintain()
    assert _tables(fresh_url) == analyzed
