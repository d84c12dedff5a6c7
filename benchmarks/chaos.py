"""Chaos run: mixed orchestrations across worker processes while a driver SIGKILLs them.

    python -m benchmarks.chaos [--store sqlite|postgres] [--instances N] [--workers W]
                               [--duration S] [--kill-every S] [--smoke] [--json FILE]

Each *run* starts N orchestrations (chains, fan-out/fan-in of 100, sub-orchestrations,
durable timers, external events raised by this driver, lock-protected entity counters,
continue-as-new) on a fresh store (SQLite: a new file shared by W processes;
PostgreSQL: a new hub in ``$PERDURE_TEST_POSTGRES``), then SIGKILLs a random worker
every few seconds and restarts it until every instance finished. The workers are then
stopped with SIGTERM (they must drain and exit 0) and the run is checked
(:mod:`benchmarks.chaos_check`). Runs repeat until ``--duration`` seconds have passed.

The exit code is 1 if any check failed in any run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import perdure
from benchmarks.chaos_app import KINDS, build_app, start_input
from benchmarks.chaos_check import CheckResult, check_run, drop_hub
from perdure import OrchestrationRuntimeStatus as S

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
_DONE = (S.Completed, S.Failed, S.Terminated)


@dataclass
class RunReport:
    store: str
    instances: int
    workers: int
    seconds: float = 0.0
    kills: int = 0
    kills_mid_run: int = 0  # kills that landed while instances were unfinished
    drained_cleanly: bool = True
    check: CheckResult = field(default_factory=CheckResult)

    @property
    def ok(self) -> bool:
        return not self.check.violations and self.drained_cleanly


class Workers:
    """W worker processes of :mod:`benchmarks.chaos_app`; kill and restart them."""

    def __init__(self, env: dict[str, str], count: int, stderr: Path) -> None:
        self.env, self.stderr = env, stderr
        self.procs = [self._spawn() for _ in range(count)]

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.stderr, "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "benchmarks.chaos_app"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.procs))
        victim = self.procs[index]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.procs[index] = self._spawn()

    def stop(self, timeout: float = 60) -> bool:
        """SIGTERM every worker; True if all drained and exited 0 in time."""
        for proc in self.procs:
            # A worker restarted a moment ago may still be importing: SIGTERM before
            # app.run() installs its handler would just kill it (nothing to drain).
            _wait_until_handling_sigterm(proc.pid, timeout=30)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        clean = True
        for proc in self.procs:
            try:
                clean &= proc.wait(timeout=timeout) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                clean = False
        return clean


def _wait_until_handling_sigterm(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` catches SIGTERM (Linux: the SigCgt mask in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        caught = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt")), "0")
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)


def _unfinished(client: perdure.SyncClient, pending: set[str]) -> set[str]:
    for iid in sorted(pending):
        try:
            status = client.get_status(iid)
        except perdure.PerdureError:
            continue  # locked store and the like: ask again next round
        if status is not None and status.runtime_status in _DONE:
            pending.discard(iid)
    return pending


def _quiet(app: perdure.App) -> bool:
    backlog = app.store.backlog(datetime.now(UTC))
    return not (
        backlog.orchestration_messages
        or backlog.timers
        or backlog.activity_tasks
        or backlog.activities_running
    )


def one_run(
    store: str,
    instances: int,
    workers: int,
    kill_every: float,
    timeout: float,
    rng: random.Random,
    workdir: Path,
    say: Any,
) -> RunReport:
    report = RunReport(store, instances, workers)
    hub = "chaos" + uuid.uuid4().hex[:12]
    if store == "sqlite":
        url = f"sqlite:///{workdir / (hub + '.db')}"
    else:
        url = os.environ.get("PERDURE_TEST_POSTGRES") or DEFAULT_POSTGRES
    log = workdir / f"{hub}.executions.log"
    env = {
        **os.environ,
        "CHAOS_STORE": url,
        "CHAOS_HUB": hub,
        "CHAOS_LOG": str(log),
        "CHAOS_LEASE": "5",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    app = build_app(url, hub, str(log))  # the driver's client; it runs no worker
    client = app.sync_client()
    started: dict[str, tuple[str, int]] = {}
    began = time.monotonic()
    pool = Workers(env, workers, workdir / f"{hub}.stderr")
    try:
        for i in range(instances):
            kind = KINDS[i % len(KINDS)]
            iid = f"{kind}-{i:04}"
            client.start_new(kind, iid, start_input(kind, i))
            started[iid] = (kind, i)
        events = [iid for iid, (kind, _) in started.items() if kind == "event"]
        # Half the "go" events arrive before the orchestrator waits (they are buffered);
        # the rest, and every "more", arrive after kills.
        early, late = events[: len(events) // 2], events[len(events) // 2 :]
        for iid in early:
            client.raise_event(iid, "go", started[iid][1])
        pending = set(started)
        deadline = began + timeout
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every
        while _unfinished(client, pending) and time.monotonic() < deadline:
            if time.monotonic() >= next_kill:
                pool.kill_one(rng)
                report.kills += 1
                report.kills_mid_run += 1
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every
                if report.kills == 1:
                    for iid in late:
                        client.raise_event(iid, "go", started[iid][1])
                elif report.kills == 2:
                    for iid in events:
                        client.raise_event(iid, "more", 2 * started[iid][1])
            if report.kills < 2 and len(pending) <= len(events):
                next_kill = min(next_kill, time.monotonic())  # only events are left: kill now
            time.sleep(0.2)
        if pending:
            report.check.violations.append(
                f"{len(pending)} instance(s) unfinished after {timeout:.0f} s,"
                f" e.g. {sorted(pending)[:5]}"
            )
        # Completion signals to the ledger entities may still be in flight: settle first.
        while time.monotonic() < deadline + 30 and not _quiet(app):
            time.sleep(0.2)
        report.seconds = time.monotonic() - began
    finally:
        report.drained_cleanly = pool.stop()
    if not report.drained_cleanly:
        report.check.violations.append("a worker did not drain and exit 0 on SIGTERM")
    found = check_run(url, hub, log, started, client)
    found.violations[:0] = report.check.violations
    report.check = found
    app.close()
    if report.ok:
        drop_hub(url, hub)
    say(
        f"run on {store}: {instances} instances, {workers} workers, {report.kills} kills,"
        f" {report.seconds:.1f}s, {found.instances_checked} instances checked,"
        f" {found.activities_rerun} activities re-executed,"
        f" {len(found.violations)} violation(s)"
    )
    for violation in found.violations[:20]:
        say(f"  VIOLATION {violation}")
    if not report.ok:
        say(f"  worker stderr: {workdir / (hub + '.stderr')}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--instances", type=int, default=None, help="orchestrations per run")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--duration", type=float, default=None, help="keep running for S s")
    parser.add_argument("--kill-every", type=float, default=None, help="mean seconds per kill")
    parser.add_argument("--smoke", action="store_true", help="one short run (CI)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)

    instances = args.instances or (64 if args.smoke else 400)
    duration = args.duration if args.duration is not None else (0 if args.smoke else 600)
    kill_every = args.kill_every or (1.5 if args.smoke else 2.0)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="perdure-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"chaos: store={args.store} instances={instances} workers={args.workers}"
        f" duration={duration}s kill-every~{kill_every}s seed={seed} workdir={workdir}")
    reports: list[RunReport] = []
    began = time.monotonic()
    while not reports or time.monotonic() - began < duration:
        reports.append(
            one_run(args.store, instances, args.workers, kill_every, 180, rng, workdir, say)
        )
    totals = {
        "store": args.store,
        "seed": seed,
        "runs": len(reports),
        "failed_runs": sum(not r.ok for r in reports),
        "kills_survived": sum(r.kills for r in reports if r.ok),
        "kills": sum(r.kills for r in reports),
        "instances_checked": sum(r.check.instances_checked for r in reports),
        "histories_checked": sum(r.check.histories_checked for r in reports),
        "orchestration_duplicates": sum(
            sum("times" in v for v in r.check.violations) for r in reports
        ),
        "activity_executions": sum(r.check.activity_executions for r in reports),
        "activities_reexecuted": sum(r.check.activities_rerun for r in reports),
        "violations": sum(len(r.check.violations) for r in reports),
        "seconds": round(time.monotonic() - began, 1),
    }
    say("")
    say("chaos report")
    for key, value in totals.items():
        say(f"  {key:26} {value}")
    if args.json:
        args.json.write_text(
            json.dumps({**totals, "runs_detail": [asdict(r) for r in reports]}, indent=2)
        )
    return 1 if totals["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
