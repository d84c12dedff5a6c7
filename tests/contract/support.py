"""Small builders for the contract tests: instances, leases and checkpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from perdure.model import events as ev
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import (
    MESSAGES_PER_FETCH,
    Checkpoint,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    Store,
)


def at(seconds: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def new_instance(
    instance_id: str,
    name: str = "orch",
    input: str | None = None,
    created_at: datetime | None = None,
    parent: str | None = None,
) -> NewInstance:
    when = created_at or at()
    start = ev.ExecutionStarted(
        timestamp=when, name=name, execution_id=uuid.uuid4().hex, input=input,
        parent_instance_id=parent,
    )
    return NewInstance(start, instance_id, when)


def create(store: Store, instance_id: str, **kwargs: Any) -> NewInstance:
    new = new_instance(instance_id, **kwargs)
    store.create_instance(new, ACTIVE_STATUSES)
    return new


def lease(
    store: Store, owner: str, lease_seconds: float = 30.0, limit: int = 100,
    now: datetime | None = None, message_limit: int = MESSAGES_PER_FETCH,
) -> dict[str, OrchestrationWorkItem]:
    items = store.fetch_orchestration_work(
        owner, now or at(), limit, lease_seconds, message_limit
    )
    return {item.instance.instance_id: item for item in items}


def checkpoint(
    item: OrchestrationWorkItem,
    history: list[ev.HistoryEvent] | None = None,
    status: Status = Status.Running,
    **kwargs: Any,
) -> Checkpoint:
    """Consume every leased message and append ``history`` (default: those messages)."""
    inst = item.instance
    return Checkpoint(
        instance_id=inst.instance_id,
        execution_id=inst.execution_id,
        history_length=inst.history_length,
        consumed=[m.id for m in item.messages],
        history=[m.event for m in item.messages] if history is None else history,
        status=status,
        **kwargs,
    )


def completed(task_id: int, result: str = "1") -> ev.TaskCompleted:
    return ev.TaskCompleted(timestamp=at(), task_scheduled_id=task_id, result=result)


def raised(name: str = "go", data: str | None = None) -> ev.EventRaised:
    return ev.EventRaised(timestamp=at(), name=name, input=data)


def arm_timer(store: Store, instance_id: str, seconds: float = 60.0) -> datetime:
    """Lease a new instance and commit its start with a timer due in ``seconds``, so that
    its only message is not visible yet; returns the due time."""
    item = lease(store, "timers")[instance_id]
    fire_at = at(seconds)
    timer = ev.TimerFired(timestamp=fire_at, timer_id=0, fire_at=fire_at)
    message = Message(instance_id, timer, item.instance.execution_id, fire_at)
    assert store.commit_checkpoints("timers", [checkpoint(item, messages=[message])], at()) == []
    return fire_at
