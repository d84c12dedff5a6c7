"""The worker: orchestration and activity loops on threads, woken by commits, timers and
other processes; takes over the leases of dead workers on the same host; drains on stop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from perdure.store.base import (
    MESSAGES_PER_FETCH,
    ActivityResult,
    OrchestrationWorkItem,
    Store,
    check_message_limit,
)
from perdure.worker.activities import ActivityDispatcher
from perdure.worker.cache import RuntimeCache
from perdure.worker.clock import Clock, SystemClock
from perdure.worker.orchestrations import OrchestrationDispatcher

log = logging.getLogger("perdure.worker")

_IDLE_POLL = 1.0  # safety-net poll while idle, seconds
# While clients in this process commit a stream of messages (two or more since the last
# round), wait this long before fetching so one round takes many of them: a round costs
# far more than a message, and the pause hands the GIL to the clients. A lone client
# commit (a start on an idle worker) is fetched at once.
_LINGER = 0.005  # 2 ms gave W7 (entity signals) 10-15 % less throughput on both stores


def new_owner_id() -> str:
    """``host:pid:random`` so a worker on the same host can tell when the owner died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (killed but not yet reaped) still answers signal 0.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


class Worker:
    """Runs orchestrations and activities from ``store`` until stopped.

    >>> worker = Worker(store, orchestrators, activities)  # doctest: +SKIP
    >>> worker.start(); ...; worker.stop()                 # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        orchestrators: dict[str, Callable[..., Any]],
        activities: dict[str, Callable[..., Any]],
        *,
        entities: dict[str, Callable[..., Any]] | None = None,
        clock: Clock | None = None,
        max_concurrent_activities: int = 128,
        orchestration_batch_size: int = 100,
        max_messages_per_episode: int = MESSAGES_PER_FETCH,
        lease_seconds: float = 30.0,
        cache_size: int = 10_000,
        drain_seconds: float = 30.0,
    ) -> None:
        check_message_limit(max_messages_per_episode, "max_messages_per_episode")
        self.store = store
        self.clock = clock or SystemClock()
        self.owner = new_owner_id()
        self.drain_seconds = drain_seconds
        self.orchestrations = OrchestrationDispatcher(
            store,
            orchestrators,
            self.clock,
            self.owner,
            batch_size=orchestration_batch_size,
            # An instance's messages beyond this (a burst of entity signals) wait for the
            # next rounds, so that instances fetched with it are not held up behind them.
            message_limit=max_messages_per_episode,
            lease_seconds=lease_seconds,
            # ~3 KB per live instance: 10,000 cost ~30 MB and spare a timer storm or an
            # event wave on that many instances their replays.
            cache=RuntimeCache(cache_size),
            entities=entities,
        )
        self.activities = ActivityDispatcher(
            store,
            activities,
            self.clock,
            self.owner,
            max_concurrency=max_concurrent_activities,
            lease_seconds=lease_seconds,
        )
        self._orch_wake = threading.Event()
        self._act_wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Hints say a fetch may find work. The dispatchers raise them precisely after their
        # own commits, so a worker does not query the store for work it knows is not there.
        self._orch_hint = True
        # Finished activities, or starts by clients of this process, wait for the loop.
        self._orch_local = False
        self._last_fetch = time.monotonic()
        self._act_hint = True
        self._client_commits = 0
        self._orch_busy = False  # the orchestration loop is in a round
        # The earliest future message (next timer) as last read, until something may have
        # added an earlier one: this process's timers, a client, another process, or the
        # idle poll (which bounds what any missed change can cost).
        self._next_due: datetime | None = None
        self._next_due_known = False
        self.activities.on_result = self._on_activity_result
        self.activities.on_completed = self._wake_orchestrations
        self.activities.claimable = self._claimable
        self.activities.on_kept = self._wake_for_local_work
        self.orchestrations.take_results = self.activities.take_results
        self.orchestrations.on_results_committed = self._on_results_committed
        self.orchestrations.on_results_failed = self._on_results_returned
        self.orchestrations.on_new_tasks = self._wake_activities
        self.orchestrations.task_slots = self._task_slots
        self.orchestrations.on_tasks_taken = self.activities.accept
        self.orchestrations.on_new_messages = self._wake_orchestrations
        self.orchestrations.on_new_timers = self._forget_next_due
        store.add_listener(self._on_store_commit)
        store.add_start_listener(self._on_local_start)
        on_change = getattr(self.clock, "on_change", None)
        if on_change is not None:
            on_change(self.wake)

    def wake(self) -> None:
        """Something outside the dispatchers may have added work: look for it now."""
        self._forget_next_due()
        self._wake_orchestrations()
        self._wake_activities()

    def _task_slots(self, freed: int) -> int:
        # Only a running worker takes tasks in its commits; a draining one leaves them.
        if self._stopping.is_set() or not self._threads:
            return 0
        return self.activities.free_slots() + freed

    def _wake_orchestrations(self) -> None:
        self._orch_hint = True
        _set(self._orch_wake)

    def _wake_activities(self) -> None:
        self._act_hint = True
        _set(self._act_wake)

    def _on_activity_result(self) -> None:
        # An idle orchestration loop takes results in its next round: a live orchestration
        # runs on them at once (a claim), any other result rides that round's fetch; one
        # transaction instead of two either way. While it is busy with a round (or has
        # stopped), the activity loop reports them itself, in parallel, so a stream of
        # results does not wait for rounds. A round woken only by results asks the store
        # for no other work unless a fetch is due (see _fetch_due).
        self._wake_for_local_work()
        if self._activities_report():
            _set(self._act_wake)

    def _wake_for_local_work(self) -> None:
        self._orch_local = True
        _set(self._orch_wake)

    def _on_results_returned(self, results: list[ActivityResult]) -> None:
        # Not committed (a failed commit, a refused claim): kept for the next round,
        # which is due now, not at the next poll.
        self.activities.restore(results)
        self._wake_for_local_work()

    def _claimable(self, result: ActivityResult) -> bool:
        """Whether the activity loop leaves a result to the orchestration loop even while
        that is busy: its orchestration is live in the cache, so the next round claims it
        in the episode's own commit, one transaction per step instead of two, and no
        fetch. On PostgreSQL too: committing it beside the round instead (to the inbox,
        then fetched) made W1 18-20 % slower once a step's history became one row."""
        return (
            not self._stopping.is_set()
            and self.orchestrations.holds(result.item.instance_id, result.item.execution_id)
        )

    def _activities_report(self) -> bool:
        """Whether the activity loop commits finished results itself (see above)."""
        return self._orch_busy or self._stopping.is_set()

    def _on_results_committed(self, results: list[ActivityResult]) -> None:
        self.activities.reported(results)
        _set(self._act_wake)  # slots are free: a hinted activity loop may fetch now

    def _on_store_commit(self) -> None:
        # Commits by the dispatch loops signal exactly what they added. Anything else is a
        # client in this process starting, raising, signalling, terminating: orchestration
        # work only (a client never adds activity tasks), so the activity loop is left be.
        # Nor does a client add a message visible later (timers come from orchestrations),
        # so the earliest due time the loop knows stays true: no query for it per round.
        if not self._own_thread():
            self._client_commits += 1
            self._wake_orchestrations()

    def _on_local_start(self, item: OrchestrationWorkItem) -> bool:
        # A client in this process created an instance: a running worker starts it in its
        # next round without fetching it (a fetch is a transaction of its own). Its own
        # loops never create instances this way.
        if not self.running or self._own_thread():
            return False
        if not self.orchestrations.offer_start(item):
            return False
        self._wake_for_local_work()
        return True

    def _own_thread(self) -> bool:
        return threading.current_thread() in self._threads or self.orchestrations.committing

    def _forget_next_due(self) -> None:
        self._next_due_known = False

    # lifecycle -------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self.recover_dead_owners()
        for name, target in (
            ("perdure-orchestrations", self._orchestration_loop),
            ("perdure-activities", self._activity_loop),
            ("perdure-watch", self._watch_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop fetching; let in-flight activities finish (up to ``drain_seconds``) and report
        them; release whatever is still leased so another worker takes it at once."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=self.drain_seconds + 5)
        self._threads.clear()
        self.activities.shutdown(wait=False)
        try:
            self.activities.flush()
        except Exception:
            log.exception("could not report finished activities on shutdown")
        try:
            self.store.release_owner(self.owner)
        except Exception:
            log.exception("could not release leases on shutdown")

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stopping.is_set()

    # loops -----------------------------------------------------------------
    def _orchestration_loop(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            self._orch_wake.clear()
            hinted, self._orch_hint = self._orch_hint, False
            local, self._orch_local = self._orch_local, False
            if local and not hinted:
                hinted = self._fetch_due()
            handled = 0
            if hinted or local:
                streaming, self._client_commits = self._client_commits >= 2, 0
                if streaming and hinted:
                    self._stopping.wait(_LINGER)
                self._orch_busy = True
                if hinted:
                    self._last_fetch = time.monotonic()
                try:
                    handled = self.orchestrations.tick(fetch=hinted, overlap=True)
                except Exception:
                    backoff = self._after_round_failed("orchestration dispatch", backoff)
                    continue
                finally:
                    self._orch_busy = False
                backoff = 0.05
                if self.orchestrations.starts_waiting:
                    self._wake_for_local_work()  # more starts came than one round takes
                if self.orchestrations.fetched_full:
                    self._orch_hint = True  # a full batch: more may be waiting
                    continue
            if self.orchestrations.pending and (not handled or not self._orch_wake.is_set()):
                # Nothing new to run beside it: settle the round's commit (it hands out
                # the tasks it leased) rather than sleep or spin on results held for it;
                # those then need a round.
                try:
                    self.orchestrations.flush()
                except Exception:
                    backoff = self._after_round_failed("orchestration commit", backoff)
                    continue
                if self.orchestrations.pending:
                    self._orch_local = True
                continue
            if not self._orch_wake.wait(self._idle_wait()):
                self._orch_hint = True  # timer due, or the safety-net poll
                self._forget_next_due()
        try:
            self.orchestrations.close()
        except Exception:
            log.exception("could not commit the last orchestration round on shutdown")

    def _after_round_failed(self, what: str, backoff: float) -> float:
        """Log the failure, look for work again after ``backoff``; the next backoff."""
        log.exception("%s failed; retrying in %.2fs", what, backoff)
        self._orch_hint = True
        self._stopping.wait(backoff)
        return min(backoff * 2, 5.0)

    def _fetch_due(self) -> bool:
        """Whether a round woken only by results must still fetch: a stream of them never
        lets the loop sleep, so the timeout that fires a due timer (or the safety-net
        poll) never runs out; look at the clock instead."""
        if time.monotonic() - self._last_fetch >= _IDLE_POLL:
            return True
        if not self._next_due_known:
            self._idle_wait()  # reads the earliest future message's time
        due = self._next_due if self._next_due_known else None
        if due is not None and due <= self.clock.now():
            self._forget_next_due()
            return True
        return False

    def _idle_wait(self) -> float:
        now = self.clock.now()
        due = self._next_due
        if not self._next_due_known or (due is not None and due <= now):
            self._next_due_known = True  # before the read: a change during it forgets
            try:
                due = self._next_due = self.store.next_visible_at(now)
            except Exception:
                self._next_due_known = False
                return _IDLE_POLL
        if due is None:
            return _IDLE_POLL
        if isinstance(self.clock, SystemClock):
            return max(0.0, min(_IDLE_POLL, (due - now).total_seconds()))
        return _IDLE_POLL  # a virtual clock wakes us through on_change

    def _activity_loop(self) -> None:
        backoff = 0.05
        deadline: float | None = None
        while True:
            stopping = self._stopping.is_set()
            if stopping and deadline is None:
                deadline = time.monotonic() + self.drain_seconds
            if stopping and (not self.activities.in_flight or time.monotonic() > (deadline or 0)):
                return
            self._act_wake.clear()
            hinted, self._act_hint = self._act_hint, False
            report = self._activities_report()
            try:
                self.activities.tick(fetch=hinted and not stopping, flush=report)
            except Exception:
                log.exception("activity dispatch failed; retrying in %.2fs", backoff)
                self._act_hint = True
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            if hinted and self.activities.fetched_full and not stopping:
                # Every free slot was filled: more tasks may wait once slots free up.
                self._act_hint = True
            if report and self.activities.flushed and not self.activities.results.empty():
                continue
            wait = self.activities.lease_seconds / 3 if self.activities.in_flight else _IDLE_POLL
            if not self._act_wake.wait(min(wait, 0.2) if stopping else wait):
                self._act_hint = True  # the safety-net poll

    def _watch_loop(self) -> None:
        last_recovery = time.monotonic()
        while not self._stopping.is_set():
            try:
                if self.store.wait_for_change(0.5):
                    self.wake()
            except Exception:
                log.exception("store watch failed")
                self._stopping.wait(1.0)
            if time.monotonic() - last_recovery > 2.0:
                last_recovery = time.monotonic()
                self.recover_dead_owners()
                try:
                    self.store.maintain()
                except Exception:
                    log.warning("store housekeeping failed", exc_info=True)

    def recover_dead_owners(self) -> int:
        """Release leases held by workers on this host whose process no longer exists."""
        try:
            dead = [o for o in self.store.lock_owners() if _owner_is_dead(o)]
            released = sum(self.store.release_owner(o) for o in dead)
        except Exception:
            log.exception("could not check for dead workers")
            return 0
        if released:
            log.warning("took over %d lease(s) from dead worker(s) %s", released, dead)
            self.wake()
        return released

    def run_until_idle(self) -> int:
        """Synchronous rounds until no work is left (for tests on a virtual clock)."""
        total = 0
        while True:
            n = self.orchestrations.tick()
            n += self.activities.tick()
            total += n
            if n == 0 and not self.activities.in_flight:
                return total
            if n == 0:
                time.sleep(0.001)


def _set(wake: threading.Event) -> None:
    """Set ``wake`` unless it is set: a loop clears its event before it reads the flags
    and hints that say what to do, so a set event already covers a flag raised since.
    Every finished activity wakes both loops; most find them awake already."""
    if not wake.is_set():
        wake.set()
