"""Threads for sync activities that grow only when jobs wait behind blocked ones.

A thread pool that wakes a thread per job pays a thread switch (and a fight for the GIL
with the orchestration loop) on every activity; most activities are short, and one
thread running them back to back does the same work with less of that. A job goes to a
sleeping (or new) thread only when no thread is running one; else it waits for a
running thread to come back for it. Blocking jobs (an HTTP call, a sleep) still get a
thread each: when jobs wait and every running job has run for ``stall`` seconds, the
pool wakes or starts a thread per waiting job, up to ``max_threads``. ``stall`` is well
above the GIL's switch interval (5 ms), so a thread kept from the GIL is not taken for a
blocked one. A thread idle for ``idle_seconds`` exits, all but the last.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("perdure.worker")

Job = tuple[Callable[..., Any], tuple[Any, ...]]


class ElasticPool:
    """Run ``submit``-ted callables on at most ``max_threads`` daemon threads.

    >>> pool = ElasticPool(4, "demo")
    >>> done = threading.Event()
    >>> pool.submit(done.set)
    >>> done.wait(5)
    True
    >>> pool.shutdown(wait=True)
    """

    def __init__(
        self,
        max_threads: int,
        name: str,
        *,
        stall: float = 0.01,
        idle_seconds: float = 10.0,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self.max_threads = max_threads
        self.name = name
        self.stall = stall
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # idle threads wait here
        self._watch = threading.Condition(self._lock)  # the stall watcher waits here
        self._jobs: deque[Job] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._notified = 0  # of those, notified and not yet back
        self._starting = 0  # threads started that have not yet taken the lock
        self._running: dict[threading.Thread, float] = {}  # thread -> its job's start
        self._watcher: threading.Thread | None = None
        self._watcher_asleep = False  # in its untimed wait: no job queued when it looked
        self._closed = False
        self._numbers = itertools.count(1)  # thread names
        self.peak_threads = 0  # the most threads alive at once: for tests and stats

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; an exception it raises is logged, never lost silently."""
        self.submit_many([(fn, args)])

    def submit_many(self, jobs: list[Job]) -> None:
        """Queue each ``(fn, args)`` of ``jobs``, in order, under one hold of the lock."""
        if not jobs:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError(f"pool {self.name!r} is shut down")
            self._jobs.extend(jobs)
            if not self._running and self._notified + self._starting == 0:
                # Nobody running will come back for them: hand them to a thread now.
                # (No thread is running, coming or busy, so any thread is idle and gets
                # woken; starting one fails only when there is none.) One thread: the
                # watcher adds more if their jobs block.
                try:
                    self._wake_or_start(1)
                except RuntimeError:
                    for _ in jobs:
                        self._jobs.pop()  # not queued: the caller learns it
                    raise
            elif self._watcher_asleep:
                # A running thread takes them when its job ends, unless that job blocks:
                # the watcher (started with the first thread) sees to that.
                self._watch.notify()

    def shutdown(self, wait: bool) -> None:
        """Stop taking jobs. ``wait``: run the queued ones and join the threads; else drop
        the queued ones (running jobs finish on their daemon threads)."""
        with self._lock:
            self._closed = True
            if not wait:
                self._jobs.clear()
            self._work.notify_all()
            self._watch.notify_all()
            threads = [*self._threads, *([self._watcher] if self._watcher else [])]
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join()

    # inside the lock ----------------------------------------------------------
    def _wake_or_start(self, wanted: int) -> None:
        if wanted <= 0:
            return
        wake = min(wanted, self._idle - self._notified)
        for _ in range(wake):
            self._notified += 1
            self._work.notify()
        start = min(wanted - wake, self.max_threads - len(self._threads))
        if start > 0 and self._watcher is None:
            self._start_watcher()
        for _ in range(start):
            thread = threading.Thread(
                target=self._run, name=f"{self.name}-{next(self._numbers)}", daemon=True
            )
            self._starting += 1
            self._threads.append(thread)
            try:
                thread.start()
            except RuntimeError:  # out of threads (a process limit): counted as never begun
                self._starting -= 1
                self._threads.remove(thread)
                raise
            self.peak_threads = max(self.peak_threads, len(self._threads))

    def _start_watcher(self) -> None:
        watcher = threading.Thread(
            target=self._watch_stalls, name=f"{self.name}-watch", daemon=True
        )
        watcher.start()  # may raise: then no thread starts either, and this is tried again
        self._watcher = watcher

    # threads -----------------------------------------------------------------
    def _run(self) -> None:
        me = threading.current_thread()
        with self._lock:
            self._starting -= 1
            while True:
                while not self._jobs and not self._closed:
                    self._idle += 1
                    notified = self._work.wait(self.idle_seconds)
                    self._idle -= 1
                    # Any return takes one notice: a notify that meets a wait timing out
                    # wakes that thread though the wait reports a timeout, and a notice
                    # never taken would count a thread as coming forever.
                    if self._notified:
                        self._notified -= 1
                    if not notified and not self._jobs and len(self._threads) > 1:
                        self._threads.remove(me)
                        return
                if not self._jobs:  # closed, nothing left to run
                    self._threads.remove(me)
                    return
                fn, args = self._jobs.popleft()
                self._running[me] = time.monotonic()
                self._lock.release()
                try:
                    fn(*args)
                except BaseException:
                    log.exception("a job of pool %r raised", self.name)
                finally:
                    self._lock.acquire()
                    del self._running[me]

    def _watch_stalls(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._jobs:
                    self._watcher_asleep = True
                    self._watch.wait()
                    self._watcher_asleep = False
                    continue
                coming = self._notified + self._starting  # woken, not yet scheduled
                if not self._running and coming:
                    self._watch.wait(self.stall)
                    continue
                age = time.monotonic() - max(self._running.values(), default=0.0)
                if self._running and age < self.stall:
                    self._watch.wait(self.stall - age)
                    continue
                # Jobs wait and every running job has run a whole stall: those threads
                # are held. One more thread per waiting job, then watch again.
                try:
                    self._wake_or_start(len(self._jobs) - coming)
                except RuntimeError:
                    log.warning("pool %r could not start a thread; trying again", self.name)
                self._watch.wait(self.stall)
