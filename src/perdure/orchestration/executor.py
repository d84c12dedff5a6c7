"""Replay engine. Pure: no I/O, clock or randomness; time comes from OrchestratorStarted events.

An :class:`OrchestrationRuntime` holds one live orchestrator generator. Feed it
the recorded history (``replay``) and then an episode of new events
(``run_episode``); it returns the history to append and the actions to carry
out. A runtime kept in memory between episodes gives exactly the same results
as a fresh one replayed from the full history: that is what makes caching safe.
"""

from __future__ import annotations

import inspect
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure.errors import NonDeterminismError, TaskFailedError
from perdure.model import codec
from perdure.model import events as ev
from perdure.model.actions import (
    Action,
    CallEntity,
    CreateSubOrchestration,
    CreateTimer,
    LockEntities,
    ScheduleTask,
    SendEvent,
    SignalEntity,
    UnlockEntities,
    describe,
)
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.orchestration.context import DurableOrchestrationContext
from perdure.orchestration.tasks import CompletableTask, CriticalSection, Task, TimerTask

Orchestrator = Callable[[DurableOrchestrationContext], Any]


@dataclass
class EpisodeResult:
    """What one episode produced.

    ``history`` is appended to the stored history (or replaces it entirely when
    ``replace_history`` is set, after a rewind). ``status`` is None while the
    instance has not started.
    """

    history: list[ev.HistoryEvent]
    actions: list[Action]
    status: Status | None
    output: str | None = None
    failure: ev.FailureDetails | None = None
    custom_status: str | None = None
    continue_as_new: str | None = None  # encoded input of the next generation
    carryover_events: list[ev.EventRaised] = field(default_factory=list)
    replace_history: bool = False
    started: ev.ExecutionStarted | None = None  # this execution's start (name, input, parent)
    release_locks: list[str] = field(default_factory=list)  # entities locked when it finished

    @property
    def is_complete(self) -> bool:
        return self.status is not None and self.status in (
            Status.Completed,
            Status.Failed,
            Status.Terminated,
            Status.ContinuedAsNew,
        )


_RECORDED_ACTIONS = (
    ev.TaskScheduled,
    ev.TimerCreated,
    ev.SubOrchestrationInstanceCreated,
    ev.EventSent,
    ev.EntityOperationCalled,
    ev.EntityOperationSignaled,
    ev.EntityLockRequested,
    ev.EntityUnlockSent,
)

_ONE_WAY = (SendEvent, SignalEntity, UnlockEntities)

#: Events that record how an execution ended.
_OUTCOME_EVENTS = (ev.ExecutionCompleted, ev.ExecutionTerminated, ev.ContinueAsNew)

_REWIND_MARKERS = (ev.ExecutionRewound, ev.GenericEvent)

_RESULT_EVENTS = (
    ev.TaskCompleted,
    ev.TaskFailed,
    ev.SubOrchestrationInstanceCompleted,
    ev.SubOrchestrationInstanceFailed,
    ev.TimerFired,
    ev.EventRaised,
)


class OrchestrationRuntime:
    """One orchestration execution, replayed event by event.

    >>> rt = OrchestrationRuntime("id-1", my_orchestrator)  # doctest: +SKIP
    >>> rt.replay(history)                                  # doctest: +SKIP
    >>> result = rt.run_episode(new_events, now)            # doctest: +SKIP
    """

    def __init__(self, instance_id: str, orchestrator: Orchestrator) -> None:
        self.instance_id = instance_id
        self._fn = orchestrator
        self.context = DurableOrchestrationContext(self, instance_id)
        self._gen: Any = None
        self._waiting: Task | None = None
        self._seq = 0
        self._open: dict[int, CompletableTask] = {}
        self._pending: dict[int, tuple[Action, CompletableTask | None]] = {}
        self._waiters: dict[str, deque[CompletableTask]] = {}
        self._buffered: dict[str, deque[str | None]] = {}
        self._suspended_events: list[ev.HistoryEvent] = []
        self._started: ev.ExecutionStarted | None = None
        self._suspended = False
        self._done: tuple[Status, str | None, ev.FailureDetails | None] | None = None
        self._unreported = False
        self._rewound = False
        self._can: tuple[str | None, bool] | None = None
        self.custom_status: str | None = None
        self.history_length = 0
        self.critical_section: CriticalSection | None = None

    # the runtime API the context uses ----------------------------------------
    def next_task_id(self) -> int:
        task_id = self._seq
        self._seq += 1
        return task_id

    def add_action(self, action: Action, task: CompletableTask | None) -> None:
        self._pending[action.task_id] = (action, task)
        if task is not None:
            self._open[action.task_id] = task

    def wait_for_event(self, name: str) -> Task:
        task = CompletableTask(-1, f"external event {name!r}")
        buffered = self._buffered.get(name)
        if buffered:
            payload = buffered.popleft()
            task._complete(codec.decode(payload))
        else:
            self._waiters.setdefault(name, deque()).append(task)
        return task

    def continue_as_new(self, input_text: str | None, save_events: bool) -> None:
        self._can = (input_text, save_events)

    # driving -----------------------------------------------------------------
    @property
    def is_finished(self) -> bool:
        return self._done is not None

    def replay(self, history: Iterable[ev.HistoryEvent]) -> None:
        """Re-run the orchestrator through recorded history (``is_replaying`` is True)."""
        history = list(history)
        # A rewound history deliberately lacks the scheduling events of the work to
        # re-run, so calls that the history does not record are expected there.
        self._rewound = any(isinstance(e, _REWIND_MARKERS) for e in history)
        self.context.is_replaying = True
        try:
            for event in history:
                self.history_length += 1
                self._apply(event)
                if isinstance(event, _OUTCOME_EVENTS):
                    self._unreported = False  # the history already records the outcome
        finally:
            self.context.is_replaying = False

    def run_episode(self, new_events: Sequence[ev.HistoryEvent], now: datetime) -> EpisodeResult:
        """Apply new events at time ``now`` and return what must be committed."""
        was_finished = self._done is not None and not self._unreported
        self._unreported = False
        self.context.is_replaying = False
        added: list[ev.HistoryEvent] = [ev.OrchestratorStarted(timestamp=now)]
        self._apply(added[0])
        terminate = None
        for event in new_events:
            if isinstance(event, ev.ExecutionTerminated):
                terminate = event
                break
        if terminate is not None and not was_finished:
            # Termination wins over anything else in the batch: run no more user code. A
            # start in the same batch (terminated while Pending) is still recorded, without
            # running the orchestrator, so the history says what ran and a parent hears back.
            start = next((e for e in new_events if isinstance(e, ev.ExecutionStarted)), None)
            if start is not None and self._started is None:
                added.append(start)
                self._record_start(start)
            added.append(terminate)
            self._apply(terminate)
        else:
            ordered = (
                sorted(new_events, key=lambda e: not isinstance(e, ev.ExecutionStarted))
                if len(new_events) > 1
                else new_events
            )
            for event in ordered:
                if was_finished:
                    break
                added.append(event)
                self._apply(event)
        actions: list[Action] = []
        for action, _task in self._pending.values():
            # When the episode also finished the instance, work whose result nobody can
            # await is moot; one-way messages (events, signals, lock releases) still go out.
            if self._done is None or isinstance(action, _ONE_WAY):
                actions.append(action)
                added.append(_action_event(action, now))
        self._pending.clear()
        result = EpisodeResult(
            history=added,
            actions=actions,
            status=self._status(),
            custom_status=self.custom_status,
            started=self._started,
        )
        if self._done is not None and not was_finished:
            status, output, failure = self._done
            result.output, result.failure = output, failure
            section = self.critical_section
            if section is not None and section.is_held:
                result.release_locks = list(section.targets)
            if status is Status.ContinuedAsNew:
                assert self._can is not None
                result.continue_as_new = self._can[0]
                # Recorded so that a replay of this generation knows it already ended.
                added.append(ev.ContinueAsNew(timestamp=now, input=self._can[0]))
                if self._can[1]:
                    result.carryover_events = [
                        ev.EventRaised(timestamp=now, name=name, input=payload)
                        for name, queue in self._buffered.items()
                        for payload in queue
                    ]
            elif status is not Status.Terminated:
                added.append(
                    ev.ExecutionCompleted(
                        timestamp=now, status=status.value, result=output, failure=failure
                    )
                )
        added.append(ev.OrchestratorCompleted(timestamp=now))
        self.history_length += len(added)
        return result

    def _status(self) -> Status | None:
        if self._done is not None:
            return self._done[0]
        if self._started is None:
            return None
        return Status.Suspended if self._suspended else Status.Running

    def _apply(self, event: ev.HistoryEvent) -> None:
        if self._done is not None:
            self._apply_after_finish(event)
            return
        if self._suspended and isinstance(event, _RESULT_EVENTS):
            self._suspended_events.append(event)
            return
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return
        try:
            handler(self, event)
        except NonDeterminismError as exc:
            self._fail_nondeterministic(exc)

    def _apply_after_finish(self, event: ev.HistoryEvent) -> None:
        assert self._done is not None
        if isinstance(event, ev.EventRaised) and self._done[0] is Status.ContinuedAsNew:
            # Arrived in the same batch, after continue_as_new: it belongs to the next
            # generation, like any other event nobody consumed.
            self._buffered.setdefault(event.name, deque()).append(event.input)
        elif (
            self._unreported
            and isinstance(event, _RECORDED_ACTIONS)
            and not _is_nondeterminism(self._done[2])
        ):
            # Replayed code finished, yet the history goes on to record a call it made:
            # the code now makes fewer calls than it did (changed since the instance started).
            try:
                self._on_action_recorded(event)
            except NonDeterminismError as exc:
                self._done = None
                self._fail_nondeterministic(exc)

    def _fail_nondeterministic(self, exc: NonDeterminismError) -> None:
        failure = ev.FailureDetails("NonDeterminismError", str(exc))
        self._finish(Status.Failed, codec.encode(str(failure)), failure)

    # handlers ----------------------------------------------------------------
    def _on_orchestrator_started(self, event: ev.OrchestratorStarted) -> None:
        self.context.current_utc_datetime = event.timestamp

    def _on_orchestrator_completed(self, event: ev.OrchestratorCompleted) -> None:
        # Every call the code made during a recorded episode was recorded before its
        # OrchestratorCompleted; one still pending means the code now makes extra calls.
        if not self.context.is_replaying or self._rewound or not self._pending:
            return
        action, _task = next(iter(self._pending.values()))
        raise NonDeterminismError(
            f"non-deterministic orchestrator {self.context.name!r} ({self.instance_id}): "
            f"the code now calls {describe(action)} at {action.call_site} as task "
            f"{action.task_id}, but the history records no such call in that episode "
            f"(code changed since the instance started?)"
        )

    def _code_position(self) -> str:
        frame = getattr(self._gen, "gi_frame", None)
        if frame is None:
            return "had already returned"
        return f"is at {frame.f_code.co_filename}:{frame.f_lineno}"

    def _record_start(self, event: ev.ExecutionStarted) -> None:
        self._started = event
        ctx = self.context
        ctx._name = event.name
        ctx._input_text = event.input
        ctx._execution_id = event.execution_id
        ctx._parent_instance_id = event.parent_instance_id

    def _on_execution_started(self, event: ev.ExecutionStarted) -> None:
        if self._started is not None:
            return
        self._record_start(event)
        ctx = self.context
        try:
            produced = self._fn(ctx)
        except BaseException as exc:
            self._fail_from_user(exc)
            return
        if inspect.isgenerator(produced):
            self._gen = produced
            self._step(None, None)
        else:
            self._succeed(produced)

    def _on_action_recorded(self, event: ev.HistoryEvent) -> None:
        entry = self._pending.pop(event.event_id, None)
        recorded = _describe_event(event)
        if entry is None:
            raise NonDeterminismError(
                f"non-deterministic orchestrator {self.context.name!r} ({self.instance_id}): "
                f"the history records task {event.event_id} as {recorded}, but replaying the "
                f"code made no call with that task ID; the orchestrator {self._code_position()} "
                f"(code changed since the instance started?)"
            )
        action, _task = entry
        if not _matches(action, event):
            raise NonDeterminismError(
                f"non-deterministic orchestrator {self.context.name!r} ({self.instance_id}): "
                f"task {event.event_id} was recorded as {recorded}, but the code now calls "
                f"{describe(action)} at {action.call_site}"
            )

    def _on_task_completed(
        self, event: ev.TaskCompleted | ev.SubOrchestrationInstanceCompleted
    ) -> None:
        task = self._open.pop(event.task_scheduled_id, None)
        if task is None:
            return
        try:
            value = codec.decode(event.result)
        except Exception as exc:
            task._fail(exc)
        else:
            task._complete(value)
        self._resume()

    def _on_task_failed(self, event: ev.TaskFailed | ev.SubOrchestrationInstanceFailed) -> None:
        task = self._open.pop(event.task_scheduled_id, None)
        if task is None:
            return
        f = event.failure
        task._fail(TaskFailedError(task.name, f.error_type, f.message, f.stack_trace))
        self._resume()

    def _on_timer_fired(self, event: ev.TimerFired) -> None:
        task = self._open.pop(event.timer_id, None)
        if task is None or (isinstance(task, TimerTask) and task.is_cancelled):
            return
        task._complete(None)
        self._resume()

    def _on_event_raised(self, event: ev.EventRaised) -> None:
        waiters = self._waiters.get(event.name)
        if waiters:
            task = waiters.popleft()
            task._complete(codec.decode(event.input))
            self._resume()
        else:
            self._buffered.setdefault(event.name, deque()).append(event.input)

    def _on_suspended(self, event: ev.ExecutionSuspended) -> None:
        self._suspended = True

    def _on_resumed(self, event: ev.ExecutionResumed) -> None:
        self._suspended = False
        held, self._suspended_events = self._suspended_events, []
        for e in held:
            self._apply(e)

    def _on_terminated(self, event: ev.ExecutionTerminated) -> None:
        self._finish(Status.Terminated, codec.encode(event.reason), None)

    # generator stepping ------------------------------------------------------
    def _resume(self) -> None:
        waiting = self._waiting
        if waiting is not None and waiting.is_completed and self._done is None:
            if waiting.is_faulted:
                self._step(None, waiting.exception)
            else:
                self._step(waiting._result, None)

    def _step(self, value: Any, error: BaseException | None) -> None:
        gen = self._gen
        while True:
            try:
                yielded = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                self._succeed(stop.value)
                return
            except BaseException as exc:
                self._fail_from_user(exc)
                return
            if self._can is not None:
                # continue_as_new() followed by a yield: the generation ends here.
                self._succeed(None)
                return
            if not isinstance(yielded, Task):
                self._fail_from_user(
                    TypeError(
                        f"orchestrator {self.context.name!r} yielded {yielded!r}; yield a task "
                        "from context.call_activity, create_timer, task_all, ..."
                    )
                )
                return
            self._waiting = yielded
            if not yielded.is_completed:
                return
            if yielded.is_faulted:
                value, error = None, yielded.exception
            else:
                value, error = yielded._result, None

    def _succeed(self, value: Any) -> None:
        if self._can is not None:
            self._finish(Status.ContinuedAsNew, None, None)
            return
        try:
            text = codec.encode(value, f"output of orchestrator {self.context.name!r}")
        except Exception as exc:
            self._fail_from_user(exc)
            return
        self._finish(Status.Completed, text, None)

    def _fail_from_user(self, exc: BaseException) -> None:
        failure = _failure(exc)
        message = f"Orchestrator function {self.context.name!r} failed: {failure}"
        self._finish(Status.Failed, codec.encode(message), failure)

    def _finish(
        self, status: Status, output: str | None, failure: ev.FailureDetails | None
    ) -> None:
        if self._done is None:
            self._done = (status, output, failure)
            # Finished while replaying recorded history: the outcome is still to be
            # committed by the next episode (the history shows no ExecutionCompleted yet).
            self._unreported = self.context.is_replaying
            if self._gen is not None:
                self._gen.close()


# Which method applies each kind of event: one table for every runtime (a bound-method
# dict per runtime cost microseconds to build and kilobytes to keep, per live instance).
_HANDLERS: dict[type[ev.HistoryEvent], Callable[[OrchestrationRuntime, Any], None]] = {
    ev.OrchestratorStarted: OrchestrationRuntime._on_orchestrator_started,
    ev.OrchestratorCompleted: OrchestrationRuntime._on_orchestrator_completed,
    ev.ExecutionStarted: OrchestrationRuntime._on_execution_started,
    ev.TaskScheduled: OrchestrationRuntime._on_action_recorded,
    ev.TimerCreated: OrchestrationRuntime._on_action_recorded,
    ev.SubOrchestrationInstanceCreated: OrchestrationRuntime._on_action_recorded,
    ev.EventSent: OrchestrationRuntime._on_action_recorded,
    ev.EntityOperationCalled: OrchestrationRuntime._on_action_recorded,
    ev.EntityOperationSignaled: OrchestrationRuntime._on_action_recorded,
    ev.EntityLockRequested: OrchestrationRuntime._on_action_recorded,
    ev.EntityUnlockSent: OrchestrationRuntime._on_action_recorded,
    ev.TaskCompleted: OrchestrationRuntime._on_task_completed,
    ev.SubOrchestrationInstanceCompleted: OrchestrationRuntime._on_task_completed,
    ev.TaskFailed: OrchestrationRuntime._on_task_failed,
    ev.SubOrchestrationInstanceFailed: OrchestrationRuntime._on_task_failed,
    ev.TimerFired: OrchestrationRuntime._on_timer_fired,
    ev.EventRaised: OrchestrationRuntime._on_event_raised,
    ev.ExecutionSuspended: OrchestrationRuntime._on_suspended,
    ev.ExecutionResumed: OrchestrationRuntime._on_resumed,
    ev.ExecutionTerminated: OrchestrationRuntime._on_terminated,
}


def _is_nondeterminism(failure: ev.FailureDetails | None) -> bool:
    return failure is not None and failure.error_type == "NonDeterminismError"


def _failure(exc: BaseException) -> ev.FailureDetails:
    if isinstance(exc, TaskFailedError):
        return ev.FailureDetails(
            "TaskFailedError",
            str(exc),
            exc.stack_trace,
        )
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ev.FailureDetails(type(exc).__name__, str(exc), tb)


def _action_event(action: Action, now: datetime) -> ev.HistoryEvent:
    if isinstance(action, ScheduleTask):
        return ev.TaskScheduled(
            timestamp=now, event_id=action.task_id, name=action.name, input=action.input
        )
    if isinstance(action, CreateTimer):
        return ev.TimerCreated(
            timestamp=now, event_id=action.task_id, fire_at=action.fire_at, retry_of=action.retry_of
        )
    if isinstance(action, CreateSubOrchestration):
        return ev.SubOrchestrationInstanceCreated(
            timestamp=now,
            event_id=action.task_id,
            name=action.name,
            instance_id=action.instance_id,
            input=action.input,
        )
    if isinstance(action, SendEvent):
        return ev.EventSent(
            timestamp=now,
            event_id=action.task_id,
            instance_id=action.instance_id,
            name=action.name,
            input=action.input,
        )
    if isinstance(action, CallEntity):
        return ev.EntityOperationCalled(
            timestamp=now, event_id=action.task_id, target=action.target,
            operation=action.operation, input=action.input,
        )
    if isinstance(action, SignalEntity):
        return ev.EntityOperationSignaled(
            timestamp=now, event_id=action.task_id, target=action.target,
            operation=action.operation, input=action.input,
        )
    if isinstance(action, LockEntities):
        return ev.EntityLockRequested(
            timestamp=now, event_id=action.task_id, targets=action.targets
        )
    if isinstance(action, UnlockEntities):
        return ev.EntityUnlockSent(timestamp=now, event_id=action.task_id, targets=action.targets)
    raise TypeError(f"unknown action {action!r}")


def _matches(action: Action, event: ev.HistoryEvent) -> bool:
    if isinstance(event, ev.TaskScheduled):
        return isinstance(action, ScheduleTask) and action.name == event.name
    if isinstance(event, ev.TimerCreated):
        return isinstance(action, CreateTimer)
    if isinstance(event, ev.SubOrchestrationInstanceCreated):
        return isinstance(action, CreateSubOrchestration) and action.name == event.name
    if isinstance(event, ev.EventSent):
        return (
            isinstance(action, SendEvent)
            and action.name == event.name
            and action.instance_id == event.instance_id
        )
    if isinstance(event, ev.EntityOperationCalled):
        return (
            isinstance(action, CallEntity)
            and action.target == event.target
            and action.operation == event.operation
        )
    if isinstance(event, ev.EntityOperationSignaled):
        return (
            isinstance(action, SignalEntity)
            and action.target == event.target
            and action.operation == event.operation
        )
    if isinstance(event, ev.EntityLockRequested):
        return isinstance(action, LockEntities) and action.targets == event.targets
    if isinstance(event, ev.EntityUnlockSent):
        return isinstance(action, UnlockEntities) and action.targets == event.targets
    return False


def _describe_event(event: ev.HistoryEvent) -> str:
    if isinstance(event, ev.TaskScheduled):
        return f"call_activity({event.name!r})"
    if isinstance(event, ev.TimerCreated):
        return "create_timer()"
    if isinstance(event, ev.SubOrchestrationInstanceCreated):
        return f"call_sub_orchestrator({event.name!r})"
    if isinstance(event, ev.EventSent):
        return f"send_event({event.instance_id!r}, {event.name!r})"
    if isinstance(event, ev.EntityOperationCalled):
        return f"call_entity({event.target!r}, {event.operation!r})"
    if isinstance(event, ev.EntityOperationSignaled):
        return f"signal_entity({event.target!r}, {event.operation!r})"
    if isinstance(event, ev.EntityLockRequested):
        return f"lock({event.targets!r})"
    if isinstance(event, ev.EntityUnlockSent):
        return f"release({event.targets!r})"
    return event.event_type


def replay(
    instance_id: str,
    orchestrator: Orchestrator,
    history: Sequence[ev.HistoryEvent],
    new_events: Sequence[ev.HistoryEvent],
    now: datetime,
) -> EpisodeResult:
    """Replay ``history`` then apply ``new_events``: the whole engine as one pure function.

    >>> result = replay("id", hello, history, [ev.TaskCompleted(...)], now)  # doctest: +SKIP
    >>> result.actions                                                        # doctest: +SKIP
    """
    runtime = OrchestrationRuntime(instance_id, orchestrator)
    runtime.replay(history)
    return runtime.run_episode(new_events, now)
