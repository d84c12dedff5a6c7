"""Claims: a checkpoint from a live runtime, fed its worker's own activity results.

It was not fetched, so it holds no lease: its fence accepts an instance nobody holds,
still where the runtime left it, and requires every task whose result it consumed to be
still leased by its worker; it deletes those tasks. Anything else loses the whole
checkpoint and writes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import (
    ActivityResult,
    ActivityTask,
    ActivityWorkItem,
    Checkpoint,
    Message,
    Store,
)

from .support import at, checkpoint, completed, create, lease, raised


def scheduled(
    store: Store, instance_id: str, count: int = 1, lease_seconds: float = 30
) -> list[ActivityWorkItem]:
    """An instance whose first episode scheduled ``count`` tasks, taken by worker W."""
    create(store, instance_id)
    item = lease(store, "W")[instance_id]
    eid = item.instance.execution_id
    tasks = [ActivityTask(instance_id, eid, n, f"act{n}", None) for n in range(count)]
    lost, taken = store.commit_and_take_tasks(
        "W", [checkpoint(item, tasks=tasks)], at(), count, lease_seconds
    )
    assert lost == [] and len(taken) == count
    return taken


def claim(store: Store, tasks: list[ActivityWorkItem], **changes: Any) -> Checkpoint:
    """A claim on the instance as it is now, consuming ``tasks``' results."""
    inst = store.get_instance(tasks[0].instance_id)
    assert inst is not None
    cp = Checkpoint(
        instance_id=inst.instance_id,
        execution_id=inst.execution_id,
        history_length=inst.history_length,
        consumed=[],
        history=[completed(t.task_id, '"r"') for t in tasks],
        status=Status.Running,
        claim=True,
        finished_tasks=[t.id for t in tasks],
    )
    return dataclasses.replace(cp, **changes)


def send(store: Store, instance_id: str) -> None:
    assert store.enqueue_if(Message(instance_id, raised()), ACTIVE_STATUSES) is not None


def test_a_claim_commits_on_a_free_instance_and_deletes_its_tasks(store: Store) -> None:
    tasks = scheduled(store, "a", 2)
    before = store.get_instance("a")
    assert before is not None
    assert store.commit_checkpoints("W", [claim(store, tasks)], at()) == []
    after = store.get_instance("a")
    assert after is not None and after.history_length == before.history_length + 2
    assert [type(e) for e in store.get_history("a")[-2:]] == [ev.TaskCompleted] * 2
    # The tasks are gone: their results cannot be reported a second time.
    assert store.complete_activities("W", [ActivityResult(tasks[0], completed(0))], at()) == 0
    assert store.fetch_activity_work("X", 10, 30) == []
    # The claim leaves no lease behind: the next message is anyone's.
    send(store, "a")
    assert list(lease(store, "X")) == ["a"]


def test_a_claim_is_refused_while_another_worker_holds_the_lease(store: Store) -> None:
    tasks = scheduled(store, "a")
    send(store, "a")
    assert list(lease(store, "X")) == ["a"]
    length = store.get_instance("a").history_length  # type: ignore[union-attr]
    assert store.commit_checkpoints("W", [claim(store, tasks)], at()) == ["a"]
    assert store.get_instance("a").history_length == length  # type: ignore[union-attr]
    # Nothing was written, the task included: its result still takes the usual path.
    assert store.complete_activities("W", [ActivityResult(tasks[0], completed(0))], at()) == 1


def test_a_claim_is_refused_once_the_instance_moved_on(store: Store) -> None:
    tasks = scheduled(store, "a")
    stale = claim(store, tasks)
    send(store, "a")
    item = lease(store, "X")["a"]
    assert store.commit_checkpoints("X", [checkpoint(item)], at()) == []
    assert store.commit_checkpoints("W", [stale], at()) == ["a"]
    assert [type(e) for e in store.get_history("a")][-1] is ev.EventRaised


def test_a_claim_is_refused_when_its_task_was_taken_over(store: Store) -> None:
    [task] = scheduled(store, "a", lease_seconds=0.2)
    time.sleep(0.4)
    [again] = store.fetch_activity_work("B", 10, 30)
    assert again.id == task.id
    length = store.get_instance("a").history_length  # type: ignore[union-attr]
    assert store.commit_checkpoints("W", [claim(store, [task])], at()) == ["a"]
    assert store.get_instance("a").history_length == length  # type: ignore[union-attr]
    # The instance was not claimed, and the new holder's result counts.
    assert store.complete_activities("B", [ActivityResult(again, completed(0))], at()) == 1
    assert list(lease(store, "X")) == ["a"]


def test_only_a_claim_commits_without_a_lease(store: Store) -> None:
    tasks = scheduled(store, "a")
    assert store.commit_checkpoints("W", [claim(store, tasks, claim=False)], at()) == ["a"]
    assert store.complete_activities("W", [ActivityResult(tasks[0], completed(0))], at()) == 1


def test_a_fetched_instance_can_consume_tasks_with_its_messages(store: Store) -> None:
    [task] = scheduled(store, "a")
    send(store, "a")
    item = lease(store, "W")["a"]
    cp = checkpoint(item, history=[*[m.event for m in item.messages], completed(0)],
                    finished_tasks=[task.id])
    assert store.commit_checkpoints("W", [cp], at()) == []
    assert [type(e) for e in store.get_history("a")[-2:]] == [ev.EventRaised, ev.TaskCompleted]
    assert store.complete_activities("W", [ActivityResult(task, completed(0))], at()) == 0
    assert lease(store, "X") == {}  # its message was consumed, its lease released


def test_a_batch_commits_its_good_claims_and_loses_only_the_bad_one(store: Store) -> None:
    good = scheduled(store, "good")
    bad = scheduled(store, "bad")
    send(store, "bad")
    assert list(lease(store, "X")) == ["bad"]
    lost, taken = store.commit_and_take_tasks(
        "W", [claim(store, good), claim(store, bad)], at(), 0, 30
    )
    assert (lost, taken) == (["bad"], [])
    assert [type(e) for e in store.get_history("good")][-1] is ev.TaskCompleted
    assert store.complete_activities("W", [ActivityResult(good[0], completed(0))], at()) == 0
    assert store.complete_activities("W", [ActivityResult(bad[0], completed(0))], at()) == 1
