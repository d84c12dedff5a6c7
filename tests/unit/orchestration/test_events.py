"""External events: waiting, buffering before the wait, FIFO per name, suspension."""

from __future__ import annotations

from typing import Any

from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as S
from tests.histories import T0, Driver, raised_event


def collect(count: int, name: str = "item") -> Any:
    def orch(context: Any) -> Any:
        items = []
        for _ in range(count):
            items.append((yield context.wait_for_external_event(name)))
        return items

    return orch


def test_a_waiting_orchestrator_receives_the_event_payload() -> None:
    d = Driver(collect(1))
    d.start()
    assert d.last.actions == [] and d.last.status is S.Running
    d.raise_event("item", {"x": 1})
    assert d.output() == [{"x": 1}]


def test_successive_waits_on_one_name_consume_events_in_arrival_order() -> None:
    d = Driver(collect(3))
    d.start()
    d.raise_event("item", 1)
    d.raise_event("item", 2)
    d.raise_event("item", 3)
    assert d.output() == [1, 2, 3]


def test_events_raised_before_the_wait_are_buffered_fifo_not_lost() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("slow")
        a = yield context.wait_for_external_event("item")
        b = yield context.wait_for_external_event("item")
        return [a, b]

    d = Driver(orch)
    d.start()
    d.raise_event("item", "first")
    d.raise_event("item", "second")
    assert d.last.status is S.Running
    d.complete(0)
    assert d.output() == ["first", "second"]


def test_several_events_in_one_episode_are_consumed_in_order() -> None:
    d = Driver(collect(2))
    d.start()
    d.episode(raised_event("item", "a"), raised_event("item", "b"))
    assert d.output() == ["a", "b"]


def test_events_of_another_name_do_not_complete_a_wait() -> None:
    def orch(context: Any) -> Any:
        other = context.wait_for_external_event("other")
        value = yield context.wait_for_external_event("mine")
        return [value, other.is_completed, (yield other)]

    d = Driver(orch)
    d.start()
    d.raise_event("other", "o")
    assert d.last.status is S.Running
    d.raise_event("mine", "m")
    assert d.output() == ["m", True, "o"]


def test_event_names_are_case_sensitive() -> None:
    d = Driver(collect(1, "Approval"))
    d.start()
    d.raise_event("approval", True)
    assert d.last.status is S.Running
    d.raise_event("Approval", True)
    assert d.last.status is S.Completed


def test_events_raised_while_suspended_are_held_and_released_on_resume_in_order() -> None:
    d = Driver(collect(2))
    d.start()
    d.episode(ev.ExecutionSuspended(timestamp=T0, reason="pause"))
    assert d.last.status is S.Suspended
    d.raise_event("item", 1)
    d.raise_event("item", 2)
    assert d.last.status is S.Suspended
    assert d.last.actions == []
    d.episode(ev.ExecutionResumed(timestamp=T0, reason="go"))
    assert d.last.status is S.Completed
    assert d.output() == [1, 2]


def test_activity_results_arriving_while_suspended_wait_for_resume() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a")
        yield context.call_activity("b")

    d = Driver(orch)
    d.start()
    d.episode(ev.ExecutionSuspended(timestamp=T0))
    d.complete(0)
    assert d.last.actions == [] and d.last.status is S.Suspended
    d.episode(ev.ExecutionResumed(timestamp=T0))
    assert [a.name for a in d.last.actions] == ["b"]  # type: ignore[attr-defined]
    assert d.last.status is S.Running


def test_suspend_and_resume_in_one_episode_lose_nothing() -> None:
    d = Driver(collect(1))
    d.start()
    d.episode(
        ev.ExecutionSuspended(timestamp=T0),
        raised_event("item", "x"),
        ev.ExecutionResumed(timestamp=T0),
    )
    assert d.output() == ["x"]


def test_an_event_waited_on_twice_in_one_task_any_only_needs_one_event() -> None:
    def orch(context: Any) -> Any:
        a = context.wait_for_external_event("x")
        b = context.wait_for_external_event("y")
        winner = yield context.task_any([a, b])
        return winner.result

    d = Driver(orch)
    d.start()
    d.raise_event("y", "why")
    assert d.output() == "why"
