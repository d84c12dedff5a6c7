"""OpenTelemetry spans from the history: one per orchestration, children per activity,
timer and sub-orchestration; the client's trace carried through; nothing twice on replay,
across a restart, or with several workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import perdure
from perdure.model import events as ev
from perdure.observability import tracing

app = perdure.App()


@app.activity
def hello(name: str) -> str:
    return f"hello {name}"


@app.activity
def broken(_: Any) -> None:
    raise RuntimeError("no luck")


@app.orchestrator
def child(context: Any) -> Any:
    return (yield context.call_activity("hello", "child"))


@app.orchestrator
def parent(context: Any) -> Any:
    first = yield context.call_activity("hello", "parent")
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=10))
    go = yield context.wait_for_external_event("go")
    second = yield context.call_sub_orchestrator("child")
    return [first, go, second]


@app.orchestrator
def failing(context: Any) -> Any:
    yield context.call_activity("broken")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    yield exporter
    tracing.set_tracer_provider(None)


def fresh_app(tmp_path: Path, **options: Any) -> perdure.App:
    new = perdure.App(store=f"sqlite:///{tmp_path / 'trace.db'}", **options)
    new.registry = app.registry
    return new


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def run_parent(tmp_path: Path, **options: Any) -> str:
    """Start ``parent``, stop the worker while it waits for "go", raise "go" from a fresh
    App on the same store (a restart: new process, new worker), then let it finish."""
    first = fresh_app(tmp_path, **options)
    client = first.sync_client()
    tracer = tracing._tracer()
    assert tracer is not None
    with tracer.start_as_current_span("incoming request"):
        instance_id = client.start_new("parent", client_input=None)
    with first.running():
        for _ in range(1000):
            status = client.get_status(instance_id, show_history=True)
            assert status is not None
            if any(r["EventType"] == "TimerFired" for r in status.history or []):
                break
            time.sleep(0.01)
    first.close()
    second = fresh_app(tmp_path, **options)
    with second.running():
        again = second.sync_client()
        again.raise_event(instance_id, "go", 1)
        assert again.wait_for_completion(instance_id).output == [
            "hello parent", 1, "hello child"
        ]
    second.close()
    return instance_id


def test_one_span_per_orchestration_with_children_in_the_callers_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    instance_id = run_parent(tmp_path)
    found = by_name(spans)
    assert sorted((n, len(s)) for n, s in found.items()) == [
        ("activity hello", 2),
        ("incoming request", 1),
        ("orchestration child", 1),
        ("orchestration parent", 1),
        ("start_orchestration parent", 1),
        ("sub-orchestration child", 1),
        ("timer", 1),
    ]
    request = found["incoming request"][0]
    start = found["start_orchestration parent"][0]
    orch = found["orchestration parent"][0]
    sub = found["sub-orchestration child"][0]
    child_orch = found["orchestration child"][0]
    # One trace, from the HTTP request to the child's activity.
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {request.context.trace_id}
    assert start.parent is not None and start.parent.span_id == request.context.span_id
    assert start.kind is SpanKind.PRODUCER
    assert orch.parent is not None and orch.parent.span_id == start.context.span_id
    assert orch.attributes is not None and orch.attributes["perdure.instance_id"] == instance_id
    timer = found["timer"][0]
    parent_activity = next(
        s for s in found["activity hello"] if s.attributes
        and s.attributes["perdure.instance_id"] == instance_id
    )
    for span in (sub, timer, parent_activity):
        assert span.parent is not None and span.parent.span_id == orch.context.span_id
    # The child orchestration hangs under the parent's sub-orchestration span.
    assert child_orch.parent is not None and child_orch.parent.span_id == sub.context.span_id
    child_activity = next(s for s in found["activity hello"] if s is not parent_activity)
    assert child_activity.parent is not None
    assert child_activity.parent.span_id == child_orch.context.span_id
    # Real times from the history: children fit inside the orchestration.
    assert orch.start_time is not None and orch.end_time is not None
    for span in (sub, timer, parent_activity):
        assert span.start_time is not None and span.end_time is not None
        assert orch.start_time <= span.start_time <= span.end_time <= orch.end_time
    assert timer.end_time - timer.start_time >= 9_000_000  # type: ignore[operator]


def test_no_duplicate_spans_when_every_episode_replays(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    run_parent(tmp_path, cache_size=0)
    names = [s.name for s in spans.get_finished_spans()]
    assert names.count("orchestration parent") == 1
    assert names.count("activity hello") == 2
    assert names.count("timer") == 1


def test_trace_context_is_stored_in_the_history(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    new = fresh_app(tmp_path)
    instance_id = new.sync_client().start_new("parent")
    with new.running():
        new.sync_client().terminate(instance_id, "enough")
        new.sync_client().wait_for_completion(instance_id)
    first = next(e for e in new.store.get_history(instance_id)
                 if isinstance(e, ev.ExecutionStarted))
    start_span = by_name(spans)["start_orchestration parent"][0]
    assert first.trace_context is not None
    assert first.trace_context.startswith(
        f"00-{start_span.context.trace_id:032x}-{start_span.context.span_id:016x}-"
    )
    assert by_name(spans)["orchestration parent"][0].attributes == {
        "perdure.instance_id": instance_id,
        "perdure.execution_id": first.execution_id,
        "perdure.orchestration": "parent",
        "perdure.status": "Terminated",
    }
    new.close()


def test_failures_mark_spans_as_errors(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    new = fresh_app(tmp_path)
    with new.running():
        client = new.sync_client()
        status = client.wait_for_completion(client.start_new("failing"))
    assert status.runtime_status.value == "Failed"
    found = by_name(spans)
    assert found["activity broken"][0].status.status_code is StatusCode.ERROR
    assert found["orchestration failing"][0].status.status_code is StatusCode.ERROR
    new.close()


def test_without_a_tracer_provider_nothing_is_recorded(tmp_path: Path) -> None:
    tracing.set_tracer_provider(None)
    assert not tracing.enabled()
    new = fresh_app(tmp_path)
    with new.running():
        client = new.sync_client()
        instance_id = client.start_new("child")
        client.wait_for_completion(instance_id)
    first = next(e for e in new.store.get_history(instance_id)
                 if isinstance(e, ev.ExecutionStarted))
    assert first.trace_context is None
    new.close()
