"""Time for the worker: the system clock, or a virtual one that tests move by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """UTC wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to; used by :mod:`perdure.testing`.

    >>> clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(hours=72))
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward and wake anything waiting on timers."""
        with self._lock:
            self._now += delta
            now = self._now
        for listener in self._listeners:
            listener()
        return now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = max(self._now, when)
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
