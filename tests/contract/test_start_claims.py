"""Starts in the creating process: after ``create_instance`` commits a new ID, the store
offers the instance to its start listeners as the work item a fetch would return, and a
worker that takes it claims it with its first checkpoint, without a lease.

The claim's fence accepts the instance only if nobody leased it and it is still at the
position it was created at; otherwise the whole checkpoint is lost and writes nothing,
and the start is run by whoever fetched it (exactly once).
"""

from __future__ import annotations

from datetime import datetime

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Checkpoint, Message, OrchestrationWorkItem, Store

from .support import at, checkpoint, create, lease, raised


class Offers:
    """A start listener that takes (or declines) every offer, and counts wake-ups."""

    def __init__(self, store: Store, take: bool) -> None:
        self.take = take
        self.items: list[OrchestrationWorkItem] = []
        self.wakes = 0
        store.add_start_listener(self.offered)
        store.add_listener(self.woken)

    def offered(self, item: OrchestrationWorkItem) -> bool:
        self.items.append(item)
        return self.take

    def woken(self) -> None:
        self.wakes += 1


def first_episode(item: OrchestrationWorkItem, status: Status = Status.Running) -> Checkpoint:
    """The checkpoint of the first episode on an offered start, as a claim."""
    stamp: datetime = at()
    cp = checkpoint(
        item,
        history=[ev.OrchestratorStarted(timestamp=stamp), *[m.event for m in item.messages]],
        status=status,
    )
    cp.claim = True
    return cp


def test_a_new_instance_is_offered_as_the_item_a_fetch_returns(store: Store) -> None:
    offers = Offers(store, take=False)
    new = create(store, "a", input='"x"')
    assert len(offers.items) == 1
    offered = offers.items[0]
    fetched = lease(store, "X")["a"]
    for field in ("instance_id", "name", "execution_id", "status", "input",
                  "parent_instance_id", "history_length"):
        assert getattr(offered.instance, field) == getattr(fetched.instance, field), field
    assert offered.instance.status is Status.Pending and offered.instance.history_length == 0
    assert [(m.id, m.execution_id, type(m.event)) for m in offered.messages] == [
        (m.id, m.execution_id, type(m.event)) for m in fetched.messages
    ]
    assert offered.messages[0].event == new.start
    # Declined: the other listeners are woken as for any commit.
    assert offers.wakes == 1


def test_a_taken_start_wakes_no_other_listener(store: Store) -> None:
    offers = Offers(store, take=True)
    create(store, "a")
    create(store, "b")
    assert [i.instance.instance_id for i in offers.items] == ["a", "b"]
    assert offers.wakes == 0
    # Taken is not leased: the messages are in the inbox for any worker.
    assert sorted(lease(store, "X")) == ["a", "b"]


def test_a_replaced_instance_is_not_offered(store: Store) -> None:
    create(store, "a")
    item = lease(store, "X")["a"]
    assert store.commit_checkpoints("X", [checkpoint(item, status=Status.Completed)], at()) == []
    offers = Offers(store, take=True)
    create(store, "a")  # replaces the completed instance: history and inbox are rewritten
    assert offers.items == [] and offers.wakes == 1
    assert list(lease(store, "X")) == ["a"]


def test_a_claimed_start_commits_and_consumes_its_message(store: Store) -> None:
    offers = Offers(store, take=True)
    create(store, "a")
    cp = first_episode(offers.items[0])
    assert store.commit_checkpoints("W", [cp], at()) == []
    inst = store.get_instance("a")
    assert inst is not None and inst.status is Status.Running
    assert inst.history_length == 2
    assert [type(e) for e in store.get_history("a")] == [ev.OrchestratorStarted,
                                                         ev.ExecutionStarted]
    assert lease(store, "X") == {}  # the start was consumed, and no lease was left behind
    assert store.enqueue_if(Message("a", raised()), ACTIVE_STATUSES) is Status.Running
    assert list(lease(store, "X")) == ["a"]


def test_a_claim_on_a_start_another_worker_leased_is_refused(store: Store) -> None:
    offers = Offers(store, take=True)
    create(store, "a")
    theirs = lease(store, "X")["a"]
    assert store.commit_checkpoints("W", [first_episode(offers.items[0])], at()) == ["a"]
    inst = store.get_instance("a")
    assert inst is not None and inst.history_length == 0 and inst.status is Status.Pending
    assert store.get_history("a") == []
    # The worker that leased it runs the start, once.
    assert store.commit_checkpoints("X", [checkpoint(theirs)], at()) == []
    assert [type(e) for e in store.get_history("a")] == [ev.ExecutionStarted]


def test_a_claim_on_a_start_that_already_ran_is_refused(store: Store) -> None:
    offers = Offers(store, take=True)
    create(store, "a")
    theirs = lease(store, "X")["a"]
    assert store.commit_checkpoints("X", [checkpoint(theirs)], at()) == []
    assert store.commit_checkpoints("W", [first_episode(offers.items[0])], at()) == ["a"]
    assert [type(e) for e in store.get_history("a")] == [ev.ExecutionStarted]


def test_a_claim_on_a_start_of_a_replaced_generation_is_refused(store: Store) -> None:
    offers = Offers(store, take=True)
    create(store, "a")
    stale = offers.items[0]
    # The instance is terminated and started again under the same ID before the claim.
    item = lease(store, "X")["a"]
    assert store.commit_checkpoints("X", [checkpoint(item, status=Status.Terminated)], at()) == []
    new = create(store, "a")
    assert store.commit_checkpoints("W", [first_episode(stale)], at()) == ["a"]
    inst = store.get_instance("a")
    assert inst is not None and inst.execution_id == new.execution_id
    assert inst.history_length == 0
    assert list(lease(store, "X")) == ["a"]  # the new generation's start still waits
