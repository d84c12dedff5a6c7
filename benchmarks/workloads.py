"""The benchmark workloads, each a function of a store URL returning named figures."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import perdure
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import InstanceQuery

Result = dict[str, float]
CITIES = ("Tokyo", "Seattle", "London")


def _app(store_url: str, hub: str | None = None) -> perdure.App:
    app = perdure.App(store=store_url, hub=hub or f"bench{uuid.uuid4().hex[:8]}")

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

    @app.orchestrator
    def wait_event(context):
        return (yield context.wait_for_external_event("go"))

    @app.orchestrator
    def timer_at(context):
        yield context.create_timer(datetime.fromisoformat(context.get_input()))
        return None

    @app.orchestrator
    def signal_burst(context):
        key, n = context.get_input()
        target = perdure.EntityId("counter", key)
        for _ in range(n):
            context.signal_entity(target, "add", 1)
        return n
        yield  # a generator function that only signals

    @app.entity
    def counter(ctx: perdure.EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        if ctx.operation_name == "add":
            ctx.set_state(value + ctx.get_input())
        elif ctx.operation_name == "get":
            ctx.set_result(value)

    return app


def w1_hello_cities(store_url: str, n: int = 500) -> Result:
    """n orchestrations started at once, each 3 sequential activities."""
    app = _app(store_url)
    client = app.sync_client()
    t_start = time.perf_counter()
    ids = [client.start_new("hello_cities") for _ in range(n)]
    starting = time.perf_counter() - t_start
    with app.running():
        t0 = time.perf_counter()
        statuses = client.wait_for_all(ids, timeout=600, poll_interval=0.05)
        elapsed = time.perf_counter() - t0
    for status in statuses:
        assert status.output == [f"Hello {c}!" for c in CITIES], status.output
    app.close()
    # "e2e" includes the n start_new calls (made before the worker runs); DBOS's W1 has
    # only e2e figures, its starts being part of its run, so ratios use those.
    e2e = starting + elapsed
    return {
        "orchestrations/s": n / elapsed,
        "steps/s": 3 * n / elapsed,
        "run seconds": elapsed,
        "start seconds": starting,
        "e2e orchestrations/s": n / e2e,
        "e2e steps/s": 3 * n / e2e,
    }


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


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _peak_rss_mb(pid: int) -> tuple[float, float]:
    """(peak RSS, current RSS) of a process in MB: /proc's VmHWM/VmRSS, else psutil."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        import psutil  # type: ignore[import-untyped]

        rss = psutil.Process(pid).memory_info().rss / 2**20
        return rss, rss


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def _settled_rss_mb(pid: int, timeout: float = 10.0) -> float:
    """A freshly started process's RSS once it stops growing (imports done, worker up)."""
    deadline = time.perf_counter() + timeout
    last = -1.0
    while time.perf_counter() < deadline:
        time.sleep(0.25)
        _, rss = _peak_rss_mb(pid)
        if rss > 20 and abs(rss - last) < 0.05:
            break
        last = rss
    return last


def _wait_counts(
    app: perdure.App,
    done: Callable[[dict[str, int]], bool],
    timeout: float,
    interval: float = 0.02,
) -> dict[str, int]:
    deadline = time.perf_counter() + timeout
    while True:
        counts = {s.value: c for s, c in app.store.count_by_status().items()}
        if done(counts):
            return counts
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting; instance counts {counts}")
        time.sleep(interval)


def _wait_none_in(
    app: perdure.App, statuses: tuple[str, ...], timeout: float, interval: float = 0.02
) -> dict[str, int]:
    """Wait until no instance is in any of ``statuses``, then count them all once.

    Each poll asks the status index for one instance per status and stops at the first
    it finds, where counting by status reads every row (a sequential scan on PostgreSQL:
    7-20 ms at 80,000 instances, taken from the worker being measured)."""
    queries = [
        InstanceQuery(statuses=frozenset({Status(s)}), page_size=1) for s in statuses
    ]
    deadline = time.perf_counter() + timeout
    while any(app.store.query_instances(q)[0] for q in queries):
        if time.perf_counter() > deadline:
            counts = {s.value: c for s, c in app.store.count_by_status().items()}
            raise TimeoutError(f"gave up waiting; instance counts {counts}")
        time.sleep(interval)
    return {s.value: c for s, c in app.store.count_by_status().items()}


def w5_idle(store_url: str, n: int = 10_000) -> Result:
    """n orchestrations waiting on an external event, the worker in its own process.

    Figures: the worker's peak RSS once all n wait (VmHWM, so it covers their first
    episodes too), then the time from the first raise_event to the last completion."""
    hub = f"bench{uuid.uuid4().hex[:8]}"
    app = _app(store_url, hub)
    client = app.sync_client()
    root = Path(__file__).resolve().parents[1]
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.worker", store_url, hub],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        base = _settled_rss_mb(worker.pid)
        t0 = time.perf_counter()
        ids = [client.start_new("wait_event", f"w5-{i}") for i in range(n)]
        started = time.perf_counter() - t0
        _wait_counts(app, lambda c: c.get("Running", 0) >= n, timeout=60 + n / 20)
        waiting = time.perf_counter() - t0
        time.sleep(0.5)
        peak, rss = _peak_rss_mb(worker.pid)
        before = _cpu_seconds(worker.pid)
        time.sleep(2.0)
        cpu = (_cpu_seconds(worker.pid) - before) / 2.0 * 100
        t1 = time.perf_counter()
        for i, instance_id in enumerate(ids):
            client.raise_event(instance_id, "go", i)
        raised = time.perf_counter() - t1
        counts = _wait_none_in(app, ("Pending", "Running"), timeout=60 + n / 20)
        elapsed = time.perf_counter() - t1
        assert counts.get("Completed", 0) == n, counts
        listing = _listing_ms(app, n)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert client.get_status(ids[-1]).output == n - 1
    app.close()
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
        **listing,
    }


def _listing_ms(app: perdure.App, n: int, reps: int = 20) -> Result:
    """Listing pages of 100 among the n finished instances (ms, median of ``reps``): of a
    status none has (what a poll for unfinished instances asks), the first page of
    Completed, and a deep one (page 50, or the last there is)."""

    def median_ms(query: InstanceQuery) -> float:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            app.store.query_instances(query)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    done = frozenset({Status.Completed})
    deep = InstanceQuery(statuses=done)
    for _ in range(min(49, (n - 1) // 100)):
        _, deep.continuation_token = app.store.query_instances(deep)
    return {
        "list Running page ms": median_ms(InstanceQuery(statuses=frozenset({Status.Running}))),
        "list Completed page 1 ms": median_ms(InstanceQuery(statuses=done)),
        "list Completed deep page ms": median_ms(deep),
    }


def w6_timers(store_url: str, n: int = 10_000) -> Result:
    """n orchestrations, each with one timer, all due at the same instant.

    Lateness of a timer = the timestamp of the episode that processed its TimerFired
    (the OrchestratorStarted before it in the history) minus fire_at. The due instant is
    set far enough ahead for every instance to arm its timer first; "armed late" counts
    any that did not (their lateness is then partly start-up time)."""
    app = _app(store_url)
    client = app.sync_client()
    with app.running():
        # Calibrate: how fast do instances get started and armed here? Due instant = now
        # + 1.5x the time n of them should take, + 2 s.
        k = min(100, n)
        t0 = time.perf_counter()
        soon = datetime.now(UTC).isoformat()
        for _ in range(k):
            client.start_new("timer_at", client_input=soon)
        _wait_counts(app, lambda c: c.get("Completed", 0) >= k, timeout=120)
        margin = 2.0 + 1.5 * n * (time.perf_counter() - t0) / k
        fire_at = datetime.now(UTC) + timedelta(seconds=margin)
        ids = [client.start_new("timer_at", client_input=fire_at.isoformat()) for _ in range(n)]
        # Lateness comes from the histories, not from this wait: poll seldom, so that
        # counting n instances does not compete with the worker it measures.
        counts = _wait_none_in(
            app, ("Pending", "Running"), timeout=margin + 60 + n / 20, interval=0.25
        )
        assert counts.get("Completed", 0) == n + k, counts
    lateness: list[float] = []
    armed_late = 0
    for instance_id in ids:
        history = app.store.get_history(instance_id)
        started_at: datetime | None = None
        for event in history:
            kind = type(event).__name__
            if kind == "OrchestratorStarted":
                started_at = event.timestamp
            elif kind == "TimerCreated" and started_at is not None and started_at > fire_at:
                armed_late += 1
            elif kind == "TimerFired":
                assert started_at is not None
                lateness.append((started_at - fire_at).total_seconds() * 1000)
    app.close()
    assert len(lateness) == n, len(lateness)
    return {
        "p50 lateness ms": _pct(lateness, 0.5),
        "p99 lateness ms": _pct(lateness, 0.99),
        "max lateness ms": max(lateness),
        "armed late": float(armed_late),
        "margin seconds": margin,
    }


def _counter_reaches(
    client: perdure.SyncClient, entity: perdure.EntityId, n: int, deadline: float
) -> None:
    while True:
        state = client.read_entity_state(entity)
        if state.entity_exists and state.entity_state == n:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{entity} at {state.entity_state} of {n}")
        time.sleep(0.002)


def w7_entities(store_url: str, n: int = 10_000, senders: int = 16) -> Result:
    """n one-way signals ("add", 1) to one counter entity, twice: from one client in a
    loop, then from ``senders`` client threads at once (as many HTTP requests or
    asyncio tasks would send them); ops/s from the first signal until the entity's
    committed state reads n. Each signal returns only once it is durable."""
    out: Result = {}
    entity = perdure.EntityId("counter", "bench")
    for label, threads in (("1 sender", 1), (f"{senders} senders", senders)):
        app = _app(store_url)
        client = app.sync_client()
        shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
        errors: list[BaseException] = []

        def send(
            k: int, client: perdure.SyncClient = client, errors: list[BaseException] = errors
        ) -> None:
            try:
                for _ in range(k):
                    client.signal_entity(entity, "add", 1)
            except BaseException as exc:  # reported below, not lost in a thread
                errors.append(exc)

        with app.running():
            t0 = time.perf_counter()
            pool = [threading.Thread(target=send, args=(k,)) for k in shares]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            if errors:
                raise errors[0]
            sent = time.perf_counter() - t0
            _counter_reaches(client, entity, n, t0 + 60 + n / 20)
            elapsed = time.perf_counter() - t0
        app.close()
        out[f"ops/s, {label}"] = n / elapsed
        out[f"signal seconds, {label}"] = sent
    return out


def w8_entity_burst(store_url: str, n: int = 50_000) -> Result:
    """One orchestration signals one counter entity n times in one episode; then the
    entity applies them. Twice: alone (``drain``: that episode's commit → the entity's
    committed state reads n), then with one-activity orchestrations started one after
    another while the entity works through the burst (``wait behind burst``: start →
    result of each, until the state reads n), which a burst must not hold up."""
    app = _app(store_url)
    client = app.sync_client()
    out: Result = {}
    with app.running():
        client.wait_for_completion(client.start_new("one_step"), timeout=60)  # warm
        for phase, probing in (("alone", False), ("probed", True)):
            entity = perdure.EntityId("counter", phase)
            burst = client.start_new("signal_burst", client_input=[phase, n])
            client.wait_for_completion(burst, timeout=60 + n / 100)
            t0 = time.perf_counter()
            deadline = t0 + 60 + n / 200
            if not probing:
                _counter_reaches(client, entity, n, deadline)
                drained = time.perf_counter() - t0
                out["drain seconds"] = drained
                out["signals/s"] = n / drained
                continue
            waits: list[float] = []
            while True:
                s0 = time.perf_counter()
                client.wait_for_completion(client.start_new("one_step"), timeout=60)
                waits.append((time.perf_counter() - s0) * 1000)
                state = client.read_entity_state(entity)
                if state.entity_exists and state.entity_state == n:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{entity} at {state.entity_state} of {n}")
            out["wait behind burst p50 ms"] = statistics.median(waits)
            out["wait behind burst max ms"] = max(waits)
            out["orchestrations run beside burst"] = len(waits)
    app.close()
    return out


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
