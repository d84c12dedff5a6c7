"""Terminate: the instance stops at once and no user code runs afterwards."""

from __future__ import annotations

from typing import Any

from perdure.model import codec
from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as S
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
