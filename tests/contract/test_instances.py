"""Client-side contract: create (dedupe, replace), enqueue_if, get, history."""

from __future__ import annotations

import threading

import pytest

from perdure.errors import InstanceAlreadyExistsError
from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityTask, Message, Store

from .conftest import new_hub
from .support import at, checkpoint, create, lease, new_instance, raised


def test_create_instance_is_pending_with_its_start_message_queued(store: Store) -> None:
    new = create(store, "a", input='"x"')
    record = store.get_instance("a")
    assert record is not None
    assert (record.status, record.name, record.input) == (Status.Pending, "orch", '"x"')
    assert record.execution_id == new.execution_id and record.history_length == 0
    items = lease(store, "w1")
    assert [type(m.event) for m in items["a"].messages] == [ev.ExecutionStarted]
    assert items["a"].messages[0].execution_id == new.execution_id


def test_get_instance_and_history_of_unknown_id_are_empty(store: Store) -> None:
    assert store.get_instance("nope") is None
    assert store.get_history("nope") == []


def test_get_instances_reads_the_existing_ones_of_many_ids(store: Store, make_store) -> None:  # type: ignore[no-untyped-def]
    ids = [f"i{n:04}" for n in range(1200)]  # more than one SQLite statement's worth
    for instance_id in ids[::2]:
        create(store, instance_id)
    other = make_store(hub=new_hub())
    create(other, "i0001")  # same ID, another hub: not ours
    records = store.get_instances([*ids, "i0000", "i0000"])
    assert sorted(r.instance_id for r in records) == ids[::2]
    one = store.get_instance("i0000")
    assert one is not None and one in records
    assert store.get_instances([]) == []
    assert store.get_instances(["nope"]) == []
    # Filtered by status: only the finished one of three.
    item = lease(store, "W")["i0002"]
    assert store.commit_checkpoints("W", [checkpoint(item, status=Status.Completed)], at()) == []
    finished = store.get_instances(["i0000", "i0002", "i0004"], frozenset({Status.Completed}))
    assert [(r.instance_id, r.status) for r in finished] == [("i0002", Status.Completed)]
    assert store.get_instances(["i0002"], frozenset()) == []


def test_create_refuses_an_id_whose_status_is_in_dedupe(store: Store) -> None:
    create(store, "a")
    with pytest.raises(InstanceAlreadyExistsError) as err:
        create(store, "a")
    assert err.value.status == "Pending"
    assert len(lease(store, "w1")["a"].messages) == 1  # nothing was added


def test_create_replaces_a_finished_instance_and_all_its_rows(store: Store) -> None:
    create(store, "a")
    item = lease(store, "w1")["a"]
    task = ActivityTask("a", item.instance.execution_id, 0, "act", None)
    timer = Message("a", raised("later"), item.instance.execution_id, at(3600))
    done = checkpoint(item, status=Status.Completed, output='"done"', tasks=[task])
    assert store.commit_checkpoints("w1", [done], at()) == []
    store.enqueue_if(timer, frozenset(Status))  # a leftover message for the old generation
    assert store.get_history("a") != []

    second = create(store, "a", input='"again"')
    record = store.get_instance("a")
    assert record is not None
    assert record.status is Status.Pending and record.output is None
    assert record.execution_id == second.execution_id and record.input == '"again"'
    assert record.history_length == 0 and store.get_history("a") == []
    assert store.fetch_activity_work("w2", 10, 30) == []
    assert store.next_visible_at(at()) is None
    messages = lease(store, "w2")["a"].messages
    assert [type(m.event) for m in messages] == [ev.ExecutionStarted]


def test_concurrent_creates_of_one_id_admit_exactly_one(make_store, store: Store) -> None:  # type: ignore[no-untyped-def]
    others = [make_store(store.hub) for _ in range(3)]
    outcomes: list[str] = []

    def start(s: Store) -> None:
        try:
            s.create_instance(new_instance("same"), ACTIVE_STATUSES)
            outcomes.append("created")
        except InstanceAlreadyExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(s,)) for s in [store, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]


def test_enqueue_if_reports_status_and_enqueues_only_when_allowed(store: Store) -> None:
    assert store.enqueue_if(Message("ghost", raised()), ACTIVE_STATUSES) is None
    create(store, "a")
    assert store.enqueue_if(Message("a", raised("one")), ACTIVE_STATUSES) is Status.Pending
    refused = frozenset({Status.Failed})
    assert store.enqueue_if(Message("a", raised("two")), refused) is Status.Pending
    names = [getattr(m.event, "name", None) for m in lease(store, "w1")["a"].messages]
    assert names == ["orch", "one"]


def test_history_reads_the_current_execution_in_order(store: Store) -> None:
    create(store, "a")
    item = lease(store, "w1")["a"]
    first = [*(m.event for m in item.messages), ev.OrchestratorStarted(timestamp=at())]
    assert store.commit_checkpoints("w1", [checkpoint(item, first)], at()) == []
    store.enqueue_if(Message("a", raised("x")), ACTIVE_STATUSES)
    item = lease(store, "w1")["a"]
    assert store.commit_checkpoints("w1", [checkpoint(item)], at()) == []
    history = store.get_history("a")
    expected = [ev.ExecutionStarted, ev.OrchestratorStarted, ev.EventRaised]
    assert [type(e) for e in history] == expected
    assert store.load_history("a", item.instance.execution_id) == history
    record = store.get_instance("a")
    assert record is not None and record.history_length == 3


def test_several_histories_are_read_at_once(store: Store) -> None:
    for iid in ("a", "b", "c"):
        create(store, iid)
    work = lease(store, "w1")
    store.commit_checkpoints("w1", [checkpoint(work[i]) for i in ("a", "b", "c")], at())
    store.enqueue_if(Message("b", raised("x")), ACTIVE_STATUSES)
    store.commit_checkpoints("w1", [checkpoint(lease(store, "w1")["b"])], at())
    ea, eb = work["a"].instance.execution_id, work["b"].instance.execution_id
    got = store.load_histories([("b", eb), ("a", ea), ("c", "another-execution"), ("nope", "x")])
    assert got == {
        "a": store.load_history("a", ea),
        "b": store.load_history("b", eb),
        "c": [],
        "nope": [],
    }
    assert [type(e) for e in got["b"]] == [ev.ExecutionStarted, ev.EventRaised]
