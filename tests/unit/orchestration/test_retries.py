"""Retries: attempt count and retry-timer spacing on the history's virtual time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from perdure.errors import TaskFailedError, ValidationError
from perdure.model import events as ev
from perdure.model.actions import CreateTimer, ScheduleTask
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.retry import RetryOptions
from tests.histories import T0, Driver


def retrying(options: RetryOptions, *, catch: bool = False) -> Any:
    def orch(context: Any) -> Any:
        try:
            return (yield context.call_activity_with_retry("flaky", options, "in"))
        except TaskFailedError as exc:
            if not catch:
                raise
            return f"gave up: {exc.error_message}"

    return orch


def fail_until_exhausted(d: Driver, limit: int = 50) -> list[datetime]:
    """Fail every attempt as soon as it is scheduled, fire every retry timer when due.

    Returns the due times of the retry timers, in order.
    """
    timers: list[datetime] = []
    for _ in range(limit):
        pending = d.last.actions
        if not pending:
            break
        action = pending[0]
        if isinstance(action, ScheduleTask):
            d.fail(action.task_id, "IOError", f"attempt {action.task_id}")
        else:
            assert isinstance(action, CreateTimer)
            timers.append(action.fire_at)
            d.fire(action.task_id)
    return timers


def attempts(d: Driver) -> list[ev.TaskScheduled]:
    return [e for e in d.history if isinstance(e, ev.TaskScheduled)]


def test_retries_run_exactly_max_number_of_attempts_then_fail() -> None:
    d = Driver(retrying(RetryOptions(1000, 3)))
    d.start()
    timers = fail_until_exhausted(d)
    assert len(attempts(d)) == 3
    assert timers == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert d.last.status is S.Failed
    assert d.last.failure is not None and "attempt" in d.last.failure.message


def test_the_last_failure_surfaces_without_waiting_for_another_timer() -> None:
    d = Driver(retrying(RetryOptions(1000, 2)))
    d.start()
    d.fail(0)
    d.fire(1)
    d.fail(2)
    assert d.last.status is S.Failed
    assert not any(isinstance(a, CreateTimer) for a in d.last.actions)


def test_one_attempt_means_no_retry() -> None:
    d = Driver(retrying(RetryOptions(1000, 1), catch=True))
    d.start()
    d.fail(0, message="once")
    assert d.output() == "gave up: once"
    assert len(attempts(d)) == 1


def test_a_success_on_a_retry_returns_its_result() -> None:
    d = Driver(retrying(RetryOptions(500, 5)))
    d.start()
    d.fail(0)
    d.fire(1)
    d.complete(2, "finally")
    assert d.output() == "finally"
    assert [e.input for e in attempts(d)] == ['"in"', '"in"']


def test_backoff_multiplies_each_delay_by_the_coefficient() -> None:
    d = Driver(retrying(RetryOptions(1000, 5, backoff_coefficient=2.0)))
    d.start()
    timers = fail_until_exhausted(d)
    gaps = [b - a for a, b in zip([T0, *timers], timers, strict=False)]
    assert gaps == [timedelta(seconds=s) for s in (1, 2, 4, 8)]


def test_retry_delays_count_from_the_failure_episode_not_from_the_start() -> None:
    d = Driver(retrying(RetryOptions(1000, 2)))
    d.start()
    d.advance(timedelta(minutes=7))
    d.fail(0)
    timer = d.last.actions[0]
    assert isinstance(timer, CreateTimer)
    assert timer.fire_at == T0 + timedelta(minutes=7, seconds=1)
    assert timer.retry_of == 0


def test_max_retry_interval_caps_each_delay() -> None:
    options = RetryOptions(
        1000, 6, backoff_coefficient=3.0, max_retry_interval_in_milliseconds=5000
    )
    d = Driver(retrying(options))
    d.start()
    timers = fail_until_exhausted(d)
    gaps = [b - a for a, b in zip([T0, *timers], timers, strict=False)]
    assert gaps == [timedelta(seconds=s) for s in (1, 3, 5, 5, 5)]


def test_retry_timeout_stops_retrying_once_it_has_elapsed_since_the_first_attempt() -> None:
    # Delays 10 s, 20 s, 40 s, 80 s: retries start at +10, +30, +70. The timeout (60 s)
    # has passed when the attempt started at +70 fails, so no fourth retry is scheduled.
    options = RetryOptions(
        10_000, 10, backoff_coefficient=2.0, retry_timeout_in_milliseconds=60_000
    )
    d = Driver(retrying(options))
    d.start()
    timers = fail_until_exhausted(d)
    assert timers == [T0 + timedelta(seconds=s) for s in (10, 30, 70)]
    assert len(attempts(d)) == 4
    assert d.last.status is S.Failed


def test_retry_timeout_is_measured_on_history_time_of_slow_attempts() -> None:
    options = RetryOptions(1000, 10, retry_timeout_in_milliseconds=30_000)
    d = Driver(retrying(options))
    d.start()
    d.advance(timedelta(seconds=29))
    d.fail(0)  # 29 s after the first attempt started: one more retry is allowed
    assert isinstance(d.last.actions[0], CreateTimer)
    d.fire(1)
    d.advance(timedelta(seconds=5))
    d.fail(2)  # 35 s: the retry timeout has passed
    assert d.last.status is S.Failed


def test_handle_returning_false_fails_without_retrying() -> None:
    seen: list[BaseException] = []

    def handle(error: BaseException) -> bool:
        seen.append(error)
        return isinstance(error, TaskFailedError) and error.error_type == "TimeoutError"

    d = Driver(retrying(RetryOptions(1000, 5, handle=handle)))
    d.start()
    d.fail(0, "TimeoutError", "slow")
    assert isinstance(d.last.actions[0], CreateTimer)
    d.fire(1)
    d.fail(2, "ValueError", "bad input")
    assert d.last.status is S.Failed
    assert seen[-1].error_type == "ValueError"  # type: ignore[attr-defined]
    assert len(attempts(d)) == 2


def test_sub_orchestrations_retry_with_a_fresh_child_instance_each_time() -> None:
    def orch(context: Any) -> Any:
        return (yield context.call_sub_orchestrator_with_retry("child", RetryOptions(1000, 3), 1))

    d = Driver(orch)
    d.start()
    first = d.last.actions[0]
    d.episode(
        ev.SubOrchestrationInstanceFailed(
            timestamp=d.now, task_scheduled_id=0, failure=ev.FailureDetails("E", "m")
        )
    )
    d.fire(1)
    second = d.last.actions[0]
    assert first.instance_id != second.instance_id  # type: ignore[attr-defined]
    d.episode(
        ev.SubOrchestrationInstanceCompleted(timestamp=d.now, task_scheduled_id=2, result='"ok"')
    )
    assert d.output() == "ok"


def test_retry_tasks_work_inside_task_all() -> None:
    def orch(context: Any) -> Any:
        opts = RetryOptions(1000, 2)
        return (
            yield context.task_all(
                [context.call_activity_with_retry("w", opts, i) for i in range(2)]
            )
        )

    d = Driver(orch)
    d.start()
    d.fail(0)
    d.complete(1, "b")
    d.fire(2)
    d.complete(3, "a")
    assert d.output() == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_retry_interval_in_milliseconds": 0, "max_number_of_attempts": 1},
        {"first_retry_interval_in_milliseconds": 10, "max_number_of_attempts": 0},
        {
            "first_retry_interval_in_milliseconds": 10,
            "max_number_of_attempts": 1,
            "backoff_coefficient": 0.5,
        },
        {
            "first_retry_interval_in_milliseconds": 10,
            "max_number_of_attempts": 1,
            "max_retry_interval_in_milliseconds": 0,
        },
        {
            "first_retry_interval_in_milliseconds": 10,
            "max_number_of_attempts": 1,
            "retry_timeout_in_milliseconds": -1,
        },
    ],
)
def test_invalid_retry_options_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryOptions(**kwargs)


def test_an_sdk_style_retry_options_object_is_accepted() -> None:
    class SdkRetryOptions:
        first_retry_interval_in_milliseconds = 2000
        max_number_of_attempts = 2

    d = Driver(retrying(SdkRetryOptions()))  # type: ignore[arg-type]
    d.start()
    timers = fail_until_exhausted(d)
    assert timers == [T0 + timedelta(seconds=2)]
