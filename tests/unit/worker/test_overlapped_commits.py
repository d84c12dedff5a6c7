"""``tick(overlap=True)``: a round's commit runs on its own thread beside the next round,
which commits only after it and holds back results for that commit's instances."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityResult, ActivityWorkItem, Message
from perdure.store.sqlite.store import SqliteStore
from perdure.worker.clock import SystemClock
from perdure.worker.orchestrations import OrchestrationDispatcher
from tests.contract.support import create


def hello(context: Any) -> Any:
    return "hello"
    yield  # a generator


def pair(context: Any) -> Any:
    a, b = yield context.task_all(
        [context.call_activity("act", 1), context.call_activity("act", 2)]
    )
    return a + b


class Gate:
    """Holds each commit until released, and records the order commits start and end."""

    def __init__(self, store: SqliteStore) -> None:
        self.open = threading.Event()
        self.log: list[str] = []
        self._commit = store.commit_and_take_tasks
        store.commit_and_take_tasks = self  # type: ignore[method-assign]

    def __call__(self, *args: Any) -> Any:
        self.log.append(f"start {len(args[1])}")
        assert self.open.wait(10)
        try:
            return self._commit(*args)
        finally:
            self.log.append("end")


def waiter(context: Any) -> Any:
    return (yield context.wait_for_external_event("go"))


def _dispatcher(tmp_path: Path) -> tuple[SqliteStore, OrchestrationDispatcher]:
    store = SqliteStore(str(tmp_path / "s.db"))
    dispatcher = OrchestrationDispatcher(
        store, {"orch": hello, "pair": pair, "waiter": waiter}, SystemClock(), "W"
    )
    return store, dispatcher


def _statuses(store: SqliteStore, ids: list[str]) -> list[Status]:
    return [r.status for r in store.get_instances(ids)]


def test_a_rounds_commit_runs_beside_the_caller_until_flushed(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    for i in range(3):
        create(store, f"i{i}")
    gate = Gate(store)
    assert dispatcher.tick(fetch=True, overlap=True) == 3  # returns with the commit held
    assert dispatcher.pending
    assert _statuses(store, ["i0", "i1", "i2"]) == [Status.Pending] * 3
    gate.open.set()
    dispatcher.flush()
    assert not dispatcher.pending
    assert _statuses(store, ["i0", "i1", "i2"]) == [Status.Completed] * 3
    assert dispatcher.episodes == 3
    dispatcher.close()
    store.close()


def test_the_next_round_commits_only_after_the_one_in_flight(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "a0")
    create(store, "a1")
    gate = Gate(store)
    assert dispatcher.tick(fetch=True, overlap=True) == 2
    create(store, "b0")
    create(store, "b1")
    threading.Timer(0.2, gate.open.set).start()
    # This round fetches and runs b0 and b1 while a0 and a1 commit, then waits for that
    # commit before its own.
    assert dispatcher.tick(fetch=True, overlap=True) == 2
    dispatcher.flush()
    assert gate.log == ["start 2", "end", "start 2", "end"]
    assert _statuses(store, ["a0", "a1", "b0", "b1"]) == [Status.Completed] * 4
    dispatcher.close()
    store.close()


def test_a_lone_instances_round_commits_in_the_callers_thread(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "solo")
    assert dispatcher.tick(fetch=True, overlap=True) == 1
    assert not dispatcher.pending
    assert _statuses(store, ["solo"]) == [Status.Completed]
    store.close()


def test_results_for_an_instance_in_flight_wait_for_the_round_after(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "x", name="pair")
    create(store, "y", name="pair")
    assert dispatcher.tick(fetch=True) == 2  # both scheduled two activities
    tasks = {(t.instance_id, t.task_id): t for t in store.fetch_activity_work("W", 10, 30)}
    assert len(tasks) == 4
    queue: list[ActivityResult] = []
    dispatcher.take_results = lambda: [queue.pop() for _ in range(len(queue))]
    committed: list[ActivityResult] = []
    dispatcher.on_results_committed = committed.extend
    inbox: list[Any] = []
    complete_and_fetch = store.complete_and_fetch

    def spy(owner: str, results: list[ActivityResult], *args: Any) -> Any:
        inbox.extend(results)
        return complete_and_fetch(owner, results, *args)

    store.complete_and_fetch = spy  # type: ignore[method-assign]

    def result(task: ActivityWorkItem) -> ActivityResult:
        done = ev.TaskCompleted(
            timestamp=datetime.now(UTC), task_scheduled_id=task.task_id, result=task.input
        )
        return ActivityResult(task, done)

    gate = Gate(store)
    queue += [result(tasks["x", 0]), result(tasks["y", 0])]
    assert dispatcher.tick(fetch=False, overlap=True) == 4  # two claims, two results
    queue += [result(tasks["x", 1]), result(tasks["y", 1])]
    assert dispatcher.tick(fetch=False, overlap=True) == 0  # both instances are in flight
    assert dispatcher.pending and gate.log == ["start 2"]
    gate.open.set()
    dispatcher.flush()
    assert dispatcher.pending  # the held results still need a round
    assert dispatcher.tick(fetch=False, overlap=True) == 4
    dispatcher.flush()
    assert not dispatcher.pending
    records = store.get_instances(["x", "y"])
    assert [(r.status, r.output) for r in records] == [(Status.Completed, "3")] * 2
    assert inbox == []  # no result took the inbox
    assert len(committed) == 4
    dispatcher.close()
    store.close()


def test_close_gives_back_results_still_held(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "x", name="pair")
    create(store, "y", name="pair")
    dispatcher.tick(fetch=True)
    tasks = {(t.instance_id, t.task_id): t for t in store.fetch_activity_work("W", 10, 30)}
    queue: list[ActivityResult] = []
    dispatcher.take_results = lambda: [queue.pop() for _ in range(len(queue))]
    returned: list[ActivityResult] = []
    dispatcher.on_results_failed = returned.extend
    gate = Gate(store)
    for task_id in (0, 1):
        queue += [
            ActivityResult(t, ev.TaskCompleted(timestamp=datetime.now(UTC),
                                               task_scheduled_id=task_id, result="1"))
            for t in (tasks["x", task_id], tasks["y", task_id])
        ]
        dispatcher.tick(fetch=False, overlap=True)
    gate.open.set()
    dispatcher.close()
    assert sorted((r.item.instance_id, r.item.task_id) for r in returned) == [
        ("x", 1), ("y", 1)]
    assert not dispatcher.pending
    store.close()


def test_a_failed_commit_in_flight_fails_the_round_waiting_for_it(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "a0")
    create(store, "a1")
    commit = store.commit_and_take_tasks
    calls: list[int] = []

    def broken(*args: Any) -> Any:
        calls.append(len(args[1]))
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return commit(*args)

    store.commit_and_take_tasks = broken  # type: ignore[method-assign]
    assert dispatcher.tick(fetch=True, overlap=True) == 2
    create(store, "b0")
    create(store, "b1")
    with pytest.raises(RuntimeError, match="disk on fire"):
        dispatcher.tick(fetch=True, overlap=True)
    assert calls == [2] and not dispatcher.pending
    # Neither round's leases are held: all four are fetched and run again at once.
    assert dispatcher.tick(fetch=True) == 4
    assert _statuses(store, ["a0", "a1", "b0", "b1"]) == [Status.Completed] * 4
    dispatcher.close()
    store.close()


def test_a_fetch_beside_a_commit_claiming_the_same_starts_runs_them_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Round 1 claims two offered starts; its commit is held while round 2's fetch leases
    # the same instances (their start messages are still in the inbox), then lands.
    store, dispatcher = _dispatcher(tmp_path)
    store.add_start_listener(dispatcher.offer_start)
    for i in range(2):
        create(store, f"i{i}")
    gate = Gate(store)
    assert dispatcher.tick(fetch=False, overlap=True) == 2
    fetch = store.complete_and_fetch
    leased: list[list[str]] = []

    def fetch_then_release(*args: Any) -> Any:
        out = fetch(*args)
        leased.append(sorted(i.instance.instance_id for i in out[1]))
        gate.open.set()
        return out

    store.complete_and_fetch = fetch_then_release  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="perdure.worker"):
        assert dispatcher.tick(fetch=True, overlap=True) == 0  # nothing left to run
        dispatcher.flush()
    assert leased == [["i0", "i1"]]
    assert not [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert _statuses(store, ["i0", "i1"]) == [Status.Completed] * 2
    assert dispatcher.episodes == 2
    assert gate.log == ["start 2", "end"]  # no second commit of the same episodes
    for i in ("i0", "i1"):
        assert [type(e).__name__ for e in store.get_history(i)].count("ExecutionStarted") == 1
    # The checkpoints cleared the fetch's leases: nothing waits for them to expire.
    assert "W" not in store.lock_owners()
    dispatcher.close()
    store.close()


def test_a_fetched_item_with_a_message_the_claim_did_not_consume_is_fetched_again(
    tmp_path: Path,
) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    store.add_start_listener(dispatcher.offer_start)
    create(store, "w0", name="waiter")
    create(store, "w1", name="waiter")
    gate = Gate(store)
    assert dispatcher.tick(fetch=False, overlap=True) == 2
    for i in ("w0", "w1"):  # raised before the claims land: the fetch sees them too
        store.enqueue_if(
            Message(i, ev.EventRaised(timestamp=datetime.now(UTC), name="go", input='"x"')),
            frozenset({Status.Pending, Status.Running}),
        )
    fetch = store.complete_and_fetch

    def fetch_then_release(*args: Any) -> Any:
        out = fetch(*args)
        gate.open.set()
        return out

    store.complete_and_fetch = fetch_then_release  # type: ignore[method-assign]
    woken: list[bool] = []
    dispatcher.on_new_messages = lambda: woken.append(True)
    assert dispatcher.tick(fetch=True, overlap=True) == 0
    dispatcher.flush()
    assert woken  # the events still wait in the inbox: the loop is told to fetch
    assert _statuses(store, ["w0", "w1"]) == [Status.Running] * 2
    store.complete_and_fetch = fetch  # type: ignore[method-assign]
    assert dispatcher.tick(fetch=True) == 2
    dispatcher.flush()
    assert _statuses(store, ["w0", "w1"]) == [Status.Completed] * 2
    assert [r.output for r in store.get_instances(["w0", "w1"])] == ['"x"', '"x"']
    dispatcher.close()
    store.close()


def test_a_fetch_after_a_landed_commit_runs_its_fetched_instances_new_messages(
    tmp_path: Path,
) -> None:
    # Round 1 fetched "t" (finished) and drops a stray message: a checkpoint adding no
    # history. Once that commit has landed, but before it is settled, round 2's fetch
    # leases "t" again for a newer message: that item is fresh and must run, not be
    # taken for one the commit made stale (its history length is unchanged).
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "t")
    assert dispatcher.tick(fetch=True) == 1
    assert _statuses(store, ["t"]) == [Status.Completed]
    every = frozenset(Status)

    def stray() -> None:
        event = ev.EventRaised(timestamp=datetime.now(UTC), name="late")
        assert store.enqueue_if(Message("t", event), every) is not None

    stray()
    create(store, "u")  # a second instance, so the round commits beside the next one
    gate = Gate(store)
    gate.open.set()
    assert dispatcher.tick(fetch=True, overlap=True) == 2
    assert dispatcher._inflight is not None and dispatcher._inflight.future is not None
    dispatcher._inflight.future.result(timeout=10)  # landed, not yet settled
    stray()
    assert dispatcher.tick(fetch=True, overlap=True) == 1
    dispatcher.flush()
    assert store._read("SELECT count(*) FROM inbox WHERE instance_id='t'") == [(0,)]
    assert "W" not in store.lock_owners()
    dispatcher.close()
    store.close()
