"""Actions: what a replay asks the runtime to do. Each pairs with the history event that records it.

    ScheduleTask            -> TaskScheduled
    CreateTimer             -> TimerCreated
    CreateSubOrchestration  -> SubOrchestrationInstanceCreated
    SendEvent               -> EventSent
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Action:
    task_id: int
    call_site: str  # "file.py:12" of the user code that made the call; for error messages


@dataclass(frozen=True, slots=True)
class ScheduleTask(Action):
    name: str
    input: str | None


@dataclass(frozen=True, slots=True)
class CreateTimer(Action):
    fire_at: datetime
    retry_of: int = -1


@dataclass(frozen=True, slots=True)
class CreateSubOrchestration(Action):
    name: str
    instance_id: str
    input: str | None


@dataclass(frozen=True, slots=True)
class SendEvent(Action):
    instance_id: str
    name: str
    input: str | None


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
    return type(action).__name__
