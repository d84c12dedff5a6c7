"""PostgreSQL end to end: real orchestrations on one hub, several worker processes, a
worker SIGKILLed and restarted mid-run, and the database server restarted under load.

The worker processes import :func:`build_app` from this module and call ``app.run()``.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

import perdure
from perdure import OrchestrationRuntimeStatus as S
from tests.contract.conftest import postgres_url

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("chain", "fan", "timer", "event", "parent")


def build_app(store: str, hub: str, log: str | None = None, **options: Any) -> perdure.App:
    """The app every test here runs; each activity execution is appended to ``log``."""
    app = perdure.App(store=store, hub=hub, **options)

    def record() -> None:
        info = perdure.current_activity()
        if log is None or info is None:
            return
        line = f"{info.instance_id}|{info.execution_id}|{info.task_id}\n".encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write() per line: atomic for O_APPEND, even across processes
        finally:
            os.close(fd)

    @app.activity
    def step(x: int) -> int:
        time.sleep(0.01)
        record()
        return x + 1

    @app.orchestrator
    def chain(context):  # type: ignore[no-untyped-def]
        value = context.get_input()
        for _ in range(5):
            value = yield context.call_activity("step", value)
        return value

    @app.orchestrator
    def fan(context):  # type: ignore[no-untyped-def]
        base = context.get_input()
        calls = [context.call_activity("step", base + i) for i in range(8)]
        results = yield context.task_all(calls)
        return sum(results)

    @app.orchestrator
    def timer(context):  # type: ignore[no-untyped-def]
        yield context.create_timer(timedelta(seconds=0.5))
        return (yield context.call_activity("step", context.get_input()))

    @app.orchestrator
    def event(context):  # type: ignore[no-untyped-def]
        data = yield context.wait_for_external_event("go")
        return (yield context.call_activity("step", data))

    @app.orchestrator
    def parent(context):  # type: ignore[no-untyped-def]
        n = context.get_input()
        calls = [context.call_sub_orchestrator("chain", n + k) for k in range(2)]
        children = yield context.task_all(calls)
        return sum(children)

    return app


def expected(kind: str, n: int) -> int:
    return {
        "chain": n + 5,
        "fan": sum(n + i + 1 for i in range(8)),
        "timer": n + 1,
        "event": n + 1,
        "parent": (n + 5) + (n + 6),
    }[kind]


def activities_per(kind: str) -> int:
    return {"chain": 5, "fan": 8, "timer": 1, "event": 1, "parent": 10}[kind]


@pytest.fixture(scope="module")
def pg() -> str:
    return postgres_url()


@pytest.fixture
def hub() -> str:
    return "e2e" + uuid.uuid4().hex[:16]


def start_mixed(client: perdure.SyncClient, count: int) -> dict[str, tuple[str, int]]:
    started: dict[str, tuple[str, int]] = {}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        iid = f"{kind}-{i:04}"
        client.start_new(kind, iid, i)
        started[iid] = (kind, i)
    for iid, (kind, n) in started.items():
        if kind == "event":
            client.raise_event(iid, "go", n)
    return started


def wait_all(client: perdure.SyncClient, ids: list[str], timeout: float) -> dict[str, Any]:
    """Outputs of every instance once all are finished; tolerates a database outage."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    outputs: dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        try:
            for iid in sorted(pending):
                status = client.get_status(iid)
                assert status is not None, iid
                if status.runtime_status in (S.Completed, S.Failed, S.Terminated):
                    assert status.runtime_status is S.Completed, (iid, status.output)
                    outputs[iid] = status.output
                    pending.discard(iid)
        except psycopg.OperationalError:
            pass  # the server is restarting; ask again shortly
        time.sleep(0.2)
    assert not pending, f"{len(pending)} instance(s) unfinished, e.g. {sorted(pending)[:5]}"
    return outputs


def test_orchestrations_run_to_completion_on_postgres(pg: str, hub: str) -> None:
    app = build_app(pg, hub, lease_seconds=5)
    try:
        with app.running():
            client = app.sync_client()
            started = start_mixed(client, 15)
            outputs = wait_all(client, list(started), timeout=60)
        assert outputs == {iid: expected(kind, n) for iid, (kind, n) in started.items()}
        counts = app.store.count_by_status()
        assert counts == {S.Completed: 15 + 2 * 3}  # three parents, two children each
    finally:
        app.close()


def _worker(pg: str, hub: str, log: Path) -> subprocess.Popen[bytes]:
    code = (
        "from tests.e2e.test_postgres_scaleout import build_app; "
        f"build_app({pg!r}, {hub!r}, {str(log)!r}, lease_seconds=2,"
        " max_concurrent_activities=16).run()"
    )
    with open(log.with_suffix(".stderr"), "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
        )


@pytest.fixture
def workers(pg: str, hub: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_three_workers_finish_300_mixed_orchestrations_despite_a_sigkill(
    pg: str, hub: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "executions.log"
    client_app = build_app(pg, hub)
    try:
        client = client_app.sync_client()
        started = start_mixed(client, 300)
        total = sum(activities_per(kind) for kind, _ in started.values())
        workers += [_worker(pg, hub, log) for _ in range(3)]
        deadline = time.monotonic() + 60
        while len(_lines(log)) < total // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = len(_lines(log))
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        at_kill = len(_lines(log))
        print(f"\nkill decided at {seen}, landed at {at_kill}")
        assert 0 < at_kill < total, "the kill must land mid-run"
        time.sleep(0.5)
        workers.append(_worker(pg, hub, log))  # the restarted worker
        killed_at = time.monotonic()
        outputs = wait_all(client, list(started), timeout=90)
        print(f"finished {time.monotonic() - killed_at:.1f}s after the kill")
    finally:
        client_app.close()

    assert outputs == {iid: expected(kind, n) for iid, (kind, n) in started.items()}
    runs = collections.Counter(_lines(log))
    assert len(runs) == total  # every activity ran
    repeated = {k: n for k, n in runs.items() if n > 1}
    # At least once: only what the killed worker had in flight (16 slots) may run again.
    assert len(repeated) <= 16, repeated
    print(
        f"\n3 workers, 300 orchestrations, {total} activities; SIGKILL after {at_kill}:"
        f" activities that ran twice: {len(repeated)}"
    )
    for proc in workers[1:]:
        assert proc.poll() is None, "a surviving worker died"


def _local_cluster(pg: str) -> tuple[str, str]:
    """(version, name) of the local cluster serving ``pg``, or skip/fail saying why not."""
    host = urlparse(pg).hostname or "localhost"
    reason = ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        reason = f"the test database is on {host}, not this machine"
    elif shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        reason = "pg_ctlcluster is not installed"
    if reason:
        if os.environ.get("PERDURE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"cannot restart PostgreSQL: {reason}", pytrace=False)
        pytest.skip(f"cannot restart PostgreSQL: {reason}")
    return sorted(os.listdir("/etc/postgresql"))[-1], "main"


def test_every_instance_completes_across_a_postgres_restart(
    pg: str, hub: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    version, cluster = _local_cluster(pg)
    log = tmp_path / "executions.log"
    workers += [_worker(pg, hub, log) for _ in range(2)]
    client_app = build_app(pg, hub)
    try:
        client = client_app.sync_client()
        started = start_mixed(client, 100)
        total = sum(activities_per(kind) for kind, _ in started.values())
        deadline = time.monotonic() + 60
        while len(_lines(log)) < total // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        outputs = wait_all(client, list(started), timeout=90)
    finally:
        client_app.close()
    assert outputs == {iid: expected(kind, n) for iid, (kind, n) in started.items()}
    assert len(collections.Counter(_lines(log))) == total
    for proc in workers:
        assert proc.poll() is None, "a worker died with the database"
    print(f"\nPostgreSQL restarted after {total // 4}+ of {total} activities; all 100 finished")
