"""task_all (fan-in, fail-fast) and task_any (the winning Task; losers keep running)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from perdure.errors import TaskFailedError
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.tasks import Task
from tests.histories import Driver, completed_event, run, started_event


def fan_out(n: int) -> Any:
    def orch(context: Any) -> Any:
        tasks = [context.call_activity("work", i) for i in range(n)]
        results = yield context.task_all(tasks)
        return sum(results)

    return orch


def test_task_all_schedules_every_child_in_one_episode() -> None:
    result = run(fan_out(5), [], [started_event()])
    assert [a.task_id for a in result.actions] == [0, 1, 2, 3, 4]


def test_task_all_returns_results_in_input_order_whatever_the_completion_order() -> None:
    def orch(context: Any) -> Any:
        return (yield context.task_all([context.call_activity("w", i) for i in range(3)]))

    d = Driver(orch)
    d.start()
    d.complete(2, "c")
    d.complete(0, "a")
    assert d.last.status is S.Running
    d.complete(1, "b")
    assert d.output() == ["a", "b", "c"]


def test_task_all_completes_when_a_batch_brings_every_result() -> None:
    d = Driver(fan_out(3))
    d.start()
    d.episode(*(completed_event(i, i * 10) for i in range(3)))
    assert d.output() == 30


def test_task_all_of_nothing_completes_immediately_with_an_empty_list() -> None:
    def orch(context: Any) -> Any:
        return (yield context.task_all([]))

    assert run(orch, [], [started_event()]).output == "[]"


def test_task_all_fails_fast_on_the_first_failure_while_others_still_run() -> None:
    def orch(context: Any) -> Any:
        tasks = [context.call_activity("w", i) for i in range(3)]
        try:
            yield context.task_all(tasks)
        except TaskFailedError as exc:
            return [exc.error_message, [t.is_completed for t in tasks]]

    d = Driver(orch)
    d.start()
    d.fail(1, "ValueError", "second broke")
    assert d.output() == ["second broke", [False, True, False]]


def test_an_unhandled_task_all_failure_fails_the_instance() -> None:
    d = Driver(fan_out(2))
    d.start()
    d.complete(0, 1)
    d.fail(1, "OSError", "disk")
    assert d.last.status is S.Failed
    assert d.last.failure is not None and "OSError: disk" in d.last.failure.message


def test_task_all_can_mix_activities_timers_and_events() -> None:
    def orch(context: Any) -> Any:
        return (
            yield context.task_all(
                [
                    context.call_activity("a"),
                    context.create_timer(timedelta(seconds=5)),
                    context.wait_for_external_event("e"),
                ]
            )
        )

    d = Driver(orch)
    d.start()
    d.raise_event("e", "E")
    d.complete(0, "A")
    d.fire(1)
    assert d.output() == ["A", None, "E"]


def test_task_any_returns_the_winning_task_object() -> None:
    winners: list[Task] = []

    def orch(context: Any) -> Any:
        a = context.call_activity("a")
        b = context.call_activity("b")
        winner = yield context.task_any([a, b])
        winners.append(winner)
        return [winner is b, winner.result]

    d = Driver(orch)
    d.start()
    d.complete(1, "B")
    assert d.output() == [True, "B"]


def test_task_any_leaves_losers_running_and_their_results_usable_later() -> None:
    def orch(context: Any) -> Any:
        a = context.call_activity("a")
        b = context.call_activity("b")
        first = yield context.task_any([a, b])
        other = b if first is a else a
        rest = yield other
        return [first.result, rest]

    d = Driver(orch)
    d.start()
    d.complete(0, "A")
    assert d.last.status is S.Running and d.last.actions == []
    d.complete(1, "B")
    assert d.output() == ["A", "B"]


def test_task_any_returns_a_failed_winner_without_raising_until_result_is_read() -> None:
    def orch(context: Any) -> Any:
        a = context.call_activity("a")
        b = context.create_timer(timedelta(hours=1))
        winner = yield context.task_any([a, b])
        assert winner is a and winner.is_faulted
        with pytest.raises(TaskFailedError):
            winner.result  # noqa: B018
        return "saw failure"

    d = Driver(orch)
    d.start()
    d.fail(0)
    assert d.output() == "saw failure"


def test_approval_beats_the_timeout_and_the_timer_is_cancelled() -> None:
    def orch(context: Any) -> Any:
        timeout = context.create_timer(context.current_utc_datetime + timedelta(hours=72))
        approval = context.wait_for_external_event("Approval")
        winner = yield context.task_any([approval, timeout])
        if winner is approval:
            timeout.cancel()
            return (yield context.call_activity("process", winner.result))
        return (yield context.call_activity("escalate"))

    d = Driver(orch)
    d.start()
    d.raise_event("Approval", "yes")
    assert [a.name for a in d.last.actions] == ["process"]  # type: ignore[attr-defined]
    d.complete(1, "processed")
    assert d.output() == "processed"

    d2 = Driver(orch)
    d2.start()
    d2.fire(0)
    assert [a.name for a in d2.last.actions] == ["escalate"]  # type: ignore[attr-defined]
    assert d2.now - d.results[0].history[0].timestamp == timedelta(hours=72)


def test_task_any_with_an_already_completed_child_completes_at_once() -> None:
    def orch(context: Any) -> Any:
        a = context.call_activity("a")
        yield a
        b = context.call_activity("b")
        winner = yield context.task_any([b, a])
        return winner is a

    d = Driver(orch)
    d.start()
    d.complete(0)
    assert d.output() is True


def test_task_any_of_nothing_fails_the_instance() -> None:
    def orch(context: Any) -> Any:
        yield context.task_any([])

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed


def test_nested_composites_complete_correctly() -> None:
    def orch(context: Any) -> Any:
        inner = context.task_all([context.call_activity("a"), context.call_activity("b")])
        timer = context.create_timer(timedelta(minutes=1))
        winner = yield context.task_any([inner, timer])
        return winner is inner and winner.result

    d = Driver(orch)
    d.start()
    d.complete(0, 1)
    d.complete(1, 2)
    assert d.output() == [1, 2]


def test_task_all_rejects_things_that_are_not_tasks() -> None:
    def orch(context: Any) -> Any:
        yield context.task_all(["not a task"])

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and "task_all expects tasks" in result.failure.message
