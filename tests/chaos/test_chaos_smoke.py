"""The chaos runner's short version on both stores, and its checker catching planted faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.chaos_check import CheckResult, Tables, check_histories
from tests.contract.conftest import postgres_url

ROOT = Path(__file__).resolve().parents[2]


def _chaos(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.chaos", "--smoke", "--workdir", str(tmp_path),
         "--json", str(report), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def _assert_held(totals: dict[str, object]) -> None:
    assert totals["runs"] == 1 and totals["failed_runs"] == 0
    assert totals["violations"] == 0 and totals["orchestration_duplicates"] == 0
    assert int(totals["kills_survived"]) >= 2  # type: ignore[call-overload]
    assert int(totals["instances_checked"]) >= 64  # type: ignore[call-overload]


@pytest.mark.timeout(180)
def test_chaos_smoke_on_sqlite(tmp_path: Path) -> None:
    _assert_held(_chaos(tmp_path, "--store", "sqlite"))


@pytest.mark.timeout(180)
def test_chaos_smoke_on_postgres(tmp_path: Path) -> None:
    import os

    url = postgres_url()
    _assert_held(_chaos(tmp_path, "--store", "postgres",
                        env={**os.environ, "PERDURE_TEST_POSTGRES": url}))


def _tables(history: list[tuple[str, str, int, str, str]], length: int) -> Tables:
    row = {"execution_id": "e1", "history_length": length}
    return Tables(instances={"i": row}, history=history, inbox=0, tasks=0)


def _row(seq: int, etype: str = "OrchestratorStarted", **data: object) -> tuple[
    str, str, int, str, str
]:
    return ("i", "e1", seq, etype, json.dumps({"timestamp": "2026-01-01T00:00:00", **data}))


@pytest.mark.parametrize(
    ("history", "length", "words"),
    [
        ([_row(0), _row(2)], 2, "gaps at [1]"),
        ([_row(0), _row(1), _row(1)], 3, "duplicate history sequence"),
        ([_row(0), _row(1)], 3, "history_length 3"),
        ([_row(0, "ExecutionCompleted"), _row(1, "ExecutionCompleted")], 2,
         "ExecutionCompleted 2 times"),
        ([_row(0, "TaskCompleted", task_scheduled_id=4),
          _row(1, "TaskCompleted", task_scheduled_id=4)], 2, "recorded 2 times"),
        ([_row(0, "TaskScheduled", event_id=1, name="a"),
          _row(1, "TaskScheduled", event_id=1, name="a")], 2, "scheduled 2 times"),
        ([("i", "old", 0, "OrchestratorStarted", "{}")], 0, "stale execution"),
    ],
)
def test_the_checker_catches_planted_history_faults(
    history: list[tuple[str, str, int, str, str]], length: int, words: str
) -> None:
    result = CheckResult()
    check_histories(_tables(history, length), result)
    assert any(words in v for v in result.violations), result.violations


def test_the_checker_passes_a_clean_history() -> None:
    result = CheckResult()
    check_histories(_tables([_row(0), _row(1, "ExecutionCompleted")], 2), result)
    assert result.violations == [] and result.histories_checked == 1
