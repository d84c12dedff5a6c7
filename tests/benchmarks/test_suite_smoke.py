"""The benchmark suite's smoke mode runs and writes well-formed JSON (no speed asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_smoke_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["runs"] == 1
    figures = report["stores"]["sqlite"]["perdure"]
    for prefix in ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "raw-write limit"):
        assert any(name.startswith(prefix) for name in figures), prefix
    burst = next(stats for name, stats in figures.items() if name.startswith("W8"))
    assert burst["orchestrations run beside burst"]["min"] >= 1
    assert burst["signals/s"]["min"] > 0
    for name, stats in figures.items():
        for key, value in stats.items():
            assert set(value) == {"median", "min", "max", "runs"}, (name, key)
            assert value["min"] <= value["median"] <= value["max"], (name, key)


def test_better_reads_the_figure_direction() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.__main__ import _better

    assert _better("steps/s", 2.0) == "perdure 2.0x"  # higher is better
    assert _better("p99 ms", 2.0) == "dbos 2.0x"  # lower is better
    assert _better("worker CPU % while waiting", 0.5) == "perdure 2.0x"
    assert _better("worker peak RSS MB", 4.0) == "dbos 4.0x"
