"""Context helpers: is_replaying, the replay-safe logger, new_uuid, custom status, inputs,
non-generator orchestrators and yielding something that is not a task."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from perdure.model import codec
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.executor import OrchestrationRuntime
from tests.histories import INSTANCE, T0, Driver, completed_event, run, started_event


@dataclass
class Order:
    id: str
    placed_at: datetime


def test_is_replaying_is_true_only_for_recorded_steps() -> None:
    seen: list[tuple[str, bool]] = []

    def orch(context: Any) -> Any:
        seen.append(("start", context.is_replaying))
        yield context.call_activity("a")
        seen.append(("after a", context.is_replaying))
        yield context.call_activity("b")

    d = Driver(orch, check_replay=False)
    d.start()
    seen.clear()
    rt = OrchestrationRuntime(INSTANCE, orch)
    rt.replay(d.history)
    rt.run_episode([completed_event(0)], T0)
    assert seen == [("start", True), ("after a", False)]


def test_the_context_logger_logs_each_line_once_across_replays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def orch(context: Any) -> Any:
        context.logger.info("starting %s", context.instance_id)
        yield context.call_activity("a")
        context.logger.info("a done")
        yield context.call_activity("b")
        context.logger.warning("b done")

    caplog.set_level(logging.INFO, logger="perdure.orchestrator")
    d = Driver(orch, check_replay=False)
    d.start()
    d.complete(0)
    d.complete(1)
    # a worker without the cached runtime replays everything again: nothing is logged twice
    OrchestrationRuntime(INSTANCE, orch).replay(d.history)
    messages = [r.getMessage() for r in caplog.records if r.name == "perdure.orchestrator"]
    assert messages == ["[inst-1] starting inst-1", "[inst-1] a done", "[inst-1] b done"]
    assert all(getattr(r, "instance_id", None) == "inst-1" for r in caplog.records)


def test_new_uuid_is_the_same_on_every_replay_and_differs_per_call() -> None:
    def orch(context: Any) -> Any:
        ids = [context.new_uuid(), context.new_uuid()]
        yield context.call_activity("a", ids)
        ids.append(str(context.new_guid()))
        return ids

    d = Driver(orch)
    d.start()
    d.complete(0)
    ids = d.output()
    assert len(set(ids)) == 3
    assert all(uuid.UUID(i).version == 5 for i in ids)
    again = Driver(orch)
    again.start()
    again.complete(0)
    assert again.output() == ids


def test_new_uuid_differs_between_instances() -> None:
    def orch(context: Any) -> Any:
        return context.new_uuid()
        yield

    a = run(orch, [], [started_event()], instance_id="a").output
    b = run(orch, [], [started_event()], instance_id="b").output
    assert a != b


def test_custom_status_is_reported_after_each_episode_and_survives_replay() -> None:
    def orch(context: Any) -> Any:
        context.set_custom_status({"stage": 1})
        yield context.call_activity("a")
        context.set_custom_status("two")
        yield context.call_activity("b")

    d = Driver(orch)
    d.start()
    assert codec.decode(d.last.custom_status) == {"stage": 1}
    d.complete(0)
    assert codec.decode(d.last.custom_status) == "two"
    d.episode()
    assert codec.decode(d.last.custom_status) == "two"


def test_unserializable_custom_status_raises_at_the_call() -> None:
    def orch(context: Any) -> Any:
        context.set_custom_status(object())
        yield context.call_activity("a")

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and "custom status" in result.failure.message


def test_inputs_come_back_as_dataclasses_and_datetimes() -> None:
    order = Order("o-1", T0)

    def orch(context: Any) -> Any:
        value = context.get_input()
        return [type(value).__name__, value.placed_at == T0, context.get_input(Order).id]
        yield

    result = run(orch, [], [started_event(input_=order)])
    assert codec.decode(result.output) == ["Order", True, "o-1"]


def test_a_dict_input_can_be_read_as_a_dataclass() -> None:
    def orch(context: Any) -> Any:
        return context.get_input(Order).id
        yield

    result = run(orch, [], [started_event(input_={"id": "x", "placed_at": T0})])
    assert codec.decode(result.output) == "x"


def test_a_plain_function_orchestrator_completes_with_its_return_value() -> None:
    def orch(context: Any) -> Any:
        return {"echo": context.get_input()}

    result = run(orch, [], [started_event(input_=5)])
    assert result.status is S.Completed and codec.decode(result.output) == {"echo": 5}


def test_a_plain_function_orchestrator_that_raises_fails() -> None:
    def orch(context: Any) -> Any:
        raise KeyError("missing")

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and result.failure.error_type == "KeyError"


def test_yielding_something_that_is_not_a_task_fails_with_a_clear_error() -> None:
    def orch(context: Any) -> Any:
        yield 42

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None
    assert result.failure.error_type == "TypeError"
    assert "yielded 42" in result.failure.message


def test_an_unserializable_return_value_fails_the_instance() -> None:
    def orch(context: Any) -> Any:
        return {1, 2}
        yield

    result = run(orch, [], [started_event()])
    assert result.status is S.Failed
    assert result.failure is not None and result.failure.error_type == "SerializationError"


def test_an_episode_before_the_start_reports_no_status() -> None:
    def orch(context: Any) -> Any:
        yield context.call_activity("a")

    result = run(orch, [], [])
    assert result.status is None and result.actions == []


def test_send_event_is_recorded_as_an_action() -> None:
    def orch(context: Any) -> Any:
        context.send_event("other", "ping", {"n": 1})
        yield context.call_activity("a")

    result = run(orch, [], [started_event()])
    send = result.actions[0]
    assert (send.instance_id, send.name, send.input) == ("other", "ping", '{"n":1}')  # type: ignore[attr-defined]
