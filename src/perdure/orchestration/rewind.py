"""Rewind: turn a Failed instance's history back into one that re-runs only the failed work.

Pure. The failures that ended the instance (those recorded in its last episode
and not followed by a retry) are removed together with the events that
scheduled them, so replaying the code schedules exactly that work again, while
every completed activity keeps its recorded result. Work still in flight when
the instance failed is re-scheduled too: its results were dropped while the
instance was Failed, so they would never arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

from perdure.model import events as ev

_FAILED = (ev.TaskFailed, ev.SubOrchestrationInstanceFailed)
_DONE = (
    ev.TaskCompleted,
    ev.TaskFailed,
    ev.SubOrchestrationInstanceCompleted,
    ev.SubOrchestrationInstanceFailed,
)
_SCHEDULED = (ev.TaskScheduled, ev.SubOrchestrationInstanceCreated, ev.TimerCreated)

#: Left where the ExecutionCompleted was. It tells the replay engine that this
#: history lacks, on purpose, the scheduling events of the work it re-runs.
REWIND_MARKER = "rewound"


def rewind_history(history: Sequence[ev.HistoryEvent]) -> list[ev.HistoryEvent]:
    """Return the history to replay after a rewind (the ExecutionCompleted becomes a marker)."""
    last_episode = max(
        (i for i, e in enumerate(history) if isinstance(e, ev.OrchestratorStarted)), default=0
    )
    retried = {e.retry_of for e in history if isinstance(e, ev.TimerCreated) and e.retry_of >= 0}
    drop = {
        e.task_scheduled_id
        for e in history[last_episode:]
        if isinstance(e, _FAILED) and e.task_scheduled_id not in retried
    }
    finished = {e.task_scheduled_id for e in history if isinstance(e, _DONE)}
    finished |= {e.timer_id for e in history if isinstance(e, ev.TimerFired)}
    drop |= {e.event_id for e in history if isinstance(e, _SCHEDULED)} - finished
    kept: list[ev.HistoryEvent] = []
    for e in history:
        if isinstance(e, ev.ExecutionCompleted):
            kept.append(ev.GenericEvent(timestamp=e.timestamp, data=REWIND_MARKER))
            continue
        if isinstance(e, _SCHEDULED) and e.event_id in drop:
            continue
        if isinstance(e, _FAILED) and e.task_scheduled_id in drop:
            continue
        kept.append(e)
    return kept
