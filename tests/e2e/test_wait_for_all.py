"""``wait_for_all``: statuses of many instances in the order asked, in a few reads, woken
by this process's commits and polling for other processes' workers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks.workloads import _app as benchmark_app
from perdure import OrchestrationRuntimeStatus as S
from perdure.errors import InstanceNotFoundError, ValidationError

CITIES = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def _count_reads(store: Any) -> dict[str, int]:
    counts = {"many": 0, "one": 0}
    get_instances, get_instance = store.get_instances, store.get_instance

    def many(ids: Any, *args: Any) -> Any:
        counts["many"] += 1
        return get_instances(ids, *args)

    def one(instance_id: str) -> Any:
        counts["one"] += 1
        return get_instance(instance_id)

    store.get_instances, store.get_instance = many, one
    return counts


def test_statuses_come_in_the_order_asked_from_a_few_reads(tmp_path: Path) -> None:
    app = benchmark_app(f"sqlite:///{tmp_path}/w.db")
    client = app.sync_client()
    ids = [client.start_new("hello_cities") for _ in range(200)]
    counts = _count_reads(app.store)
    asked = [*reversed(ids), ids[0]]  # any order, a duplicate too
    with app.running():
        statuses = client.wait_for_all(asked, timeout=60, poll_interval=0.05)
    assert [s.instance_id for s in statuses] == asked
    assert all(s.runtime_status is S.Completed and s.output == CITIES for s in statuses)
    assert counts["one"] == 0
    # Each read follows a commit that finished some of them (or a poll): far fewer
    # than one per instance.
    assert 1 <= counts["many"] <= 60, counts
    app.close()


def test_instances_this_process_finishes_are_read_once_all_are(tmp_path: Path) -> None:
    app = benchmark_app(f"sqlite:///{tmp_path}/once.db")
    app.worker_options["orchestration_batch_size"] = 10  # many commits, each finishing a few
    client = app.sync_client()
    ids = [client.start_new("hello_cities") for _ in range(200)]
    counts = _count_reads(app.store)
    with app.running():
        statuses = client.wait_for_all(ids, timeout=60, poll_interval=60)
    assert [s.output for s in statuses] == [CITIES] * 200
    # The first look, the polls backing off from 10 ms (a few in a run this short) and
    # one read once all are reported finished, not one per commit (dozens here).
    assert 2 <= counts["many"] <= 12, counts
    app.close()


def test_failed_and_terminated_instances_count_as_finished(tmp_path: Path) -> None:
    app = benchmark_app(f"sqlite:///{tmp_path}/f.db")

    @app.orchestrator
    def boom(context):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")
        yield

    client = app.sync_client()
    failing = client.start_new("boom")
    waiting = client.start_new("wait_event")
    with app.running():
        client.terminate(waiting, "enough")
        statuses = client.wait_for_all([failing, waiting], timeout=30, poll_interval=0.05)
    assert [s.runtime_status for s in statuses] == [S.Failed, S.Terminated]
    app.close()


def test_another_process_s_worker_is_seen_by_the_poll(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/two.db"
    hub = "wa" + uuid.uuid4().hex[:12]
    waiter_app, worker_app = benchmark_app(url, hub), benchmark_app(url, hub)
    client = waiter_app.sync_client()  # its store sees no commit of the worker's
    ids = [client.start_new("hello_cities") for _ in range(20)]
    with worker_app.running():
        statuses = client.wait_for_all(ids, timeout=60, poll_interval=0.05)
    assert [s.output for s in statuses] == [CITIES] * 20
    waiter_app.close()
    worker_app.close()


def test_bad_input_is_refused_before_any_wait(tmp_path: Path) -> None:
    app = benchmark_app(f"sqlite:///{tmp_path}/b.db")
    client = app.sync_client()
    known = client.start_new("hello_cities")
    with pytest.raises(InstanceNotFoundError, match="nope"):
        client.wait_for_all([known, "nope"], timeout=5)
    with pytest.raises(ValidationError):
        client.wait_for_all([known, ""], timeout=5)
    assert client.wait_for_all([], timeout=1) == []
    with pytest.raises(TimeoutError, match="1 of 1 instances are unfinished"):
        client.wait_for_all([known], timeout=0.2)  # no worker runs
    app.close()


def test_the_async_client_waits_too(tmp_path: Path) -> None:
    app = benchmark_app(f"sqlite:///{tmp_path}/a.db")
    client = app.client()

    async def main() -> list[Any]:
        ids = [await client.start_new("hello_cities") for _ in range(5)]
        return await client.wait_for_all(ids, timeout=30, poll_interval=0.05)

    with app.running():
        statuses = asyncio.run(main())
    assert [s.output for s in statuses] == [CITIES] * 5
    app.close()
