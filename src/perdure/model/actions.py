"""Actions: what a replay asks the runtime to do. Each pairs with the history event that records it.

    ScheduleTask            -> TaskScheduled
    CreateTimer             -> TimerCreated
    CreateSubOrchestration  -> SubOrchestrationInstanceCreated
    SendEvent               -> EventSent
    CallEntity              -> EntityOperationCalled
    SignalEntity            -> EntityOperationSignaled
    LockEntities            -> EntityLockRequested
    UnlockEntities          -> EntityUnlockSent
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class Action:
    task_id: int
    call_site: str  # "file.py:12" of the user code that made the call; for error messages


@dataclass(slots=True)
class ScheduleTask(Action):
    name: str
    input: str | None


@dataclass(slots=True)
class CreateTimer(Action):
    fire_at: datetime
    retry_of: int = -1


@dataclass(slots=True)
class CreateSubOrchestration(Action):
    name: str
    instance_id: str
    input: str | None


@dataclass(slots=True)
class SendEvent(Action):
    instance_id: str
    name: str
    input: str | None


@dataclass(slots=True)
class CallEntity(Action):
    target: str  # the entity's instance ID, @name@key
    operation: str
    input: str | None


@dataclass(slots=True)
class SignalEntity(Action):
    target: str
    operation: str
    input: str | None


@dataclass(slots=True)
class LockEntities(Action):
    targets: list[str]  # sorted: the global lock order


@dataclass(slots=True)
class UnlockEntities(Action):
    targets: list[str]


def describe(action: Action) -> str:
    """A short human description, as used in NonDeterminismError messages."""
    if isinstance(action, ScheduleTask):
        return f"call_activity({action.name!r})"
    if isinstance(action, CreateTimer):
        return "create_timer()"
    if isinstance(action, CreateSubOrchestration):
        return f"call_sub_orchestrator({action.name!r})"
    if isinstance(action, SendEvent):
        return f"send_event({action.instance_id!r}, {action.name!r})"
    if isinstance(action, CallEntity):
        return f"call_entity({action.target!r}, {action.operation!r})"
    if isinstance(action, SignalEntity):
        return f"signal_entity({action.target!r}, {action.operation!r})"
    if isinstance(action, LockEntities):
        return f"lock({action.targets!r})"
    if isinstance(action, UnlockEntities):
        return f"release({action.targets!r})"
    return type(action).__name__
