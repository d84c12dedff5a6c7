"""The engine end to end: App + worker + client on a real SQLite store."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import perdure
from perdure import OrchestrationRuntimeStatus as S
from perdure.testing import DurableTestEnvironment


@dataclass
class Order:
    id: str
    placed_at: datetime
    lines: list[int]


def make_app() -> perdure.App:
    app = perdure.App()
    calls: dict[str, int] = {}
    app.calls = calls  # type: ignore[attr-defined]

    def count(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    @app.orchestrator
    def hello_cities(context):
        outputs = []
        for city in ("Tokyo", "Seattle", "London"):
            outputs.append((yield context.call_activity("say_hello", city)))
        return outputs

    @app.activity
    def say_hello(city: str) -> str:
        count("say_hello")
        return f"Hello {city}!"

    @app.orchestrator
    def fan_out(context):
        n = context.get_input()
        results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
        return sum(results)

    @app.activity
    def double(x: int) -> int:
        count("double")
        return 2 * x

    @app.activity
    async def async_double(x: int) -> int:
        return 2 * x

    @app.orchestrator
    def uses_async(context):
        return (yield context.call_activity("async_double", 21))

    @app.activity
    def boom(message: str) -> None:
        count("boom")
        raise ValueError(message)

    @app.orchestrator
    def catches(context):
        try:
            yield context.call_activity("boom", "bad city")
        except perdure.TaskFailedError as error:
            return {
                "type": error.error_type,
                "message": error.error_message,
                "has_traceback": "Traceback" in error.stack_trace,
            }
        return "not reached"

    @app.orchestrator
    def fails(context):
        yield context.call_activity("say_hello", "A")
        yield context.call_activity("boom", "unhandled")
        return "not reached"

    flaky_left = {"n": 0}
    app.flaky_left = flaky_left  # type: ignore[attr-defined]

    @app.activity
    def flaky(x: int) -> int:
        count("flaky")
        if flaky_left["n"] > 0:
            flaky_left["n"] -= 1
            raise RuntimeError("transient")
        return x

    @app.orchestrator
    def retrying(context):
        opts = perdure.RetryOptions(
            first_retry_interval_in_milliseconds=1000,
            max_number_of_attempts=4,
            backoff_coefficient=2.0,
        )
        return (yield context.call_activity_with_retry("flaky", opts, 7))

    @app.orchestrator
    def parent(context):
        a = yield context.call_sub_orchestrator("hello_cities")
        b = yield context.call_sub_orchestrator("fan_out", 10, instance_id="child-fixed")
        return [a, b]

    @app.orchestrator
    def payloads(context):
        order = context.get_input()
        echoed = yield context.call_activity("echo", order)
        return {"same_type": isinstance(echoed, Order), "order": echoed}

    @app.activity
    def echo(value):
        return value

    @app.orchestrator
    def waits(context):
        first = yield context.wait_for_external_event("go")
        second = yield context.wait_for_external_event("go")
        return [first, second]

    @app.orchestrator
    def counter(context):
        n = context.get_input()
        context.set_custom_status({"n": n})
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
        if n < 20:
            context.continue_as_new(n + 1)
            return None
        return n

    @app.orchestrator
    def bad_input(context):
        yield context.call_activity("echo", {1, 2})

    @app.activity
    def bad_result(_):
        return object()

    @app.orchestrator
    def bad_output(context):
        try:
            yield context.call_activity("bad_result")
        except perdure.TaskFailedError as error:
            return error.error_type
        return None

    return app


@pytest.fixture
def app() -> perdure.App:
    return make_app()


@pytest.fixture
def env(app: perdure.App):
    with DurableTestEnvironment(app) as env:
        yield env


def test_hello_cities_runs_on_a_real_worker_thread(tmp_path: Path) -> None:
    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/hello.db"
    with app.running():
        client = app.sync_client()
        instance_id = client.start_new("hello_cities")
        status = client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is S.Completed
    assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert len(instance_id) == 32 and int(instance_id, 16) >= 0


def test_blocking_activities_of_a_fan_out_run_at_once(tmp_path: Path) -> None:
    """Activities that block (here: until all eight have started) each get a thread,
    though short ones share one: were they run one after another, none would finish."""
    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/blocking.db"
    barrier = threading.Barrier(8, timeout=20)

    @app.activity
    def meet(i: int) -> int:
        barrier.wait()
        return i

    @app.orchestrator
    def meeting(context):
        first = yield context.task_all([context.call_activity("double", i) for i in range(50)])
        met = yield context.task_all([context.call_activity("meet", i) for i in range(8)])
        return [sum(first), sorted(met)]

    with app.running():
        client = app.sync_client()
        status = client.wait_for_completion(client.start_new("meeting"), timeout=30)
    assert status.runtime_status is S.Completed, status.output
    assert status.output == [2 * sum(range(50)), list(range(8))]


def test_a_wait_wakes_when_a_worker_in_this_process_finishes_the_instance(
    tmp_path: Path,
) -> None:
    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/wait.db"

    @app.activity
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.orchestrator
    def napper(context):
        for i in range(30):
            yield context.call_activity("double", i)
        yield context.call_activity("nap", 1.5)
        return "rested"

    client = app.sync_client()
    reads: list[str] = []
    get_status = client.get_status

    def counted(instance_id: str) -> object:
        reads.append(instance_id)
        return get_status(instance_id)

    client.get_status = counted  # type: ignore[assignment,method-assign]
    with app.running():
        instance_id = client.start_new("napper")
        started = time.monotonic()
        status = client.wait_for_completion(instance_id, timeout=30, poll_interval=10)
        waited = time.monotonic() - started
    assert status.output == "rested"
    # The backed-off poll alone (10, 20, 40 ... ms) looks at ~1.27 s, then not before
    # ~2.55 s; the finish wakes the wait at ~1.5 s.
    assert 1.5 <= waited < 2.2, waited
    # The 60-odd commits of the 30 steps before it did not each make the wait look again.
    assert len(reads) <= 12, len(reads)


def test_short_timers_fire_on_time_on_a_real_worker() -> None:
    """The worker sleeps until its next timer, not until its next idle poll (1 s), also
    when it set that timer itself in a round that no client or other process caused."""
    app = make_app()
    app._store_spec = "sqlite:///:memory:"  # no watcher: only the worker itself wakes it

    @app.orchestrator
    def ticker(context):
        for i in range(5):
            # An activity first, so the timer is set in a round woken by its result,
            # while the worker knows only of a later timer.
            yield context.call_activity("double", i)
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=0.2))
        return "ticked"

    @app.orchestrator
    def sleeper(context):
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=60))

    client = app.sync_client()
    with app.running():
        client.start_new("sleeper")
        time.sleep(0.2)
        started = time.monotonic()
        instance_id = client.start_new("ticker")
        status = client.wait_for_completion(instance_id, timeout=30, poll_interval=0.05)
        took = time.monotonic() - started
    assert status.output == "ticked"
    assert 1.0 <= took < 2.5, took


def test_a_round_reads_the_histories_it_must_replay_together(tmp_path: Path) -> None:
    """With nothing cached (a restart, or more live instances than the cache holds), a
    round that wakes many instances reads their histories in one query, not one each."""
    app = perdure.App(store=f"sqlite:///{tmp_path}/replay.db", cache_size=0)

    @app.orchestrator
    def waiter(context):
        value = yield context.wait_for_external_event("go")
        return value * 2

    client = app.sync_client()
    store = app.store
    reads = {"one": 0, "many": 0}
    load_history, load_histories = store.load_history, store.load_histories

    def one(*args):  # type: ignore[no-untyped-def]
        reads["one"] += 1
        return load_history(*args)

    def many(*args):  # type: ignore[no-untyped-def]
        reads["many"] += 1
        return load_histories(*args)

    store.load_history = one  # type: ignore[method-assign]
    store.load_histories = many  # type: ignore[method-assign]
    ids = [client.start_new("waiter") for _ in range(40)]
    with app.running():
        deadline = time.monotonic() + 30
        while client.get_status(ids[-1]).runtime_status is not S.Running:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for n, instance_id in enumerate(ids):  # all queued before the worker runs again
        client.raise_event(instance_id, "go", n)
    with app.running():
        outputs = [client.wait_for_completion(i, timeout=30).output for i in ids]
    assert outputs == [2 * n for n in range(40)]
    assert reads["one"] <= 1 and 1 <= reads["many"] <= 2, reads


def test_async_client_and_async_activity(tmp_path: Path) -> None:
    import asyncio

    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/a.db"

    async def main() -> object:
        client = app.client()
        instance_id = await client.start_new("uses_async")
        status = await client.wait_for_completion(instance_id, timeout=30)
        return status.output

    with app.running():
        assert asyncio.run(main()) == 42


def test_async_client_calls_run_on_its_threads_in_the_callers_context(tmp_path: Path) -> None:
    # More at once than the loop's default executor has threads (CPU count + 4), each
    # call seeing the caller's context variables (the current trace span, for one).
    import asyncio
    import contextvars
    import threading

    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/a.db"
    caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")
    seen: dict[str, tuple[str, str]] = {}
    store = app.sync_client().store
    create = store.create_instance

    def spy(new, dedupe) -> None:  # type: ignore[no-untyped-def]
        seen[new.instance_id] = (caller.get(), threading.current_thread().name)
        create(new, dedupe)

    store.create_instance = spy  # type: ignore[method-assign]

    async def one(n: int) -> str:
        caller.set(f"task {n}")
        return await app.client().start_new("hello_cities", f"c{n}")

    async def main() -> list[str]:
        return await asyncio.gather(*(one(n) for n in range(40)))

    assert asyncio.run(main()) == [f"c{n}" for n in range(40)]
    assert {i: c for i, (c, _) in seen.items()} == {f"c{n}": f"task {n}" for n in range(40)}
    assert all(t.startswith("perdure-client") for _, t in seen.values())
    app.close()


def test_completed_activities_are_not_rerun_on_replay(env, app) -> None:
    instance_id = env.client.start_new("hello_cities")
    env.run_until_idle()
    assert app.calls["say_hello"] == 3
    # a fresh worker (empty cache) replays the full history on the next event
    env.worker.orchestrations.cache.discard(instance_id)
    assert env.client.get_status(instance_id).runtime_status is S.Completed
    assert app.calls["say_hello"] == 3


def test_fan_out_fan_in_sums_results(env) -> None:
    instance_id = env.client.start_new("fan_out", client_input=200)
    status = env.wait_for_completion(instance_id)
    assert status.output == sum(2 * i for i in range(200))


def test_activity_error_reaches_orchestrator_as_task_failed_error(env) -> None:
    status = env.wait_for_completion(env.client.start_new("catches"))
    assert status.output == {"type": "ValueError", "message": "bad city", "has_traceback": True}


def test_unhandled_activity_error_fails_instance_with_details(env) -> None:
    status = env.wait_for_completion(env.client.start_new("fails"))
    assert status.runtime_status is S.Failed
    assert "ValueError" in status.output and "unhandled" in status.output
    assert "Traceback" in status.failure_details.stack_trace


def test_retries_follow_retry_options_exactly(env, app) -> None:
    app.flaky_left["n"] = 3
    start = env.now
    instance_id = env.client.start_new("retrying")
    status = env.wait_for_completion(instance_id)
    assert status.output == 7
    assert app.calls["flaky"] == 4
    history = env.client.get_status(instance_id, show_history=True).history
    fires = [datetime.fromisoformat(h["FireAt"]) for h in history if h["EventType"] == "TimerFired"]
    assert [(f - start).total_seconds() for f in fires] == [1.0, 3.0, 7.0]  # 1s, 2s, 4s


def test_retries_give_up_after_max_attempts(env, app) -> None:
    app.flaky_left["n"] = 10
    status = env.wait_for_completion(env.client.start_new("retrying"))
    assert status.runtime_status is S.Failed
    assert app.calls["flaky"] == 4


def test_sub_orchestrations_return_child_outputs(env) -> None:
    instance_id = env.client.start_new("parent")
    status = env.wait_for_completion(instance_id)
    assert status.output == [["Hello Tokyo!", "Hello Seattle!", "Hello London!"], 90]
    child = env.client.get_status("child-fixed")
    assert child.runtime_status is S.Completed and child.parent_instance_id == instance_id


def test_dataclasses_and_datetimes_round_trip_through_the_engine(env) -> None:
    order = Order("o1", datetime(2026, 5, 1, 12, 30, tzinfo=UTC), [1, 2])
    instance_id = env.client.start_new("payloads", client_input=order)
    status = env.wait_for_completion(instance_id)
    assert status.output == {"same_type": True, "order": order}
    assert env.client.get_status(instance_id, show_input=True).input_ == order


def test_events_raised_before_the_wait_are_buffered_in_order(env) -> None:
    instance_id = env.client.start_new("waits")
    env.client.raise_event(instance_id, "go", 1)
    env.client.raise_event(instance_id, "go", 2)
    assert env.wait_for_completion(instance_id).output == [1, 2]


def test_events_raised_while_suspended_are_kept_until_resume(env) -> None:
    instance_id = env.client.start_new("waits")
    env.run_until_idle()
    env.client.suspend(instance_id, "maintenance")
    env.run_until_idle()
    assert env.client.get_status(instance_id).runtime_status is S.Suspended
    env.client.raise_event(instance_id, "go", "a")
    env.client.raise_event(instance_id, "go", "b")
    env.run_until_idle()
    assert env.client.get_status(instance_id).runtime_status is S.Suspended
    env.client.resume(instance_id, "done")
    assert env.wait_for_completion(instance_id).output == ["a", "b"]


def test_terminate_with_reason(env) -> None:
    instance_id = env.client.start_new("waits")
    env.run_until_idle()
    env.client.terminate(instance_id, "no longer needed")
    env.run_until_idle()
    status = env.client.get_status(instance_id)
    assert status.runtime_status is S.Terminated
    assert status.output == "no longer needed"
    with pytest.raises(perdure.InstanceFinishedError):
        env.client.terminate(instance_id, "twice")


def test_raise_event_on_unknown_or_finished_instance_is_a_clear_error(env) -> None:
    with pytest.raises(perdure.InstanceNotFoundError):
        env.client.raise_event("nope", "go")
    done = env.client.start_new("hello_cities")
    env.wait_for_completion(done)
    with pytest.raises(perdure.InstanceFinishedError, match="Completed"):
        env.client.raise_event(done, "go")
    with pytest.raises(perdure.ValidationError):
        env.client.raise_event(done, "")


def test_continue_as_new_keeps_history_bounded(env) -> None:
    instance_id = env.client.start_new("counter", client_input=0)
    env.run_until_idle()
    env.advance(timedelta(minutes=1))
    assert env.client.get_status(instance_id).runtime_status is S.Running
    status = env.wait_for_completion(instance_id)
    assert status.output == 20
    history = env.client.get_status(instance_id, show_history=True).history
    assert len(history) < 10  # only the last generation is kept
    assert status.custom_status == {"n": 20}


def test_continue_as_new_status_passes_through_continued_as_new(env) -> None:
    instance_id = env.client.start_new("counter", client_input=0)
    env.run_until_idle()
    env.clock.advance(timedelta(minutes=1))
    env.worker.orchestrations.tick()  # timer fires, generation ends
    assert env.client.get_status(instance_id).runtime_status is S.ContinuedAsNew
    env.worker.orchestrations.tick()  # next generation starts
    assert env.client.get_status(instance_id).runtime_status is S.Running


def test_rewind_reruns_only_the_failed_work(env, app) -> None:
    instance_id = env.client.start_new("fails")
    assert env.wait_for_completion(instance_id).runtime_status is S.Failed
    assert (app.calls["say_hello"], app.calls["boom"]) == (1, 1)
    with pytest.raises(perdure.InstanceStateError):
        env.client.rewind(env.client.start_new("waits"), "running instances cannot be rewound")
    env.client.rewind(instance_id, "fixed the bug")
    env.run_until_idle()
    assert (app.calls["say_hello"], app.calls["boom"]) == (1, 2)
    assert env.client.get_status(instance_id).runtime_status is S.Failed


def test_rewind_completes_once_the_failure_is_gone(env, app) -> None:
    app.flaky_left["n"] = 10
    instance_id = env.client.start_new("retrying")
    assert env.wait_for_completion(instance_id).runtime_status is S.Failed
    app.flaky_left["n"] = 0
    env.client.rewind(instance_id)
    status = env.wait_for_completion(instance_id)
    assert status.runtime_status is S.Completed and status.output == 7
    assert app.calls["flaky"] == 5


def test_instance_ids_are_validated_and_unique(env) -> None:
    for bad in ["", "x" * 101, "@entity", "a/b", "a\\b", "a#b", "a?b", "a\nb"]:
        with pytest.raises(perdure.ValidationError):
            env.client.start_new("waits", instance_id=bad)
    assert env.client.get_status_all() == []
    env.client.start_new("waits", instance_id="order-1")
    with pytest.raises(perdure.InstanceAlreadyExistsError):
        env.client.start_new("waits", instance_id="order-1")
    env.client.terminate("order-1")
    env.run_until_idle()
    env.client.start_new("hello_cities", instance_id="order-1")  # a finished ID is replaced
    assert env.wait_for_completion("order-1").output[0] == "Hello Tokyo!"


def test_unknown_orchestrator_and_bad_payloads_are_refused_at_the_call(env) -> None:
    with pytest.raises(perdure.ValidationError, match="not registered"):
        env.client.start_new("no_such_orchestrator")
    with pytest.raises(perdure.SerializationError, match="input of orchestration"):
        env.client.start_new("waits", client_input=object())
    assert env.client.get_status_all() == []
    status = env.wait_for_completion(env.client.start_new("bad_input"))
    assert status.runtime_status is S.Failed
    assert "input of call_activity('echo')" in status.output
    assert (
        env.wait_for_completion(env.client.start_new("bad_output")).output == "SerializationError"
    )


def test_purge_one_and_by_filter(env) -> None:
    ids = [env.client.start_new("hello_cities") for _ in range(3)]
    waiting = env.client.start_new("waits")
    env.run_until_idle()
    assert env.client.purge_instance_history(ids[0]).instances_deleted == 1
    assert env.client.get_status(ids[0]) is None
    result = env.client.purge_instance_history_by(
        created_time_from=env.now - timedelta(days=1), runtime_status=[S.Completed, S.Running]
    )
    assert result.instances_deleted == 2  # running instances are never purged by filter
    assert env.client.get_status(waiting).runtime_status is S.Running


def test_query_by_status_and_created_time(env) -> None:
    done = env.client.start_new("hello_cities")
    env.run_until_idle()
    env.clock.advance(timedelta(hours=1))
    waiting = env.client.start_new("waits")
    env.run_until_idle()
    assert [s.instance_id for s in env.client.get_status_by(runtime_status=[S.Running])] == [
        waiting
    ]
    recent = env.client.get_status_by(created_time_from=env.now - timedelta(minutes=5))
    assert [s.instance_id for s in recent] == [waiting]
    assert {s.instance_id for s in env.client.get_status_all()} == {done, waiting}


def test_history_is_readable_with_and_without_outputs(env) -> None:
    instance_id = env.client.start_new("hello_cities")
    env.run_until_idle()
    plain = env.client.get_status(instance_id, show_history=True).history
    assert [h["EventType"] for h in plain] == ["ExecutionStarted"] + ["TaskCompleted"] * 3 + [
        "ExecutionCompleted"
    ]
    assert "Result" not in plain[1] and plain[1]["FunctionName"] == "say_hello"
    full = env.client.get_status(instance_id, show_history=True, show_history_output=True).history
    assert full[1]["Result"] == "Hello Tokyo!"


def test_non_determinism_fails_the_instance_naming_both_calls(tmp_path: Path) -> None:
    app = make_app()
    db = str(tmp_path / "nd.db")

    @app.orchestrator
    def evolving(context):
        yield context.call_activity("say_hello", "x")
        yield context.wait_for_external_event("next")
        return "v1"

    with DurableTestEnvironment(app, path=db) as env:
        instance_id = env.client.start_new("evolving")
        env.run_until_idle()

    app2 = make_app()

    @app2.orchestrator(name="evolving")
    def evolving_v2(context):
        yield context.call_activity("double", 1)  # changed call at the same position
        yield context.wait_for_external_event("next")
        return "v2"

    with DurableTestEnvironment(app2, path=db) as env:
        env.client.raise_event(instance_id, "next")
        env.run_until_idle()
        status = env.client.get_status(instance_id)
    assert status.runtime_status is S.Failed
    assert "NonDeterminismError" in status.output
    assert "call_activity('say_hello')" in status.output
    assert "call_activity('double')" in status.output
    assert "test_engine.py:" in status.output


def test_async_orchestrator_is_rejected_at_registration(app) -> None:
    with pytest.raises(perdure.ValidationError, match="async def"):

        @app.orchestrator
        async def wrong(context):
            return None


def test_72_hour_approval_escalates_when_nobody_answers() -> None:
    from examples.human_interaction import app as approval_app

    with DurableTestEnvironment(approval_app) as env:
        instance_id = env.client.start_new("approval_workflow", client_input={"order": 1})
        env.run_until_idle()
        env.advance(timedelta(hours=71, minutes=59))
        assert env.client.get_status(instance_id).runtime_status is S.Running
        env.advance(timedelta(minutes=2))
        assert env.client.get_status(instance_id).output == "escalated"


def test_72_hour_approval_approved_in_time_cancels_the_timer() -> None:
    from examples.human_interaction import app as approval_app

    with DurableTestEnvironment(approval_app) as env:
        instance_id = env.client.start_new("approval_workflow", client_input={"order": 2})
        env.run_until_idle()
        env.advance(timedelta(hours=10))
        env.client.raise_event(instance_id, "ApprovalEvent", {"by": "ana"})
        env.run_until_idle()
        status = env.client.get_status(instance_id)
        assert status.output == "approved"
        assert env.now - status.last_updated_time == timedelta(0)


def test_monitor_polls_on_a_virtual_clock() -> None:
    from examples.monitor import app as monitor_app

    with DurableTestEnvironment(monitor_app) as env:
        instance_id = env.client.start_new("job_monitor", client_input={"id": "m1", "polls": 5})
        start = env.now
        status = env.wait_for_completion(instance_id)
        assert status.output == "done"
        assert env.now - start == timedelta(minutes=8)  # 4 waits of 2 minutes


def test_concurrent_starts_from_many_threads(tmp_path: Path) -> None:
    app = make_app()
    app._store_spec = f"sqlite:///{tmp_path}/c.db"
    ids: list[str] = []
    lock = threading.Lock()
    with app.running():
        client = app.sync_client()

        def starter() -> None:
            for _ in range(20):
                iid = client.start_new("hello_cities")
                with lock:
                    ids.append(iid)

        threads = [threading.Thread(target=starter) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outputs = [client.wait_for_completion(i, timeout=60).output for i in ids]
    assert len(set(ids)) == 100
    assert all(o == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"] for o in outputs)


def test_durable_timers_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "timers.db")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with DurableTestEnvironment(make_app(), start=start, path=db) as env:
        instance_id = env.client.start_new("counter", client_input=20)
        env.run_until_idle()  # the one-minute timer is now only a row in the store
    with DurableTestEnvironment(make_app(), start=start, path=db) as env:
        env.advance(timedelta(seconds=59))
        assert env.client.get_status(instance_id).runtime_status is S.Running
        env.advance(timedelta(seconds=2))
        assert env.client.get_status(instance_id).output == 20


def test_a_locked_sqlite_store_gives_a_clear_timeout(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    import perdure.store.sqlite.store as sqlite_store

    monkeypatch.setattr(sqlite_store, "_BUSY_TIMEOUT_MS", 200)
    db = str(tmp_path / "locked.db")
    store = sqlite_store.SqliteStore(db)
    client = perdure.SyncClient(store)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(perdure.TimeoutError, match="stayed locked"):
            client.start_new("anything", instance_id="blocked")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.get_status("blocked") is None
    client.start_new("anything", instance_id="blocked")  # works once the lock is gone
    store.close()


def test_sqlite_synchronous_mode_is_chosen_in_the_url(tmp_path: Path) -> None:
    from perdure.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/s.db?synchronous=full")
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    with pytest.raises(perdure.ValidationError, match="synchronous"):
        open_store(f"sqlite:///{tmp_path}/s.db?synchronous=off")
    with pytest.raises(perdure.ValidationError, match="unknown SQLite store option"):
        open_store(f"sqlite:///{tmp_path}/s.db?journal=memory")
