"""continue_as_new: status, next input, carried-over events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from perdure.model import codec
from perdure.model import events as ev
from perdure.model.status import OrchestrationRuntimeStatus as S
from tests.histories import T0, Driver, completed_event, raised_event, run, started_event


def counter(context: Any) -> Any:
    n = context.get_input()
    yield context.call_activity("tick", n)
    context.continue_as_new(n + 1)


def test_continue_as_new_ends_the_generation_with_the_next_input() -> None:
    d = Driver(counter)
    d.start(1)
    d.complete(0)
    assert d.last.status is S.ContinuedAsNew
    assert codec.decode(d.last.continue_as_new) == 2
    assert d.last.output is None
    assert not any(isinstance(e, ev.ExecutionCompleted) for e in d.last.history)


def test_continue_as_new_followed_by_a_yield_ends_the_generation_there() -> None:
    ran: list[str] = []

    def orch(context: Any) -> Any:
        context.continue_as_new("next")
        yield context.call_activity("never")
        ran.append("after")

    result = run(orch, [], [started_event()])
    assert result.status is S.ContinuedAsNew and result.actions == [] and ran == []


def test_will_continue_as_new_is_set() -> None:
    seen: list[bool] = []

    def orch(context: Any) -> Any:
        seen.append(context.will_continue_as_new)
        context.continue_as_new(None)
        seen.append(context.will_continue_as_new)
        return None
        yield

    run(orch, [], [started_event()])
    assert seen == [False, True]


def test_unconsumed_events_are_carried_over_in_order() -> None:
    def orch(context: Any) -> Any:
        first = yield context.wait_for_external_event("job")
        context.continue_as_new(first)

    d = Driver(orch)
    d.start()
    d.episode(raised_event("job", 1), raised_event("job", 2), raised_event("other", "x"))
    assert d.last.status is S.ContinuedAsNew
    carried = [(e.name, codec.decode(e.input)) for e in d.last.carryover_events]
    assert sorted(carried) == [("job", 2), ("other", "x")]
    assert [v for n, v in carried if n == "job"] == [2]


def test_events_buffered_before_continue_as_new_keep_fifo_order() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a")
        context.continue_as_new(None)

    d = Driver(orch)
    d.start()
    d.raise_event("e", 1)
    d.raise_event("e", 2)
    d.complete(0)
    assert [codec.decode(e.input) for e in d.last.carryover_events] == [1, 2]


def test_events_arriving_in_the_same_batch_after_continue_as_new_are_carried_over() -> None:
    d = Driver(counter)
    d.start(1)
    d.episode(completed_event(0), raised_event("late", "keep me"))
    assert d.last.status is S.ContinuedAsNew
    assert [(e.name, e.input) for e in d.last.carryover_events] == [("late", '"keep me"')]


def test_save_events_false_drops_unconsumed_events() -> None:
    def orch(context: Any) -> Any:
        yield context.create_timer(timedelta(seconds=1))
        context.continue_as_new(None, save_events=False)

    d = Driver(orch)
    d.start()
    d.raise_event("e", 1)
    d.fire(0)
    assert d.last.status is S.ContinuedAsNew and d.last.carryover_events == []


def test_the_next_generation_sees_carried_events_before_new_ones() -> None:
    def orch(context: Any) -> Any:
        return (yield context.wait_for_external_event("e"))

    carried = ev.EventRaised(timestamp=T0, name="e", input='"carried"')
    result = run(orch, [], [started_event(), carried, raised_event("e", "new")])
    assert codec.decode(result.output) == "carried"


def test_unserializable_continue_as_new_input_fails_at_the_call() -> None:
    def orch(context: Any) -> Any:
        context.continue_as_new({1, 2})
        return None
        yield

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and result.failure.error_type == "SerializationError"
    assert "continue_as_new" in result.failure.message
