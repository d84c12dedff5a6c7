"""Hooks the worker calls after each step: one log record and the step metrics.

Records carry ``instance_id``, ``execution_id``, ``event_type`` and ``duration_ms`` as
``extra`` fields (see :mod:`perdure.observability.logs` for the JSON output). They are
DEBUG by default, so a busy worker logs nothing unless asked to.
"""

from __future__ import annotations

import logging

from perdure.model import events as ev
from perdure.model.status import TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.observability import logs
from perdure.observability.metrics import WORKER
from perdure.store.base import ActivityWorkItem, Checkpoint

log = logging.getLogger("perdure.worker")


def episode_done(cp: Checkpoint, seconds: float) -> None:
    """An orchestration episode produced checkpoint ``cp`` in ``seconds``."""
    try:
        _episode_done(cp, seconds)
    except Exception:  # observing must never stop the work it observes
        log.exception("could not record the episode of %s", cp.instance_id)


def activity_done(item: ActivityWorkItem, event: ev.HistoryEvent, seconds: float) -> None:
    """Activity ``item`` ran for ``seconds`` and produced ``event`` (completed or failed)."""
    try:
        _activity_done(item, event, seconds)
    except Exception:
        log.exception("could not record activity %s of %s", item.name, item.instance_id)


def _episode_done(cp: Checkpoint, seconds: float) -> None:
    WORKER.step_seconds.observe(seconds)
    if cp.history and (cp.status in TERMINAL_STATUSES or cp.status is Status.ContinuedAsNew):
        WORKER.orchestrations_finished.inc(cp.status.value)
    level = logs.step_level()
    if log.isEnabledFor(level):
        log.log(
            level,
            "episode of %s: %s, %d new event(s), %.1f ms",
            cp.instance_id,
            cp.status.value,
            len(cp.history),
            seconds * 1000,
            extra={
                "instance_id": cp.instance_id,
                "execution_id": cp.execution_id,
                "event_type": "episode",
                "status": cp.status.value,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


def _activity_done(item: ActivityWorkItem, event: ev.HistoryEvent, seconds: float) -> None:
    WORKER.activities.inc(item.name)
    WORKER.activity_seconds.observe(seconds, item.name)
    failure = event.failure if isinstance(event, ev.TaskFailed) else None
    if failure is not None:
        WORKER.activity_failures.inc(item.name)
    level = logging.WARNING if failure is not None else logs.step_level()
    if log.isEnabledFor(level):
        outcome = f"failed ({failure.error_type})" if failure is not None else "completed"
        log.log(
            level,
            "activity %s of %s %s in %.1f ms",
            item.name,
            item.instance_id,
            outcome,
            seconds * 1000,
            extra={
                "instance_id": item.instance_id,
                "execution_id": item.execution_id,
                "event_type": event.event_type,
                "function_name": item.name,
                "task_id": item.task_id,
                "attempt": item.dequeue_count,
                "duration_ms": round(seconds * 1000, 3),
                "error_type": failure.error_type if failure is not None else None,
            },
        )
