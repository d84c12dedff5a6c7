"""Saved histories must replay to exactly the events the engine recorded when they were made.

Each golden file is split into episodes; replaying the history before an episode
with that episode's incoming events must emit the recorded episode, event for
event. A failure here means the engine (or a golden orchestrator) changed what
it records: existing instances would no longer replay. See ``regenerate.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perdure.model import events as ev
from perdure.orchestration.executor import OrchestrationRuntime, replay
from tests.golden.orchestrators import GOLDEN
from tests.histories import INSTANCE, assert_same_result

HERE = Path(__file__).parent

#: Events the engine writes itself; everything else in an episode came in from outside.
_WRITTEN = (
    ev.OrchestratorStarted,
    ev.OrchestratorCompleted,
    ev.TaskScheduled,
    ev.TimerCreated,
    ev.SubOrchestrationInstanceCreated,
    ev.EventSent,
    ev.ExecutionCompleted,
    ev.ContinueAsNew,
)


def load(name: str) -> list[ev.HistoryEvent]:
    data = json.loads((HERE / f"{name}.json").read_text())
    return [ev.event_from_json(r["type"], json.dumps(r["event"])) for r in data["history"]]


def episodes(history: list[ev.HistoryEvent]) -> list[tuple[int, int]]:
    """(start, end) index ranges, OrchestratorStarted .. OrchestratorCompleted inclusive."""
    spans, start = [], 0
    for i, e in enumerate(history):
        if isinstance(e, ev.OrchestratorStarted):
            start = i
        elif isinstance(e, ev.OrchestratorCompleted):
            spans.append((start, i + 1))
    return spans


def test_every_golden_scenario_has_a_saved_history() -> None:
    assert sorted(p.stem for p in HERE.glob("*.json")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_replaying_a_golden_history_emits_the_recorded_episodes(name: str) -> None:
    orch, _ = GOLDEN[name]
    history = load(name)
    spans = episodes(history)
    assert spans and spans[-1][1] == len(history)
    live = OrchestrationRuntime(INSTANCE, orch)
    for start, end in spans:
        recorded = history[start:end]
        incoming = [e for e in recorded if not isinstance(e, _WRITTEN)]
        now = recorded[0].timestamp
        fresh = replay(INSTANCE, orch, history[:start], incoming, now)
        assert [ev.event_to_json(e) for e in fresh.history] == [
            ev.event_to_json(e) for e in recorded
        ]
        assert fresh.history == recorded
        # and a runtime kept alive across the episodes (the worker's cache) agrees
        assert_same_result(live.run_episode(incoming, now), fresh)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_full_golden_history_replays_to_its_recorded_outcome(name: str) -> None:
    orch, _ = GOLDEN[name]
    history = load(name)
    runtime = OrchestrationRuntime(INSTANCE, orch)
    runtime.replay(history)
    result = runtime.run_episode([], history[-1].timestamp)
    assert result.actions == []
    finished = [e for e in history if isinstance(e, ev.ExecutionCompleted)]
    if finished:
        assert result.status is not None and result.status.value == finished[0].status
