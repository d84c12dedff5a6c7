"""Group commit: concurrent callers' writes go to the database together.

A durable write costs a round trip and a WAL flush whatever its size, so many small
writes from many threads (clients raising events, signalling entities) are cheaper
committed as one. Nothing waits to fill a batch: a caller that finds no batch in flight
runs at once, alone if alone; callers arriving meanwhile queue, and the next of them to
run takes the whole queue. Every caller returns only after its own write committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Slot(Generic[Req, Res]):
    """One caller's request; ``wake`` is held until the caller may go on (its request
    is settled, or it is to lead the next batch), so each caller is woken once, alone."""

    __slots__ = ("error", "lead", "request", "result", "wake")

    def __init__(self, request: Req, wait: bool) -> None:
        self.request = request
        self.lead = False
        self.result: Res | None = None
        self.error: BaseException | None = None
        # Only a caller that queues behind a batch waits; one that finds none in flight
        # leads at once and needs no lock (most calls, where callers seldom meet).
        self.wake: threading.Lock | None = None
        if wait:
            self.wake = threading.Lock()
            self.wake.acquire()


class GroupCommit(Generic[Req, Res]):
    """Run ``write(requests)`` for whatever callers of :meth:`submit` queued together.

    ``write`` gets the requests in arrival order and returns one result per request, in
    the same order, after committing them all, or raises, which every caller of that
    batch then raises (none of them was committed, or none is known to be).
    ``alone(request)``, if given, runs the requests of a batch that failed one by one,
    so that a request the database rejects fails only its own caller; ``alone_if(error)``
    says which errors allow it (never one that leaves unknown whether the batch
    committed: running its requests again could write them twice).

    >>> group = GroupCommit(lambda reqs: [r * 2 for r in reqs])
    >>> group.submit(21)
    42
    """

    def __init__(
        self,
        write: Callable[[list[Req]], Sequence[Res]],
        *,
        max_batch: int = 500,
        alone: Callable[[Req], Res] | None = None,
        alone_if: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._write = write
        self._alone = alone
        self._alone_if = alone_if
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[Req, Res]] = []
        self._running = False
        self.batches = 0  # batches written, and the requests in them: for tests and stats
        self.requests = 0

    def submit(self, request: Req) -> Res:
        with self._lock:
            alone = not self._running  # nothing in flight means nothing queued
            self._running = True
            slot: _Slot[Req, Res] = _Slot(request, wait=not alone)
            if not alone:
                self._queue.append(slot)
        batch = [slot]
        if slot.wake is not None:
            slot.wake.acquire()  # released once: settled, or made the next batch's leader
            if slot.lead:
                # Its own request first in line, then those who queued behind it.
                with self._lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
        if alone or slot.lead:
            try:
                self._run(batch)
            finally:
                self._hand_over(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _hand_over(self, batch: list[_Slot[Req, Res]]) -> None:
        """Make the first queued caller the next leader (or stop running), then wake the
        callers of ``batch``: the next write starts before this batch's callers resume."""
        with self._lock:
            if self._queue:
                nxt = self._queue[0]
                nxt.lead = True
                assert nxt.wake is not None  # every queued caller waits on its lock
                nxt.wake.release()
            else:
                self._running = False
        for s in batch:
            if s.wake is not None and not s.lead:  # a waiter; its leader woke already
                s.wake.release()

    def _run(self, batch: list[_Slot[Req, Res]]) -> None:
        """Write ``batch``, and settle each of its slots (a result or an error)."""
        try:
            results = self._write([s.request for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} wrote {len(results)} results")
        except BaseException as exc:
            if (
                self._alone is None
                or len(batch) == 1
                or not isinstance(exc, Exception)
                or not self._alone_if(exc)
            ):
                for s in batch:
                    s.error = exc
            else:
                for s in batch:
                    try:
                        s.result = self._alone(s.request)
                    except Exception as one:
                        s.error = one
        else:
            for s, r in zip(batch, results, strict=True):
                s.result = r
        self.batches += 1
        self.requests += len(batch)
