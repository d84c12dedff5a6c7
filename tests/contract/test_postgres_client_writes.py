"""PostgreSQL only: client writes (one autocommit statement each) under concurrency and
with connections the server closed."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Message
from perdure.store.postgres.store import PostgresStore

from .conftest import new_hub
from .support import create, lease, raised


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


def test_enqueue_waits_for_a_status_change_in_flight_and_reports_its_outcome(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url, hub=new_hub(), max_size=2)
    try:
        create(store, "a")
        with psycopg.connect(pg_url) as checkpointer:  # a worker's commit, still open
            checkpointer.execute(
                "UPDATE perdure.instances SET status = 'Completed'"
                " WHERE hub = %s AND instance_id = 'a'",
                (store.hub,),
            )
            thread, out = _in_thread(
                lambda: store.enqueue_if(Message("a", raised("late")), ACTIVE_STATUSES)
            )
            time.sleep(0.3)
            assert out == []  # the status it read cannot change before its message commits
            checkpointer.commit()
        thread.join()
        assert out == [Status.Completed]
        assert [type(m.event).__name__ for m in lease(store, "w")["a"].messages] == [
            "ExecutionStarted"
        ]
    finally:
        store.close()


def test_enqueue_to_an_entity_another_client_is_creating_reaches_it(pg_url: str) -> None:
    store = PostgresStore(pg_url, hub=new_hub(), max_size=2)
    try:
        with psycopg.connect(pg_url) as other:  # created after the statement's snapshot
            other.execute(
                "INSERT INTO perdure.instances (hub, instance_id, name, execution_id, status,"
                " created_at, updated_at) VALUES (%s, '@cart@1', 'cart', 'entity', 'Running',"
                " 1, 1)",
                (store.hub,),
            )
            thread, out = _in_thread(
                lambda: store.enqueue_if(Message("@cart@1", raised("op")), frozenset(Status))
            )
            time.sleep(0.3)
            other.commit()
        thread.join()
        assert out == [Status.Running]
        record = store.get_instance("@cart@1")
        assert record is not None and record.created_at.timestamp() == 1  # not replaced
        names = [getattr(m.event, "name", None) for m in lease(store, "w")["@cart@1"].messages]
        assert names == ["op"]
    finally:
        store.close()


def _kill_backends(url: str, application_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_client_writes_on_connections_the_server_closed_apply_exactly_once(
    pg_url: str,
) -> None:
    name = "perdure-client-writes"
    url = psycopg.conninfo.make_conninfo(pg_url, application_name=name)
    store = PostgresStore(url, hub=new_hub(), min_size=2, max_size=2)
    try:
        create(store, "a")
        assert _kill_backends(url, name) >= 1
        assert store.enqueue_if(Message("a", raised("one")), ACTIVE_STATUSES) is Status.Pending
        assert _kill_backends(url, name) >= 1
        assert store.enqueue_if(Message("@cart@1", raised("op")), frozenset(Status)) is (
            Status.Running
        )
        assert _kill_backends(url, name) >= 1
        create(store, "b")  # no InstanceAlreadyExistsError from a second attempt
        work = lease(store, "w")
        assert [getattr(m.event, "name", None) for m in work["a"].messages] == ["orch", "one"]
        assert [getattr(m.event, "name", None) for m in work["@cart@1"].messages] == ["op"]
        assert len(work["b"].messages) == 1
    finally:
        store.close()
