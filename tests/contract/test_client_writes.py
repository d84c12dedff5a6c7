"""Client-side contract, edges of enqueue_if: implicit entities, refusals, wake-ups."""

from __future__ import annotations

import threading
from typing import Any

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Message, Store
from perdure.store.group import GroupCommit

from .conftest import MakeStore
from .support import at, checkpoint, create, lease, raised


def test_enqueue_to_a_new_entity_creates_it_even_when_the_message_is_refused(
    store: Store,
) -> None:
    refused = frozenset({Status.Failed})
    assert store.enqueue_if(Message("@cart@1", raised("op")), refused) is Status.Running
    entity = store.get_instance("@cart@1")
    assert entity is not None and (entity.name, entity.status) == ("cart", Status.Running)
    assert lease(store, "w1") == {}  # the entity exists, but nothing was queued


def test_enqueue_to_an_existing_entity_queues_in_order_without_recreating_it(
    store: Store,
) -> None:
    assert store.enqueue_if(Message("@cart@1", raised("one")), frozenset(Status)) is Status.Running
    first = store.get_instance("@cart@1")
    assert store.enqueue_if(Message("@cart@1", raised("two")), frozenset(Status)) is Status.Running
    assert store.get_instance("@cart@1") == first
    names = [getattr(m.event, "name", None) for m in lease(store, "w1")["@cart@1"].messages]
    assert names == ["one", "two"]


def test_enqueue_to_a_finished_instance_reports_its_status_and_queues_nothing(
    store: Store,
) -> None:
    create(store, "a")
    item = lease(store, "w1")["a"]
    assert store.commit_checkpoints("w1", [checkpoint(item, status=Status.Completed)], at()) == []
    assert store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES) is Status.Completed
    assert lease(store, "w1") == {}
    rewound = ev.ExecutionRewound(timestamp=at(), reason=None)
    assert store.enqueue_if(Message("a", rewound), frozenset({Status.Completed})) is (
        Status.Completed
    )
    assert [type(m.event) for m in lease(store, "w1")["a"].messages] == [ev.ExecutionRewound]


def test_an_accepted_message_wakes_another_process(make_store: MakeStore, store: Store) -> None:
    watcher = make_store(store.hub)
    watcher.wait_for_change(0.2)  # settle: the first call may connect and report a change
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(watcher.wait_for_change(10)))
    thread.start()
    store.enqueue_if(Message("@cart@1", raised("op")), frozenset(Status))
    thread.join()
    assert woke == [True]


def test_a_refused_message_wakes_nobody(make_store: MakeStore, store: Store) -> None:
    create(store, "a")
    watcher = make_store(store.hub)
    watcher.wait_for_change(0.2)
    watcher.wait_for_change(0.2)  # the create's wake-up, if it was not consumed yet
    assert store.enqueue_if(Message("a", raised()), frozenset({Status.Failed})) is Status.Pending
    assert store.enqueue_if(Message("ghost", raised()), frozenset(Status)) is None
    assert watcher.wait_for_change(0.3) is False


def test_concurrent_enqueues_each_get_their_own_outcome_and_nothing_is_lost(
    store: Store,
) -> None:
    # Many threads at once (PostgreSQL commits them together, see perdure.store.group):
    # to running, finished, missing and implicit-entity targets, with their own allowed
    # sets; every caller gets its target's status, and exactly the accepted ones queue.
    create(store, "run")
    create(store, "done")
    item = lease(store, "w1")
    assert store.commit_checkpoints(
        "w1",
        [checkpoint(item["run"]), checkpoint(item["done"], status=Status.Completed)],
        at(),
    ) == []
    targets = [
        ("run", ACTIVE_STATUSES, Status.Running, True),
        ("done", ACTIVE_STATUSES, Status.Completed, False),
        ("ghost", frozenset(Status), None, False),
        ("@cart@1", frozenset(Status), Status.Running, True),
    ]
    per_target = 25
    outcomes: dict[tuple[str, int], Status | None] = {}
    start = threading.Barrier(8)

    def send(worker: int) -> None:
        start.wait()
        for n in range(worker, per_target * len(targets), 8):
            target, allowed, _, _ = targets[n % len(targets)]
            outcomes[(target, n)] = store.enqueue_if(Message(target, raised(f"{n}")), allowed)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == per_target * len(targets)
    for (target, _), status in outcomes.items():
        expected = next(t[2] for t in targets if t[0] == target)
        assert status is expected, (target, status)
    queued = {iid: sorted(int(m.event.name) for m in w.messages)  # type: ignore[attr-defined]
              for iid, w in lease(store, "w2").items()}
    for target, _, _, accepted in targets:
        sent = sorted(n for (t, n) in outcomes if t == target)
        assert queued.get(target, []) == (sent if accepted else []), target


def test_concurrent_enqueues_are_committed_together(store: Store) -> None:
    # Both stores group the messages of concurrent callers (perdure.store.group).
    group: GroupCommit[Any, Any] = store._messages  # type: ignore[attr-defined]
    create(store, "a")
    start = threading.Barrier(16)

    def send(worker: int) -> None:
        start.wait()
        for n in range(20):
            store.enqueue_if(Message("a", raised(f"{worker}.{n}")), ACTIVE_STATUSES)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert group.requests == 320
    assert group.batches < 320  # callers that met a batch in flight shared the next one
    assert not group._running and not group._queue  # idle again, nothing stranded
    raised_events = [
        m.event for m in lease(store, "w1")["a"].messages if isinstance(m.event, ev.EventRaised)
    ]
    names = [e.name for e in raised_events]
    assert sorted(names) == sorted(f"{w}.{n}" for w in range(16) for n in range(20))
    for w in range(16):  # each caller's own messages stay in the order it sent them
        mine = [x for x in names if x.startswith(f"{w}.")]
        assert mine == [f"{w}.{n}" for n in range(20)]
