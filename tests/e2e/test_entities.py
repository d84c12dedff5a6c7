"""Durable entities and critical sections, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import perdure
from perdure import EntityId
from perdure import OrchestrationRuntimeStatus as S
from perdure.testing import DurableTestEnvironment

ROOT = Path(__file__).resolve().parents[2]


def make_app() -> perdure.App:
    app = perdure.App()

    @app.entity
    def counter(ctx: perdure.EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        op = ctx.operation_name
        if op == "add":
            ctx.set_state(value + ctx.get_input())
        elif op == "get":
            ctx.set_result(value)
        elif op == "add_then_fail":
            ctx.set_state(value + 1000)
            raise ValueError("rejected")
        elif op == "whoami":
            ctx.set_result([ctx.entity_name, ctx.entity_key, ctx.is_newly_constructed])
        elif op == "reset":
            ctx.destruct_on_exit()

    @app.orchestrator
    def use_counter(context):
        c = EntityId("Counter", context.get_input())
        yield context.call_entity(c, "add", 5)
        context.signal_entity(c, "add", 1)
        value = yield context.call_entity(c, "get")
        try:
            yield context.call_entity(c, "add_then_fail")
        except perdure.TaskFailedError as error:
            failure = error.error_type
        after = yield context.call_entity(c, "get")
        return [value, failure, after]

    @app.orchestrator
    def transfer(context):
        a, b = EntityId("counter", "a"), EntityId("counter", "b")
        amount = context.get_input()
        with (yield context.lock([b, a])) as section:
            assert section.targets == ["@counter@a", "@counter@b"]
            yield context.call_entity(a, "add", -amount)
            yield context.call_entity(b, "add", amount)
        return "ok"

    @app.orchestrator
    def holds_lock_and_fails(context):
        yield context.lock([EntityId("counter", "a")])
        raise RuntimeError("crashed inside the critical section")

    @app.orchestrator
    def breaks_rules(context):
        a = EntityId("counter", "a")
        with (yield context.lock([a])):
            try:
                yield context.call_entity(EntityId("counter", "other"), "get")
            except perdure.ValidationError as error:
                return str(error)
        return "no error"

    return app


@pytest.fixture
def env():
    with DurableTestEnvironment(make_app()) as env:
        yield env


def test_entity_operations_run_in_order_and_failures_roll_back(env) -> None:
    status = env.wait_for_completion(env.client.start_new("use_counter", client_input="k"))
    assert status.output == [6, "ValueError", 6]
    assert env.client.read_entity_state(EntityId("counter", "k")).entity_state == 6


def test_client_signals_read_list_and_clean(env) -> None:
    counter = EntityId("counter", "c1")
    assert env.client.read_entity_state(counter).entity_exists is False
    for n in range(10):
        env.client.signal_entity(counter, "add", n)
    env.run_until_idle()
    assert env.client.read_entity_state(counter).entity_state == 45
    page, token = env.client.list_entities("counter")
    assert [(e.entity_id, e.state) for e in page] == [(counter, 45)] and token is None
    assert env.client.get_status_all() == []  # entities are not orchestration instances
    env.client.signal_entity(counter, "reset")
    env.run_until_idle()
    assert env.client.read_entity_state(counter).entity_exists is False
    assert env.client.clean_entity_storage().empty_entities_removed == 1
    assert env.client.list_entities()[0] == []


def test_entity_context_names() -> None:
    app = make_app()

    @app.orchestrator
    def who(context):
        return (yield context.call_entity(EntityId("Counter", "Key-1"), "whoami"))

    with DurableTestEnvironment(app) as env2:
        assert env2.wait_for_completion(env2.client.start_new("who")).output == [
            "counter",
            "Key-1",
            True,
        ]


def test_critical_sections_take_locks_in_global_order(env) -> None:
    env.client.signal_entity(EntityId("counter", "a"), "add", 100)
    ids = [env.client.start_new("transfer", client_input=i) for i in range(1, 11)]
    for instance_id in ids:
        assert env.wait_for_completion(instance_id).output == "ok"
    assert env.client.read_entity_state(EntityId("counter", "a")).entity_state == 100 - 55
    assert env.client.read_entity_state(EntityId("counter", "b")).entity_state == 55


def test_a_failed_orchestration_releases_its_locks(env) -> None:
    failed = env.wait_for_completion(env.client.start_new("holds_lock_and_fails"))
    assert failed.runtime_status is S.Failed
    done = env.wait_for_completion(env.client.start_new("transfer", client_input=1))
    assert done.output == "ok"


def test_locking_rules_are_enforced(env) -> None:
    status = env.wait_for_completion(env.client.start_new("breaks_rules"))
    assert "only locked entities may be called" in status.output


def test_lock_survives_a_killed_worker_and_the_count_is_exact(tmp_path: Path) -> None:
    db = tmp_path / "entities.db"
    env = {**os.environ, "ENTITY_STORE": f"sqlite:///{db}"}
    client = perdure.App(store=f"sqlite:///{db}").sync_client()

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.entity_app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = worker()
    ids = [client.start_new("increment") for _ in range(20)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = sum(
            1 for s in client.get_status_by(runtime_status=[S.Completed]) if s.name == "increment"
        )
        if done >= 5:
            break
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = worker()
    try:
        outputs = [
            client.wait_for_completion(i, timeout=90, poll_interval=0.05).output for i in ids
        ]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert sorted(outputs) == list(range(1, 21))  # every increment saw a distinct value
    state = client.read_entity_state(EntityId("counter", "shared"))
    assert state.entity_state == 20


def test_signalling_an_unregistered_entity_is_refused(env) -> None:
    with pytest.raises(perdure.ValidationError, match="not registered"):
        env.client.signal_entity(EntityId("no_such_entity", "k"), "add", 1)
    assert env.client.list_entities()[0] == []


def test_a_stream_of_client_signals_is_taken_in_batches(tmp_path: Path) -> None:
    """Signals sent in a tight loop reach the entity in few rounds, and never make the
    activity loop look for tasks (client messages are orchestration work only)."""
    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/stream.db"
    entity = EntityId("counter", "stream")
    client = app.sync_client()
    store = app.store
    calls = {"orchestrations": 0, "activities": 0}
    fetch_orchestrations = store.fetch_orchestration_work
    fetch_activities = store.fetch_activity_work

    def counting_orchestrations(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["orchestrations"] += 1
        return fetch_orchestrations(*args, **kwargs)

    def counting_activities(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["activities"] += 1
        return fetch_activities(*args, **kwargs)

    store.fetch_orchestration_work = counting_orchestrations  # type: ignore[method-assign]
    store.fetch_activity_work = counting_activities  # type: ignore[method-assign]
    n = 400
    with app.running():
        time.sleep(0.1)
        before = dict(calls)
        for _ in range(n):
            client.signal_entity(entity, "add", 1)
        deadline = time.monotonic() + 30
        while client.read_entity_state(entity).entity_state != n:
            assert time.monotonic() < deadline, "the counter never reached n"
            time.sleep(0.01)
    rounds = calls["orchestrations"] - before["orchestrations"]
    assert rounds <= n // 8, f"{rounds} rounds for {n} signals"
    assert calls["activities"] - before["activities"] <= 10


def test_a_burst_of_signals_does_not_hold_up_an_orchestration_behind_it() -> None:
    """An entity signalled more times than one episode takes applies them over several,
    each exactly once and in order; an orchestration started after the burst runs
    between those episodes instead of after all of them."""
    app = perdure.App(max_messages_per_episode=10)
    log: list[object] = []

    @app.entity
    def tally(ctx: perdure.EntityContext) -> None:
        ctx.set_state([*ctx.get_state(list), ctx.get_input()])
        log.append(ctx.get_input())

    @app.orchestrator
    def burst(context):
        for n in range(95):
            context.signal_entity(EntityId("tally", "t"), "add", n)
        return None
        yield

    @app.orchestrator
    def probe(context):
        # Logged from the orchestrator, which runs on the round's own thread: where
        # it lands among the entity's operations says which round ran it.
        if not context.is_replaying:
            log.append("probe")
        return (yield context.call_activity("mark"))

    @app.activity
    def mark(_: None) -> str:
        return "done"

    with DurableTestEnvironment(app) as env:
        env.client.start_new("burst", "b")
        while env.client.get_status("b").runtime_status is not S.Completed:
            env.worker.orchestrations.tick(fetch=True)  # commits the 95 signals
        assert log == []
        env.client.start_new("probe", "p")
        env.run_until_idle()
        assert env.client.get_status("p").output == "done"
        state = env.client.read_entity_state(EntityId("tally", "t")).entity_state
    assert state == list(range(95))
    assert [x for x in log if x != "probe"] == list(range(95))
    assert log.count("probe") == 1
    assert log.index("probe") <= 20, log


@pytest.mark.parametrize("bad", [0, -5, 2.5, "10", True])
def test_a_per_episode_message_limit_that_is_not_a_count_is_refused(bad: object) -> None:
    app = perdure.App(max_messages_per_episode=bad)
    with pytest.raises(perdure.ValidationError, match="max_messages_per_episode"):
        app.worker()
