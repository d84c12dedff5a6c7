"""OpenTelemetry spans, derived from the history (``pip install 'perdure[otel]'``).

How it stays correct across replays, restarts and workers:

* The client's ``start_new`` records a short "start" span and stores its W3C
  ``traceparent`` in ``ExecutionStarted.trace_context``: the trace lives in the history.
* Spans are never opened by running orchestrator code (which replays). When an episode
  that *ends* an execution is committed, the worker builds every span of that execution
  from its history: the orchestration span (from ExecutionStarted to the end) and one
  child per activity call, sub-orchestration and timer, with their real start and end
  times. A commit happens once, so spans are emitted once; a worker that lost its lease
  committed nothing and emits nothing.
* Span IDs are derived from (instance, execution, task ID), so a sub-orchestration
  started by any worker can point at its parent's span before that span is exported.
  Choosing IDs needs the OpenTelemetry SDK's tracer (its ``id_generator``); with another
  implementation the spans still come out, with their own IDs.

With OpenTelemetry absent, or no tracer provider configured, every hook is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perdure.model import events as ev
from perdure.model.status import TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import Checkpoint, Store

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

log = logging.getLogger("perdure.tracing")
SCOPE = "perdure"
_FINISHED = TERMINAL_STATUSES | {Status.ContinuedAsNew}
_provider: TracerProvider | None = None


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Use ``provider`` for perdure's spans instead of OpenTelemetry's global one
    (handy in tests, where the global provider can be set only once per process)."""
    global _provider
    _provider = provider


def _tracer() -> Tracer | None:
    if trace is None:
        return None
    provider = _provider or trace.get_tracer_provider()
    # The API's default providers create non-recording spans: skip the work entirely.
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    tracer = provider.get_tracer(SCOPE)
    _adopt_ids(tracer)
    return tracer


def enabled() -> bool:
    """True when OpenTelemetry is installed and a real tracer provider is configured."""
    return _tracer() is not None


# --- deterministic IDs ----------------------------------------------------------------
def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def _span_id(instance_id: str, execution_id: str, task: int | str) -> int:
    return int.from_bytes(_digest("span", instance_id, execution_id, task)[:8], "big") or 1


def _trace_id(instance_id: str, execution_id: str) -> int:
    return int.from_bytes(_digest("trace", instance_id, execution_id)[:16], "big") or 1


def _traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def _parse(traceparent: str | None) -> tuple[int, int] | None:
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


class _ChosenIds:
    """Wraps the SDK tracer's ID generator so perdure can pick the next span's IDs."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self.local = threading.local()

    def generate_span_id(self) -> int:
        chosen: int | None = getattr(self.local, "span_id", None)
        return chosen if chosen is not None else int(self.fallback.generate_span_id())

    def generate_trace_id(self) -> int:
        chosen: int | None = getattr(self.local, "trace_id", None)
        return chosen if chosen is not None else int(self.fallback.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        return bool(getattr(self.fallback, "is_trace_id_random", lambda: False)())


def _adopt_ids(tracer: Any) -> None:
    current = getattr(tracer, "id_generator", None)
    if current is not None and not isinstance(current, _ChosenIds):
        tracer.id_generator = _ChosenIds(current)


def _start_span(
    tracer: Tracer, name: str, ids: tuple[int, int], parent: tuple[int, int] | None, **kw: Any
) -> Span:
    """Start a span whose (trace ID, span ID) is ``ids``, under span ``parent``."""
    assert trace is not None
    ctx = None
    if parent is not None:
        remote = trace.SpanContext(
            parent[0], parent[1], is_remote=True, trace_flags=trace.TraceFlags(1)
        )
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    chooser = getattr(tracer, "id_generator", None)
    if isinstance(chooser, _ChosenIds):
        chooser.local.trace_id, chooser.local.span_id = ids
    try:
        return tracer.start_span(name, context=ctx, **kw)
    finally:
        if isinstance(chooser, _ChosenIds):
            chooser.local.trace_id = chooser.local.span_id = None


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


# --- hooks: client ----------------------------------------------------------------------
def start_context(name: str, instance_id: str) -> str | None:
    """Record the client's "start" span under the caller's current span; return its
    traceparent for ``ExecutionStarted.trace_context`` (None when tracing is off)."""
    tracer = _tracer()
    if tracer is None or trace is None:
        return None
    span = tracer.start_span(
        f"start_orchestration {name}",
        kind=trace.SpanKind.PRODUCER,
        attributes={"perdure.instance_id": instance_id, "perdure.orchestration": name},
    )
    span.end()
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(
        carrier, context=trace.set_span_in_context(span, otel_context.Context())
    )
    return carrier.get("traceparent")


# --- hooks: worker ----------------------------------------------------------------------
def _orchestration_ids(started: ev.ExecutionStarted, instance_id: str) -> tuple[int, int]:
    parent = _parse(started.trace_context)
    trace_id = parent[0] if parent else _trace_id(instance_id, started.execution_id)
    return trace_id, _span_id(instance_id, started.execution_id, "orchestration")


def sub_orchestration_context(
    started: ev.ExecutionStarted | None, instance_id: str, execution_id: str, task_id: int
) -> str | None:
    """The traceparent a sub-orchestration's ExecutionStarted carries: its parent's
    "sub-orchestration" span. None when neither the parent nor this worker traces."""
    if started is None or (started.trace_context is None and not enabled()):
        return None
    trace_id, _ = _orchestration_ids(started, instance_id)
    return _traceparent(trace_id, _span_id(instance_id, execution_id, task_id))


@dataclass
class _Finished:
    instance_id: str
    history: list[ev.HistoryEvent]
    status: Status


class PendingSpans:
    """Spans of executions a batch of checkpoints ends; emitted once the batch commits."""

    def __init__(self, finished: list[_Finished]) -> None:
        self.finished = finished

    def emit(self, lost: Iterable[str] = ()) -> None:
        """Emit the spans of every checkpoint that was committed (not in ``lost``)."""
        if not self.finished:
            return
        tracer = _tracer()
        if tracer is None:
            return
        skip = set(lost)
        for item in self.finished:
            if item.instance_id in skip:
                continue
            try:
                emit_execution(tracer, item.instance_id, item.history, item.status)
            except Exception:  # tracing must never break the worker
                log.exception("could not emit the spans of %s", item.instance_id)


def pending_spans(store: Store, checkpoints: Sequence[Checkpoint]) -> PendingSpans:
    """Before a commit: gather the full history of each execution the batch ends."""
    if not checkpoints or not enabled():
        return PendingSpans([])
    finished = []
    for cp in checkpoints:
        if not cp.history or cp.status not in _FINISHED:
            continue
        try:
            earlier = [] if cp.replace_history else store.load_history(
                cp.instance_id, cp.execution_id
            )
        except Exception:
            log.exception("could not load the history of %s for tracing", cp.instance_id)
            continue
        finished.append(_Finished(cp.instance_id, earlier + cp.history, cp.status))
    return PendingSpans(finished)


def emit_execution(
    tracer: Tracer, instance_id: str, history: Sequence[ev.HistoryEvent], status: Status
) -> None:
    """Emit the orchestration span of one finished execution and its children."""
    assert trace is not None
    started = next((e for e in history if isinstance(e, ev.ExecutionStarted)), None)
    if started is None:
        return
    execution_id = started.execution_id
    ids = _orchestration_ids(started, instance_id)
    end = history[-1].timestamp
    root = _start_span(
        tracer,
        f"orchestration {started.name}",
        ids,
        _parse(started.trace_context),
        kind=trace.SpanKind.SERVER,
        start_time=_ns(started.timestamp),
        attributes={
            "perdure.instance_id": instance_id,
            "perdure.execution_id": execution_id,
            "perdure.orchestration": started.name,
            "perdure.status": status.value,
        },
    )
    scheduled: dict[int, ev.HistoryEvent] = {}
    for event in history:
        if isinstance(event, (ev.TaskScheduled, ev.SubOrchestrationInstanceCreated,
                              ev.TimerCreated)):
            scheduled[event.event_id] = event
            continue
        task_id = getattr(event, "task_scheduled_id", getattr(event, "timer_id", None))
        source = scheduled.pop(task_id, None) if isinstance(task_id, int) else None
        if source is None:
            continue
        failure = getattr(event, "failure", None)
        attributes: dict[str, Any] = {"perdure.instance_id": instance_id,
                                      "perdure.task_id": source.event_id}
        if isinstance(source, ev.TaskScheduled):
            name = f"activity {source.name}"
        elif isinstance(source, ev.SubOrchestrationInstanceCreated):
            name = f"sub-orchestration {source.name}"
            attributes["perdure.child_instance_id"] = source.instance_id
        else:
            assert isinstance(source, ev.TimerCreated)
            name = "timer"
            attributes["perdure.fire_at"] = source.fire_at.isoformat()
        child = _start_span(
            tracer,
            name,
            (ids[0], _span_id(instance_id, execution_id, source.event_id)),
            ids,
            start_time=_ns(source.timestamp),
            attributes=attributes,
        )
        if failure is not None:
            child.set_status(trace.Status(trace.StatusCode.ERROR, str(failure.message)))
            attributes["perdure.error_type"] = failure.error_type
            child.set_attribute("perdure.error_type", failure.error_type)
        child.end(end_time=_ns(event.timestamp))
    if status is Status.Failed:
        outcome = next((e for e in reversed(history) if isinstance(e, ev.ExecutionCompleted)),
                       None)
        message = str(outcome.failure.message) if outcome and outcome.failure else "failed"
        root.set_status(trace.Status(trace.StatusCode.ERROR, message))
    root.end(end_time=_ns(end))
