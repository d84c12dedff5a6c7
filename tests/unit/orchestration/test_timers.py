"""Durable timers: datetime or timedelta, firing, cancel()."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from perdure.errors import ValidationError
from perdure.model.actions import CreateTimer
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.tasks import TimerTask
from tests.histories import T0, Driver, HistoryBuilder, fired_event, run, started_event


def sleeper(context: Any) -> Any:
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=72))
    return context.current_utc_datetime.isoformat()


def test_a_timer_is_created_at_the_requested_time() -> None:
    result = run(sleeper, [], [started_event()])
    assert result.actions == [CreateTimer(0, result.actions[0].call_site, T0 + timedelta(hours=72))]


def test_a_timedelta_is_measured_from_current_utc_datetime() -> None:
    def orch(context: Any) -> Any:
        yield context.create_timer(timedelta(minutes=5))

    result = run(orch, [], [started_event()], now=T0 + timedelta(seconds=1))
    assert result.actions[0].fire_at == T0 + timedelta(minutes=5, seconds=1)  # type: ignore[attr-defined]


def test_a_fired_timer_resumes_the_orchestrator_at_the_firing_episode_time() -> None:
    due = T0 + timedelta(hours=72)
    history = HistoryBuilder().started().timer_created(0, due).build()
    result = run(sleeper, history, [fired_event(0, due)], now=due + timedelta(seconds=3))
    assert result.status is S.Completed
    assert result.output == f'"{(due + timedelta(seconds=3)).isoformat()}"'


def test_current_utc_datetime_stays_fixed_within_an_episode_and_advances_between() -> None:
    seen: list[Any] = []

    def orch(context: Any) -> Any:
        seen.append(context.current_utc_datetime)
        yield context.create_timer(timedelta(seconds=10))
        seen.append(context.current_utc_datetime)
        seen.append(context.current_utc_datetime)

    d = Driver(orch, check_replay=False)
    d.start()
    d.fire(0)
    assert seen == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=10)]


def test_a_timer_that_has_not_fired_keeps_the_instance_running() -> None:
    d = Driver(sleeper)
    d.start()
    d.episode()
    assert d.last.status is S.Running and d.last.actions == []


def test_a_cancelled_timer_firing_later_does_not_resume_anything() -> None:
    def orch(context: Any) -> Any:
        timer = context.create_timer(timedelta(hours=1))
        approval = context.wait_for_external_event("approve")
        winner = yield context.task_any([approval, timer])
        if winner is approval:
            timer.cancel()
            assert timer.is_cancelled
        yield context.call_activity("after")
        return "done"

    d = Driver(orch)
    d.start()
    d.raise_event("approve", True)
    assert [a.name for a in d.last.actions] == ["after"]  # type: ignore[attr-defined]
    d.fire(0)
    assert d.last.actions == [] and d.last.status is S.Running
    d.complete(1)
    assert d.output() == "done"


def test_an_orchestrator_finishes_without_waiting_for_a_cancelled_timer() -> None:
    def orch(context: Any) -> Any:
        timer = context.create_timer(timedelta(days=3))
        winner = yield context.task_any([context.wait_for_external_event("go"), timer])
        timer.cancel()
        return winner is timer

    d = Driver(orch)
    d.start()
    d.raise_event("go")
    assert d.last.status is S.Completed and d.output() is False


def test_cancelling_a_fired_timer_raises() -> None:
    def orch(context: Any) -> Any:
        timer = context.create_timer(timedelta(seconds=1))
        yield timer
        with pytest.raises(ValueError, match="already fired"):
            timer.cancel()
        return "ok"

    d = Driver(orch)
    d.start()
    d.fire(0)
    assert d.output() == "ok"


def test_create_timer_returns_a_timer_task() -> None:
    kinds: list[type] = []

    def orch(context: Any) -> Any:
        kinds.append(type(context.create_timer(timedelta(seconds=1))))
        return None
        yield

    run(orch, [], [started_event()])
    assert kinds == [TimerTask]


def test_create_timer_rejects_a_number() -> None:
    def orch(context: Any) -> Any:
        yield context.create_timer(60)

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and result.failure.error_type == "ValidationError"
    assert issubclass(ValidationError, ValueError)


def test_a_naive_fire_at_is_taken_as_utc() -> None:
    def orch(context: Any) -> Any:
        yield context.create_timer(context.current_utc_datetime.replace(tzinfo=None))

    result = run(orch, [], [started_event()])
    assert result.actions[0].fire_at == T0  # type: ignore[attr-defined]
