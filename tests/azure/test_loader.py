"""Loading and refusing apps, and route templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from perdure.azure.http_bridge import route_paths
from perdure.azure.loader import UnsupportedAppError, check_sdk_version
from tests.azure.support import run_cli

pytest.importorskip("azure.durable_functions")


def test_route_templates() -> None:
    assert route_paths("api", "orchestrators/{functionName}") == [
        "/api/orchestrators/{functionName}"]
    assert route_paths("api", "items/{id:int}/{part?}") == [
        "/api/items/{id:int}/{part}", "/api/items/{id:int}"]
    assert route_paths("", "files/{*rest}") == ["/files/{rest:path}"]
    assert route_paths("api", "x/{name:alpha}") == ["/api/x/{name}"]


@pytest.mark.parametrize("line", ["azure-functions-durable>=2.0",
                                  "azure-functions-durable==2.0.0b1",
                                  "Azure_Functions_Durable ~= 2.1"])
def test_an_app_for_the_2x_sdk_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"azure-functions\n{line}\n")
    with pytest.raises(UnsupportedAppError, match=r"2\.x"):
        check_sdk_version(tmp_path)


@pytest.mark.parametrize("line", ["azure-functions-durable", "azure-functions-durable<2",
                                  "azure-functions-durable>=1.2,<2"])
def test_an_app_for_the_1x_sdk_is_accepted(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"{line}\n")
    check_sdk_version(tmp_path)


def test_unsupported_triggers_and_bindings_are_all_listed(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text('''
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp()

@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    pass

@app.activity_trigger(input_name="x")
@app.blob_output(arg_name="out", path="c/b", connection="C")
def save(x, out):
    pass

@app.queue_trigger(arg_name="msg", queue_name="q", connection="C")
def consume(msg):
    pass
''')
    result = run_cli(tmp_path, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    for problem in ("function 'tick': trigger 'timerTrigger'",
                    "function 'save': out binding 'blob' (parameter 'out')",
                    "function 'consume': trigger 'queueTrigger'"):
        assert problem in result.stderr


def test_a_directory_that_is_no_functions_app(tmp_path: Path) -> None:
    result = run_cli(tmp_path, tmp_path)
    assert result.returncode == 2
    assert "neither function_app.py" in result.stderr
