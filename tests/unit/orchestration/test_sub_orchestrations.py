"""Sub-orchestrations: deterministic child IDs, results and failures."""

from __future__ import annotations

from typing import Any

from perdure.errors import TaskFailedError
from perdure.model import events as ev
from perdure.model.actions import CreateSubOrchestration
from perdure.model.status import OrchestrationRuntimeStatus as S
from tests.histories import EXECUTION, T0, Driver, run, started_event


def parent(context: Any) -> Any:
    a = context.call_sub_orchestrator("child", 1)
    b = context.call_sub_orchestrator("child", 2)
    return (yield context.task_all([a, b]))


def test_child_ids_are_derived_from_instance_execution_and_task_id() -> None:
    result = run(parent, [], [started_event()])
    ids = [a.instance_id for a in result.actions]  # type: ignore[attr-defined]
    assert ids == [f"inst-1:{EXECUTION[:8]}:0000", f"inst-1:{EXECUTION[:8]}:0001"]
    assert all(isinstance(a, CreateSubOrchestration) for a in result.actions)


def test_child_ids_are_the_same_on_every_replay() -> None:
    first = run(parent, [], [started_event()])
    again = run(parent, [], [started_event()])
    assert first.actions == again.actions


def test_a_long_parent_id_still_gives_a_valid_child_id() -> None:
    result = run(parent, [], [started_event()], instance_id="p" * 100)
    child = result.actions[0].instance_id  # type: ignore[attr-defined]
    assert len(child) <= 100
    assert child == run(parent, [], [started_event()], instance_id="p" * 100).actions[0].instance_id  # type: ignore[attr-defined]


def test_an_explicit_child_id_is_used_and_validated() -> None:
    def orch(context: Any) -> Any:
        yield context.call_sub_orchestrator("child", None, "my-child")

    assert run(orch, [], [started_event()]).actions[0].instance_id == "my-child"  # type: ignore[attr-defined]

    def bad(context: Any) -> Any:
        yield context.call_sub_orchestrator("child", None, "a/b")

    result = run(bad, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and result.failure.error_type == "ValidationError"


def test_child_results_come_back_in_order() -> None:
    d = Driver(parent)
    d.start()
    d.episode(ev.SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=1, result="2"))
    d.episode(ev.SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=0, result="1"))
    assert d.output() == [1, 2]


def test_a_failed_child_raises_task_failed_error_in_the_parent() -> None:
    def orch(context: Any) -> Any:
        try:
            yield context.call_sub_orchestrator("child")
        except TaskFailedError as exc:
            return [exc.name, exc.error_type, exc.error_message]

    d = Driver(orch)
    d.start()
    d.episode(
        ev.SubOrchestrationInstanceFailed(
            timestamp=T0, task_scheduled_id=0, failure=ev.FailureDetails("KeyError", "k")
        )
    )
    assert d.output() == ["child", "KeyError", "k"]


def test_parent_instance_id_is_visible_to_the_child() -> None:
    def child(context: Any) -> Any:
        return context.parent_instance_id
        yield

    start = ev.ExecutionStarted(
        timestamp=T0, name="child", execution_id="e", parent_instance_id="the-parent"
    )
    assert run(child, [], [start]).output == '"the-parent"'
