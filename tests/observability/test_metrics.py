"""/metrics: Prometheus text format with instances by status, backlog, step latency
histograms and activity failures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure.http import create_asgi_app
from perdure.observability import metrics
from tests.e2e.http_support import asgi_client

KEY = "metrics-key-0123456789"
app = perdure.App()


@app.activity
def ok(_: Any) -> str:
    return "ok"


@app.activity
def flaky_metric(_: Any) -> None:
    raise RuntimeError("down")


@app.orchestrator
def mixed(context: Any) -> Any:
    yield context.call_activity("ok")
    try:
        yield context.call_activity("flaky_metric")
    except Exception:
        pass
    return "done"


@app.orchestrator
def waits(context: Any) -> Any:
    yield context.wait_for_external_event("never")


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, checking every sample line is well-formed."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) [a-z_]+ .+", line), line
            continue
        pair = r'[a-z_]+="(?:[^"\\]|\\.)*"'
        found = re.fullmatch(rf"([a-z_]+(?:\{{{pair}(?:,{pair})*\}})?) (\S+)", line)
        assert found, line
        samples[found.group(1)] = float(found.group(2))
    return samples


def test_histogram_buckets_are_cumulative_and_labels_escaped() -> None:
    h = metrics.Histogram("x_seconds", "help", (0.1, 1.0), "name")
    for value in (0.05, 0.5, 5.0):
        h.observe(value, 'a"b\\c')
    samples = parse("\n".join(h.render()))
    label = 'name="a\\"b\\\\c"'
    assert samples[f'x_seconds_bucket{{{label},le="0.1"}}'] == 1
    assert samples[f'x_seconds_bucket{{{label},le="1"}}'] == 2
    assert samples[f'x_seconds_bucket{{{label},le="+Inf"}}'] == 3
    assert samples[f"x_seconds_count{{{label}}}"] == 3
    assert samples[f"x_seconds_sum{{{label}}}"] == pytest.approx(5.55)


def test_a_value_on_a_bucket_bound_counts_in_that_bucket() -> None:
    # "le" is less than or equal: 0.1 is in le="0.1", and a value past the last bound
    # only in +Inf
    h = metrics.Histogram("x_seconds", "help", (0.1, 1.0))
    for value in (0.1, 0.1, 1.0, 0.0, 7.0):
        h.observe(value)
    samples = parse("\n".join(h.render()))
    assert samples['x_seconds_bucket{le="0.1"}'] == 3
    assert samples['x_seconds_bucket{le="1"}'] == 4
    assert samples['x_seconds_bucket{le="+Inf"}'] == 5


def test_metrics_endpoint_reports_statuses_backlog_latency_and_failures(tmp_path: Path) -> None:
    fresh = perdure.App(store=f"sqlite:///{tmp_path / 'm.db'}")
    fresh.registry = app.registry
    before = metrics.WORKER.activity_failures.value("flaky_metric")
    asgi = create_asgi_app(fresh, api_key=KEY)
    client = fresh.sync_client()
    pending = client.start_new("waits")  # no worker yet: a message in the backlog
    with asgi_client(asgi, {"x-functions-key": KEY}) as http:
        response = http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = parse(response.text)
        assert samples['perdure_instances{hub="default",status="Pending"}'] == 1
        assert samples['perdure_orchestration_messages_backlog{hub="default"}'] == 1
        with fresh.running():
            done = client.start_new("mixed")
            client.wait_for_completion(done)
        samples = parse(http.get("/metrics").text)
    assert samples['perdure_instances{hub="default",status="Completed"}'] == 1
    assert samples['perdure_instances{hub="default",status="Running"}'] == 1  # waits
    assert samples['perdure_orchestration_messages_backlog{hub="default"}'] == 0
    assert samples['perdure_activity_tasks_backlog{hub="default"}'] == 0
    assert samples['perdure_activity_failures_total{activity="flaky_metric"}'] == before + 1
    assert samples['perdure_orchestration_step_seconds_count'] >= 3
    assert samples['perdure_orchestration_step_seconds_bucket{le="+Inf"}'] == samples[
        "perdure_orchestration_step_seconds_count"]
    assert samples['perdure_activity_duration_seconds_count{activity="ok"}'] >= 1
    assert samples['perdure_orchestrations_finished_total{status="Completed"}'] >= 1
    assert pending
    fresh.close()
