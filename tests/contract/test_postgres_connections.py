"""PostgreSQL only (SQLite has no server connection to lose): dropped connections."""

from __future__ import annotations

import psycopg

from perdure.store.postgres.store import PostgresStore

from .conftest import new_hub
from .support import at, checkpoint, create, lease


def _kill_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = 'perdure-contract'"
        ).fetchall()
    return len(rows)


def test_operations_survive_killed_connections(pg_url: str) -> None:
    url = psycopg.conninfo.make_conninfo(pg_url, application_name="perdure-contract")
    store = PostgresStore(url, hub=new_hub(), min_size=3, max_size=3)
    try:
        create(store, "a")
        store.wait_for_change(0.1)  # opens the LISTEN connection
        assert _kill_backends(url) >= 2
        # Pooled connections are dead now: operations retry on fresh ones instead of failing.
        assert store.get_instance("a") is not None
        item = lease(store, "A")["a"]
        assert store.commit_checkpoints("A", [checkpoint(item)], at()) == []
        assert store.wait_for_change(0.5) is True  # the listener reconnected (may have missed news)
        watcher = PostgresStore(url, hub=store.hub, max_size=1)
        try:
            watcher.wait_for_change(0.1)
            create(store, "b")
            assert watcher.wait_for_change(5) is True
        finally:
            watcher.close()
    finally:
        store.close()
