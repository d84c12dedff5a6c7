"""The benchmark workloads, each a function of a store URL returning named figures."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import perdure

Result = dict[str, float]
CITIES = ("Tokyo", "Seattle", "London")


def _app(store_url: str) -> perdure.App:
    app = perdure.App(store=store_url, hub=f"bench{uuid.uuid4().hex[:8]}")

    @app.orchestrator
    def hello_cities(context):
        out = []
        for city in CITIES:
            out.append((yield context.call_activity("say_hello", city)))
        return out

    @app.activity
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    @app.orchestrator
    def fan_out(context):
        n = context.get_input()
        results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
        return sum(results)

    @app.activity
    def double(x: int) -> int:
        return 2 * x

    @app.orchestrator
    def chain(context):
        value = 0
        for _ in range(context.get_input()):
            value = yield context.call_activity("inc", value)
        return value

    @app.activity
    def inc(x: int) -> int:
        return x + 1

    @app.orchestrator
    def one_step(context):
        return (yield context.call_activity("inc", 1))

    return app


def w1_hello_cities(store_url: str, n: int = 500) -> Result:
    """n orchestrations started at once, each 3 sequential activities."""
    app = _app(store_url)
    client = app.sync_client()
    ids = [client.start_new("hello_cities") for _ in range(n)]
    with app.running():
        t0 = time.perf_counter()
        for i in ids:
            status = client.wait_for_completion(i, timeout=600, poll_interval=0.05)
            assert status.output == [f"Hello {c}!" for c in CITIES], status.output
        elapsed = time.perf_counter() - t0
    app.close()
    return {"orchestrations/s": n / elapsed, "steps/s": 3 * n / elapsed, "seconds": elapsed}


def w2_fan_out(store_url: str, n: int = 1000) -> Result:
    """One orchestration fanning out to n parallel activities and summing them."""
    app = _app(store_url)
    client = app.sync_client()
    with app.running():
        t0 = time.perf_counter()
        instance_id = client.start_new("fan_out", client_input=n)
        status = client.wait_for_completion(instance_id, timeout=600, poll_interval=0.05)
        elapsed = time.perf_counter() - t0
    assert status.output == n * (n - 1), status.output
    app.close()
    return {"activities/s": n / elapsed, "seconds": elapsed}


def w3_chain(store_url: str, k: int) -> Result:
    """One orchestration with k sequential activities."""
    app = _app(store_url)
    client = app.sync_client()
    with app.running():
        t0 = time.perf_counter()
        instance_id = client.start_new("chain", client_input=k)
        status = client.wait_for_completion(instance_id, timeout=1200, poll_interval=0.05)
        elapsed = time.perf_counter() - t0
    assert status.output == k
    app.close()
    return {"seconds": elapsed, "steps/s": k / elapsed}


def w4_latency(store_url: str, n: int = 200) -> Result:
    """A one-activity orchestration started on an idle worker, n times in a row."""
    app = _app(store_url)
    client = app.sync_client()
    samples = []
    with app.running():
        time.sleep(0.2)
        for _ in range(n):
            t0 = time.perf_counter()
            instance_id = client.start_new("one_step")
            client.wait_for_completion(instance_id, timeout=60, poll_interval=0.05)
            samples.append((time.perf_counter() - t0) * 1000)
    app.close()
    samples.sort()
    return {
        "p50 ms": statistics.median(samples),
        "p99 ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


def raw_write_limit(store_url: str, steps: int = 3000, batch: int = 100) -> Result:
    """The minimum durable writes per step, no engine: append the step's history rows
    (scheduled + completed) and update the instance row, group-committed ``batch`` at a time."""
    if not store_url.startswith("sqlite"):
        return _raw_postgres(store_url, steps, batch)
    import sqlite3

    path = store_url.split("sqlite:///", 1)[-1]
    conn = sqlite3.connect(path + ".raw", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS i (id TEXT PRIMARY KEY, n INTEGER, status TEXT)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS h (id TEXT, seq INTEGER, kind TEXT, data TEXT,"
        " PRIMARY KEY (id, seq)) WITHOUT ROWID"
    )
    ids = [uuid.uuid4().hex for _ in range(batch)]
    conn.executemany("INSERT INTO i VALUES (?, 0, 'Running')", [(i,) for i in ids])
    t0 = time.perf_counter()
    for round_ in range(steps // batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO h VALUES (?,?,?,?)",
            [
                (i, 2 * round_ + k, kind, '{"result":"Hello Tokyo!"}')
                for i in ids
                for k, kind in ((0, "TaskScheduled"), (1, "TaskCompleted"))
            ],
        )
        conn.executemany("UPDATE i SET n=n+1 WHERE id=?", [(i,) for i in ids])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return {"steps/s": (steps // batch) * batch / elapsed}


def _raw_postgres(url: str, steps: int, batch: int) -> Result:
    import psycopg

    table = f"raw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table}_i (id TEXT PRIMARY KEY, n INTEGER, status TEXT)")
        conn.execute(
            f"CREATE TABLE {table}_h"
            " (id TEXT, seq INTEGER, kind TEXT, data TEXT, PRIMARY KEY (id, seq))"
        )
        ids = [uuid.uuid4().hex for _ in range(batch)]
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table}_i VALUES (%s, 0, 'Running')", [(i,) for i in ids])
        t0 = time.perf_counter()
        for round_ in range(steps // batch):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table}_h VALUES (%s,%s,%s,%s)",
                    [
                        (i, 2 * round_ + k, kind, '{"result":"Hello Tokyo!"}')
                        for i in ids
                        for k, kind in ((0, "TaskScheduled"), (1, "TaskCompleted"))
                    ],
                )
                cur.executemany(f"UPDATE {table}_i SET n=n+1 WHERE id=%s", [(i,) for i in ids])
        elapsed = time.perf_counter() - t0
        conn.execute(f"DROP TABLE {table}_i, {table}_h")
    return {"steps/s": (steps // batch) * batch / elapsed}


def fresh_sqlite_url() -> tuple[str, Callable[[], None]]:
    tmp = tempfile.mkdtemp(prefix="perdure-bench-")

    def cleanup() -> None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    return f"sqlite:///{Path(tmp) / 'bench.db'}", cleanup
