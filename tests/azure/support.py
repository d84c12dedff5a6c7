"""A real ``perdure serve --functions-app`` subprocess on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.http_support import ROOT, free_port

APPS = Path(__file__).resolve().parent / "apps"
KEY = "azure-test-key-0123456789"
MGMT = "/runtime/webhooks/durabletask"


def serve_command(app_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "perdure.cli", "serve", "--functions-app", str(app_dir),
            "--log-level", "warning", *args]


@contextmanager
def functions_server(tmp: Path, app: str, *args: str) -> Iterator[httpx.Client]:
    """Serve ``apps/<app>`` with SQLite in ``tmp``; yields a client on its base URL."""
    port = free_port()
    env = {**os.environ, "PERDURE_STORE": f"sqlite:///{tmp / 'azure.db'}",
           "PERDURE_API_KEY": KEY}
    env.pop("PERDURE_HUB", None)
    log = tmp / f"serve-{app}.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            serve_command(APPS / app, "--port", str(port), *args),
            cwd=tmp, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"perdure serve exited:\n{log.read_text()}"
            try:
                httpx.get(f"{base}{MGMT}/instances", params={"code": KEY}, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"no answer:\n{log.read_text()}"
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as client:
            client.log = log  # type: ignore[attr-defined]
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_done(http: httpx.Client, status_url: str, timeout: float = 30) -> dict[str, Any]:
    """Poll a statusQueryGetUri (absolute, keyed) until the instance has finished."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(status_url)
        body: dict[str, Any] = response.json()
        if response.status_code == 200:
            return body
        assert response.status_code == 202, response.text
        assert time.monotonic() < deadline, f"still {body.get('runtimeStatus')}: {body}"
        time.sleep(0.05)


def run_cli(app_dir: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``perdure serve --functions-app`` expected to refuse the app and exit at once."""
    env = {**os.environ, "PERDURE_STORE": f"sqlite:///{tmp / 'refused.db'}"}
    return subprocess.run(serve_command(app_dir, "--port", str(free_port()), *args),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
