"""Worker-side contract for activities: leases, renewal, completion with lost leases."""

from __future__ import annotations

import time

from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityResult, ActivityTask, Message, Store

from .support import at, checkpoint, completed, create, lease, raised


def schedule(store: Store, instance_id: str, count: int) -> str:
    create(store, instance_id)
    item = lease(store, "orch")[instance_id]
    eid = item.instance.execution_id
    tasks = [ActivityTask(instance_id, eid, n, f"act{n}", f'"{n}"') for n in range(count)]
    assert store.commit_checkpoints("orch", [checkpoint(item, tasks=tasks)], at()) == []
    return eid


def test_activity_tasks_are_leased_exclusively(store: Store) -> None:
    eid = schedule(store, "a", 5)
    first = store.fetch_activity_work("A", 3, 30)
    second = store.fetch_activity_work("B", 10, 30)
    assert [t.task_id for t in first] == [0, 1, 2]
    assert [t.task_id for t in second] == [3, 4]
    assert store.fetch_activity_work("C", 10, 30) == []
    task = first[0]
    assert (task.instance_id, task.execution_id, task.name, task.input) == ("a", eid, "act0", '"0"')
    assert task.dequeue_count == 1


def test_completing_an_activity_deletes_it_and_delivers_the_result(store: Store) -> None:
    schedule(store, "a", 2)
    tasks = store.fetch_activity_work("A", 10, 30)
    results = [ActivityResult(t, completed(t.task_id, f'"r{t.task_id}"')) for t in tasks]
    assert store.complete_activities("A", results, at()) == 2
    assert store.fetch_activity_work("B", 10, 0.01) == []
    messages = lease(store, "orch")["a"].messages
    assert [(type(m.event), m.execution_id) for m in messages] == [
        (ev.TaskCompleted, tasks[0].execution_id)] * 2
    assert [getattr(m.event, "result", None) for m in messages] == ['"r0"', '"r1"']


def test_a_task_whose_lease_expired_runs_again_and_only_one_result_counts(store: Store) -> None:
    schedule(store, "a", 1)
    [stale] = store.fetch_activity_work("A", 10, 0.3)
    time.sleep(0.5)
    [fresh] = store.fetch_activity_work("B", 10, 30)
    assert fresh.id == stale.id and fresh.dequeue_count == 2
    assert store.complete_activities("A", [ActivityResult(stale, completed(0, '"A"'))], at()) == 0
    assert store.complete_activities("B", [ActivityResult(fresh, completed(0, '"B"'))], at()) == 1
    assert store.complete_activities("B", [ActivityResult(fresh, completed(0, '"B"'))], at()) == 0
    messages = lease(store, "orch")["a"].messages
    assert [getattr(m.event, "result", None) for m in messages] == ['"B"']


def test_renewed_activity_leases_are_not_taken_over(store: Store) -> None:
    schedule(store, "a", 2)
    tasks = store.fetch_activity_work("A", 10, 0.4)
    store.renew_activity_leases("A", [tasks[0].id], 30)
    store.renew_activity_leases("B", [tasks[1].id], 30)  # not B's: no effect
    time.sleep(0.6)
    assert [t.task_id for t in store.fetch_activity_work("B", 10, 30)] == [1]


def test_results_for_a_purged_instance_are_accepted_and_dropped(store: Store) -> None:
    schedule(store, "a", 1)
    [task] = store.fetch_activity_work("A", 10, 30)
    store.purge_instances(["a"])
    # the task row went with the instance, so the result has nothing to complete
    assert store.complete_activities("A", [ActivityResult(task, completed(0))], at()) == 0
    assert lease(store, "orch") == {}


def test_failed_activity_results_are_delivered(store: Store) -> None:
    schedule(store, "a", 1)
    [task] = store.fetch_activity_work("A", 10, 30)
    failed = ev.TaskFailed(timestamp=at(), task_scheduled_id=0,
                           failure=ev.FailureDetails("ValueError", "bad", "tb"))
    assert store.complete_activities("A", [ActivityResult(task, failed)], at()) == 1
    [message] = lease(store, "orch")["a"].messages
    assert isinstance(message.event, ev.TaskFailed)
    assert message.event.failure == ev.FailureDetails("ValueError", "bad", "tb")


def test_a_commit_can_lease_the_tasks_it_schedules_to_its_worker(store: Store) -> None:
    create(store, "a")
    create(store, "b")
    work = lease(store, "orch")
    cps = []
    for iid in ("a", "b"):
        eid = work[iid].instance.execution_id
        tasks = [ActivityTask(iid, eid, n, f"act{n}", f'"{iid}{n}"') for n in range(2)]
        cps.append(checkpoint(work[iid], tasks=tasks))
    lost, taken = store.commit_and_take_tasks("orch", cps, at(), 3, 30)
    assert lost == []
    assert [(t.instance_id, t.task_id, t.input, t.dequeue_count) for t in taken] == [
        ("a", 0, '"a0"', 1), ("a", 1, '"a1"', 1), ("b", 0, '"b0"', 1)]
    # Only the one left over is there for others to fetch; the taken ones are leased.
    [rest] = store.fetch_activity_work("other", 10, 30)
    assert (rest.instance_id, rest.task_id, rest.dequeue_count) == ("b", 1, 1)
    assert store.fetch_activity_work("other", 10, 30) == []
    # A taken task completes like a fetched one, by its owner only.
    result = ActivityResult(taken[0], completed(0, '"done"'))
    assert store.complete_activities("other", [result], at()) == 0
    assert store.complete_activities("orch", [result], at()) == 1
    messages = lease(store, "orch")["a"].messages
    assert [getattr(m.event, "result", None) for m in messages] == ['"done"']


def test_a_lost_checkpoint_leases_no_tasks(store: Store) -> None:
    create(store, "a")
    item = lease(store, "orch", lease_seconds=0.2)["a"]
    time.sleep(0.4)
    lease(store, "thief")
    eid = item.instance.execution_id
    task = ActivityTask("a", eid, 0, "act0", None)
    lost, taken = store.commit_and_take_tasks(
        "orch", [checkpoint(item, tasks=[task])], at(), 5, 30
    )
    assert lost == ["a"] and taken == []
    assert store.fetch_activity_work("other", 10, 30) == []


def test_results_ride_the_orchestration_fetch(store: Store) -> None:
    """complete_and_fetch accepts results and leases the instances they wake, in one go."""
    schedule(store, "a", 2)
    schedule(store, "b", 1)
    tasks = store.fetch_activity_work("W", 10, 30)
    results = [ActivityResult(t, completed(t.task_id, f'"{t.instance_id}{t.task_id}"'))
               for t in tasks if t.instance_id == "a"]
    accepted, items = store.complete_and_fetch("W", results, at(), 10, 30)
    assert accepted == 2
    assert [i.instance.instance_id for i in items] == ["a"]
    assert [getattr(m.event, "result", None) for m in items[0].messages] == ['"a0"', '"a1"']
    # The tasks are gone and the instance is leased to W: nobody else gets either.
    assert store.fetch_activity_work("X", 10, 30) == []
    assert lease(store, "X") == {}
    # Running it again (a retried commit) accepts nothing twice.
    assert store.complete_and_fetch("W", results, at(), 10, 30)[0] == 0
    assert lease(store, "X") == {}


def test_complete_and_fetch_skips_results_it_no_longer_owns(store: Store) -> None:
    schedule(store, "a", 1)
    [stale] = store.fetch_activity_work("A", 10, 0.3)
    time.sleep(0.5)
    [fresh] = store.fetch_activity_work("B", 10, 30)
    accepted, items = store.complete_and_fetch(
        "A", [ActivityResult(stale, completed(0, '"A"'))], at(), 10, 30)
    assert (accepted, items) == (0, [])
    assert store.complete_activities("B", [ActivityResult(fresh, completed(0, '"B"'))], at()) == 1


def test_complete_and_fetch_leaves_an_instance_leased_by_another_worker(store: Store) -> None:
    schedule(store, "a", 1)
    [task] = store.fetch_activity_work("W", 10, 30)
    store.enqueue_if(Message("a", raised()), frozenset(Status))
    assert set(lease(store, "other")) == {"a"}
    accepted, items = store.complete_and_fetch(
        "W", [ActivityResult(task, completed(0, '"r"'))], at(), 10, 30)
    assert (accepted, items) == (1, [])  # the result waits in the inbox for the holder
    store.release_instances("other", ["a"])
    [item] = lease(store, "X").values()
    assert [type(m.event) for m in item.messages] == [ev.EventRaised, ev.TaskCompleted]


def test_complete_and_fetch_without_results_is_a_fetch(store: Store) -> None:
    create(store, "a")
    accepted, items = store.complete_and_fetch("W", [], at(), 10, 30)
    assert accepted == 0
    assert [(i.instance.instance_id, [type(m.event) for m in i.messages]) for i in items] == [
        ("a", [ev.ExecutionStarted])]
