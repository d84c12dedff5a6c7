"""Replays perdure's recorded histories through the DF SDK's own orchestrator handler (the
JSON protocol the Functions host speaks) to see which actions the SDK would schedule."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from perdure.model import events as ev

# azure.durable_functions.models.history.HistoryEventType
_TYPES: dict[type[ev.HistoryEvent], int] = {
    ev.ExecutionStarted: 0, ev.TaskScheduled: 4, ev.TaskCompleted: 5, ev.TaskFailed: 6,
    ev.SubOrchestrationInstanceCreated: 7, ev.SubOrchestrationInstanceCompleted: 8,
    ev.SubOrchestrationInstanceFailed: 9, ev.TimerCreated: 10, ev.TimerFired: 11,
    ev.OrchestratorStarted: 12, ev.OrchestratorCompleted: 13, ev.EventRaised: 15,
}
SCHEDULING = (ev.TaskScheduled, ev.TimerCreated, ev.SubOrchestrationInstanceCreated)


def _time(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def to_sdk_event(event: ev.HistoryEvent) -> dict[str, Any] | None:
    """A perdure history event as the Functions host serializes DTFx's HistoryEvent."""
    kind = _TYPES.get(type(event))
    if kind is None:
        return None
    out: dict[str, Any] = {"EventType": kind, "EventId": event.event_id, "IsPlayed": False,
                           "Timestamp": _time(event.timestamp)}
    if isinstance(event, ev.ExecutionStarted):
        out.update(Name=event.name, Version="", Input=event.input)
    elif isinstance(event, (ev.TaskScheduled, ev.SubOrchestrationInstanceCreated)):
        out.update(Name=event.name, Input=event.input)
    elif isinstance(event, (ev.TaskCompleted, ev.SubOrchestrationInstanceCompleted)):
        out.update(TaskScheduledId=event.task_scheduled_id, Result=event.result)
    elif isinstance(event, (ev.TaskFailed, ev.SubOrchestrationInstanceFailed)):
        out.update(TaskScheduledId=event.task_scheduled_id, Reason=event.failure.message,
                   Details=event.failure.stack_trace)
    elif isinstance(event, ev.TimerCreated):
        out.update(FireAt=_time(event.fire_at))
    elif isinstance(event, ev.TimerFired):
        out.update(TimerId=event.timer_id, FireAt=_time(event.fire_at))
    elif isinstance(event, ev.EventRaised):
        out.update(Name=event.name, Input=event.input)
    return out


def run_sdk(handle: Callable[[str], str], instance_id: str,
            history: list[ev.HistoryEvent]) -> dict[str, Any]:
    """The SDK handler's answer (OrchestratorState JSON) for ``history``."""
    started = next(e for e in history if isinstance(e, ev.ExecutionStarted))
    sdk_history = [e for e in map(to_sdk_event, history) if e is not None]
    context = {"history": sdk_history, "input": started.input, "instanceId": instance_id,
               "isReplaying": False, "parentInstanceId": started.parent_instance_id,
               "upperSchemaVersion": 1, "upperSchemaVersionNew": 2}
    try:
        answer = handle(json.dumps(context))
    except Exception as exc:  # the SDK raises on orchestrator failure, state attached
        answer = str(exc).split("$OutOfProcData$:", 1)[1]
    state: dict[str, Any] = json.loads(answer)
    return state


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """The SDK's atomic actions in order (WhenAll/WhenAny expanded), waits for events left
    out (perdure records no scheduling event for them)."""
    out: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            out += flatten(action)
        elif action["actionType"] in (11, 12):
            out += flatten(action["compoundActions"])
        elif action["actionType"] != 6:
            out.append(action)
    return out


def describe_sdk(action: dict[str, Any]) -> tuple[Any, ...]:
    kind = action["actionType"]
    if kind in (0, 1):
        return ("activity", action["functionName"], json.loads(action["input"] or "null"))
    if kind in (2, 3):
        return ("sub", action["functionName"], json.loads(action["input"] or "null"))
    if kind == 5:
        return ("timer", datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00")))
    return ("other", kind)


def describe_perdure(event: ev.HistoryEvent) -> tuple[Any, ...]:
    if isinstance(event, ev.TaskScheduled):
        return ("activity", event.name, json.loads(event.input or "null"))
    if isinstance(event, ev.SubOrchestrationInstanceCreated):
        return ("sub", event.name, json.loads(event.input or "null"))
    assert isinstance(event, ev.TimerCreated)
    return ("timer", event.fire_at)


def episodes(history: list[ev.HistoryEvent]) -> list[list[ev.HistoryEvent]]:
    """Prefixes of the history, each ending with one episode's OrchestratorCompleted."""
    ends = [i for i, e in enumerate(history) if isinstance(e, ev.OrchestratorCompleted)]
    return [history[: i + 1] for i in ends]
