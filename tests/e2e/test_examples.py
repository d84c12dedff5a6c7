"""The examples are runnable programs; each runs here as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "hello_cities.py": "Hello Tokyo!",
    "fan_out_fan_in.py": "'files': 100",
    "order_checkout.py": "'status': 'shipped'",
    "human_interaction.py": "approved",
    "monitor.py": "done",
    "counter_entity.py": "visits: 31",
    "critical_section.py": "alice: 80\nbob: 70",
    "multiple_parameters.py": "[6.0, 3.75, 9.0]",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_its_result(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PERDURE_STORE": f"sqlite:///{tmp_path / 'demo.db'}"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr
    assert EXPECTED[name] in run.stdout, run.stdout


def test_every_example_is_covered() -> None:
    on_disk = {p.name for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py"}
    assert on_disk == set(EXPECTED)
