"""Terminate: the instance stops at once and no user code runs afterwards."""

from __future__ import annotations

from typing import Any

from perdure.model import codec
from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.executor import OrchestrationRuntime
from tests.histories import T0, Driver, completed_event


def test_terminate_stops_the_instance_and_runs_no_user_code() -> None:
    ran: list[str] = []

    def orch(context: Any) -> Any:
        yield context.call_activity("a")
        ran.append("after a")
        yield context.call_activity("b")

    d = Driver(orch)
    d.start()
    d.episode(completed_event(0), ev.ExecutionTerminated(timestamp=T0, reason="stop"))
    assert d.last.status is S.Terminated
    assert codec.decode(d.last.output) == "stop"
    assert d.last.actions == []
    assert ran == []
    assert not any(isinstance(e, ev.TaskCompleted) for e in d.last.history)


def test_events_after_termination_are_ignored() -> None:
    def orch(context: Any) -> Any:
        yield context.wait_for_external_event("x")
        raise AssertionError("must not run")

    d = Driver(orch)
    d.start()
    d.episode(ev.ExecutionTerminated(timestamp=T0, reason=None))
    d.raise_event("x")
    assert d.last.status is S.Terminated and d.last.actions == []


def test_terminating_a_suspended_instance_terminates_it() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a")

    d = Driver(orch)
    d.start()
    d.episode(ev.ExecutionSuspended(timestamp=T0))
    d.episode(ev.ExecutionTerminated(timestamp=T0, reason="bye"))
    assert d.last.status is S.Terminated


def test_terminated_while_pending_records_its_start_and_runs_no_user_code() -> None:
    ran: list[str] = []

    def orch(context: Any) -> Any:
        ran.append("started")
        yield context.call_activity("a")

    start = ev.ExecutionStarted(
        timestamp=T0,
        name="orch",
        execution_id="exec0001abcdef",
        input=codec.encode(1),
        parent_instance_id="parent",
        parent_execution_id="pexec",
        parent_task_id=3,
    )
    runtime = OrchestrationRuntime("inst-1", orch)
    result = runtime.run_episode([start, ev.ExecutionTerminated(timestamp=T0, reason="no")], T0)
    assert ran == []
    assert result.status is S.Terminated and result.actions == []
    assert [type(e).__name__ for e in result.history] == [
        "OrchestratorStarted", "ExecutionStarted", "ExecutionTerminated", "OrchestratorCompleted"
    ]
    assert result.started == start  # so the parent is told its child was terminated
    again = OrchestrationRuntime("inst-1", orch)
    again.replay(result.history)
    later = again.run_episode([], T0)  # replayed: still terminated, nothing scheduled
    assert later.status in (None, S.Terminated) and later.actions == []
