"""SQLite: a commit fills its worker's free activity slots with queued tasks too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perdure.store.base import ActivityResult, ActivityTask
from perdure.store.sqlite.store import SqliteStore
from tests.contract.support import at, checkpoint, completed, create, lease


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "leases.db"), hub="h")
    s.migrate()
    yield s
    s.close()


def _schedule(store: SqliteStore, instance_id: str, count: int) -> None:
    create(store, instance_id)
    item = lease(store, "orch")[instance_id]
    eid = item.instance.execution_id
    tasks = [ActivityTask(instance_id, eid, n, "act", f'"{instance_id}{n}"') for n in range(count)]
    assert store.commit_checkpoints("orch", [checkpoint(item, tasks=tasks)], at()) == []


def test_a_commit_with_slots_left_leases_queued_tasks_after_its_own(store: SqliteStore) -> None:
    _schedule(store, "queued", 3)
    create(store, "a")
    item = lease(store, "W")["a"]
    own = [ActivityTask("a", item.instance.execution_id, 0, "act", '"a0"')]
    lost, taken = store.commit_and_take_tasks("W", [checkpoint(item, tasks=own)], at(), 3, 30)
    assert lost == []
    # its own task first, then the oldest queued ones, up to the limit
    assert [(t.instance_id, t.task_id, t.dequeue_count) for t in taken] == [
        ("a", 0, 1), ("queued", 0, 1), ("queued", 1, 1)]
    # leased to W: another worker gets only the one left, and results count for W only
    [rest] = store.fetch_activity_work("X", 10, 30)
    assert (rest.instance_id, rest.task_id) == ("queued", 2)
    result = ActivityResult(taken[1], completed(0, '"done"'))
    assert store.complete_activities("X", [result], at()) == 0
    assert store.complete_activities("W", [result], at()) == 1


def test_a_commit_with_no_slot_left_leases_nothing_queued(store: SqliteStore) -> None:
    _schedule(store, "queued", 2)
    create(store, "a")
    item = lease(store, "W")["a"]
    own = [ActivityTask("a", item.instance.execution_id, n, "act", None) for n in range(2)]
    lost, taken = store.commit_and_take_tasks("W", [checkpoint(item, tasks=own)], at(), 1, 30)
    assert lost == []
    assert [(t.instance_id, t.task_id) for t in taken] == [("a", 0)]
    assert sorted((t.instance_id, t.task_id) for t in store.fetch_activity_work("X", 10, 30)) == [
        ("a", 1), ("queued", 0), ("queued", 1)]


def test_a_lost_commit_leases_no_queued_task(store: SqliteStore) -> None:
    _schedule(store, "queued", 2)
    create(store, "a")
    item = lease(store, "W")["a"]
    stale = checkpoint(item, tasks=[])
    stale.history_length += 1  # another writer moved the history on
    lost, taken = store.commit_and_take_tasks("W", [stale], at(), 5, 30)
    assert lost == ["a"] and taken == []
    assert len(store.fetch_activity_work("X", 10, 30)) == 2


def test_tasks_leased_by_a_commit_carry_their_rows_ids(store: SqliteStore) -> None:
    # IDs come from the key's sequence, not from 1: after deleted rows, and after rows of
    # another instance, each taken task still names its own row
    _schedule(store, "old", 3)
    done = store.fetch_activity_work("X", 2, 30)
    store.complete_activities("X", [ActivityResult(t, completed(t.task_id)) for t in done], at())
    create(store, "a")
    item = lease(store, "W")["a"]
    eid = item.instance.execution_id
    own = [ActivityTask("a", eid, n, f"act{n}", f'"{n}"') for n in range(4)]
    _, taken = store.commit_and_take_tasks("W", [checkpoint(item, tasks=own)], at(), 3, 30)
    assert [t.task_id for t in taken] == [0, 1, 2]
    for t in taken:
        [(instance_id, task_id, name, owner)] = store._read(
            "SELECT instance_id, task_id, name, lock_owner FROM tasks WHERE id=?", (t.id,)
        )
        assert (instance_id, task_id, name, owner) == ("a", t.task_id, t.name, "W")
    assert len({t.id for t in taken}) == 3
