"""Tasks an orchestrator yields, and the rules by which they complete.

A composite task (``task_all``/``task_any``/retry) hears about its children only
through ``_on_child_done``; nothing here touches the store or the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

_PENDING, _SUCCEEDED, _FAILED = 0, 1, 2


class Task:
    """A unit of durable work whose result an orchestrator waits for with ``yield``."""

    __slots__ = ("_exception", "_parents", "_result", "_state")

    def __init__(self) -> None:
        self._state = _PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._parents: list[Task] = []

    @property
    def is_completed(self) -> bool:
        """True once the task succeeded or failed."""
        return self._state != _PENDING

    @property
    def is_faulted(self) -> bool:
        """True if the task failed."""
        return self._state == _FAILED

    @property
    def result(self) -> Any:
        """The task's value; raises the task's error if it failed, None while pending."""
        if self._state == _FAILED:
            assert self._exception is not None
            raise self._exception
        return self._result

    @property
    def exception(self) -> BaseException | None:
        """The error of a failed task, else None."""
        return self._exception

    def _complete(self, value: Any) -> None:
        if self._state != _PENDING:
            return
        self._state = _SUCCEEDED
        self._result = value
        self._notify()

    def _fail(self, exc: BaseException) -> None:
        if self._state != _PENDING:
            return
        self._state = _FAILED
        self._exception = exc
        self._notify()

    def _notify(self) -> None:
        for parent in self._parents:
            parent._on_child_done(self)

    def _on_child_done(self, child: Task) -> None:  # pragma: no cover - composites override
        pass


class CompletableTask(Task):
    """A task completed by one history event: activity, sub-orchestration, timer, event."""

    __slots__ = ("description", "name", "task_id")

    def __init__(self, task_id: int, description: str, name: str = "") -> None:
        super().__init__()
        self.task_id = task_id
        self.description = description
        self.name = name  # the function or operation, named in a TaskFailedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} #{self.task_id}>"


class TimerTask(CompletableTask):
    """A durable timer; ``cancel()`` it when it lost a race so it no longer matters."""

    __slots__ = ("_cancelled", "fire_at")

    def __init__(self, task_id: int, fire_at: datetime) -> None:
        super().__init__(task_id, f"timer at {fire_at.isoformat()}")
        self.fire_at = fire_at
        self._cancelled = False

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Cancel a pending timer. Raises ValueError if it has already fired."""
        if self.is_completed:
            raise ValueError("cannot cancel a timer that has already fired")
        self._cancelled = True


class WhenAllTask(Task):
    """Completes with every child's result, in order; fails as soon as one child fails."""

    __slots__ = ("_pending", "children")

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__()
        self.children = list(children)
        self._pending = 0
        for child in self.children:
            child._parents.append(self)
            if not child.is_completed:
                self._pending += 1
        failed = next((c for c in self.children if c.is_faulted), None)
        if failed is not None:
            assert failed.exception is not None
            self._fail(failed.exception)
        elif self._pending == 0:
            self._complete([c._result for c in self.children])

    def _on_child_done(self, child: Task) -> None:
        if self.is_completed:
            return
        if child.is_faulted:
            assert child.exception is not None
            self._fail(child.exception)
            return
        self._pending -= 1
        if self._pending == 0:
            self._complete([c._result for c in self.children])


class WhenAnyTask(Task):
    """Completes with the first child to finish: the Task itself, as in Durable Functions."""

    __slots__ = ("children",)

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__()
        self.children = list(children)
        if not self.children:
            raise ValueError("task_any needs at least one task")
        for child in self.children:
            child._parents.append(self)
        done = next((c for c in self.children if c.is_completed), None)
        if done is not None:
            self._complete(done)

    def _on_child_done(self, child: Task) -> None:
        self._complete(child)


class RetryableTask(Task):
    """Re-runs a failed activity or sub-orchestration after durable back-off timers.

    ``start_attempt`` schedules one attempt; ``schedule_delay`` is asked, after a
    failure, for a timer task to wait on, or returns None when retries are exhausted.
    """

    __slots__ = ("_attempt", "_current", "_schedule_delay", "_start_attempt")

    def __init__(
        self,
        start_attempt: Callable[[], Task],
        schedule_delay: Callable[[int, Task], Task | None],
    ) -> None:
        super().__init__()
        self._start_attempt = start_attempt
        self._schedule_delay = schedule_delay
        self._attempt = 1
        self._current: Task | None = None
        self._begin(start_attempt())

    def _begin(self, task: Task) -> None:
        self._current = task
        task._parents.append(self)
        if task.is_completed:
            self._on_child_done(task)

    def _on_child_done(self, child: Task) -> None:
        if child is not self._current or self.is_completed:
            return
        if not child.is_faulted:
            if isinstance(child, TimerTask):
                self._begin(self._start_attempt())
            else:
                self._complete(child._result)
            return
        assert child.exception is not None
        delay = self._schedule_delay(self._attempt, child)
        if delay is None:
            self._fail(child.exception)
            return
        self._attempt += 1
        self._begin(delay)


class CriticalSection:
    """Locks held on a set of entities; ``release()`` it, or use it in a ``with`` block.

    >>> with (yield context.lock([account_a, account_b])):  # doctest: +SKIP
    ...     balance = yield context.call_entity(account_a, "get")
    """

    def __init__(self, targets: list[str], release: Callable[[CriticalSection], None]) -> None:
        self.targets = list(targets)
        self._release = release
        self.is_held = True

    def release(self) -> None:
        """Release every lock of this section (the entities serve others again)."""
        if self.is_held:
            self.is_held = False
            self._release(self)

    def __enter__(self) -> CriticalSection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LockTask(CompletableTask):
    """Completes, once every entity granted its lock, with the CriticalSection."""

    __slots__ = ("section",)

    def __init__(self, task_id: int, section: CriticalSection) -> None:
        super().__init__(task_id, f"lock on {section.targets}")
        self.section = section

    def _complete(self, value: Any) -> None:
        super()._complete(self.section)
