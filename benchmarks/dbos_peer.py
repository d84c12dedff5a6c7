"""The DBOS Transact peer: the same workloads as benchmarks.workloads, written the way the
DBOS docs write them, each run in a fresh process (DBOS is a process-wide singleton).

    python -m benchmarks.dbos_peer WORKLOAD STORE_URL N   # prints "RESULT {json}" last

The parent calls :func:`run`, which spawns that process. STORE_URL is the perdure URL of
the run: on SQLite DBOS gets its own file beside perdure's, on PostgreSQL its own schema
in the same database (dropped afterwards). Same work as perdure's version of each
workload: W1 three sequential steps returning "Hello {city}!", W2 n steps that double
their input summed by the workflow (fanned out through a DBOS queue, DBOS's documented
fan-out idiom), W3 k sequential steps, W4 a one-step workflow, W5 ``DBOS.recv`` /
``DBOS.send`` for external events, W6 ``DBOS.sleep`` for timers. W5 and W6 use async
workflows (``recv_async`` / ``sleep_async``): sync ones would each hold a thread while
they wait. W7 (entities) has no DBOS equivalent and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

Result = dict[str, float]
CITIES = ("Tokyo", "Seattle", "London")
SKIPPED = {
    "w7": "DBOS has no entities (no addressable state with serialized one-way operations);"
    " a recv-loop workflow would be an emulation, not the same feature",
}


class Skipped(Exception):
    """This workload has no DBOS equivalent."""


def available() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


def run(workload: str, store_url: str, n: int, timeout: float = 1800) -> Result:
    """Run one DBOS workload in a fresh process and return its figures."""
    if workload in SKIPPED:
        raise Skipped(SKIPPED[workload])
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.dbos_peer", workload, store_url, str(n)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"DBOS {workload} failed (exit {proc.returncode}):\n{tail}")
    figures: Result = json.loads(lines[-1][len("RESULT ") :])
    return figures


# -- inside the child process ---------------------------------------------------------


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def _cpu_settle(max_seconds: float, window: float = 0.5, busy: float = 0.1) -> None:
    """Wait until this process uses < ``busy`` of a CPU over ``window`` seconds."""
    deadline = time.perf_counter() + max_seconds
    while time.perf_counter() < deadline:
        before = sum(os.times()[:2])
        time.sleep(window)
        if sum(os.times()[:2]) - before < busy * window:
            return


def _match_sqlite_durability() -> None:
    """Give DBOS's SQLite connections perdure's settings (WAL, synchronous=NORMAL: a commit
    survives a process kill; the last ones may be lost on power loss). DBOS's own default
    (rollback journal, synchronous=FULL) fsyncs several times per commit, which would
    compare a different durability level. PERDURE_BENCH_DBOS_SQLITE=default keeps it."""
    if os.environ.get("PERDURE_BENCH_DBOS_SQLITE") == "default":
        return
    import sqlalchemy as sa
    from sqlalchemy import event

    @event.listens_for(sa.engine.Engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            level = dbapi_conn.isolation_level
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.isolation_level = level


async def _all_parked(n: int, timeout: float) -> None:
    """Wait until n workflows wait in recv: DBOS registers each waiter in its system
    database's in-memory notifications map (an internal; CPU settling is the fallback)."""
    from dbos._dbos import _get_dbos_instance

    waiters = getattr(_get_dbos_instance()._sys_db, "notifications_map", None)
    if waiters is None or not hasattr(waiters, "snapshot"):
        _cpu_settle(timeout)
        return
    deadline = time.perf_counter() + timeout
    while len(waiters.snapshot()) < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


def child(workload: str, store_url: str, n: int) -> Result:
    from dbos import DBOS

    schema: str | None = None
    if store_url.startswith("sqlite"):
        path = Path(store_url.split("sqlite:///", 1)[-1])
        db_url = f"sqlite:///{path.with_name('dbos.sqlite')}"
        config: dict[str, Any] = {"name": "perdure-bench", "system_database_url": db_url}
        _match_sqlite_durability()
    else:
        schema = f"dbos_bench_{uuid.uuid4().hex[:8]}"
        db_url = store_url
        config = {
            "name": "perdure-bench",
            "system_database_url": db_url,
            "dbos_system_schema": schema,
        }
    config["log_level"] = "WARNING"
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config=config)  # type: ignore[arg-type]

    @DBOS.step()
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    @DBOS.workflow()
    def hello_cities() -> list[str]:
        return [say_hello(city) for city in CITIES]

    @DBOS.step()
    def double(x: int) -> int:
        return 2 * x

    @DBOS.workflow()
    def fan_out(n: int) -> int:
        queue = DBOS.retrieve_queue("fan_out")
        handles = [queue.enqueue(double, i) for i in range(n)]
        return sum(h.get_result() for h in handles)

    @DBOS.step()
    def inc(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def chain(k: int) -> int:
        value = 0
        for _ in range(k):
            value = inc(value)
        return value

    @DBOS.workflow()
    def one_step() -> int:
        return inc(1)

    @DBOS.workflow()
    async def wait_event() -> Any:
        return await DBOS.recv_async("go", timeout_seconds=24 * 3600)

    @DBOS.workflow()
    async def timer_at(fire_at: float) -> tuple[float, bool]:
        delay = fire_at - time.time()
        await DBOS.sleep_async(max(0.0, delay))
        # When the workflow resumes after its durable sleep: the analogue of perdure's
        # "episode that processed TimerFired" timestamp.
        return time.time() - fire_at, delay < 0

    DBOS.launch()
    DBOS.register_queue("fan_out", polling_interval_sec=0.05)
    try:
        if workload == "w1":
            t0 = time.perf_counter()
            handles = [DBOS.start_workflow(hello_cities) for _ in range(n)]
            for h in handles:
                assert h.get_result() == [f"Hello {c}!" for c in CITIES]
            elapsed = time.perf_counter() - t0
            return {"e2e orchestrations/s": n / elapsed, "e2e steps/s": 3 * n / elapsed}
        if workload == "w2":
            t0 = time.perf_counter()
            total = DBOS.start_workflow(fan_out, n).get_result()
            elapsed = time.perf_counter() - t0
            assert total == n * (n - 1), total
            return {"activities/s": n / elapsed, "seconds": elapsed}
        if workload == "w3":
            t0 = time.perf_counter()
            assert DBOS.start_workflow(chain, n).get_result() == n
            elapsed = time.perf_counter() - t0
            return {"seconds": elapsed, "steps/s": n / elapsed}
        if workload == "w4":
            time.sleep(0.2)
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                DBOS.start_workflow(one_step).get_result()
                samples.append((time.perf_counter() - t0) * 1000)
            return {"p50 ms": _pct(samples, 0.5), "p99 ms": _pct(samples, 0.99)}
        if workload == "w5":
            _cpu_settle(5)
            _, base = _rss_mb()

            async def w5() -> Result:
                t0 = time.perf_counter()
                handles = [await DBOS.start_workflow_async(wait_event) for _ in range(n)]
                started = time.perf_counter() - t0
                await _all_parked(n, 60 + n / 20)
                waiting = time.perf_counter() - t0
                peak, rss = _rss_mb()
                before = sum(os.times()[:2])
                await asyncio.sleep(2.0)
                cpu = (sum(os.times()[:2]) - before) / 2.0 * 100
                t1 = time.perf_counter()
                for i, h in enumerate(handles):
                    await DBOS.send_async(h.get_workflow_id(), i, "go")
                raised = time.perf_counter() - t1
                results = [await h.get_result() for h in handles]
                elapsed = time.perf_counter() - t1
                assert results[-1] == n - 1
                return {
                    "worker peak RSS MB": peak,
                    "worker RSS waiting MB": rss,
                    "worker idle RSS MB": base,
                    "KB per waiting instance": (rss - base) * 1024 / n,
                    "worker CPU % while waiting": cpu,
                    "start+wait seconds": waiting,
                    "starts/s": n / started,
                    "events/s": n / elapsed,
                    "raise seconds": raised,
                    "events seconds": elapsed,
                }

            return asyncio.run(w5())
        if workload == "w6":

            async def w6() -> Result:
                # Calibrate as perdure's W6 does: due instant = now + 1.5x the time n
                # starts-and-arms should take, + 2 s.
                k = min(100, n)
                t0 = time.perf_counter()
                soon = time.time()
                warm = [await DBOS.start_workflow_async(timer_at, soon) for _ in range(k)]
                for h in warm:
                    await h.get_result()
                margin = 2.0 + 1.5 * n * (time.perf_counter() - t0) / k
                fire_at = time.time() + margin
                handles = [await DBOS.start_workflow_async(timer_at, fire_at) for _ in range(n)]
                results = [await h.get_result() for h in handles]
                lateness = [late * 1000 for late, _ in results]
                return {
                    "p50 lateness ms": _pct(lateness, 0.5),
                    "p99 lateness ms": _pct(lateness, 0.99),
                    "max lateness ms": max(lateness),
                    "armed late": float(sum(1 for _, armed_late in results if armed_late)),
                    "margin seconds": margin,
                }

            return asyncio.run(w6())
        raise SystemExit(f"unknown workload {workload!r}")
    finally:
        DBOS.destroy()
        if schema is not None:
            import psycopg

            with psycopg.connect(store_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    workload, url, size = sys.argv[1:4]
    figures = child(workload, url, int(size))
    print("RESULT " + json.dumps(figures), flush=True)
