"""Non-determinism: replayed code that makes different, fewer or extra calls fails clearly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from perdure.model import codec
from perdure.model.status import OrchestrationRuntimeStatus as S
from tests.histories import HistoryBuilder, completed_event, run

THIS_FILE = __file__


def two_steps_history() -> list[Any]:
    return (
        HistoryBuilder()
        .started()
        .scheduled(0, "a")
        .episode()
        .completed(0, "A")
        .scheduled(1, "b")
        .build()
    )


def assert_nondeterministic(result: Any, *needles: str) -> str:
    assert result.status is S.Failed
    assert result.failure is not None
    assert result.failure.error_type == "NonDeterminismError"
    for needle in needles:
        assert needle in result.failure.message, (needle, result.failure.message)
    # the failure is committed like any other: output and an ExecutionCompleted row
    assert "NonDeterminismError" in codec.decode(result.output)
    assert [e.event_type for e in result.history][-2] == "ExecutionCompleted"
    return str(result.failure.message)


def test_a_different_activity_name_names_expected_and_actual_call_and_line() -> None:
    def changed(context: Any) -> Any:
        yield context.call_activity("a")
        yield context.call_activity("c")  # was "b"

    result = run(changed, two_steps_history(), [completed_event(1)])
    message = assert_nondeterministic(
        result, "call_activity('b')", "call_activity('c')", "task 1", f"{THIS_FILE}:"
    )
    line = message.rsplit(f"{THIS_FILE}:", 1)[1].split()[0]
    assert line.isdigit()


def test_a_different_kind_of_call_is_detected() -> None:
    def changed(context: Any) -> Any:
        yield context.call_activity("a")
        yield context.create_timer(timedelta(seconds=1))

    result = run(changed, two_steps_history(), [])
    assert_nondeterministic(result, "call_activity('b')", "create_timer()")


def test_fewer_calls_where_the_code_still_waits_are_detected() -> None:
    def fewer(context: Any) -> Any:
        yield context.call_activity("a")
        yield context.wait_for_external_event("never")

    result = run(fewer, two_steps_history(), [])
    assert_nondeterministic(result, "call_activity('b')", "made no call", f"{THIS_FILE}:")


def test_fewer_calls_where_the_code_now_returns_early_are_detected() -> None:
    def fewer(context: Any) -> Any:
        yield context.call_activity("a")
        return "early"

    result = run(fewer, two_steps_history(), [completed_event(1)])
    assert_nondeterministic(result, "call_activity('b')", "had already returned")


def test_extra_calls_in_a_recorded_episode_are_detected() -> None:
    def extra(context: Any) -> Any:
        yield context.call_activity("a")
        b = context.call_activity("b")
        z = context.call_activity("z")  # new
        yield context.task_all([b, z])

    result = run(extra, two_steps_history(), [completed_event(1)])
    assert_nondeterministic(result, "call_activity('z')", "task 2", "no such call")
    assert result.actions == []


def test_extra_calls_at_the_very_start_are_detected() -> None:
    def extra(context: Any) -> Any:
        yield context.call_activity("x")  # new first step
        yield context.call_activity("a")
        yield context.call_activity("b")

    result = run(extra, two_steps_history(), [])
    assert_nondeterministic(result, "call_activity('a')", "call_activity('x')")


def test_same_calls_with_different_inputs_are_not_a_divergence() -> None:
    def other_input(context: Any) -> Any:
        yield context.call_activity("a", "new input")
        yield context.call_activity("b", "new input")
        return "ok"

    result = run(other_input, two_steps_history(), [completed_event(1)])
    assert result.status is S.Completed


def test_a_different_send_event_target_is_detected() -> None:
    def sender(target: str) -> Any:
        def orch(context: Any) -> Any:
            context.send_event(target, "ping")
            yield context.call_activity("a")

        return orch

    history = HistoryBuilder().started().event_sent(0, "x", "ping").scheduled(1, "a").build()
    assert run(sender("x"), history, []).status is S.Running
    assert_nondeterministic(run(sender("y"), history, []), "send_event('x', 'ping')")


def test_no_user_code_runs_after_non_determinism_is_found() -> None:
    ran: list[str] = []

    def changed(context: Any) -> Any:
        yield context.call_activity("a")
        yield context.call_activity("c")
        ran.append("after")

    run(changed, two_steps_history(), [completed_event(1)])
    assert ran == []
