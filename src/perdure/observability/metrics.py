"""Prometheus metrics in the text exposition format, written by hand (no dependency).

Gauges about the task hub (instances by status, backlog) are read from the store when
``/metrics`` is scraped, so they are the same on every server of a hub. Histograms and
counters about steps and activities are this process's own, since the worker measures them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_ACTIVITY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{k}="{_label(v)}"' for k, v in pairs)
    return "{" + text + "}" if text else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(int(value)) if float(value).is_integer() else repr(value)


class Histogram:
    """Cumulative-bucket histogram, one series per label value."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], label: str = ""):
        self.name, self.help, self.label = name, help_text, label
        self.buckets = (*buckets, math.inf)
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, seconds: float, label_value: str = "") -> None:
        # One count per observation, in its own bucket: render() makes them cumulative.
        i = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            series = self._series.get(label_value)
            if series is None:
                series = self._series[label_value] = ([0] * len(self.buckets), [0.0])
            series[0][i] += 1
            series[1][0] += seconds

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            series = {k: (list(c), t[0]) for k, (c, t) in self._series.items()}
        for value, (counts, total) in sorted(series.items()):
            base = [(self.label, value)] if self.label else []
            counts = list(itertools.accumulate(counts))
            for bound, count in zip(self.buckets, counts, strict=True):
                labels = _labels([*base, ("le", _num(bound))])
                lines.append(f"{self.name}_bucket{labels} {count}")
            lines.append(f"{self.name}_sum{_labels(base)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(base)} {counts[-1]}")
        return lines


class Counter:
    """A monotonically increasing count, one series per label value."""

    def __init__(self, name: str, help_text: str, label: str = "") -> None:
        self.name, self.help, self.label = name, help_text, label
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def inc(self, label_value: str = "") -> None:
        with self._lock:
            self._values[label_value] = self._values.get(label_value, 0) + 1

    def value(self, label_value: str = "") -> int:
        return self._values.get(label_value, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            values = dict(self._values)
        for value, count in sorted(values.items()):
            labels = _labels([(self.label, value)] if self.label else [])
            lines.append(f"{self.name}{labels} {count}")
        return lines


class WorkerMetrics:
    """What this process's worker measured (the hooks in :mod:`steps` feed it)."""

    def __init__(self) -> None:
        self.step_seconds = Histogram(
            "perdure_orchestration_step_seconds",
            "Time to replay and run one orchestration episode (one step), in seconds.",
            _STEP_BUCKETS,
        )
        self.activity_seconds = Histogram(
            "perdure_activity_duration_seconds",
            "Time an activity ran, by activity name, in seconds.",
            _ACTIVITY_BUCKETS,
            "activity",
        )
        self.activities = Counter(
            "perdure_activities_total", "Activity executions finished, by name.", "activity"
        )
        self.activity_failures = Counter(
            "perdure_activity_failures_total",
            "Activity executions that raised (each retry attempt counts), by name.",
            "activity",
        )
        self.orchestrations_finished = Counter(
            "perdure_orchestrations_finished_total",
            "Orchestration executions this worker brought to an end, by final status.",
            "status",
        )

    def render(self) -> list[str]:
        lines: list[str] = []
        for metric in (
            self.step_seconds,
            self.activity_seconds,
            self.activities,
            self.activity_failures,
            self.orchestrations_finished,
        ):
            lines += metric.render()
        return lines


WORKER = WorkerMetrics()


def render(store: Store, now: datetime, worker: WorkerMetrics | None = None) -> str:
    """The whole ``/metrics`` page: hub gauges from ``store`` plus this process's metrics."""
    hub = [("hub", store.hub)]
    counts = store.count_by_status()
    lines = [
        "# HELP perdure_instances Orchestration instances (and entities) by runtime status.",
        "# TYPE perdure_instances gauge",
    ]
    for status in Status:
        labels = _labels([*hub, ("status", status.value)])
        lines.append(f"perdure_instances{labels} {counts.get(status, 0)}")
    backlog = store.backlog(now)
    gauges = (
        ("perdure_orchestration_messages_backlog",
         "Orchestrator inbox messages ready to run (scale workers on this).",
         backlog.orchestration_messages),
        ("perdure_timers_pending", "Durable timers and delayed messages not yet due.",
         backlog.timers),
        ("perdure_activity_tasks_backlog",
         "Activity tasks waiting for a worker (scale workers on this).", backlog.activity_tasks),
        ("perdure_activity_tasks_running", "Activity tasks leased by a live worker.",
         backlog.activities_running),
    )
    for name, help_text, value in gauges:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge",
                  f"{name}{_labels(hub)} {value}"]
    lines += (worker or WORKER).render()
    return "\n".join(lines) + "\n"
