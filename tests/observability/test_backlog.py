"""Store.backlog(): due messages, timers, ready and leased activity tasks, per hub."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import ActivityTask, Backlog, Checkpoint, Message, NewInstance, Store
from tests.contract.conftest import MakeStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _start(store: Store, instance_id: str) -> None:
    start = ev.ExecutionStarted(timestamp=NOW, name="orch", execution_id=uuid.uuid4().hex)
    store.create_instance(NewInstance(start, instance_id, NOW), ACTIVE_STATUSES)


def test_empty_hub_has_no_backlog(store: Store) -> None:
    assert store.backlog(NOW) == Backlog(0, 0, 0, 0)


def test_backlog_splits_due_messages_from_timers_and_ready_tasks_from_leased(
    store: Store, make_store: MakeStore
) -> None:
    _start(store, "a")
    _start(store, "b")
    assert store.backlog(NOW).orchestration_messages == 2

    # Run a's first episode: it schedules two activities and a timer an hour out.
    (item,) = [w for w in store.fetch_orchestration_work("w1", NOW, 10, 30) if
               w.instance.instance_id == "a"] or [None]
    assert item is not None
    fire = NOW + timedelta(hours=1)
    cp = Checkpoint(
        instance_id="a",
        execution_id=item.instance.execution_id,
        history_length=0,
        consumed=[m.id for m in item.messages],
        history=[ev.OrchestratorStarted(timestamp=NOW), item.messages[0].event],
        status=Status.Running,
        tasks=[ActivityTask("a", item.instance.execution_id, i, "act", None) for i in (0, 1)],
        messages=[Message("a", ev.TimerFired(timestamp=fire, timer_id=2, fire_at=fire),
                          item.instance.execution_id, fire)],
    )
    assert store.commit_checkpoints("w1", [cp], NOW) == []
    store.release_instances("w1", ["b"])
    assert store.backlog(NOW) == Backlog(
        orchestration_messages=1, timers=1, activity_tasks=2, activities_running=0
    )
    assert len(store.fetch_activity_work("w1", 1, 30)) == 1
    assert store.backlog(NOW) == Backlog(1, 1, 1, 1)
    # Once the timer is due it counts as work waiting to run.
    assert store.backlog(fire).orchestration_messages == 2
    # Another hub on the same database sees none of it.
    assert make_store().backlog(NOW) == Backlog(0, 0, 0, 0)
