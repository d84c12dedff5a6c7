"""The orchestrators behind the golden histories, and the episodes that drove them.

Changing one of these functions changes its golden history: regenerate with
``python -m tests.golden.regenerate`` only when the engine change is intended.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from perdure.errors import TaskFailedError
from perdure.model import events as ev
from perdure.orchestration.retry import RetryOptions
from tests.histories import (
    T0,
    completed_event,
    failed_event,
    fired_event,
    raised_event,
    started_event,
)


def hello_cities(context: Any) -> Any:
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield context.call_activity("say_hello", city)))
    return outputs


def fan_out_with_retry(context: Any) -> Any:
    context.set_custom_status({"stage": "fan-out"})
    opts = RetryOptions(1000, 3, backoff_coefficient=2.0)
    work = [context.call_activity_with_retry("work", opts, i) for i in range(3)]
    try:
        results = yield context.task_all(work)
    except TaskFailedError as exc:
        return {"failed": exc.error_message}
    context.set_custom_status({"stage": "done"})
    return {"sum": sum(results), "id": context.new_uuid()}


def approval(context: Any) -> Any:
    deadline = context.current_utc_datetime + timedelta(hours=72)
    timeout = context.create_timer(deadline)
    answer = context.wait_for_external_event("Approval")
    winner = yield context.task_any([answer, timeout])
    if winner is answer:
        timeout.cancel()
        return (yield context.call_activity("process", winner.result))
    context.send_event("manager", "Escalated", context.instance_id)
    return (yield context.call_activity("escalate"))


def monitor(context: Any) -> Any:
    polls = context.get_input() or 0
    status = yield context.call_activity("check")
    if status == "done" or polls >= 3:
        return polls
    yield context.create_timer(timedelta(minutes=2))
    context.continue_as_new(polls + 1)


def parent(context: Any) -> Any:
    children = [context.call_sub_orchestrator("child", i) for i in range(2)]
    return (yield context.task_all(children))


H72 = timedelta(hours=72)
S = timedelta(seconds=1)

#: name -> (orchestrator, episodes of incoming events)
GOLDEN: dict[str, tuple[Callable[..., Any], list[list[ev.HistoryEvent]]]] = {
    "hello_cities": (
        hello_cities,
        [
            [started_event("hello_cities")],
            [completed_event(0, "Hello Tokyo!")],
            [completed_event(1, "Hello Seattle!")],
            [completed_event(2, "Hello London!")],
        ],
    ),
    "fan_out_with_retry": (
        fan_out_with_retry,
        [
            [started_event("fan_out_with_retry")],
            [completed_event(0, 10), failed_event(1, "IOError", "flaky")],
            [fired_event(3, T0 + S)],
            [completed_event(2, 30), completed_event(4, 20)],
        ],
    ),
    "approval_approved": (
        approval,
        [
            [started_event("approval")],
            [raised_event("Approval", "yes")],
            [completed_event(1, "processed")],
        ],
    ),
    "approval_escalated": (
        approval,
        [
            [started_event("approval")],
            [fired_event(0, T0 + H72)],
            [raised_event("Approval", "late"), completed_event(2, "escalated")],
        ],
    ),
    "monitor_continue_as_new": (
        monitor,
        [
            [started_event("monitor", 1)],
            [raised_event("early", 1)],
            [completed_event(0, "running")],
            [fired_event(1, T0 + timedelta(minutes=2))],
        ],
    ),
    "sub_orchestrations": (
        parent,
        [
            [started_event("parent")],
            [
                ev.SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=1, result="2"),
                ev.SubOrchestrationInstanceFailed(
                    timestamp=T0, task_scheduled_id=0, failure=ev.FailureDetails("E", "child broke")
                ),
            ],
        ],
    ),
}
