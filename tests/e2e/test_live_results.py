"""Activity results fed straight to live orchestrations (claims), end to end: the fast
path is taken, when another worker holds an instance the results still arrive, through
the inbox, exactly once, and a stream of claims does not hold up timers."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import perdure
from benchmarks.chaos_check import CheckResult, check_histories, drop_hub, read_tables
from benchmarks.workloads import _app as benchmark_app
from perdure import OrchestrationRuntimeStatus as S
from tests.contract.conftest import postgres_url


def make_app(url: str, hub: str | None = None) -> perdure.App:
    """The benchmark app (its ``chain`` of ``inc`` steps among others), plus an
    orchestration that takes events after its steps."""
    app = benchmark_app(url, hub)

    @app.orchestrator
    def chain_and_listen(context):
        """Steps while events arrive: each round may be fetched (an event waits) or
        claimed (only its own result does)."""
        value = 0
        for _ in range(context.get_input()):
            value = yield context.call_activity("inc", value)
        events = []
        for _ in range(5):
            events.append((yield context.wait_for_external_event("tick")))
        return [value, sorted(events)]

    return app


def _count_inbox_results(store: Any) -> dict[str, int]:
    """Wrap the store's result-carrying calls, counting results that took the inbox."""
    counts = {"inbox": 0}
    complete_and_fetch, complete_activities = store.complete_and_fetch, store.complete_activities

    def via_fetch(owner, results, *args):  # type: ignore[no-untyped-def]
        counts["inbox"] += len(results)
        return complete_and_fetch(owner, results, *args)

    def via_report(owner, results, *args):  # type: ignore[no-untyped-def]
        counts["inbox"] += len(results)
        return complete_activities(owner, results, *args)

    store.complete_and_fetch = via_fetch
    store.complete_activities = via_report
    return counts


def test_a_chain_feeds_its_results_to_the_live_runtime(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/chain.db")
    counts = _count_inbox_results(app.store)
    client = app.sync_client()
    with app.running():
        instance_id = client.start_new("chain", client_input=50)
        status = client.wait_for_completion(instance_id, timeout=60, poll_interval=0.05)
    assert status.output == 50
    history = [type(e).__name__ for e in app.store.get_history(instance_id)]
    assert history.count("TaskCompleted") == 50
    # Nearly every result skipped the inbox (one reported by the activity loop while the
    # orchestration loop was mid-round takes it, which is allowed, and rare).
    assert counts["inbox"] <= 5, counts
    app.close()


def test_on_sqlite_results_wait_for_the_busy_orchestration_loop_to_claim_them(
    tmp_path: Path,
) -> None:
    """Many orchestrations at once keep the orchestration loop busy. On SQLite the
    activity loop still leaves the results of live orchestrations to it (a commit of its
    own would only queue for the same write lock), so nearly none takes the inbox."""
    app = make_app(f"sqlite:///{tmp_path}/busy.db")
    counts = _count_inbox_results(app.store)
    client = app.sync_client()
    ids = [client.start_new("hello_cities") for _ in range(300)]
    with app.running():
        for instance_id in ids:
            status = client.wait_for_completion(instance_id, timeout=60, poll_interval=0.05)
            assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    results = sum(
        [type(e).__name__ for e in app.store.get_history(i)].count("TaskCompleted") for i in ids
    )
    assert results == 900
    # A task fetched by the activity loop the instant its commit lands can finish before
    # the runtime is back in the cache; its result then takes the inbox. Rare.
    assert counts["inbox"] <= 20, counts
    app.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_results_still_arrive_when_another_worker_holds_the_instance(
    tmp_path: Path, backend: str
) -> None:
    hub = "claims" + uuid.uuid4().hex[:12]
    url = f"sqlite:///{tmp_path}/two.db" if backend == "sqlite" else postgres_url()
    apps = [make_app(url, hub), make_app(url, hub)]
    client = apps[0].sync_client()
    n, steps = 8, 25
    ids = [client.start_new("chain_and_listen", client_input=steps) for _ in range(n)]
    stop = threading.Event()

    def raise_events() -> None:
        # Events for instances whose runtimes live in either worker: fetches by one
        # worker race the other worker's claims.
        sent = {i: 0 for i in ids}
        while not stop.is_set() and any(v < 5 for v in sent.values()):
            for instance_id in ids:
                if sent[instance_id] < 5:
                    client.raise_event(instance_id, "tick", sent[instance_id])
                    sent[instance_id] += 1
            time.sleep(0.002)

    try:
        with apps[0].running(), apps[1].running():
            sender = threading.Thread(target=raise_events)
            sender.start()
            try:
                statuses = [client.wait_for_completion(i, timeout=120, poll_interval=0.05)
                            for i in ids]
            finally:
                stop.set()
                sender.join()
        assert [s.runtime_status for s in statuses] == [S.Completed] * n
        assert [s.output for s in statuses] == [[steps, [0, 1, 2, 3, 4]]] * n
        result = CheckResult()
        check_histories(read_tables(url, hub), result)
        assert result.violations == [] and result.histories_checked == n
        for instance_id in ids:
            kinds = [type(e).__name__ for e in apps[0].store.get_history(instance_id)]
            assert kinds.count("TaskCompleted") == steps  # each result recorded exactly once
    finally:
        for app in apps:
            app.close()
        if backend == "postgres":
            drop_hub(url, hub)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_timer_falls_due_on_time_while_a_chain_streams_results(
    tmp_path: Path, backend: str
) -> None:
    """A stream of claimed results keeps the orchestration loop from ever sleeping; a
    timer of another instance must still be fetched when due, not when the stream ends."""
    hub = "timers" + uuid.uuid4().hex[:12]
    url = f"sqlite:///{tmp_path}/timer.db" if backend == "sqlite" else postgres_url()
    app = make_app(url, hub)

    @app.orchestrator
    def nap(context):
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=0.3))
        return "woke"

    client = app.sync_client()
    try:
        with app.running():
            chain = client.start_new("chain", client_input=3000)
            while client.get_status(chain).runtime_status is not S.Running:
                time.sleep(0.005)
            napper = client.start_new("nap")
            woke = client.wait_for_completion(napper, timeout=60, poll_interval=0.01)
            chain_then = client.get_status(chain)
            done = client.wait_for_completion(chain, timeout=120, poll_interval=0.05)
        assert (woke.output, done.output) == ("woke", 3000)
        assert chain_then.runtime_status is S.Running, "the timer waited for the chain to end"
    finally:
        app.close()
        if backend == "postgres":
            drop_hub(url, hub)
