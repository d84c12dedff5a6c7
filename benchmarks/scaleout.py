"""Scale-out on PostgreSQL: throughput with 1, 2 and 4 worker processes on one task hub.

Two workloads, each a fan-out orchestration calling ``--fan`` activities:
``io`` activities sleep 50 ms (I/O-bound: throughput should grow with workers) and
``trivial`` activities return at once (bounded by CPU and the database).

    python -m benchmarks.scaleout [--smoke] [--url postgresql://...]

The URL defaults to ``$PERDURE_BENCH_POSTGRES``, ``$PERDURE_TEST_POSTGRES`` or a local
server. Prints numbers; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import perdure
from perdure import OrchestrationRuntimeStatus as S
from perdure.store.base import InstanceQuery

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]
ACTIVITY_SLOTS = 16  # per worker process: what makes one worker the I/O bottleneck


def build_app(url: str, hub: str) -> perdure.App:
    app = perdure.App(store=url, hub=hub, max_concurrent_activities=ACTIVITY_SLOTS)

    @app.activity
    def io(x: int) -> int:
        time.sleep(0.05)
        return x

    @app.activity
    def trivial(x: int) -> int:
        return x

    @app.orchestrator
    def fan(context):  # type: ignore[no-untyped-def]
        kind, width = context.get_input()
        results = yield context.task_all([context.call_activity(kind, i) for i in range(width)])
        return sum(results)

    return app


def serve(url: str, hub: str, ready: str) -> None:
    """A worker process: run until SIGTERM, touching ``ready`` once it is up."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    app = build_app(url, hub)
    with app.running():
        Path(ready).touch()
        stop.wait()
    app.close()


def run_once(url: str, kind: str, workers: int, orchestrations: int, fan: int) -> dict[str, Any]:
    hub = "bench" + uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory() as tmp:
        flags = [os.path.join(tmp, f"ready{n}") for n in range(workers)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c",
                 f"from benchmarks.scaleout import serve; serve({url!r}, {hub!r}, {flag!r})"],
                cwd=ROOT,
            )
            for flag in flags
        ]
        client_app = build_app(url, hub)
        try:
            deadline = time.monotonic() + 60
            while not all(os.path.exists(f) for f in flags):
                if time.monotonic() > deadline:
                    raise RuntimeError("worker processes did not start")
                time.sleep(0.05)
            client = client_app.sync_client()
            store = client_app.store
            began = time.perf_counter()
            for i in range(orchestrations):
                client.start_new("fan", f"o{i:05}", [kind, fan])
            while True:
                counts = store.count_by_status()
                done = sum(n for s, n in counts.items() if s.is_terminal)
                if done >= orchestrations:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - began
            failed = orchestrations - counts.get(S.Completed, 0)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
            client_app.store.purge_instances(query=InstanceQuery())
            client_app.close()
    return {
        "kind": kind,
        "workers": workers,
        "orchestrations": orchestrations,
        "activities": orchestrations * fan,
        "seconds": elapsed,
        "activities_per_s": orchestrations * fan / elapsed,
        "orchestrations_per_s": orchestrations / elapsed,
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds: check it runs")
    parser.add_argument(
        "--url",
        default=os.environ.get("PERDURE_BENCH_POSTGRES")
        or os.environ.get("PERDURE_TEST_POSTGRES")
        or DEFAULT_URL,
    )
    parser.add_argument("--fan", type=int, default=10, help="activities per orchestration")
    args = parser.parse_args(argv)
    sizes = {"io": 20, "trivial": 40} if args.smoke else {"io": 400, "trivial": 1000}
    counts = (1, 2) if args.smoke else (1, 2, 4)
    print(f"PostgreSQL scale-out, {os.cpu_count()} CPUs, {ACTIVITY_SLOTS} activity slots/worker,"
          f" fan-out of {args.fan}")
    print(f"{'workload':<10}{'workers':>8}{'activities':>12}{'seconds':>9}"
          f"{'act/s':>9}{'orch/s':>9}{'speed-up':>10}")
    for kind, size in sizes.items():
        base = None
        for n in counts:
            r = run_once(args.url, kind, n, size, args.fan)
            base = base or r["activities_per_s"]
            print(f"{kind:<10}{n:>8}{r['activities']:>12}{r['seconds']:>9.2f}"
                  f"{r['activities_per_s']:>9.0f}{r['orchestrations_per_s']:>9.1f}"
                  f"{r['activities_per_s'] / base:>9.2f}x"
                  + (f"  ({r['failed']} failed)" if r["failed"] else ""), flush=True)


if __name__ == "__main__":
    main()
