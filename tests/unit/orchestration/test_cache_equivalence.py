"""A runtime kept alive across episodes (the worker's cache) must produce exactly the
history and actions of a fresh ``replay()`` of the accumulated history, every episode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from perdure.model import events as ev
from perdure.orchestration.executor import OrchestrationRuntime, replay
from perdure.orchestration.retry import RetryOptions
from tests.histories import (
    INSTANCE,
    T0,
    assert_same_result,
    completed_event,
    failed_event,
    fired_event,
    raised_event,
    started_event,
)


def chain(context: Any) -> Any:
    a = yield context.call_activity("a", context.get_input())
    b = yield context.call_activity("b", a)
    return [a, b, context.new_uuid()]


def fan(context: Any) -> Any:
    context.set_custom_status("fanning")
    results = yield context.task_all([context.call_activity("w", i) for i in range(3)])
    context.set_custom_status("done")
    return results


def approval(context: Any) -> Any:
    timer = context.create_timer(timedelta(hours=72))
    winner = yield context.task_any([context.wait_for_external_event("ok"), timer])
    if winner is not timer:
        timer.cancel()
    return (yield context.call_activity("after", winner is timer))


def retry(context: Any) -> Any:
    return (yield context.call_activity_with_retry("r", RetryOptions(1000, 3, 2.0)))


def looping(context: Any) -> Any:
    n = context.get_input() or 0
    value = yield context.wait_for_external_event("tick")
    if n < 2:
        context.continue_as_new(n + value)
    return n


H = timedelta(hours=1)
SCENARIOS: list[tuple[str, Callable[..., Any], list[list[ev.HistoryEvent]]]] = [
    ("chain", chain, [[started_event(input_=1)], [completed_event(0, 2)], [completed_event(1, 3)]]),
    (
        "fan in one batch and out of order",
        fan,
        [
            [started_event()],
            [completed_event(2, "c")],
            [completed_event(0, "a"), completed_event(1, "b")],
        ],
    ),
    (
        "approval in time",
        approval,
        [
            [started_event()],
            [raised_event("ok", 1)],
            [fired_event(0, T0 + 72 * H)],
            [completed_event(1)],
        ],
    ),
    (
        "approval timed out",
        approval,
        [
            [started_event()],
            [fired_event(0, T0 + 72 * H)],
            [raised_event("ok")],
            [completed_event(1)],
        ],
    ),
    (
        "retries",
        retry,
        [
            [started_event()],
            [failed_event(0)],
            [fired_event(1, T0 + timedelta(seconds=1))],
            [failed_event(2)],
            [fired_event(3, T0 + timedelta(seconds=3))],
            [completed_event(4, "ok")],
        ],
    ),
    (
        "early events and continue-as-new",
        looping,
        [[raised_event("tick", 1), started_event()], [raised_event("tick", 5)]],
    ),
    (
        "suspended",
        chain,
        [
            [started_event(input_=0)],
            [ev.ExecutionSuspended(timestamp=T0)],
            [completed_event(0, 1)],
            [ev.ExecutionResumed(timestamp=T0)],
            [completed_event(1, 2), ev.ExecutionTerminated(timestamp=T0, reason="x")],
        ],
    ),
]


@pytest.mark.parametrize(("name", "orch", "episodes"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_a_cached_runtime_matches_a_fresh_replay_every_episode(
    name: str, orch: Callable[..., Any], episodes: list[list[ev.HistoryEvent]]
) -> None:
    live = OrchestrationRuntime(INSTANCE, orch)
    history: list[ev.HistoryEvent] = []
    for i, batch in enumerate(episodes):
        now = T0 + i * timedelta(minutes=1)
        now = max([now, *(e.fire_at for e in batch if isinstance(e, ev.TimerFired))])
        fresh = replay(INSTANCE, orch, history, batch, now)
        cached = live.run_episode(batch, now)
        assert_same_result(cached, fresh)
        history.extend(cached.history)
        assert live.history_length == len(history)
