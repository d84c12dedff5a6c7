"""Rewrite the golden JSON histories: ``python -m tests.golden.regenerate``.

Only run this for an intended change in what the engine records; review the diff.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from perdure.model import events as ev
from perdure.orchestration.executor import OrchestrationRuntime
from tests.golden.orchestrators import GOLDEN
from tests.histories import INSTANCE, T0

HERE = Path(__file__).parent


def episode_times(episodes: list[list[ev.HistoryEvent]]) -> list[Any]:
    """Each episode a minute after the last, or when the timers in it are due."""
    times = []
    now = T0
    for batch in episodes:
        fired = [e.fire_at for e in batch if isinstance(e, ev.TimerFired)]
        now = max([now + timedelta(minutes=1) if times else T0, *fired])
        times.append(now)
    return times


def record(name: str) -> list[ev.HistoryEvent]:
    orch, episodes = GOLDEN[name]
    runtime = OrchestrationRuntime(INSTANCE, orch)
    history: list[ev.HistoryEvent] = []
    for batch, now in zip(episodes, episode_times(episodes), strict=True):
        history.extend(runtime.run_episode(batch, now).history)
    return history


def dump(history: list[ev.HistoryEvent]) -> str:
    rows = [{"type": e.event_type, "event": json.loads(ev.event_to_json(e))} for e in history]
    return json.dumps({"instance_id": INSTANCE, "history": rows}, indent=1) + "\n"


def main() -> None:
    for name in GOLDEN:
        (HERE / f"{name}.json").write_text(dump(record(name)))
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()
