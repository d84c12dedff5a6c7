"""Worker-side contract for orchestrations: leases, fenced group commits, timers."""

from __future__ import annotations

import threading
import time

import pytest

from perdure.errors import ValidationError
from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityTask, Message, Store, SubOrchestrationStart

from .conftest import MakeStore
from .support import (
    arm_timer,
    at,
    checkpoint,
    completed,
    create,
    lease,
    new_instance,
    raised,
)


def test_fetch_leases_an_instance_to_one_owner_at_a_time(store: Store) -> None:
    for i in range(5):
        create(store, f"i{i}")
    first = lease(store, "A", limit=3)
    second = lease(store, "B")
    assert len(first) == 3 and len(second) == 2
    assert first.keys().isdisjoint(second.keys())
    assert lease(store, "B") == {}
    assert store.lock_owners() == {"A", "B"}


def test_concurrent_fetchers_never_share_an_instance(make_store: MakeStore, store: Store) -> None:
    for i in range(60):
        create(store, f"i{i:02}")
    stores = [store, *(make_store(store.hub) for _ in range(3))]
    got: dict[str, list[str]] = {}

    def fetch(s: Store, owner: str) -> None:
        mine: list[str] = []
        while batch := lease(s, owner, limit=4):
            mine += batch
        got[owner] = mine

    threads = [threading.Thread(target=fetch, args=(s, f"w{n}")) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in got.values() for i in ids]
    assert sorted(every) == [f"i{i:02}" for i in range(60)]  # each exactly once


def test_fetch_serves_the_oldest_waiting_message_first(store: Store) -> None:
    for name in ("x", "y", "z"):
        create(store, name)
    started = lease(store, "w")
    assert store.commit_checkpoints("w", [checkpoint(i) for i in started.values()], at()) == []
    for name in ("z", "x", "y"):
        store.enqueue_if(Message(name, raised()), ACTIVE_STATUSES)
    items = store.fetch_orchestration_work("w", at(), 2, 30)
    assert [i.instance.instance_id for i in items] == ["z", "x"]


def test_a_backlog_is_served_in_order_each_instance_once(store: Store) -> None:
    # More waiting instances than one fetch looks at: batch after batch, oldest first.
    names = [f"i{i:04}" for i in range(700)]
    for name in names:
        create(store, name)
    served: list[str] = []
    while batch := store.fetch_orchestration_work("w", at(), 100, 30):
        assert len(batch) == 100 or len(served) + len(batch) == len(names)
        served += [item.instance.instance_id for item in batch]
    assert served == names


def test_fetch_reaches_past_the_messages_of_a_leased_instance(store: Store) -> None:
    # The oldest few hundred visible messages all belong to an instance another worker
    # holds; an instance waiting behind them is still found.
    create(store, "hot")
    assert list(lease(store, "A", limit=1)) == ["hot"]
    for _ in range(300):
        store.enqueue_if(Message("hot", raised()), ACTIVE_STATUSES)
    create(store, "cold")
    assert list(lease(store, "B", limit=1)) == ["cold"]
    # Once released, the hot instance comes with every message it has.
    store.release_instances("A", ["hot"])
    hot = lease(store, "C", limit=1)["hot"]
    assert len(hot.messages) == 301


@pytest.mark.parametrize("behind", [4, 25])
def test_behind_a_leased_burst_the_waiting_instances_come_oldest_first(
    store: Store, behind: int
) -> None:
    # Past a window full of one leased instance's messages, a fetch looks at every
    # instance with a visible message: visited one by one while they are few (4),
    # grouped on PostgreSQL when they are more (25). Either way the oldest message
    # goes first, an instance whose oldest message is not due yet is found by the one
    # that is, and one with no message due is left alone.
    create(store, "hot")
    assert list(lease(store, "A", limit=1)) == ["hot"]
    for _ in range(300):
        store.enqueue_if(Message("hot", raised()), ACTIVE_STATUSES)
    names = [f"b{i:02}" for i in range(behind)]
    create(store, "late")
    arm_timer(store, "late")
    create(store, "asleep")
    arm_timer(store, "asleep")
    for name in names[::-1]:  # created in reverse: their IDs' order is not their age
        create(store, name)
    store.enqueue_if(Message("late", raised()), ACTIVE_STATUSES)
    got = store.fetch_orchestration_work("B", at(), 10, 30)
    expected = [*names[::-1], "late"][:10]
    assert [i.instance.instance_id for i in got] == expected
    assert set(lease(store, "C")) == {*names, "late"} - set(expected)  # never "asleep"
    if "late" in expected:
        late = next(i for i in got if i.instance.instance_id == "late")
        assert [type(m.event) for m in late.messages] == [ev.EventRaised]


def test_a_window_of_one_instances_messages_serves_it_and_the_one_behind(store: Store) -> None:
    # The window is all one free instance's messages, handed out whole: the instance
    # behind it comes in the same fetch. Left to a later fetch, nothing would ask for
    # one (its message's hint was this fetch), and it would wait for the worker's poll.
    create(store, "hot")
    for _ in range(300):
        store.enqueue_if(Message("hot", raised()), ACTIVE_STATUSES)
    create(store, "cold")
    first = lease(store, "A", limit=2)
    assert len(first["hot"].messages) == 301 and not first["hot"].more
    assert "cold" in first


def test_a_fetch_hands_out_at_most_message_limit_messages_per_instance(store: Store) -> None:
    # An instance with a burst of messages comes with its oldest few, flagged as having
    # more; each commit of those lets the next fetch hand out the next few, in order.
    create(store, "hot")
    for n in range(10):
        store.enqueue_if(Message("hot", raised(data=str(n))), ACTIVE_STATUSES)
    create(store, "cold")
    first = {
        i.instance.instance_id: i
        for i in store.fetch_orchestration_work("w", at(), 10, 30, message_limit=4)
    }
    assert set(first) == {"hot", "cold"}
    assert (len(first["cold"].messages), first["cold"].more) == (1, False)
    seen: list[ev.HistoryEvent] = []
    item = first["hot"]
    while True:
        assert len(item.messages) == (4 if item.more else 3)
        ids = [m.id for m in item.messages]
        assert ids == sorted(ids)
        seen += [m.event for m in item.messages]
        assert store.commit_checkpoints("w", [checkpoint(item)], at()) == []
        if not item.more:
            break
        item = lease(store, "w", limit=1, message_limit=4)["hot"]
    assert isinstance(seen[0], ev.ExecutionStarted)
    assert [e.input for e in seen[1:] if isinstance(e, ev.EventRaised)] == [
        str(n) for n in range(10)
    ]
    assert lease(store, "w", message_limit=4) == {}


def test_by_default_a_fetch_hands_out_1000_messages_of_one_instance(store: Store) -> None:
    # The figure the README gives: an episode applies at most 1,000 waiting messages.
    create(store, "hot")
    for n in range(1000):
        store.enqueue_if(Message("hot", raised(data=str(n))), ACTIVE_STATUSES)
    item = lease(store, "w")["hot"]
    assert (len(item.messages), item.more) == (1000, True)
    assert isinstance(item.messages[0].event, ev.ExecutionStarted)
    assert store.commit_checkpoints("w", [checkpoint(item)], at()) == []
    rest = lease(store, "w")["hot"]
    assert [m.event.input for m in rest.messages] == ["999"]  # type: ignore[attr-defined]
    assert not rest.more


def test_a_fetch_at_exactly_message_limit_has_no_more(store: Store) -> None:
    create(store, "a")
    for _ in range(2):
        store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES)
    item = lease(store, "w", message_limit=3)["a"]
    assert (len(item.messages), item.more) == (3, False)


def test_instances_whose_messages_pass_message_limit_only_together_come_whole(
    store: Store,
) -> None:
    for name in ("a", "b", "c"):
        create(store, name)
        for _ in range(2):
            store.enqueue_if(Message(name, raised()), ACTIVE_STATUSES)
    got = lease(store, "w", message_limit=4)
    assert sorted(got) == ["a", "b", "c"]
    assert all(len(i.messages) == 3 and not i.more for i in got.values())


def test_messages_not_yet_visible_do_not_count_against_message_limit(store: Store) -> None:
    create(store, "a")
    arm_timer(store, "a")
    for _ in range(2):
        store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES)
    now = lease(store, "A", message_limit=2)["a"]
    assert [type(m.event) for m in now.messages] == [ev.EventRaised] * 2
    assert not now.more


def test_a_message_limit_below_one_is_refused_and_leases_nothing(store: Store) -> None:
    create(store, "a")
    with pytest.raises(ValidationError, match="message_limit"):
        store.fetch_orchestration_work("w", at(), 10, 30, message_limit=0)
    with pytest.raises(ValidationError, match="message_limit"):
        store.complete_and_fetch("w", [], at(), 10, 30, message_limit=-1)
    assert list(lease(store, "other")) == ["a"]


def test_an_instance_with_messages_left_does_not_hide_those_behind_it(store: Store) -> None:
    # The oldest few hundred visible messages (more than a windowed fetch looks at) all
    # belong to one free instance, and it gets only some of them: an instance whose
    # message is behind them comes in the same fetch, not once the burst is drained.
    create(store, "hot")
    for _ in range(600):
        store.enqueue_if(Message("hot", raised()), ACTIVE_STATUSES)
    create(store, "cold")
    got = lease(store, "A", limit=2, message_limit=50)
    assert set(got) == {"hot", "cold"}
    assert len(got["hot"].messages) == 50 and got["hot"].more


def test_checkpoint_writes_history_tasks_messages_and_releases_the_lease(store: Store) -> None:
    create(store, "a")
    create(store, "b")
    item = lease(store, "A", limit=1)["a"]
    eid = item.instance.execution_id
    cp = checkpoint(
        item,
        custom_status='"busy"',
        tasks=[ActivityTask("a", eid, 0, "act", '"in"'), ActivityTask("a", eid, 1, "act", None)],
        messages=[Message("b", raised("hello", '"hi"'))],
    )
    assert store.commit_checkpoints("A", [cp], at()) == []
    record = store.get_instance("a")
    assert record is not None
    assert (record.status, record.custom_status, record.history_length) == (
        Status.Running, '"busy"', 1)
    assert [t.task_id for t in store.fetch_activity_work("W", 10, 30)] == [0, 1]
    b = lease(store, "B")["b"]
    assert [type(m.event) for m in b.messages] == [ev.ExecutionStarted, ev.EventRaised]
    # the lease is released and the consumed start message is gone
    store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES)
    again = lease(store, "C")["a"]
    assert [type(m.event) for m in again.messages] == [ev.EventRaised]
    assert again.instance.history_length == 1


def test_histories_of_many_checkpoints_read_back_whole_and_in_order(store: Store) -> None:
    """A checkpoint's events are stored together (a long one in several rows); every
    way of reading a history returns each event once, in order."""
    create(store, "a")
    item = lease(store, "A")["a"]
    many = [
        ev.TaskScheduled(timestamp=at(), event_id=i, name="act", input=f'"{i}"')
        for i in range(2 * ev.BATCH_EVENTS + 300)
    ]
    first = [*(m.event for m in item.messages), *many]
    assert store.commit_checkpoints("A", [checkpoint(item, first)], at()) == []
    store.enqueue_if(Message("a", raised("go", '"x"')), ACTIVE_STATUSES)
    item = lease(store, "A")["a"]
    assert item.instance.history_length == len(first)
    second = [ev.OrchestratorStarted(timestamp=at()), *(m.event for m in item.messages)]
    assert store.commit_checkpoints("A", [checkpoint(item, second)], at()) == []
    store.enqueue_if(Message("a", raised("one")), ACTIVE_STATUSES)
    item = lease(store, "A")["a"]
    third = [m.event for m in item.messages]  # a checkpoint of a single event
    assert store.commit_checkpoints("A", [checkpoint(item, third)], at()) == []
    expected = first + second + third
    eid = item.instance.execution_id
    assert store.get_history("a") == expected
    assert store.load_history("a", eid) == expected
    assert store.load_histories([("a", eid)]) == {"a": expected}
    record = store.get_instance("a")
    assert record is not None and record.history_length == len(expected)


def test_commit_after_lease_expiry_writes_nothing(store: Store) -> None:
    create(store, "a")
    stale = lease(store, "A", lease_seconds=0.3)["a"]
    time.sleep(0.5)
    fresh = lease(store, "B")["a"]  # the lease expired: another owner takes it
    assert [m.id for m in fresh.messages] == [m.id for m in stale.messages]
    cp = checkpoint(stale, status=Status.Completed, output='"stale"')
    assert store.commit_checkpoints("A", [cp], at()) == ["a"]
    record = store.get_instance("a")
    assert record is not None and record.status is Status.Pending and record.history_length == 0
    assert store.get_history("a") == []
    assert store.commit_checkpoints("B", [checkpoint(fresh)], at()) == []
    assert len(store.get_history("a")) == 1


def test_commit_after_expiry_is_refused_even_if_nobody_took_over(store: Store) -> None:
    create(store, "a")
    item = lease(store, "A", lease_seconds=0.2)["a"]
    time.sleep(0.4)
    assert store.commit_checkpoints("A", [checkpoint(item)], at()) == ["a"]
    assert store.get_history("a") == []


def test_commit_is_fenced_on_history_length(store: Store) -> None:
    create(store, "a")
    item = lease(store, "A")["a"]
    wrong = checkpoint(item)
    wrong.history_length = 5
    assert store.commit_checkpoints("A", [wrong], at()) == ["a"]
    assert store.commit_checkpoints("A", [checkpoint(item)], at()) == []


def test_group_commit_reports_only_the_checkpoints_whose_lease_was_lost(store: Store) -> None:
    for i in range(20):
        create(store, f"i{i:02}")
    items = lease(store, "A")
    assert len(items) == 20
    store.release_instances("A", ["i07"])
    taken = lease(store, "B")
    assert list(taken) == ["i07"]
    cps = [checkpoint(item) for item in items.values()]
    assert store.commit_checkpoints("A", cps, at()) == ["i07"]
    for i in range(20):
        record = store.get_instance(f"i{i:02}")
        assert record is not None
        assert record.history_length == (0 if i == 7 else 1)


def test_release_instances_returns_leases_without_changes(store: Store) -> None:
    create(store, "a")
    lease(store, "A")
    store.release_instances("B", ["a"])  # not B's lease: no effect
    assert lease(store, "C") == {}
    store.release_instances("A", ["a"])
    assert list(lease(store, "C")) == ["a"]


def test_timer_messages_become_visible_at_their_time(store: Store) -> None:
    create(store, "a")
    fire_at = arm_timer(store, "a")
    assert lease(store, "A") == {}
    due = store.next_visible_at(at())
    assert due is not None and abs((due - fire_at).total_seconds()) < 0.001
    assert store.next_visible_at(at(120)) is None
    later = lease(store, "A", now=at(61))["a"]
    assert [type(m.event) for m in later.messages] == [ev.TimerFired]


def test_a_batch_messages_its_own_instances_and_others_in_order(store: Store) -> None:
    """Timers to self, events between instances of one batch and to one outside it, and
    tasks leased and queued: all land, in order, by one commit."""
    for iid in ("a", "b", "outside"):
        create(store, iid)
    work = lease(store, "W", limit=2)
    assert sorted(work) == ["a", "b"]
    ea = work["a"].instance.execution_id
    fire_at = at(0.5)
    timer = ev.TimerFired(timestamp=fire_at, timer_id=0, fire_at=fire_at)
    cps = [
        checkpoint(work["a"], messages=[
            Message("a", timer, ea, fire_at),
            Message("b", raised("one")), Message("b", raised("two")),
            Message("outside", raised("three")),
        ], tasks=[ActivityTask("a", ea, 1, "act", None), ActivityTask("a", ea, 2, "act", None)]),
        checkpoint(work["b"], messages=[Message("a", raised("back"))]),
    ]
    lost, taken = store.commit_and_take_tasks("W", cps, at(), 1, 30)
    assert lost == [] and [t.task_id for t in taken] == [1]
    assert [t.task_id for t in store.fetch_activity_work("X", 10, 30)] == [2]
    now = lease(store, "W")
    names = {i: [getattr(m.event, "name", None) for m in item.messages] for i, item in now.items()}
    assert names == {"a": ["back"], "b": ["one", "two"], "outside": ["orch", "three"]}
    assert store.get_instance("a").history_length == 1  # type: ignore[union-attr]
    store.release_instances("W", list(now))
    time.sleep(0.6)
    later = lease(store, "W", now=at())
    assert [type(m.event) for m in later["a"].messages] == [ev.TimerFired, ev.EventRaised]


def test_finishing_drops_pending_timers_and_results_but_keeps_events(store: Store) -> None:
    create(store, "a")
    item = lease(store, "A")["a"]
    eid = item.instance.execution_id
    fire_at = at(60)
    timer = ev.TimerFired(timestamp=fire_at, timer_id=0, fire_at=fire_at)
    cp = checkpoint(item, messages=[Message("a", timer, eid, fire_at)])
    store.commit_checkpoints("A", [cp], at())
    store.enqueue_if(Message("a", completed(3)), ACTIVE_STATUSES)
    store.enqueue_if(Message("a", raised("late")), ACTIVE_STATUSES)
    item = lease(store, "A")["a"]
    kept = item.messages[:1]  # consume only the first; the episode ends the instance
    cp = checkpoint(item, status=Status.Completed, output='"ok"')
    cp.consumed = [m.id for m in kept]
    store.commit_checkpoints("A", [cp], at())
    assert store.next_visible_at(at()) is None
    left = lease(store, "B")["a"].messages
    assert [type(m.event) for m in left] == [ev.EventRaised]
    record = store.get_instance("a")
    assert record is not None and record.completed_at is not None


def test_continue_as_new_starts_a_fresh_generation(store: Store) -> None:
    create(store, "a", input='"1"')
    item = lease(store, "A")["a"]
    nxt = ev.ExecutionStarted(timestamp=at(), name="orch", execution_id="gen2", input='"2"')
    cp = checkpoint(
        item, status=Status.ContinuedAsNew, new_execution=nxt,
        messages=[Message("a", nxt, "gen2"), Message("a", raised("carried"))],
        tasks=[],
    )
    assert store.commit_checkpoints("A", [cp], at()) == []
    record = store.get_instance("a")
    assert record is not None
    assert (record.execution_id, record.input, record.history_length) == ("gen2", '"2"', 0)
    assert store.get_history("a") == []
    messages = lease(store, "A")["a"].messages
    assert [type(m.event) for m in messages] == [ev.ExecutionStarted, ev.EventRaised]


def test_replace_history_rewrites_it(store: Store) -> None:
    create(store, "a")
    item = lease(store, "A")["a"]
    first = [*(m.event for m in item.messages), raised("1")]
    store.commit_checkpoints("A", [checkpoint(item, first)], at())
    store.enqueue_if(Message("a", raised("2")), ACTIVE_STATUSES)
    item = lease(store, "A")["a"]
    start = store.get_history("a")[0]
    cp = checkpoint(item, [start, raised("rewound")], replace_history=True)
    assert store.commit_checkpoints("A", [cp], at()) == []
    history = store.get_history("a")
    assert [getattr(e, "name", None) for e in history] == ["orch", "rewound"]
    record = store.get_instance("a")
    assert record is not None and record.history_length == 2


def test_sub_orchestrations_are_created_or_answered_with_the_conflict(store: Store) -> None:
    create(store, "parent")
    create(store, "busy")
    items = lease(store, "A")
    parent = items["parent"]
    eid = parent.instance.execution_id
    conflict = ev.SubOrchestrationInstanceFailed(
        timestamp=at(), task_scheduled_id=1, failure=ev.FailureDetails("X", "already running"))
    subs = [
        SubOrchestrationStart(new_instance("child", "sub", '"c"', parent="parent"),
                              Message("parent", conflict, eid)),
        SubOrchestrationStart(new_instance("busy", "sub", parent="parent"),
                              Message("parent", conflict, eid)),
    ]
    cps = [checkpoint(parent, sub_orchestrations=subs), checkpoint(items["busy"])]
    assert store.commit_checkpoints("A", cps, at()) == []
    child = store.get_instance("child")
    assert child is not None
    assert (child.status, child.name, child.parent_instance_id) == (Status.Pending, "sub", "parent")
    work = lease(store, "B")
    assert [type(m.event) for m in work["child"].messages] == [ev.ExecutionStarted]
    assert [type(m.event) for m in work["parent"].messages] == [ev.SubOrchestrationInstanceFailed]
    assert "busy" not in work  # the running instance was left alone


def test_batch_where_one_checkpoint_messages_a_child_created_by_another(store: Store) -> None:
    # Applied in order: first the message to a not-yet-existing 'kid' (dropped), then
    # the creation of 'kid'; the batch must behave as if committed one by one.
    create(store, "p1")
    create(store, "p2")
    items = lease(store, "A")
    eid = items["p2"].instance.execution_id
    conflict = ev.SubOrchestrationInstanceFailed(
        timestamp=at(), task_scheduled_id=0, failure=ev.FailureDetails("X", "x"))
    cps = [
        checkpoint(items["p1"], messages=[Message("kid", raised("early"))]),
        checkpoint(items["p2"], sub_orchestrations=[
            SubOrchestrationStart(new_instance("kid", "sub"), Message("p2", conflict, eid))]),
    ]
    assert store.commit_checkpoints("A", cps, at()) == []
    kid = lease(store, "B")["kid"]
    assert [type(m.event) for m in kid.messages] == [ev.ExecutionStarted]


def test_messages_to_unknown_instances_are_dropped(store: Store) -> None:
    create(store, "a")
    item = lease(store, "A")["a"]
    cp = checkpoint(item, messages=[Message("ghost", raised())])
    assert store.commit_checkpoints("A", [cp], at()) == []
    assert lease(store, "B") == {}
    assert store.get_instance("ghost") is None
    create(store, "ghost")  # no orphaned message is waiting for a later instance of that ID
    assert [type(m.event) for m in lease(store, "B")["ghost"].messages] == [ev.ExecutionStarted]


def test_batch_delivers_a_message_to_a_child_created_by_an_earlier_checkpoint(
    store: Store,
) -> None:
    create(store, "p1")
    create(store, "p2")
    create(store, "p3")
    items = lease(store, "A")
    conflict = ev.SubOrchestrationInstanceFailed(
        timestamp=at(), task_scheduled_id=0, failure=ev.FailureDetails("X", "x"))

    def start_kid(parent: str) -> list[SubOrchestrationStart]:
        refusal = Message(parent, conflict, items[parent].instance.execution_id)
        return [SubOrchestrationStart(new_instance("kid", "sub"), refusal)]

    cps = [
        checkpoint(items["p1"], sub_orchestrations=start_kid("p1")),
        checkpoint(items["p2"], messages=[Message("kid", raised("hello"))]),
        checkpoint(items["p3"], sub_orchestrations=start_kid("p3")),
    ]
    assert store.commit_checkpoints("A", cps, at()) == []
    work = lease(store, "B")
    assert [type(m.event) for m in work["kid"].messages] == [ev.ExecutionStarted, ev.EventRaised]
    assert "p1" not in work  # p1 created the child
    # p3 asked for the same child later in the batch: refused, as if committed one by one
    assert [type(m.event) for m in work["p3"].messages] == [ev.SubOrchestrationInstanceFailed]


def test_a_message_to_an_entity_creates_it(store: Store) -> None:
    create(store, "caller")
    item = lease(store, "A")["caller"]
    signal = ev.EventRaised(timestamp=at(), name="op", input="1")
    cp = checkpoint(item, messages=[Message("@counter@k1", signal)])
    assert store.commit_checkpoints("A", [cp], at()) == []
    entity = store.get_instance("@counter@k1")
    assert entity is not None
    assert (entity.name, entity.status) == ("counter", Status.Running)
    assert store.enqueue_if(Message("@counter@k2", signal), ACTIVE_STATUSES) is Status.Running
    work = lease(store, "B")
    assert sorted(work) == ["@counter@k1", "@counter@k2"]
    assert [type(m.event) for m in work["@counter@k1"].messages] == [ev.EventRaised]
