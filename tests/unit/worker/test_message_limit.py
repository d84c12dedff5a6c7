"""The dispatcher's per-instance message limit: a burst of messages for one instance is
applied over several rounds, in order, and each round says that more is waiting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perdure.errors import ValidationError
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Message
from perdure.store.sqlite.store import SqliteStore
from perdure.worker.clock import SystemClock
from perdure.worker.orchestrations import OrchestrationDispatcher
from tests.contract.support import create, raised

EVENTS = 25


def collect(context: Any) -> Any:
    got = []
    for _ in range(EVENTS):
        got.append((yield context.wait_for_external_event("go")))
    return got


def test_a_burst_is_applied_over_rounds_in_order(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    dispatcher = OrchestrationDispatcher(
        store, {"orch": collect}, SystemClock(), "W", message_limit=10
    )
    create(store, "a")
    create(store, "b")
    for n in range(EVENTS):
        store.enqueue_if(Message("a", raised(data=str(n))), ACTIVE_STATUSES)
    rounds: list[bool] = []
    while dispatcher.tick(fetch=True):
        rounds.append(dispatcher.fetched_full)
    # 26 messages for "a" (its start and 25 events), 10 a round; "b" comes in the first.
    assert rounds == [True, True, False]
    a, b = store.get_instances(["a", "b"])
    assert a.status is Status.Completed
    assert a.output is not None and json.loads(a.output) == list(range(EVENTS))
    assert b.status is Status.Running
    store.close()


def test_a_message_limit_below_one_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    with pytest.raises(ValidationError, match="message_limit"):
        OrchestrationDispatcher(store, {}, SystemClock(), "W", message_limit=0)
    store.close()


def test_a_round_that_left_messages_asks_for_a_fetch_once_committed(tmp_path: Path) -> None:
    # A fetch that ran beside that round's commit passed its instance over as leased;
    # once the commit releases it, the rest must be fetched without waiting for a poll.
    store = SqliteStore(str(tmp_path / "s.db"))
    dispatcher = OrchestrationDispatcher(
        store, {"orch": collect}, SystemClock(), "W", message_limit=10
    )
    asked: list[int] = []
    dispatcher.on_new_messages = lambda: asked.append(dispatcher.episodes)
    create(store, "a")
    for n in range(EVENTS):
        store.enqueue_if(Message("a", raised(data=str(n))), ACTIVE_STATUSES)
    for _ in range(3):
        dispatcher.tick(fetch=True)
    # asked while settling the first two rounds (episodes before each), not the last
    assert asked == [0, 1]
    store.close()


def test_an_apps_worker_applies_at_most_1000_messages_per_episode_by_default() -> None:
    import perdure

    worker = perdure.App(store=":memory:").worker()
    try:
        assert worker.orchestrations.message_limit == 1000
    finally:
        worker.store.close()
