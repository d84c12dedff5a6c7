"""Contract for the rest: settings, lease owners, hub isolation, migrations, wake-ups."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityTask, InstanceQuery, Message, Store
from perdure.store.migrate import load_migrations
from perdure.store.postgres.store import PostgresStore
from perdure.store.sqlite.store import SqliteStore

from .conftest import MakeStore
from .support import at, checkpoint, create, lease, raised


def test_settings_are_set_once(store: Store) -> None:
    assert store.get_setting("k") is None
    assert store.set_setting_if_absent("k", "first") == "first"
    assert store.set_setting_if_absent("k", "second") == "first"
    assert store.get_setting("k") == "first"


def test_release_owner_expires_every_lease_of_a_dead_worker(store: Store) -> None:
    create(store, "a")
    create(store, "b")
    item = lease(store, "dead", limit=1)["a"]
    task = ActivityTask("a", item.instance.execution_id, 0, "act", None)
    store.commit_checkpoints("dead", [checkpoint(item, tasks=[task])], at())
    store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES)
    assert sorted(lease(store, "dead")) == ["a", "b"]
    assert len(store.fetch_activity_work("dead", 10, 30)) == 1
    assert store.lock_owners() == {"dead"}
    assert lease(store, "alive") == {}
    assert store.release_owner("dead") == 3  # two instances and one task
    assert store.lock_owners() == set()
    assert sorted(lease(store, "alive")) == ["a", "b"]
    assert len(store.fetch_activity_work("alive", 10, 30)) == 1
    assert store.release_owner("dead") == 0


def test_hubs_sharing_a_database_never_see_each_other(make_store: MakeStore, store: Store) -> None:
    other = make_store()
    create(store, "same-id", input='"mine"')
    create(other, "same-id", input='"theirs"')
    create(store, "only-mine")
    store.set_setting_if_absent("k", "mine")
    assert other.get_setting("k") is None
    mine, theirs = store.get_instance("same-id"), other.get_instance("same-id")
    assert mine is not None and theirs is not None
    assert (mine.input, theirs.input) == ('"mine"', '"theirs"')
    assert other.get_instance("only-mine") is None
    assert other.enqueue_if(Message("only-mine", raised()), ACTIVE_STATUSES) is None
    assert [r.instance_id for r in other.query_instances(InstanceQuery())[0]] == ["same-id"]
    assert other.count_by_status() == {Status.Pending: 1}

    work = lease(other, "W")
    assert list(work) == ["same-id"]
    store.commit_checkpoints("W", [checkpoint(work["same-id"], status=Status.Completed)], at())
    assert store.get_history("same-id") == []  # a foreign owner's commit cannot touch us
    other.commit_checkpoints("W", [checkpoint(work["same-id"], status=Status.Completed)], at())
    assert store.purge_instances(query=InstanceQuery()) == 0
    assert other.purge_instances(query=InstanceQuery()) == 1
    assert sorted(lease(store, "V")) == ["only-mine", "same-id"]
    assert other.lock_owners() == set() and store.lock_owners() == {"V"}
    assert other.release_owner("V") == 0


def test_listeners_hear_this_processs_commits(store: Store) -> None:
    calls: list[int] = []
    store.add_listener(lambda: calls.append(1))
    create(store, "a")
    assert calls


def test_finish_listeners_hear_which_instances_this_process_finished(store: Store) -> None:
    heard: list[list[str]] = []
    store.add_finish_listener(lambda ids: heard.append(list(ids)))
    for iid in ("done", "failed", "running", "stolen"):
        create(store, iid)
    work = lease(store, "W")
    store.commit_checkpoints("W", [checkpoint(work["running"])], at())
    assert heard == []  # a checkpoint that leaves its instance running is not a finish
    stolen = checkpoint(work["stolen"], status=Status.Completed)
    stolen.history_length += 5  # not the length the store has: the fence refuses it
    lost = store.commit_checkpoints("W", [
        checkpoint(work["done"], status=Status.Completed),
        checkpoint(work["failed"], status=Status.Failed),
        stolen,
    ], at())
    assert lost == ["stolen"]
    assert heard == [["done", "failed"]]


def test_another_process_is_woken_by_new_work(make_store: MakeStore, store: Store) -> None:
    watcher = make_store(store.hub)
    watcher.wait_for_change(0.2)  # settle: the first call may connect and report a change
    woke: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        if watcher.wait_for_change(10):
            woke.append(time.monotonic() - started)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    create(store, "a")
    thread.join()
    assert woke and woke[0] < 5


def test_no_change_means_no_wake_up(make_store: MakeStore, store: Store) -> None:
    watcher = make_store(store.hub)
    watcher.wait_for_change(0.2)
    started = time.monotonic()
    assert watcher.wait_for_change(0.3) is False
    assert time.monotonic() - started >= 0.25


def test_migrations_are_idempotent(make_store: MakeStore, store: Store) -> None:
    store.migrate()  # type: ignore[attr-defined]
    store.migrate()  # type: ignore[attr-defined]
    again = make_store(store.hub)
    create(store, "a")
    assert again.get_instance("a") is not None


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database without any perdure schema: a new file, or a new PostgreSQL database."""
    if backend.startswith("sqlite:///"):
        yield str(tmp_path / "fresh.db")
        return
    name = f"perdure_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(backend, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(backend, dbname=name)
    finally:
        with psycopg.connect(backend, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_concurrent_first_starts_migrate_exactly_once(empty_database: str) -> None:
    barrier = threading.Barrier(6)
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one(n: int) -> None:
        barrier.wait()
        try:
            if "dbname=" in empty_database:
                stores.append(PostgresStore(empty_database, hub=f"h{n}", max_size=2))
            else:
                stores.append(SqliteStore(empty_database, hub=f"h{n}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        create(stores[0], "a")
        assert all(s.get_instance("a") is None for s in stores[1:])  # other hubs
        versions: list[tuple[int]]
        if "dbname=" in empty_database:
            with psycopg.connect(empty_database) as pg:
                versions = pg.execute(
                    "SELECT version FROM perdure.schema_version ORDER BY version"
                ).fetchall()
            shipped = load_migrations("perdure.store.postgres.migrations")
        else:
            lite = sqlite3.connect(empty_database)
            versions = lite.execute(
                "SELECT version FROM schema_version ORDER BY version"
            ).fetchall()
            lite.close()
            shipped = load_migrations("perdure.store.sqlite.migrations")
        assert versions == [(v,) for v, _, _ in shipped]  # each applied once
    finally:
        for s in stores:
            s.close()


def test_a_sqlite_watcher_tells_its_own_commits_from_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import perdure.store.sqlite.store as sqlite_store

    monkeypatch.setattr(sqlite_store, "_UNSURE_WAKE", 1.0)
    path = str(tmp_path / "watch.db")
    mine, theirs = SqliteStore(path), SqliteStore(path)
    assert mine.wait_for_change(0.01) is False  # opens the watcher
    create(mine, "a")
    assert mine.wait_for_change(2) is True  # maybe not only ours: reported, once a second
    create(mine, "b")
    assert mine.wait_for_change(0.2) is False  # ours alone, reported again a second later
    create(theirs, "c")
    started = time.monotonic()
    assert mine.wait_for_change(2) is True  # none of ours since the last look: at once
    assert time.monotonic() - started < 0.5
    mine.close()
    theirs.close()
