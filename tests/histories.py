"""Hand-written histories and a live driver for the replay engine's unit tests.

``HistoryBuilder`` writes histories the way the engine records them: each
episode is ``OrchestratorStarted`` … ``OrchestratorCompleted``, with the new
events first and the scheduling events after them.

``Driver`` runs an orchestrator live, one episode at a time, on virtual time,
keeping the accumulated history; ``check_replay=True`` (the default) also
replays that history from scratch before every episode and asserts that the
fresh runtime produces exactly what the live one did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from perdure.model import codec
from perdure.model import events as ev
from perdure.model.actions import Action
from perdure.orchestration.executor import EpisodeResult, OrchestrationRuntime, replay

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
INSTANCE = "inst-1"
EXECUTION = "exec0001abcdef"

Orchestrator = Callable[..., Any]


def enc(value: Any) -> str:
    return codec.encode(value)


class HistoryBuilder:
    """Fluent builder: ``HistoryBuilder().started("f", 1).scheduled(0, "a").episode(...)``."""

    def __init__(self, start: datetime = T0) -> None:
        self.events: list[ev.HistoryEvent] = []
        self.now = start
        self._open = False
        self.episode(start)

    # episodes ------------------------------------------------------------------
    def episode(self, at: datetime | timedelta | None = None) -> HistoryBuilder:
        """Close the current episode (if any) and open a new one at ``at``."""
        if isinstance(at, timedelta):
            at = self.now + at
        if self._open:
            self.events.append(ev.OrchestratorCompleted(timestamp=self.now))
        self.now = at or self.now
        self.events.append(ev.OrchestratorStarted(timestamp=self.now))
        self._open = True
        return self

    def build(self) -> list[ev.HistoryEvent]:
        """The history, with the open episode closed."""
        out = list(self.events)
        if self._open:
            out.append(ev.OrchestratorCompleted(timestamp=self.now))
        return out

    def _add(self, event: ev.HistoryEvent) -> HistoryBuilder:
        self.events.append(event)
        return self

    # events --------------------------------------------------------------------
    def started(
        self,
        name: str = "orch",
        input_: Any = None,
        *,
        execution_id: str = EXECUTION,
        parent_instance_id: str | None = None,
    ) -> HistoryBuilder:
        return self._add(
            ev.ExecutionStarted(
                timestamp=self.now,
                name=name,
                execution_id=execution_id,
                input=enc(input_),
                parent_instance_id=parent_instance_id,
            )
        )

    def scheduled(self, task_id: int, name: str, input_: Any = None) -> HistoryBuilder:
        return self._add(
            ev.TaskScheduled(timestamp=self.now, event_id=task_id, name=name, input=enc(input_))
        )

    def completed(self, task_id: int, result: Any = None) -> HistoryBuilder:
        return self._add(
            ev.TaskCompleted(timestamp=self.now, task_scheduled_id=task_id, result=enc(result))
        )

    def failed(
        self, task_id: int, error_type: str = "ValueError", message: str = "boom", stack: str = ""
    ) -> HistoryBuilder:
        return self._add(
            ev.TaskFailed(
                timestamp=self.now,
                task_scheduled_id=task_id,
                failure=ev.FailureDetails(error_type, message, stack),
            )
        )

    def timer_created(
        self, task_id: int, fire_at: datetime | timedelta, retry_of: int = -1
    ) -> HistoryBuilder:
        if isinstance(fire_at, timedelta):
            fire_at = self.now + fire_at
        return self._add(
            ev.TimerCreated(
                timestamp=self.now, event_id=task_id, fire_at=fire_at, retry_of=retry_of
            )
        )

    def timer_fired(self, task_id: int, fire_at: datetime) -> HistoryBuilder:
        return self._add(ev.TimerFired(timestamp=self.now, timer_id=task_id, fire_at=fire_at))

    def event_raised(self, name: str, data: Any = None) -> HistoryBuilder:
        return self._add(ev.EventRaised(timestamp=self.now, name=name, input=enc(data)))

    def event_sent(
        self, task_id: int, instance_id: str, name: str, data: Any = None
    ) -> HistoryBuilder:
        return self._add(
            ev.EventSent(
                timestamp=self.now,
                event_id=task_id,
                instance_id=instance_id,
                name=name,
                input=enc(data),
            )
        )

    def sub_created(
        self, task_id: int, name: str, instance_id: str, input_: Any = None
    ) -> HistoryBuilder:
        return self._add(
            ev.SubOrchestrationInstanceCreated(
                timestamp=self.now,
                event_id=task_id,
                name=name,
                instance_id=instance_id,
                input=enc(input_),
            )
        )

    def sub_completed(self, task_id: int, result: Any = None) -> HistoryBuilder:
        return self._add(
            ev.SubOrchestrationInstanceCompleted(
                timestamp=self.now, task_scheduled_id=task_id, result=enc(result)
            )
        )

    def sub_failed(
        self, task_id: int, error_type: str = "ValueError", message: str = "boom"
    ) -> HistoryBuilder:
        return self._add(
            ev.SubOrchestrationInstanceFailed(
                timestamp=self.now,
                task_scheduled_id=task_id,
                failure=ev.FailureDetails(error_type, message),
            )
        )

    def suspended(self, reason: str | None = None) -> HistoryBuilder:
        return self._add(ev.ExecutionSuspended(timestamp=self.now, reason=reason))

    def resumed(self, reason: str | None = None) -> HistoryBuilder:
        return self._add(ev.ExecutionResumed(timestamp=self.now, reason=reason))


# new events (what arrives in an episode) ----------------------------------------


def started_event(name: str = "orch", input_: Any = None, at: datetime = T0) -> ev.ExecutionStarted:
    return ev.ExecutionStarted(timestamp=at, name=name, execution_id=EXECUTION, input=enc(input_))


def completed_event(task_id: int, result: Any = None, at: datetime = T0) -> ev.TaskCompleted:
    return ev.TaskCompleted(timestamp=at, task_scheduled_id=task_id, result=enc(result))


def failed_event(
    task_id: int,
    error_type: str = "ValueError",
    message: str = "boom",
    stack: str = "",
    at: datetime = T0,
) -> ev.TaskFailed:
    return ev.TaskFailed(
        timestamp=at,
        task_scheduled_id=task_id,
        failure=ev.FailureDetails(error_type, message, stack),
    )


def fired_event(task_id: int, fire_at: datetime) -> ev.TimerFired:
    return ev.TimerFired(timestamp=fire_at, timer_id=task_id, fire_at=fire_at)


def raised_event(name: str, data: Any = None, at: datetime = T0) -> ev.EventRaised:
    return ev.EventRaised(timestamp=at, name=name, input=enc(data))


def run(
    orchestrator: Orchestrator,
    history: Sequence[ev.HistoryEvent],
    new_events: Sequence[ev.HistoryEvent] = (),
    now: datetime | None = None,
    instance_id: str = INSTANCE,
) -> EpisodeResult:
    """``replay()`` with defaults: a new episode at the history's last time (or T0)."""
    if now is None:
        now = max((e.timestamp for e in history), default=T0)
    return replay(instance_id, orchestrator, history, new_events, now)


# a live driver ----------------------------------------------------------------------


class Driver:
    """Runs one orchestration live on virtual time, episode by episode.

    >>> d = Driver(my_orch); d.start("input"); d.complete(0, "result")  # doctest: +SKIP
    """

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        instance_id: str = INSTANCE,
        start: datetime = T0,
        check_replay: bool = True,
    ) -> None:
        self.orchestrator = orchestrator
        self.instance_id = instance_id
        self.now = start
        self.check_replay = check_replay
        self.runtime = OrchestrationRuntime(instance_id, orchestrator)
        self.history: list[ev.HistoryEvent] = []
        self.results: list[EpisodeResult] = []
        self.actions: list[Action] = []

    @property
    def last(self) -> EpisodeResult:
        return self.results[-1]

    def advance(self, delta: timedelta) -> Driver:
        self.now += delta
        return self

    def episode(self, *events: ev.HistoryEvent, at: datetime | None = None) -> EpisodeResult:
        """Run one episode with ``events`` at ``at`` (default: the driver's virtual now)."""
        if at is not None:
            self.now = at
        fresh: EpisodeResult | None = None
        if self.check_replay:
            fresh = replay(self.instance_id, self.orchestrator, self.history, events, self.now)
        result = self.runtime.run_episode(events, self.now)
        if fresh is not None:
            assert_same_result(result, fresh)
        self.history.extend(result.history)
        self.results.append(result)
        self.actions.extend(result.actions)
        return result

    # conveniences --------------------------------------------------------------
    def start(self, input_: Any = None, name: str = "orch") -> EpisodeResult:
        return self.episode(started_event(name, input_, self.now))

    def complete(self, task_id: int, result: Any = None) -> EpisodeResult:
        return self.episode(completed_event(task_id, result, self.now))

    def fail(
        self, task_id: int, error_type: str = "ValueError", message: str = "boom"
    ) -> EpisodeResult:
        return self.episode(failed_event(task_id, error_type, message, at=self.now))

    def fire(self, task_id: int) -> EpisodeResult:
        """Fire timer ``task_id`` at its due time (moving virtual time there)."""
        fire_at = self.fire_at(task_id)
        self.now = max(self.now, fire_at)
        return self.episode(fired_event(task_id, fire_at))

    def raise_event(self, name: str, data: Any = None) -> EpisodeResult:
        return self.episode(raised_event(name, data, self.now))

    def fire_at(self, task_id: int) -> datetime:
        for e in self.history:
            if isinstance(e, ev.TimerCreated) and e.event_id == task_id:
                return e.fire_at
        raise KeyError(f"no timer {task_id} in the history")

    def output(self) -> Any:
        return codec.decode(self.last.output)


def assert_same_result(live: EpisodeResult, fresh: EpisodeResult) -> None:
    """A cached runtime and a fresh replay must agree on everything they report."""
    assert live.history == fresh.history
    assert live.actions == fresh.actions
    assert live.status == fresh.status
    assert live.output == fresh.output
    assert live.failure == fresh.failure
    assert live.custom_status == fresh.custom_status
    assert live.continue_as_new == fresh.continue_as_new
    assert live.carryover_events == fresh.carryover_events
