"""Client-side contract, edges of enqueue_if: implicit entities, refusals, wake-ups."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from perdure.errors import InstanceAlreadyExistsError
from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Message, Store
from perdure.store.group import GroupCommit

from .conftest import MakeStore
from .support import at, checkpoint, create, lease, new_instance, raised


def _together(n: int, run: Callable[[int], None]) -> None:
    """``run(0)`` … ``run(n - 1)`` on n threads released at once; re-raises the first
    error any of them raised."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def one(worker: int) -> None:
        start.wait()
        try:
            run(worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


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

    def send(worker: int) -> None:
        for n in range(worker, per_target * len(targets), 8):
            target, allowed, _, _ = targets[n % len(targets)]
            outcomes[(target, n)] = store.enqueue_if(Message(target, raised(f"{n}")), allowed)

    _together(8, send)
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

    def send(worker: int) -> None:
        for n in range(20):
            store.enqueue_if(Message("a", raised(f"{worker}.{n}")), ACTIVE_STATUSES)

    _together(16, send)
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


def _all_work(store: Store) -> dict[str, list[ev.HistoryEvent]]:
    work: dict[str, list[ev.HistoryEvent]] = {}
    while batch := lease(store, "w1", limit=500):
        for iid, item in batch.items():
            work[iid] = [m.event for m in item.messages]
    return work


def test_concurrent_starts_are_committed_together(store: Store) -> None:
    # Both stores group the starts of concurrent callers, like their messages.
    group: GroupCommit[Any, Any] = store._starts  # type: ignore[attr-defined]
    made: dict[str, str] = {}

    def run(worker: int) -> None:
        for n in range(20):
            new = new_instance(f"s{worker}.{n}", input=f'"{worker}.{n}"')
            store.create_instance(new, ACTIVE_STATUSES)
            made[new.instance_id] = new.execution_id

    _together(16, run)
    assert group.requests == 320
    assert group.batches < 320  # callers that met a batch in flight shared the next one
    assert not group._running and not group._queue
    work = _all_work(store)
    assert set(work) == set(made)
    for iid, events in work.items():  # one start each, of its own execution and input
        assert len(events) == 1 and isinstance(events[0], ev.ExecutionStarted)
        assert (events[0].execution_id, events[0].input) == (made[iid], f'"{iid[1:]}"')
        record = store.get_instance(iid)
        assert record is not None and record.status is Status.Pending


def test_concurrent_starts_of_one_id_create_it_once(store: Store) -> None:
    # Sixteen callers start the same ID at once, and each a unique one: exactly one of
    # the shared starts wins and the others are refused, changing nothing, as if they
    # had come one after another; the unique ones are not held up by the refusals.
    won: list[str] = []
    refused: list[str] = []

    def run(worker: int) -> None:
        mine = new_instance(f"own{worker}")
        shared = new_instance("shared", input=f'"{worker}"')
        for new in (shared, mine) if worker % 2 else (mine, shared):
            try:
                store.create_instance(new, ACTIVE_STATUSES)
            except InstanceAlreadyExistsError as exc:
                assert (exc.instance_id, exc.status) == ("shared", "Pending")
                refused.append(new.execution_id)
            else:
                won.append(new.execution_id)

    _together(16, run)
    assert len(won) == 17 and len(refused) == 15
    work = _all_work(store)
    assert set(work) == {"shared", *(f"own{w}" for w in range(16))}
    (shared_start,) = work["shared"]
    assert isinstance(shared_start, ev.ExecutionStarted)
    assert shared_start.execution_id in won
    record = store.get_instance("shared")
    assert record is not None and record.execution_id == shared_start.execution_id


def test_concurrent_restarts_of_one_id_leave_one_execution(store: Store) -> None:
    # Replacing is allowed (nothing in the dedupe set): every start succeeds, and the
    # instance holds the last one's execution with exactly its one start message.
    executions: set[str] = set()

    def run(_: int) -> None:
        for _ in range(5):
            new = new_instance("again")
            store.create_instance(new, frozenset())
            executions.add(new.execution_id)

    _together(8, run)
    assert len(executions) == 40
    record = store.get_instance("again")
    assert record is not None and record.execution_id in executions
    (only,) = _all_work(store)["again"]
    assert isinstance(only, ev.ExecutionStarted) and only.execution_id == record.execution_id


def test_a_batch_of_starts_behaves_as_its_starts_one_after_another(store: Store) -> None:
    # The writer behind the group commit, given one batch: a repeated ID meets the row
    # its first start made, an existing one is refused or replaced as its caller asked.
    create(store, "old")
    create(store, "stale")
    write = store._create_many  # type: ignore[attr-defined]
    twice = [new_instance("new"), new_instance("new")]
    replacement = new_instance("stale")
    outcomes = write([
        (twice[0], ACTIVE_STATUSES),
        (new_instance("old"), ACTIVE_STATUSES),
        (twice[1], ACTIVE_STATUSES),
        (replacement, frozenset()),
        (new_instance("other"), ACTIVE_STATUSES),
    ])
    assert isinstance(outcomes[0], int) and isinstance(outcomes[4], int)
    assert isinstance(outcomes[1], InstanceAlreadyExistsError) and outcomes[1].instance_id == "old"
    assert isinstance(outcomes[2], InstanceAlreadyExistsError)
    assert outcomes[2].instance_id == "new"
    assert outcomes[3] is None  # replaced: no start message of a new ID to hand out
    work = _all_work(store)
    assert set(work) == {"new", "old", "stale", "other"}
    assert all(len(events) == 1 for events in work.values())
    assert work["new"][0].execution_id == twice[0].execution_id  # type: ignore[attr-defined]
    assert work["stale"][0].execution_id == replacement.execution_id  # type: ignore[attr-defined]
