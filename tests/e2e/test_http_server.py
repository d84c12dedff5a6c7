"""``perdure serve`` as a real subprocess on a loopback port, driven over HTTP: the async
HTTP pattern, events, auth, the generated key, SIGTERM drain, extra worker processes, and
the CLI talking to the server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.http_support import MGMT, ROOT, key_from_output, start_server


def _poll(url: str, timeout: float = 30) -> httpx.Response:
    """Follow a statusQueryGetUri the way a DF client does, until it stops answering 202."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if response.status_code != 202:
            return response
        assert response.headers["Retry-After"] == "5"
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def test_async_http_pattern_events_and_auth_against_a_live_server(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        key = key_from_output(server.output())
        keyed: dict[str, Any] = {"headers": {"x-functions-key": key}, "timeout": 10}

        started = httpx.post(f"{server.base}/api/orchestrators/hello_cities",
                             json=["Nairobi"], **keyed)
        assert started.status_code == 202 and started.headers["Retry-After"] == "10"
        payload = started.json()
        assert payload["statusQueryGetUri"].startswith(server.base + MGMT)
        done = _poll(payload["statusQueryGetUri"])
        assert done.status_code == 200 and done.json()["output"] == ["Hello Nairobi!"]

        approval = httpx.post(f"{server.base}/api/orchestrators/approval", **keyed).json()
        event = approval["sendEventPostUri"].replace("{eventName}", "Approval")
        assert httpx.post(event, json="yes", timeout=10).status_code == 202
        assert _poll(approval["statusQueryGetUri"]).json()["output"] == {"approved": "yes"}

        waited = httpx.post(f"{server.base}/api/orchestrators/hello_cities/wait?timeout=10",
                            **keyed)
        assert waited.status_code == 200 and len(waited.json()) == 3

        assert httpx.get(f"{server.base}{MGMT}/instances", timeout=10).status_code == 401
        assert httpx.post(f"{server.base}/api/orchestrators/hello_cities",
                          timeout=10).status_code == 401
        bad = httpx.post(f"{server.base}/api/orchestrators/nope", **keyed)
        assert bad.status_code == 400 and "nope" in bad.json()["error"]
        assert len(httpx.get(f"{server.base}{MGMT}/instances", **keyed).json()) == 3
    finally:
        assert server.stop() == 0
    log = server.output()
    assert log.count(key) == 1, "the key is printed once and never logged"
    assert "stopped" in log


def test_sigterm_drains_in_flight_activity_and_restart_finishes_the_work(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--drain-seconds", "10", name="first")
    key = key_from_output(server.output())
    keyed: dict[str, Any] = {"headers": {"x-functions-key": key}, "timeout": 10}
    started = httpx.post(f"{server.base}/api/orchestrators/napping/nap-1", json=1.5, **keyed)
    assert started.status_code == 202
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.base}{MGMT}/instances/nap-1", **keyed).json()[
            "runtimeStatus"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the nap activity is now in flight
    began = time.monotonic()
    assert server.stop() == 0  # SIGTERM: drains, exits cleanly
    assert time.monotonic() - began >= 0.5, "it waited for the in-flight activity"
    assert "generated API key" in server.output()

    # Same store, two worker processes: the key is not printed again, the work finishes.
    second = start_server(tmp_path, "--workers", "2", name="second")
    try:
        assert "generated API key" not in second.output()
        status = _poll(f"{second.base}{MGMT}/instances/nap-1?code={key}")
        assert status.status_code == 200 and status.json()["output"] == 1.5
        many = [httpx.post(f"{second.base}/api/orchestrators/hello_cities", **keyed).json()
                for _ in range(10)]
        for payload in many:
            assert _poll(payload["statusQueryGetUri"]).json()["runtimeStatus"] == "Completed"
    finally:
        assert second.stop() == 0


def test_cli_talks_to_a_live_server(tmp_path: Path) -> None:
    env = {"PERDURE_API_KEY": "cli-key"}
    server = start_server(tmp_path, env=env)
    try:
        cli_env = {**os.environ, "PERDURE_URL": server.base, "PERDURE_API_KEY": "cli-key"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "perdure.cli", *args], cwd=ROOT,
                                  env=cli_env, capture_output=True, text=True, timeout=60)

        started = cli("start", "hello_cities", "--input", '["Lagos"]', "--id", "via-cli")
        assert started.returncode == 0 and started.stdout.strip() == "via-cli"
        waited = cli("wait", "via-cli", "--timeout", "20")
        assert waited.returncode == 0 and "Hello Lagos!" in waited.stdout
        history = cli("status", "via-cli", "--history")
        assert history.returncode == 0 and "TaskCompleted" in history.stdout
        assert "say_hello" in history.stdout
        assert cli("status", "missing").returncode == 3
        assert cli("start", "no_such").returncode == 2
        assert cli("terminate", "via-cli").returncode == 1  # already finished: 410
        listed = cli("list", "--status", "Completed", "--json")
        assert listed.returncode == 0 and "via-cli" in listed.stdout
        wrong_key = subprocess.run(
            [sys.executable, "-m", "perdure.cli", "--key", "nope", "list"], cwd=ROOT,
            env=cli_env, capture_output=True, text=True, timeout=60)
        assert wrong_key.returncode == 2 and "API key" in wrong_key.stderr
        purged = cli("purge", "via-cli")
        assert purged.returncode == 0
        assert cli("status", "via-cli").returncode == 3
    finally:
        assert server.stop() == 0
    assert "cli-key" not in server.output()
