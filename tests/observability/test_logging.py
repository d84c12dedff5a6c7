"""Logs: the orchestrator's replay-safe logger, the worker's structured step records in
JSON, and the API key never reaching a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure.observability import logs

app = perdure.App()


@app.activity
def double(n: int) -> int:
    return n * 2


@app.activity
def fail(_: Any) -> None:
    raise KeyError("nope")


@app.orchestrator
def chatty(context: Any) -> Any:
    total = 0
    for i in range(3):
        context.logger.info("step %d, total so far %d", i, total)
        total += yield context.call_activity("double", i)
    context.logger.warning("done with %d", total)
    return total


@app.orchestrator
def failing(context: Any) -> Any:
    yield context.call_activity("fail")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.set_step_level(logging.DEBUG)


def run(tmp_path: Path, name: str, **options: Any) -> str:
    new = perdure.App(store=f"sqlite:///{tmp_path / 'logs.db'}", **options)
    new.registry = app.registry
    with new.running():
        client = new.sync_client()
        instance_id = client.start_new(name)
        client.wait_for_completion(instance_id)
    new.close()
    return instance_id


@pytest.mark.parametrize("cache_size", [2000, 0], ids=["cached", "replay-every-step"])
def test_orchestrator_lines_are_logged_once_despite_replays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cache_size: int
) -> None:
    with caplog.at_level(logging.INFO, logger="perdure.orchestrator"):
        instance_id = run(tmp_path, "chatty", cache_size=cache_size)
    lines = [r.getMessage() for r in caplog.records if r.name == "perdure.orchestrator"]
    assert lines == [
        f"[{instance_id}] step 0, total so far 0",
        f"[{instance_id}] step 1, total so far 0",
        f"[{instance_id}] step 2, total so far 2",
        f"[{instance_id}] done with 6",
    ]
    assert all(getattr(r, "instance_id", None) == instance_id for r in caplog.records
               if r.name == "perdure.orchestrator")


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_carry_instance_execution_event_and_duration(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure_logging("json", "INFO", stream=stream)
    instance_id = run(tmp_path, "chatty")
    records = json_lines(stream)
    episodes = [r for r in records if r.get("event_type") == "episode"]
    assert len(episodes) == 4  # start + one per activity result
    for record in episodes:
        assert record["instance_id"] == instance_id
        assert record["level"] == "INFO" and record["logger"] == "perdure.worker"
        assert len(record["execution_id"]) == 32
        assert isinstance(record["duration_ms"], float)
    assert episodes[-1]["status"] == "Completed"
    activities = [r for r in records if r.get("event_type") == "TaskCompleted"]
    assert [(a["function_name"], a["task_id"], a["attempt"]) for a in activities] == [
        ("double", 0, 1), ("double", 1, 1), ("double", 2, 1)
    ]
    assert all(a["execution_id"] == episodes[0]["execution_id"] for a in activities)
    user = [r for r in records if r["logger"] == "perdure.orchestrator"]
    assert [r["message"].split("] ")[1] for r in user][-1] == "done with 6"


def test_activity_failures_are_warnings_with_the_error_type(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure_logging("json", "WARNING", stream=stream)
    run(tmp_path, "failing")
    (failure,) = [r for r in json_lines(stream) if r.get("event_type") == "TaskFailed"]
    assert failure["level"] == "WARNING" and failure["error_type"] == "KeyError"


def test_steps_stay_quiet_at_info_with_text_logs(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure_logging("text", "INFO", stream=stream)
    run(tmp_path, "chatty")
    assert "episode of" not in stream.getvalue()
    assert "done with 6" in stream.getvalue()  # the orchestrator's own line


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_api_key_never_reaches_a_log_line(fmt: str) -> None:
    key = "s3cr3t-Key_0123456789abcdef"
    stream = io.StringIO()
    logs.configure_logging(fmt, "DEBUG", secrets=[key], stream=stream)
    log = logging.getLogger("perdure.test")
    log.info("the key is %s", key)
    log.info('127.0.0.1:5000 - "GET /dashboard?code=%s&order=oldest HTTP/1.1" 303', key)
    log.info("GET /x?code=anything-else-secret")
    log.warning("extra field", extra={"instance_id": key})
    try:
        raise RuntimeError(f"bad key {key}")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert key not in text and "anything-else-secret" not in text
    assert text.count("***") >= 4
    assert "order=oldest" in text


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(perdure.ValidationError):
        logs.configure_logging("xml")
