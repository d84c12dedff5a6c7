"""Client-side contract, edges of enqueue_if: implicit entities, refusals, wake-ups."""

from __future__ import annotations

import threading

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Message, Store

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
