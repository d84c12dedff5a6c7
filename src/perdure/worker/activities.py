"""Activity dispatch: lease tasks, run sync activities on threads and async ones on a loop,
report results in batches. Activities run at least once: a task whose worker died is
re-run when its lease expires, so use ``current_activity().idempotency_key``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perdure.errors import ValidationError
from perdure.model import codec
from perdure.model import events as ev
from perdure.observability import steps
from perdure.orchestration.durable_http import HTTP_ACTIVITY
from perdure.store.base import ActivityResult, ActivityWorkItem, Store
from perdure.worker.clock import Clock
from perdure.worker.http_activity import http_activity
from perdure.worker.pool import ElasticPool

log = logging.getLogger("perdure.worker")


@dataclass(frozen=True)
class ActivityContext:
    """Facts about the running activity, from :func:`current_activity`."""

    name: str
    instance_id: str
    execution_id: str
    task_id: int
    dequeue_count: int

    @property
    def idempotency_key(self) -> str:
        """Stable across re-runs of the same task: ``{instance_id}:{execution_id}:{task_id}``."""
        return f"{self.instance_id}:{self.execution_id}:{self.task_id}"


# The running work item; its ActivityContext is made only when asked for (most never are).
_current: contextvars.ContextVar[ActivityWorkItem | None] = contextvars.ContextVar(
    "perdure_activity", default=None
)


def current_activity() -> ActivityContext | None:
    """Inside an activity: its ActivityContext (instance, task ID, idempotency key); else None.

    >>> @app.activity
    ... def charge(order):
    ...     key = perdure.current_activity().idempotency_key  # doctest: +SKIP
    """
    item = _current.get()
    if item is None:
        return None
    return ActivityContext(
        item.name, item.instance_id, item.execution_id, item.task_id, item.dequeue_count
    )


class ActivityDispatcher:
    """Runs activities concurrently up to ``max_concurrency`` and commits results in batches."""

    def __init__(
        self,
        store: Store,
        activities: dict[str, Callable[..., Any]],
        clock: Clock,
        owner: str,
        *,
        max_concurrency: int = 128,
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.activities = activities
        self.clock = clock
        self.owner = owner
        self.max_concurrency = max_concurrency
        self.lease_seconds = lease_seconds
        self.results: queue.SimpleQueue[ActivityResult] = queue.SimpleQueue()
        self.in_flight: dict[int, ActivityWorkItem] = {}
        self._lock = threading.Lock()
        self._pool: ElasticPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self.on_result: Callable[[], None] = lambda: None
        self.on_completed: Callable[[], None] = lambda: None  # results committed
        # Results :meth:`flush` leaves queued, for another loop to commit more cheaply.
        self.claimable: Callable[[ActivityResult], bool] = lambda result: False
        self.on_kept: Callable[[], None] = lambda: None  # claimable results queued again
        self.flushed = 0  # results the last round's flush reported
        self.fetched_full = False  # the last fetch filled every free slot: more may wait
        self.executed = 0
        self._last_renew = time.monotonic()
        self._began: dict[int, float] = {}  # work item ID -> perf_counter at start
        self._async: dict[Callable[..., Any], bool] = {}  # activity function -> is async

    # one round -------------------------------------------------------------
    def tick(self, fetch: bool = True, flush: bool = True) -> int:
        """Report finished results (unless another loop takes them: ``flush=False``), renew
        leases, start new tasks; return work done."""
        done = self.flushed = self.flush() if flush else 0
        now = time.monotonic()
        if self.in_flight and now - self._last_renew > self.lease_seconds / 3:
            self._last_renew = now
            with self._lock:
                ids = list(self.in_flight)
            self.store.renew_activity_leases(self.owner, ids, self.lease_seconds)
        if not fetch:
            return done
        free = self.max_concurrency - len(self.in_flight)
        if free <= 0:
            self.fetched_full = True
            return done
        items = self.store.fetch_activity_work(self.owner, free, self.lease_seconds)
        self.fetched_full = len(items) == free
        self.accept(items)
        return done + len(items)

    def free_slots(self) -> int:
        """How many more activities could start now without exceeding ``max_concurrency``."""
        with self._lock:
            return max(0, self.max_concurrency - len(self.in_flight))

    def accept(self, items: list[ActivityWorkItem]) -> None:
        """Start tasks leased to this worker (fetched, or by the commit that scheduled them)."""
        with self._lock:
            for item in items:
                self.in_flight[item.id] = item
        jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        for item in items:
            job = self._start(item)
            if job is not None:
                jobs.append(job)
        if jobs:
            self._threads().submit_many(jobs)

    def flush(self) -> int:
        """Report every finished result (but the claimable ones) in one commit of its own."""
        batch = self.take_results()
        if not batch:
            return 0
        kept: list[ActivityResult] = []
        rest: list[ActivityResult] = []
        for r in batch:
            (kept if self.claimable(r) else rest).append(r)
        if kept:
            self.restore(kept)
            # A round that looked for results while this thread held them found none:
            # it must look again.
            self.on_kept()
        batch = rest
        if not batch:
            return 0
        try:
            self.store.complete_activities(self.owner, batch, self.clock.now())
        except Exception:
            self.restore(batch)
            raise
        self.reported(batch)
        self.on_completed()
        return len(batch)

    def take_results(self) -> list[ActivityResult]:
        """Every finished result not yet reported. The taker commits them, then calls
        :meth:`reported`, or :meth:`restore` if the commit failed."""
        batch: list[ActivityResult] = []
        while True:
            try:
                batch.append(self.results.get_nowait())
            except queue.Empty:
                return batch

    def restore(self, batch: list[ActivityResult]) -> None:
        """Keep results whose commit failed for the next attempt: nothing is lost."""
        for res in batch:
            self.results.put(res)

    def reported(self, batch: list[ActivityResult]) -> None:
        """Results committed: their slots are free."""
        with self._lock:
            for res in batch:
                self.in_flight.pop(res.item.id, None)

    # running ---------------------------------------------------------------
    def _start(
        self, item: ActivityWorkItem
    ) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """Start ``item`` if it is async or cannot run; else the job that runs it on a
        thread, for the caller to submit (with others, under one hold of the pool's lock)."""
        self._began[item.id] = time.perf_counter()
        fn = self.activities.get(item.name) or _BUILT_IN.get(item.name)
        if fn is None:
            missing = ValidationError(f"activity {item.name!r} is not registered in this app")
            self._report(item, None, missing, "")
            return None
        if self._is_async(fn):
            loop = self._ensure_loop()
            asyncio.run_coroutine_threadsafe(self._run_async(fn, item), loop)
            return None
        return contextvars.copy_context().run, (self._run_sync, fn, item)

    def _threads(self) -> ElasticPool:
        if self._pool is None:
            with self._lock:  # tasks start from the orchestration thread too
                if self._pool is None:
                    self._pool = ElasticPool(self.max_concurrency, "perdure-activity")
        return self._pool

    def _is_async(self, fn: Callable[..., Any]) -> bool:
        known = self._async.get(fn)
        if known is None:
            known = self._async[fn] = inspect.iscoroutinefunction(fn)
        return known

    def _run_sync(self, fn: Callable[..., Any], item: ActivityWorkItem) -> None:
        token = _current.set(item)
        try:
            value = fn(codec.decode(item.input))
        except BaseException as exc:
            self._report(item, None, exc, traceback.format_exc())
        else:
            self._report(item, value, None, "")
        finally:
            _current.reset(token)

    async def _run_async(self, fn: Callable[..., Any], item: ActivityWorkItem) -> None:
        token = _current.set(item)
        try:
            value = await fn(codec.decode(item.input))
        except BaseException as exc:
            self._report(item, None, exc, traceback.format_exc())
        else:
            self._report(item, value, None, "")
        finally:
            _current.reset(token)

    def _report(
        self, item: ActivityWorkItem, value: Any, exc: BaseException | None, tb: str
    ) -> None:
        now = self.clock.now()
        event: ev.HistoryEvent
        if exc is None:
            try:
                text = codec.encode(value, f"result of activity {item.name!r}")
            except Exception as err:
                exc, tb = err, ""
            else:
                event = ev.TaskCompleted(timestamp=now, task_scheduled_id=item.task_id, result=text)
        if exc is not None:
            failure = ev.FailureDetails(type(exc).__name__, str(exc), tb)
            event = ev.TaskFailed(timestamp=now, task_scheduled_id=item.task_id, failure=failure)
        self.executed += 1
        self.results.put(ActivityResult(item, event))
        steps.activity_done(item, event, time.perf_counter() - self._began.pop(item.id, 0.0))
        self.on_result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:  # tasks start from the orchestration thread too
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="perdure-async", daemon=True
                )
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(timeout=5)
            if not self._loop.is_running():
                self._loop.close()
            self._loop = None


_BUILT_IN: dict[str, Callable[..., Any]] = {HTTP_ACTIVITY: http_activity}
