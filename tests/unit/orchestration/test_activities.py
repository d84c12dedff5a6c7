"""Activities: scheduling, recorded results, failures as TaskFailedError."""

from __future__ import annotations

from typing import Any

import pytest

from perdure.errors import SerializationError, TaskFailedError
from perdure.model import codec
from perdure.model import events as ev
from perdure.model.actions import ScheduleTask
from perdure.model.status import OrchestrationRuntimeStatus as S
from tests.histories import (
    Driver,
    HistoryBuilder,
    completed_event,
    failed_event,
    run,
    started_event,
)


def hello_cities(context: Any) -> Any:
    outputs = []
    outputs.append((yield context.call_activity("say_hello", "Tokyo")))
    outputs.append((yield context.call_activity("say_hello", "Seattle")))
    outputs.append((yield context.call_activity("say_hello", "London")))
    return outputs


def test_first_episode_schedules_the_first_activity_only() -> None:
    result = run(hello_cities, [], [started_event()])
    assert [(a.task_id, a.name, a.input) for a in result.actions] == [(0, "say_hello", '"Tokyo"')]
    assert isinstance(result.actions[0], ScheduleTask)
    assert result.status is S.Running
    types = [e.event_type for e in result.history]
    assert types == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]


def test_completed_calls_return_recorded_results_and_are_not_rescheduled() -> None:
    history = (
        HistoryBuilder()
        .started()
        .scheduled(0, "say_hello", "Tokyo")
        .episode()
        .completed(0, "Hello Tokyo!")
        .scheduled(1, "say_hello", "Seattle")
        .build()
    )
    result = run(hello_cities, history, [completed_event(1, "Hello Seattle!")])
    assert [(a.task_id, a.input) for a in result.actions] == [(2, '"London"')]


def test_the_last_completion_finishes_with_every_recorded_result() -> None:
    history = (
        HistoryBuilder()
        .started()
        .scheduled(0, "say_hello", "Tokyo")
        .episode()
        .completed(0, "Hello Tokyo!")
        .scheduled(1, "say_hello", "Seattle")
        .episode()
        .completed(1, "Hello Seattle!")
        .scheduled(2, "say_hello", "London")
        .build()
    )
    result = run(hello_cities, history, [completed_event(2, "Hello London!")])
    assert result.actions == []
    assert result.status is S.Completed
    assert codec.decode(result.output) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    completed = [e for e in result.history if isinstance(e, ev.ExecutionCompleted)]
    assert len(completed) == 1 and completed[0].status == "Completed"


def test_replaying_a_history_without_new_events_schedules_nothing_again() -> None:
    history = HistoryBuilder().started().scheduled(0, "say_hello", "Tokyo").build()
    result = run(hello_cities, history, [])
    assert result.actions == []
    assert result.status is S.Running


def test_activity_input_is_encoded_with_the_codec() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a", {"x": (1, 2)})

    result = run(orch, [], [started_event()])
    assert result.actions[0].input == '{"x":[1,2]}'  # type: ignore[attr-defined]


def test_a_function_object_can_name_the_activity() -> None:
    def say_hello(city: str) -> str:
        return city

    def orch(context: Any) -> Any:
        yield context.call_activity(say_hello, "x")

    result = run(orch, [], [started_event()])
    assert result.actions[0].name == "say_hello"  # type: ignore[attr-defined]


def test_unserializable_activity_input_raises_serialization_error_at_the_call() -> None:
    caught: list[BaseException] = []

    def orch(context: Any) -> Any:
        try:
            context.call_activity("a", {1, 2})
        except SerializationError as exc:
            caught.append(exc)
        return "handled"
        yield

    result = run(orch, [], [started_event()])
    assert result.status is S.Completed
    assert "input of call_activity('a')" in str(caught[0])


def test_unhandled_serialization_error_fails_the_instance_naming_the_call() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("pay", object())

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None
    assert result.failure.error_type == "SerializationError"
    assert "call_activity('pay')" in result.failure.message


def test_task_failed_error_carries_type_message_and_traceback_and_is_catchable() -> None:
    seen: list[TaskFailedError] = []

    def orch(context: Any) -> Any:
        try:
            yield context.call_activity("charge", 10)
        except TaskFailedError as exc:
            seen.append(exc)
            return "recovered"

    d = Driver(orch)
    d.start()
    d.episode(failed_event(0, "KeyError", "no card", "Traceback ...\nKeyError: no card"))
    assert d.last.status is S.Completed and d.output() == "recovered"
    exc = seen[-1]
    assert (exc.name, exc.error_type, exc.error_message) == ("charge", "KeyError", "no card")
    assert exc.stack_trace == "Traceback ...\nKeyError: no card"


def test_an_unhandled_activity_failure_fails_the_instance_with_its_details() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("charge", 10)

    d = Driver(orch)
    d.start()
    d.episode(failed_event(0, "KeyError", "no card", "Traceback (most recent call last): ..."))
    assert d.last.status is S.Failed
    failure = d.last.failure
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "KeyError: no card" in failure.message
    assert failure.stack_trace == "Traceback (most recent call last): ..."
    output = d.output()
    assert "KeyError" in output and "no card" in output and "Traceback" in output
    completed = [e for e in d.last.history if isinstance(e, ev.ExecutionCompleted)]
    assert completed[0].status == "Failed"


def test_an_exception_in_orchestrator_code_fails_the_instance_with_its_traceback() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a")
        raise RuntimeError("bad state")

    d = Driver(orch)
    d.start()
    d.complete(0)
    assert d.last.status is S.Failed
    assert d.last.failure is not None
    assert d.last.failure.error_type == "RuntimeError"
    assert "bad state" in d.last.failure.message
    assert "test_activities.py" in d.last.failure.stack_trace


def test_activities_started_together_run_in_parallel_with_increasing_task_ids() -> None:
    def orch(context: Any) -> Any:
        a = context.call_activity("a")
        b = context.call_activity("b")
        return [(yield a), (yield b)]

    d = Driver(orch)
    d.start()
    assert [(x.task_id, x.name) for x in d.last.actions] == [(0, "a"), (1, "b")]  # type: ignore[attr-defined]
    d.complete(1, "B")
    assert d.last.status is S.Running
    d.complete(0, "A")
    assert d.output() == ["A", "B"]


def test_a_completion_for_an_unknown_task_is_ignored() -> None:
    d = Driver(hello_cities)
    d.start()
    d.complete(7, "stray")
    assert d.last.status is S.Running and d.last.actions == []


def test_a_duplicate_completion_is_ignored() -> None:
    d = Driver(hello_cities)
    d.start()
    d.complete(0, "Hello Tokyo!")
    d.complete(0, "again")
    assert d.last.actions == []
    d.complete(1, "Hello Seattle!")
    d.complete(2, "Hello London!")
    assert d.output() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("value", [None, 0, "", [], {}, {"$datetime": "not a tag"}])
def test_falsy_and_tag_like_results_come_back_exactly(value: Any) -> None:
    def orch(context: Any) -> Any:
        return (yield context.call_activity("a"))

    d = Driver(orch)
    d.start()
    d.complete(0, value)
    assert d.output() == value
