"""The Gantt-style timeline of one execution, computed from its history on the server.

Each row is one piece of work with a start and an end: the orchestration itself, every
activity call (from scheduling to result, so queueing time shows), sub-orchestration,
durable timer, and wait for an external event. The template draws the rows as inline SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from perdure.model import events as ev

WIDTH = 1000  # SVG user units; the picture scales to the page width
LABEL = 240  # left column for row labels
ROW = 22
TOP = 26  # room for the time axis
MAX_ROWS = 400  # a huge fan-out would make an unreadable (and heavy) picture


@dataclass
class Bar:
    kind: str  # orchestration | episode | activity | suborchestration | timer | event
    label: str
    start: datetime
    end: datetime
    open: bool = False  # still running/waiting: ``end`` is "now"
    failed: bool = False
    link: str | None = None  # a child instance ID
    x: float = 0.0
    w: float = 0.0
    y: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Timeline:
    rows: list[Bar]
    episodes: list[Bar]  # drawn on the orchestration's own row
    ticks: list[tuple[float, str]]
    height: int
    hidden: int = 0  # rows left out beyond MAX_ROWS
    width: int = WIDTH
    label_width: int = LABEL
    row_height: int = ROW
    legend: list[str] = field(
        default_factory=lambda: ["activity", "suborchestration", "timer", "event", "episode"]
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def build(history: Sequence[ev.HistoryEvent], now: datetime) -> Timeline | None:
    """Lay out the timeline of ``history``; None when the history is empty."""
    started = next((e for e in history if isinstance(e, ev.ExecutionStarted)), None)
    if started is None:
        return None
    ended = next(
        (e for e in history if isinstance(e, (ev.ExecutionCompleted, ev.ExecutionTerminated,
                                              ev.ContinueAsNew))),
        None,
    )
    finish = ended.timestamp if ended is not None else max(now, history[-1].timestamp)
    rows = [Bar("orchestration", started.name, started.timestamp, finish, open=ended is None)]
    episodes: list[Bar] = []
    open_rows: dict[int, Bar] = {}
    step_began: datetime | None = None
    last_step_end: datetime | None = None
    for event in history:
        if isinstance(event, ev.OrchestratorStarted):
            step_began = event.timestamp
        elif isinstance(event, ev.OrchestratorCompleted):
            if step_began is not None:
                episodes.append(Bar("episode", "step", step_began, event.timestamp))
            last_step_end = event.timestamp
        elif isinstance(event, ev.TaskScheduled):
            bar = Bar("activity", event.name, event.timestamp, finish, open=True)
            open_rows[event.event_id] = bar
            rows.append(bar)
        elif isinstance(event, ev.SubOrchestrationInstanceCreated):
            bar = Bar("suborchestration", event.name, event.timestamp, finish, open=True,
                      link=event.instance_id)
            open_rows[event.event_id] = bar
            rows.append(bar)
        elif isinstance(event, ev.TimerCreated):
            label = "retry back-off" if event.retry_of >= 0 else "timer"
            bar = Bar("timer", label, event.timestamp, max(event.fire_at, event.timestamp),
                      open=True)
            open_rows[event.event_id] = bar
            rows.append(bar)
        elif isinstance(event, (ev.TaskCompleted, ev.TaskFailed,
                                ev.SubOrchestrationInstanceCompleted,
                                ev.SubOrchestrationInstanceFailed, ev.TimerFired)):
            key = event.timer_id if isinstance(event, ev.TimerFired) else event.task_scheduled_id
            done = open_rows.pop(key, None)
            if done is not None:
                done.end, done.open = max(event.timestamp, done.start), False
                done.failed = isinstance(event, (ev.TaskFailed,
                                                 ev.SubOrchestrationInstanceFailed))
        elif isinstance(event, ev.EventRaised):
            # The orchestrator has been waiting since the end of its previous step.
            since = last_step_end or started.timestamp
            rows.append(Bar("event", event.name, since, max(event.timestamp, since)))
    for bar in open_rows.values():
        if bar.kind != "timer":
            bar.end = max(finish, bar.start)
    hidden = max(0, len(rows) - MAX_ROWS)
    rows = rows[:MAX_ROWS]
    origin = started.timestamp
    span = max((max(b.end for b in rows) - origin).total_seconds(), 0.001)
    scale = (WIDTH - LABEL - 10) / span

    def place(bar: Bar, y: float) -> None:
        bar.x = LABEL + (bar.start - origin).total_seconds() * scale
        bar.w = max(bar.seconds * scale, 2.0)  # an instant still shows as a sliver
        bar.y = y

    for i, bar in enumerate(rows):
        place(bar, TOP + i * ROW)
    for bar in episodes:
        place(bar, TOP)
    ticks = []
    for i in range(6):
        seconds = span * i / 5
        ticks.append((LABEL + seconds * scale, "0" if i == 0 else "+" + _duration(seconds)))
    return Timeline(rows, episodes, ticks, TOP + len(rows) * ROW + 8, hidden)


def describe(bar: Bar) -> str:
    """The tooltip text of a bar."""
    state = " (running)" if bar.open else " (failed)" if bar.failed else ""
    return f"{bar.kind} {bar.label}: {_duration(bar.seconds)}{state}, from {bar.start.isoformat()}"
