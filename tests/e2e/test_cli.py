"""The ``perdure`` CLI on the store directly (click's CliRunner), with a worker running
in-process on the same SQLite file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import perdure
from perdure.cli import main
from tests.e2e.http_support import make_app

APP = "tests.e2e.http_app:app"


class Cli:
    def __init__(self, db: Path) -> None:
        self.runner = CliRunner(env={"COLUMNS": "200"})
        self.base = ["--store", f"sqlite:///{db}", "--app", APP]

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(main, [*self.base, *args], catch_exceptions=False)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[perdure.App]:
    app = make_app(tmp_path)
    try:
        with app.running():
            yield app
    finally:
        app.close()


@pytest.fixture
def cli(tmp_path: Path, running: perdure.App) -> Cli:
    return Cli(tmp_path / "http.db")


def test_start_wait_status_history_and_list(cli: Cli) -> None:
    started = cli("start", "hello_cities", "--input", '["Accra"]', "--id", "c-1")
    assert started.exit_code == 0 and started.stdout.strip() == "c-1"
    waited = cli("wait", "c-1", "--timeout", "30")
    assert waited.exit_code == 0 and json.loads(waited.stdout) == ["Hello Accra!"]
    status = cli("status", "c-1")
    assert status.exit_code == 0 and "Completed" in status.stdout and "Accra" in status.stdout
    history = cli("status", "c-1", "--history")
    assert "History" in history.stdout and "TaskCompleted" in history.stdout
    assert "say_hello" in history.stdout and "ExecutionCompleted" in history.stdout
    raw = json.loads(cli("status", "c-1", "--json").stdout)
    assert raw["runtimeStatus"] == "Completed" and raw["input"] == ["Accra"]

    cli("start", "approval", "--id", "c-2")
    listed = cli("list", "--status", "Completed", "--json")
    assert [json.loads(line)["instanceId"] for line in listed.stdout.splitlines()] == ["c-1"]
    everything = cli("list", "--from", "2000-01-01", "--top", "10")
    assert everything.exit_code == 0 and "c-1" in everything.stdout and "c-2" in everything.stdout
    assert "2 instance(s)" in everything.stderr
    assert cli("list", "--to", "2000-01-01").stderr.strip().endswith("0 instance(s)")


def test_raise_suspend_resume_terminate(cli: Cli) -> None:
    cli("start", "approval", "--id", "a-1")
    assert cli("suspend", "a-1", "--reason", "lunch").exit_code == 0
    assert cli("raise", "a-1", "Approval", "--data", '{"by": "ann"}').exit_code == 0
    assert cli("resume", "a-1").exit_code == 0
    waited = cli("wait", "a-1", "--timeout", "30")
    assert waited.exit_code == 0
    assert json.loads(waited.stdout) == {"approved": {"by": "ann"}}

    cli("start", "approval", "--id", "a-2")
    assert cli("terminate", "a-2", "--reason", "stop").exit_code == 0
    ended = cli("wait", "a-2", "--timeout", "30")
    assert ended.exit_code == 1 and "Terminated" in ended.stderr
    again = cli("terminate", "a-2")
    assert again.exit_code == 1 and "Terminated" in again.stderr


def test_failed_instance_wait_exit_1_then_rewind(cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    cli("start", "fragile", "--input", json.dumps(str(flag)), "--id", "f-1")
    failed = cli("wait", "f-1", "--timeout", "30")
    assert failed.exit_code == 1 and "Failed" in failed.stderr
    flag.write_text("ok")
    assert cli("rewind", "f-1", "--reason", "fixed").exit_code == 0
    # Rewind is accepted (202-style) and applied by the worker: until then it is still Failed.
    deadline = time.monotonic() + 20
    while json.loads(cli("status", "f-1", "--json").stdout)["runtimeStatus"] == "Failed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    recovered = cli("wait", "f-1", "--timeout", "30")
    assert recovered.exit_code == 0 and json.loads(recovered.stdout) == "recovered"
    restarted = cli("restart", "f-1")
    assert restarted.exit_code == 0 and restarted.stdout.strip() != "f-1"


def test_wait_timeout_is_exit_1(cli: Cli) -> None:
    cli("start", "approval", "--id", "w-1")
    result = cli("wait", "w-1", "--timeout", "0.2")
    assert result.exit_code == 1 and "still" in result.stderr


def test_purge_one_and_by_filter_with_progress(cli: Cli) -> None:
    for i in range(5):
        cli("start", "hello_cities", "--id", f"p-{i}")
    for i in range(5):
        assert cli("wait", f"p-{i}", "--timeout", "30").exit_code == 0
    assert cli("purge", "p-0").exit_code == 0
    assert cli("purge", "p-0").exit_code == 3
    purged = cli("purge", "--from", "2000-01-01T00:00:00Z", "--status", "Completed")
    assert purged.exit_code == 0 and "4 instance(s) deleted" in purged.stdout
    assert "purging" in purged.stderr  # the progress bar
    assert cli("list", "--json").stdout == ""


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["start", "hello_cities", "--input", "{oops"], 2, "not valid JSON"),
        (["start", "hello_cities", "--id", "@bad"], 2, "must not start with '@'"),
        (["start", "no_such_orchestrator"], 2, "not registered"),
        (["status", "missing"], 3, "missing"),
        (["terminate", "missing"], 3, "missing"),
        (["raise", "missing", "E"], 3, "missing"),
        (["raise", "x", "E", "--data", "{"], 2, "not valid JSON"),
        (["list", "--status", "Sleeping"], 2, "unknown runtime status"),
        (["list", "--from", "last week"], 2, "ISO 8601"),
        (["purge"], 2, "at least one filter"),
        (["purge", "x", "--status", "Completed"], 2, "not both"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_bad_input_and_missing_instances_give_exit_codes(
    cli: Cli, args: list[str], code: int, words: str
) -> None:
    result = cli(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert words in result.stderr
    assert cli("list", "--json").stdout == ""  # nothing was created


def test_key_prints_the_hub_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERDURE_API_KEY", raising=False)
    cli = Cli(tmp_path / "keys.db")
    first = cli("key")
    assert first.exit_code == 0 and len(first.stdout.strip()) >= 40
    assert cli("key").stdout == first.stdout
    assert CliRunner().invoke(main, ["--url", "http://x", "--key", "k", "key"]).exit_code == 2


def test_url_without_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERDURE_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:1", "status", "x"])
    assert result.exit_code == 2 and "--key" in result.stderr


def test_unreachable_server_is_exit_1() -> None:
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:1", "--key", "k",
                                       "status", "x"])
    assert result.exit_code == 1 and "cannot reach" in result.stderr


def test_bad_app_spec_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--app", "no_such_module:app", "list"])
    assert result.exit_code == 2 and "cannot import" in result.stderr
    result = CliRunner().invoke(main, ["worker", "tests.e2e.http_app:nothing"])
    assert result.exit_code == 2 and "not a perdure.App" in result.stderr
