"""The curl examples of docs/http.md, run in order against a live ``perdure serve``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.http_support import MGMT, ROOT, start_server

DOC = ROOT / "docs" / "http.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_python_examples_in_the_doc_compile() -> None:
    blocks = _blocks("python")
    assert blocks
    for block in blocks:
        compile(block, str(DOC), "exec")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_examples_in_the_doc_work_against_a_live_server(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        setup, *examples = _blocks("sh")
        assert "perdure key" in setup and len(examples) == 8
        env = {
            **os.environ,
            "PERDURE_STORE": f"sqlite:///{tmp_path / 'live.db'}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        # The doc's first block sets BASE and KEY (KEY through `perdure key`): run it with
        # this server's address and keep both for the other blocks.
        setup = setup.replace("http://127.0.0.1:7071", server.base)
        shown = subprocess.run(["bash", "-ec", setup + '\necho "$BASE $KEY"'], env=env,
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        base, key = shown.stdout.split()
        assert base == server.base and len(key) >= 40
        env.update(BASE=base, KEY=key)

        def run(block: str) -> str:
            done = subprocess.run(["bash", "-ec", block], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, (block, done.stderr)
            return done.stdout

        def status(instance_id: str) -> dict[str, object]:
            body: dict[str, object] = httpx.get(
                f"{base}{MGMT}/instances/{instance_id}", params={"code": key}).json()
            return body

        start, wait, show, approval, control, listing, purge, no_key = examples
        assert json.loads(run(start))["id"] == "curl-1"
        assert json.loads(run(wait)) == ["Hello London!"]
        shown_status = json.loads(run(show))
        assert shown_status["instanceId"] == "curl-1" and "historyEvents" in shown_status
        assert '"id":"curl-2"' in run(approval)
        _wait_for(lambda: status("curl-2")["runtimeStatus"] == "Completed")
        assert status("curl-2")["output"] == {"approved": True}
        run(control)
        _wait_for(lambda: status("curl-3")["runtimeStatus"] == "Terminated")
        _wait_for(lambda: status("curl-1")["runtimeStatus"] == "Completed")
        listed = run(listing)
        assert "x-ms-continuation-token: " in listed.lower() and " 200" in listed
        purged = run(purge)
        assert purged.startswith('{"instancesDeleted":1}{"instancesDeleted":')
        assert run(no_key).strip() == "401"
    finally:
        assert server.stop() == 0


def _wait_for(check: object, timeout: float = 30) -> None:
    import time

    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
