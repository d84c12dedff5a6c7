"""Every history event type survives event_to_json / event_from_json exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perdure.model import events as ev

T = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _sample(cls: type[ev.HistoryEvent]) -> ev.HistoryEvent:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {"timestamp": T, "event_id": 7}
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        hint = str(hints[f.name])
        if "datetime" in hint:
            values[f.name] = T + timedelta(hours=1)
        elif "FailureDetails" in hint:
            values[f.name] = ev.FailureDetails("KeyError", "k", "Traceback\n  line")
        elif "int" in hint:
            values[f.name] = 3
        elif "list" in hint or "tuple" in hint:
            items = ["@a@1", "@b@2"]
            values[f.name] = tuple(items) if "tuple" in hint else items
        elif "str" in hint:
            values[f.name] = f'"{f.name} é"' if f.name in ("input", "result", "data") else f.name
        else:  # pragma: no cover - a new field type the test must learn about
            raise AssertionError(f"no sample for {cls.__name__}.{f.name}: {hint}")
    return cls(**values)


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=lambda c: c.__name__)
def test_every_event_type_round_trips_through_json(cls: type[ev.HistoryEvent]) -> None:
    event = _sample(cls)
    text = ev.event_to_json(event)
    json.loads(text)
    assert ev.event_from_json(cls.__name__, text) == event


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=lambda c: c.__name__)
def test_events_with_only_required_fields_round_trip(cls: type[ev.HistoryEvent]) -> None:
    required = {
        f.name: _sample(cls).__getattribute__(f.name)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    event = cls(**required)
    assert ev.event_from_json(cls.__name__, ev.event_to_json(event)) == event


def test_event_types_cover_the_durable_functions_names() -> None:
    for name in [
        "ExecutionStarted",
        "ExecutionCompleted",
        "ExecutionTerminated",
        "TaskScheduled",
        "TaskCompleted",
        "TaskFailed",
        "SubOrchestrationInstanceCreated",
        "SubOrchestrationInstanceCompleted",
        "SubOrchestrationInstanceFailed",
        "TimerCreated",
        "TimerFired",
        "OrchestratorStarted",
        "OrchestratorCompleted",
        "EventSent",
        "EventRaised",
        "ContinueAsNew",
        "GenericEvent",
        "ExecutionSuspended",
        "ExecutionResumed",
        "ExecutionRewound",
    ]:
        assert name in ev.EVENT_TYPES
