"""Rewind: a Failed instance re-runs only its failed (and lost) work; completed results stay."""

from __future__ import annotations

from typing import Any

from perdure.model import codec
from perdure.model import events as ev
from perdure.model.actions import ScheduleTask
from perdure.model.status import OrchestrationRuntimeStatus as S
from perdure.orchestration.executor import EpisodeResult, OrchestrationRuntime, replay
from perdure.orchestration.retry import RetryOptions
from perdure.orchestration.rewind import rewind_history
from tests.histories import INSTANCE, T0, Driver, completed_event


def chain(context: Any) -> Any:
    a = yield context.call_activity("a")
    b = yield context.call_activity("b", a)
    c = yield context.call_activity("c", b)
    return [a, b, c]


def rewind(d: Driver) -> tuple[list[ev.HistoryEvent], EpisodeResult]:
    """What the worker does: replay the rewound history, then an episode with the rewind."""
    history = rewind_history(d.history)
    runtime = OrchestrationRuntime(INSTANCE, d.orchestrator)
    runtime.replay(history)
    result = runtime.run_episode([ev.ExecutionRewound(timestamp=T0, reason="fixed")], T0)
    return history + result.history, result


def test_rewind_reschedules_only_the_failed_activity_and_keeps_completed_results() -> None:
    d = Driver(chain)
    d.start()
    d.complete(0, "A")
    d.fail(1, "IOError", "flaky")
    assert d.last.status is S.Failed
    stored, result = rewind(d)
    assert result.status is S.Running
    assert [(a.task_id, a.name, a.input) for a in result.actions] == [(1, "b", '"A"')]  # type: ignore[attr-defined]
    # the next episode continues from the stored (rewound) history
    step = replay(INSTANCE, chain, stored, [completed_event(1, "B")], T0)
    assert [a.name for a in step.actions] == ["c"]  # type: ignore[attr-defined]
    stored += step.history
    done = replay(INSTANCE, chain, stored, [completed_event(2, "C")], T0)
    assert done.status is S.Completed
    assert codec.decode(done.output) == ["A", "B", "C"]


def test_a_rewound_history_drops_the_failed_outcome() -> None:
    d = Driver(chain)
    d.start()
    d.fail(0)
    history = rewind_history(d.history)
    assert not any(isinstance(e, (ev.ExecutionCompleted, ev.TaskFailed)) for e in history)


def test_rewind_keeps_earlier_retried_failures_and_reruns_the_last_one() -> None:
    def orch(context: Any) -> Any:
        return (yield context.call_activity_with_retry("flaky", RetryOptions(1000, 2)))

    d = Driver(orch)
    d.start()
    d.fail(0)
    d.fire(1)
    d.fail(2)
    assert d.last.status is S.Failed
    _stored, result = rewind(d)
    assert [(a.task_id, a.name) for a in result.actions] == [(2, "flaky")]  # type: ignore[attr-defined]


def test_rewind_of_a_fan_out_also_reruns_work_that_was_in_flight_when_it_failed() -> None:
    def orch(context: Any) -> Any:
        return (yield context.task_all([context.call_activity("w", i) for i in range(3)]))

    d = Driver(orch)
    d.start()
    d.complete(0, "zero")
    d.fail(1)  # fails the instance; task 2's result will be dropped by the worker
    assert d.last.status is S.Failed
    stored, result = rewind(d)
    assert sorted(a.task_id for a in result.actions) == [1, 2]
    assert all(isinstance(a, ScheduleTask) for a in result.actions)
    step = replay(
        INSTANCE, orch, stored, [completed_event(1, "one"), completed_event(2, "two")], T0
    )
    assert codec.decode(step.output) == ["zero", "one", "two"]
