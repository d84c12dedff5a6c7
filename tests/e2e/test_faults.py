"""Database and shutdown faults: a SQLite file locked by another process under load, a full
disk (a tiny tmpfs), and a graceful SIGTERM drain on PostgreSQL.

(A PostgreSQL restart mid-run is in test_postgres_scaleout.py; SIGKILLs in test_crash.py
and the chaos runner.)
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import perdure
from benchmarks.chaos_app import build_app
from benchmarks.chaos_check import CheckResult, check_histories, drop_hub, read_tables
from perdure import OrchestrationRuntimeStatus as S
from tests.contract.conftest import postgres_url

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _histories_are_clean(url: str, hub: str = "default") -> int:
    result = CheckResult()
    check_histories(read_tables(url, hub), result)
    assert result.violations == []
    return result.histories_checked


def _integrity(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


# --- SQLite locked by another process ------------------------------------------------
_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test says so: a busy machine cannot outlast it
conn.execute("ROLLBACK")
"""


def test_a_lock_held_by_another_process_under_load_times_out_cleanly_then_work_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import perdure.store.sqlite.store as sqlite_store

    monkeypatch.setattr(sqlite_store, "_BUSY_TIMEOUT_MS", 500)
    db, log = tmp_path / "locked.db", tmp_path / "executions.log"
    url = f"sqlite:///{db}"
    app = build_app(url, "default", str(log), lease_seconds=3, max_concurrent_activities=8)
    client = app.sync_client()
    try:
        with app.running():
            fan = client.start_new("fan", "fan", 0)
            chain = client.start_new("chain", "chain", [0, 10])
            deadline = time.monotonic() + 30
            while len(_lines(log)) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            with subprocess.Popen(
                [sys.executable, "-c", _HOLD_LOCK, str(db)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            ) as blocker:
                assert blocker.stdin is not None and blocker.stdout is not None
                try:
                    assert blocker.stdout.readline().strip() == "locked"
                    at_lock = len(_lines(log))
                    with pytest.raises(perdure.TimeoutError, match="stayed locked by another"):
                        client.start_new("chain", "refused", [0, 1])
                    with pytest.raises(perdure.TimeoutError, match="nothing was changed"):
                        client.raise_event("nobody-cares", "go", 1)
                finally:
                    blocker.stdin.write("release\n")
                    blocker.stdin.flush()
                assert blocker.wait(timeout=30) == 0
            assert client.get_status("refused") is None  # the refused start changed nothing
            outputs = {
                iid: client.wait_for_completion(iid, timeout=60, poll_interval=0.05).output
                for iid in (fan, chain)
            }
        assert outputs == {"fan": sum(range(1, 101)), "chain": 10}
        assert 0 < at_lock < 110, "the lock must land mid-run"
        runs = collections.Counter(_lines(log))
        assert len(runs) == 110 and sum(runs.values()) - len(runs) <= 8
        _integrity(db)
        assert _histories_are_clean(url) == 2 + 0  # two orchestrations (ledgers: entities)
    finally:
        app.close()


# --- disk full -----------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (needs root and mount(8)); skipped elsewhere, saying why."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk mounts a tmpfs: needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    # Unbuffered: a buffered file would retry its leftover bytes on close and raise there.
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def test_a_full_disk_gives_a_clear_error_corrupts_nothing_and_work_resumes(
    tiny_disk: Path, tmp_path: Path
) -> None:
    db, log = tiny_disk / "full.db", tmp_path / "executions.log"
    url = f"sqlite:///{db}"
    app = build_app(url, "default", str(log), lease_seconds=2, max_concurrent_activities=8)
    client = app.sync_client()
    big: Any = "x" * 2_000_000  # needs fresh pages: cannot fit into reused WAL space
    try:
        with app.running():
            first = client.start_new("chain", "before", [0, 5])
            assert client.wait_for_completion(first, timeout=30, poll_interval=0.05).output == 5
            waiter = client.start_new("event", "waiter", 0)
            client.start_new("fan", "fan", 0)  # under load when the disk fills up
            filler = tiny_disk / "filler"
            _fill(filler)
            with pytest.raises(perdure.PerdureError, match="could not be written") as info:
                client.start_new("chain", "refused", [big, 0])
            assert "disk is full" in str(info.value) and "nothing was changed" in str(info.value)
            with pytest.raises(perdure.PerdureError, match="could not be written"):
                client.raise_event(waiter, "go", big)
            assert client.get_status("refused") is None
            time.sleep(1)  # the worker meets the full disk too, and keeps retrying
            filler.unlink()  # space returns
            client.raise_event(waiter, "go", 1)
            client.raise_event(waiter, "more", 2)
            late = client.start_new("chain", "after", [0, 3])
            done = {
                iid: client.wait_for_completion(iid, timeout=60, poll_interval=0.05).output
                for iid in ("fan", waiter, late)
            }
        assert done == {"fan": sum(range(1, 101)), "waiter": 1 + 2 + 1, "after": 3}
        _integrity(db)
        assert _histories_are_clean(url) == 4
        statuses = {s.instance_id: s.runtime_status for s in client.get_status_all()}
        assert statuses == {i: S.Completed for i in ("before", "waiter", "fan", "after")}
    finally:
        app.close()


# --- SIGTERM on PostgreSQL -----------------------------------------------------------
def test_sigterm_drains_a_postgres_worker_without_loss(tmp_path: Path) -> None:
    url = postgres_url()
    hub = "drain" + uuid.uuid4().hex[:12]
    log = tmp_path / "executions.log"
    env = {
        **os.environ,
        "CHAOS_STORE": url,
        "CHAOS_HUB": hub,
        "CHAOS_LOG": str(log),
        "CHAOS_CONCURRENCY": "16",
    }

    def worker() -> subprocess.Popen[bytes]:
        with open(tmp_path / "worker.stderr", "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "benchmarks.chaos_app"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    app = build_app(url, hub, str(log))
    client = app.sync_client()
    try:
        first = worker()
        ids = [client.start_new("fan", f"fan-{i}", i) for i in range(3)]
        deadline = time.monotonic() + 60
        while len(_lines(log)) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        at_stop = len(_lines(log))
        assert at_stop < 300, "SIGTERM must land mid-run"
        second = worker()
        try:
            outputs = [
                client.wait_for_completion(i, timeout=90, poll_interval=0.1).output for i in ids
            ]
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=60) == 0
        assert outputs == [sum(n + i + 1 for i in range(100)) for n in range(3)]
        runs = collections.Counter(_lines(log))
        assert len(runs) == 300 and max(runs.values()) == 1  # a graceful stop re-runs nothing
        assert _histories_are_clean(url, hub) == 3
        print(f"\nSIGTERM after {at_stop} of 300 activities: drained, nothing re-run")
        drop_hub(url, hub)
    finally:
        app.close()
