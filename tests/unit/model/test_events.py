"""Every history event type survives event_to_json / event_from_json exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
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


def _reference_json(event: ev.HistoryEvent) -> str:
    """What json.dumps writes for the stored fields: the format event_to_json keeps."""
    data: dict[str, Any] = {"timestamp": event.timestamp.isoformat()}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name == "timestamp" or value is None or (f.name == "event_id" and value == -1):
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, ev.FailureDetails):
            value = [value.error_type, value.message, value.stack_trace]
        data[f.name] = value
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=lambda c: c.__name__)
def test_event_text_is_exactly_what_json_dumps_writes(cls: type[ev.HistoryEvent]) -> None:
    event = _sample(cls)
    assert ev.event_to_json(event) == _reference_json(event)
    awkward = 'quote " back \\ tab \t nul \x00 line\u2028 emoji \U0001f600 é'
    fields = {f.name for f in dataclasses.fields(cls)}
    texts = ("input", "result", "name", "reason")
    changes: dict[str, Any] = {n: awkward for n in texts if n in fields}
    if "failure" in fields:
        changes["failure"] = ev.FailureDetails(awkward, awkward, awkward)
    if "event_id" in fields:
        changes["event_id"] = -1  # left out, as "no task"
    odd = dataclasses.replace(event, **changes)
    text = ev.event_to_json(odd)
    assert text == _reference_json(odd)
    assert ev.event_from_json(cls.__name__, text) == odd


def test_equal_instants_in_other_time_zones_keep_their_own_offsets() -> None:
    shifted = T.astimezone(timezone(timedelta(hours=2)))
    assert shifted == T and hash(shifted) == hash(T)
    first = ev.event_to_json(ev.OrchestratorStarted(timestamp=T))
    second = ev.event_to_json(ev.OrchestratorStarted(timestamp=shifted))
    again = ev.event_to_json(ev.OrchestratorCompleted(timestamp=T))
    assert first.endswith('+00:00"}') and again.endswith('+00:00"}')
    assert second.endswith('+02:00"}')
    assert ev.event_from_json("OrchestratorStarted", second).timestamp.utcoffset() == timedelta(
        hours=2
    )


def test_a_checkpoints_events_are_one_row_that_reads_back_in_order() -> None:
    events = [_sample(cls) for cls in ev.EVENT_TYPES.values()]
    rows = ev.history_rows(4, events)
    assert [(seq, kind) for seq, kind, _ in rows] == [(4, ev.BATCH)]
    assert ev.events_from_rows([(kind, data) for _, kind, data in rows]) == events
    assert ev.events_from_row(rows[0][1], rows[0][2]) == events


def test_one_event_keeps_a_row_of_its_own_type() -> None:
    event = _sample(ev.TaskScheduled)
    assert ev.history_rows(0, [event]) == [(0, "TaskScheduled", ev.event_to_json(event))]


def test_long_checkpoints_split_into_rows_at_consecutive_positions() -> None:
    events = [ev.TaskScheduled(timestamp=T, event_id=i, name="a") for i in range(2500)]
    rows = ev.history_rows(10, events)
    assert [seq for seq, _, _ in rows] == [10, 10 + ev.BATCH_EVENTS, 10 + 2 * ev.BATCH_EVENTS]
    assert ev.events_from_rows([(kind, data) for _, kind, data in rows]) == events


def test_rows_of_single_events_and_batches_read_back_together() -> None:
    """Histories written one row per event (earlier versions) continue with batches."""
    old = [ev.OrchestratorStarted(timestamp=T), _sample(ev.ExecutionStarted)]
    new = [_sample(ev.TaskCompleted), ev.OrchestratorCompleted(timestamp=T)]
    rows = [(e.event_type, ev.event_to_json(e)) for e in old]
    rows += [(kind, data) for _, kind, data in ev.history_rows(len(old), new)]
    assert ev.events_from_rows(rows) == old + new
