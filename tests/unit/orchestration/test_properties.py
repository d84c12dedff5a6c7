"""Property: for random orchestrator shapes and random orders of completions, failures,
timer firings and events, replaying the recorded history from scratch always yields
exactly what the live run produced (checked before every episode by ``Driver``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perdure.errors import TaskFailedError
from perdure.model import events as ev
from perdure.model.actions import CreateTimer, ScheduleTask
from perdure.orchestration.executor import OrchestrationRuntime
from perdure.orchestration.retry import RetryOptions
from tests.histories import (
    INSTANCE,
    Driver,
    completed_event,
    failed_event,
    fired_event,
    raised_event,
)

EVENT_NAMES = ["a", "b"]

step = st.one_of(
    st.tuples(st.just("act"), st.sampled_from(["x", "y"])),
    st.tuples(st.just("timer"), st.integers(1, 120)),
    st.tuples(st.just("event"), st.sampled_from(EVENT_NAMES)),
    st.tuples(st.just("fan"), st.integers(0, 4)),
    st.tuples(st.just("any"), st.integers(1, 60)),
    st.tuples(st.just("retry"), st.integers(1, 3)),
    st.tuples(st.just("uuid"), st.just(0)),
)
programs = st.lists(step, min_size=1, max_size=6)


def interpret(program: list[tuple[str, Any]]) -> Any:
    def orch(context: Any) -> Any:
        out: list[Any] = []
        for kind, arg in program:
            try:
                if kind == "act":
                    out.append((yield context.call_activity(arg, len(out))))
                elif kind == "timer":
                    yield context.create_timer(timedelta(seconds=arg))
                    out.append(context.current_utc_datetime.isoformat())
                elif kind == "event":
                    out.append((yield context.wait_for_external_event(arg)))
                elif kind == "fan":
                    tasks = [context.call_activity("f", i) for i in range(arg)]
                    out.append((yield context.task_all(tasks)))
                elif kind == "any":
                    timer = context.create_timer(timedelta(seconds=arg))
                    work = context.call_activity("w")
                    winner = yield context.task_any([work, timer])
                    if winner is work:
                        timer.cancel()
                    out.append(winner is timer)
                elif kind == "retry":
                    opts = RetryOptions(1000, arg, backoff_coefficient=2.0)
                    out.append((yield context.call_activity_with_retry("r", opts)))
                elif kind == "uuid":
                    out.append(context.new_uuid())
            except TaskFailedError as exc:
                out.append(f"failed: {exc.error_message}")
        return out

    return orch


def outstanding(d: Driver) -> tuple[list[int], list[int]]:
    """Activity and timer task IDs scheduled but not yet answered."""
    tasks, timers = set(), set()
    for e in d.history:
        if isinstance(e, ev.TaskScheduled):
            tasks.add(e.event_id)
        elif isinstance(e, (ev.TaskCompleted, ev.TaskFailed)):
            tasks.discard(e.task_scheduled_id)
        elif isinstance(e, ev.TimerCreated):
            timers.add(e.event_id)
        elif isinstance(e, ev.TimerFired):
            timers.discard(e.timer_id)
    return sorted(tasks), sorted(timers)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.data())
def test_replay_from_scratch_matches_the_live_run(
    program: list[tuple[str, Any]], data: st.DataObject
) -> None:
    d = Driver(interpret(program))
    d.start()
    for _ in range(60):
        if d.last.is_complete:
            break
        tasks, timers = outstanding(d)
        choices: list[ev.HistoryEvent] = [raised_event(n, n.upper(), d.now) for n in EVENT_NAMES]
        for t in tasks:
            choices.append(completed_event(t, f"r{t}", d.now))
            choices.append(failed_event(t, "E", f"f{t}", at=d.now))
        for t in timers:
            choices.append(fired_event(t, d.fire_at(t)))
        batch = data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
        d.advance(timedelta(seconds=data.draw(st.integers(0, 90))))
        fire_times = [e.fire_at for e in batch if isinstance(e, ev.TimerFired)]
        d.episode(*batch, at=max([d.now, *fire_times]))
    # a fresh runtime replaying the whole history asks for nothing more
    runtime = OrchestrationRuntime(INSTANCE, d.orchestrator)
    runtime.replay(d.history)
    final = runtime.run_episode([], d.now)
    assert final.actions == []
    assert final.status == d.last.status
    for action in d.actions:
        assert isinstance(action, (ScheduleTask, CreateTimer))


# --- at-least-once deliveries and payloads (the reliability suite) ------------------------
def answered(d: Driver) -> list[ev.HistoryEvent]:
    """Completions, failures and timer firings already in the history (re-deliverable)."""
    kinds = (ev.TaskCompleted, ev.TaskFailed, ev.TimerFired)
    return [e for e in d.history if isinstance(e, kinds)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.data())
def test_redelivered_results_change_nothing(
    program: list[tuple[str, Any]], data: st.DataObject
) -> None:
    """Activities run at least once: a result or timer delivered again (a re-executed
    activity, a redelivered message) leaves the outcome exactly as a clean run's."""
    clean, noisy = Driver(interpret(program)), Driver(interpret(program))
    clean.start()
    noisy.start()
    for _ in range(60):
        if clean.last.is_complete:
            break
        tasks, timers = outstanding(clean)
        choices: list[ev.HistoryEvent] = [
            raised_event(n, n.upper(), clean.now) for n in EVENT_NAMES
        ]
        for t in tasks:
            choices.append(completed_event(t, f"r{t}", clean.now))
            choices.append(failed_event(t, "E", f"f{t}", at=clean.now))
        for t in timers:
            choices.append(fired_event(t, clean.fire_at(t)))
        batch = data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
        old = answered(noisy)
        again = data.draw(st.lists(st.sampled_from(old), max_size=2)) if old else []
        step_by = timedelta(seconds=data.draw(st.integers(0, 90)))
        clean.advance(step_by)
        noisy.advance(step_by)
        fire_times = [e.fire_at for e in batch if isinstance(e, ev.TimerFired)]
        at = max([clean.now, *fire_times])
        clean.episode(*batch, at=at)
        noisy.episode(*again, *batch, *again, at=at)  # Driver also checks replay each time
    assert noisy.last.status == clean.last.status
    assert noisy.last.output == clean.last.output
    assert noisy.last.is_complete == clean.last.is_complete


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
        max_leaves=20,
    )
)
def test_random_json_payloads_round_trip_exactly_through_the_executor(value: Any) -> None:
    """Input, activity result and event data come back bit-for-bit, also on replay."""

    def orch(context: Any) -> Any:
        got = yield context.call_activity("echo", context.get_input())
        data = yield context.wait_for_external_event("e")
        return [context.get_input(), got, data]

    d = Driver(orch)
    d.start(value)
    scheduled = next(a for a in d.last.actions if isinstance(a, ScheduleTask))
    d.complete(scheduled.task_id, value)
    d.raise_event("e", value)
    assert d.last.is_complete and d.output() == [value, value, value]
    fresh = OrchestrationRuntime(INSTANCE, orch)
    fresh.replay(d.history)
    assert fresh.run_episode([], d.now).actions == []
