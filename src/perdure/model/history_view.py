"""The readable history of an instance, shaped like Durable Functions' ``historyEvents``.

OrchestratorStarted/Completed rows are dropped and each scheduling event is folded
into its completion, which then carries the function name and scheduled time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perdure.model import codec
from perdure.model import events as ev

_SCHEDULING = (ev.TaskScheduled, ev.SubOrchestrationInstanceCreated, ev.TimerCreated)


def _t(value: Any) -> str:
    return str(value.isoformat()).replace("+00:00", "Z")


def history_view(
    history: Sequence[ev.HistoryEvent], show_output: bool = False, show_input: bool = True
) -> list[dict[str, Any]]:
    """Condense ``history`` into rows a person (and a Durable Functions client) can read."""
    scheduled: dict[int, ev.HistoryEvent] = {
        e.event_id: e for e in history if isinstance(e, _SCHEDULING)
    }
    completed = {
        getattr(e, "task_scheduled_id", getattr(e, "timer_id", -1))
        for e in history
        if isinstance(
            e,
            (ev.TaskCompleted, ev.TaskFailed, ev.SubOrchestrationInstanceCompleted,
             ev.SubOrchestrationInstanceFailed, ev.TimerFired),
        )
    }
    rows: list[dict[str, Any]] = []
    for e in history:
        if isinstance(e, (ev.OrchestratorStarted, ev.OrchestratorCompleted, ev.GenericEvent)):
            continue
        if isinstance(e, _SCHEDULING) and e.event_id in completed:
            continue
        row: dict[str, Any] = {"EventType": e.event_type, "Timestamp": _t(e.timestamp)}
        if e.event_id >= 0:
            row["EventId"] = e.event_id
        source = None
        if isinstance(e, (ev.TaskCompleted, ev.TaskFailed, ev.SubOrchestrationInstanceCompleted,
                          ev.SubOrchestrationInstanceFailed)):
            source = scheduled.get(e.task_scheduled_id)
            row["TaskScheduledId"] = e.task_scheduled_id
        elif isinstance(e, ev.TimerFired):
            source = scheduled.get(e.timer_id)
            row["TimerId"] = e.timer_id
            row["FireAt"] = _t(e.fire_at)
        if source is not None:
            row["ScheduledTime"] = _t(source.timestamp)
            name = getattr(source, "name", None)
            if name:
                row["FunctionName"] = name
            if isinstance(source, ev.SubOrchestrationInstanceCreated):
                row["InstanceId"] = source.instance_id
            if show_input and getattr(source, "input", None) is not None:
                row["Input"] = codec.decode(source.input)  # type: ignore[attr-defined]
        name = getattr(e, "name", None)
        if name and "FunctionName" not in row:
            row["Name" if isinstance(e, (ev.EventRaised, ev.EventSent)) else "FunctionName"] = name
        if isinstance(e, ev.ExecutionStarted):
            if show_input:
                row["Input"] = codec.decode(e.input)
            if e.parent_instance_id:
                row["ParentInstanceId"] = e.parent_instance_id
        elif isinstance(e, ev.ExecutionCompleted):
            row["OrchestrationStatus"] = e.status
            if show_output:
                row["Result"] = codec.decode(e.result)
        elif isinstance(e, (ev.TaskCompleted, ev.SubOrchestrationInstanceCompleted)):
            if show_output:
                row["Result"] = codec.decode(e.result)
        elif isinstance(e, (ev.TaskFailed, ev.SubOrchestrationInstanceFailed)):
            row["Reason"] = f"{e.failure.error_type}: {e.failure.message}"
            row["Details"] = e.failure.stack_trace
        elif isinstance(e, (ev.EventRaised, ev.EventSent)):
            if show_output:
                row["Input"] = codec.decode(e.input)
            if isinstance(e, ev.EventSent):
                row["InstanceId"] = e.instance_id
        elif isinstance(e, (ev.ExecutionTerminated, ev.ExecutionSuspended, ev.ExecutionResumed,
                            ev.ExecutionRewound)):
            row["Reason"] = e.reason
        elif isinstance(e, ev.TimerCreated):
            row["FireAt"] = _t(e.fire_at)
        elif isinstance(e, (ev.TaskScheduled, ev.SubOrchestrationInstanceCreated)) and show_input:
            row["Input"] = codec.decode(e.input)
        rows.append(row)
    return rows
