"""The app the chaos runner's worker processes run (``python -m benchmarks.chaos_app``).

Every activity execution appends its idempotency key to an fsynced, append-only log
(``CHAOS_LOG``), so the checker can count re-executions. Every orchestration's final
episode signals its own ``ledger`` entity: entity operations are applied exactly once,
so a ledger count above 1 means a completion was committed twice.

Configuration comes from the environment: ``CHAOS_STORE`` (store URL), ``CHAOS_HUB``,
``CHAOS_LOG``, ``CHAOS_LEASE`` (lease seconds).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import perdure
from perdure import EntityId

KINDS = ("chain", "fan", "parent", "timer", "event", "locked", "can", "chain")
FAN_OUT = 100
CHAIN = 10
CHILD_CHAIN = 3
CHILDREN = 3
GENERATIONS = 4
COUNTERS = 3  # shared lock-protected counters (entities)


def counter_id(n: int) -> EntityId:
    return EntityId("counter", f"c{n % COUNTERS}")


def ledger_id(instance_id: str) -> EntityId:
    return EntityId("ledger", instance_id)


def expected_output(kind: str, n: int) -> Any:
    """The output instance ``kind-n`` must finish with (None: depends on lock order)."""
    if kind == "chain":
        return n + CHAIN
    if kind == "fan":
        return sum(n + i + 1 for i in range(FAN_OUT))
    if kind == "parent":
        return sum(n + k + CHILD_CHAIN for k in range(CHILDREN))
    if kind == "timer":
        return n + 1
    if kind == "event":
        return n + 2 * n + 1
    if kind == "can":
        return n + GENERATIONS
    return None  # "locked": a distinct value per counter, checked as a set


def activities_of(kind: str) -> int:
    """Distinct activity executions (idempotency keys) one instance of ``kind`` needs."""
    return {
        "chain": CHAIN,
        "fan": FAN_OUT,
        "parent": CHILDREN * CHILD_CHAIN,
        "timer": 1,
        "event": 1,
        "locked": 1,
        "can": GENERATIONS,
    }[kind]


def _record(path: str, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())  # one write() per line: atomic with O_APPEND
        os.fsync(fd)
    finally:
        os.close(fd)


def build_app(store: str, hub: str, log: str, **options: Any) -> perdure.App:
    app = perdure.App(store=store, hub=hub, **options)

    def finish(context: Any, value: Any) -> Any:
        context.signal_entity(ledger_id(context.instance_id), "done", value)
        return value

    @app.activity
    def step(x: int) -> int:
        info = perdure.current_activity()
        assert info is not None
        time.sleep(0.005)
        _record(log, info.idempotency_key)
        return x + 1

    @app.entity
    def counter(ctx: perdure.EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        if ctx.operation_name == "get":
            ctx.set_result(value)
        elif ctx.operation_name == "set":
            ctx.set_state(ctx.get_input())

    @app.entity
    def ledger(ctx: perdure.EntityContext) -> None:
        state = ctx.get_state(lambda: {"count": 0, "outputs": []})
        if ctx.operation_name == "done":
            state["count"] += 1
            state["outputs"].append(ctx.get_input())
            ctx.set_state(state)

    @app.orchestrator
    def chain(context):  # type: ignore[no-untyped-def]
        value, length = context.get_input()
        for _ in range(length):
            value = yield context.call_activity("step", value)
        return finish(context, value)

    @app.orchestrator
    def fan(context):  # type: ignore[no-untyped-def]
        n = context.get_input()
        results = yield context.task_all(
            [context.call_activity("step", n + i) for i in range(FAN_OUT)]
        )
        return finish(context, sum(results))

    @app.orchestrator
    def parent(context):  # type: ignore[no-untyped-def]
        n = context.get_input()
        children = yield context.task_all(
            [context.call_sub_orchestrator("chain", [n + k, CHILD_CHAIN]) for k in range(CHILDREN)]
        )
        return finish(context, sum(children))

    @app.orchestrator
    def timer(context):  # type: ignore[no-untyped-def]
        n = context.get_input()
        yield context.create_timer(timedelta(seconds=1 + n % 3))
        return finish(context, (yield context.call_activity("step", n)))

    @app.orchestrator
    def event(context):  # type: ignore[no-untyped-def]
        first = yield context.wait_for_external_event("go")
        second = yield context.wait_for_external_event("more")
        return finish(context, (yield context.call_activity("step", first + second)))

    @app.orchestrator
    def locked(context):  # type: ignore[no-untyped-def]
        target = counter_id(context.get_input())
        with (yield context.lock([target])):
            current = yield context.call_entity(target, "get")
            updated = yield context.call_activity("step", current)
            yield context.call_entity(target, "set", updated)
        return finish(context, updated)

    @app.orchestrator
    def can(context):  # type: ignore[no-untyped-def]
        value, generation = context.get_input()
        value = yield context.call_activity("step", value)
        if generation + 1 < GENERATIONS:
            context.continue_as_new([value, generation + 1])
            return None
        return finish(context, value)

    return app


def start_input(kind: str, n: int) -> Any:
    if kind == "chain":
        return [n, CHAIN]
    if kind == "can":
        return [n, 0]
    return n


if __name__ == "__main__":
    build_app(
        os.environ["CHAOS_STORE"],
        os.environ["CHAOS_HUB"],
        os.environ["CHAOS_LOG"],
        lease_seconds=float(os.environ.get("CHAOS_LEASE", "5")),
        max_concurrent_activities=int(os.environ.get("CHAOS_CONCURRENCY", "16")),
    ).run()
