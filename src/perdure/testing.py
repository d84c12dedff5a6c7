"""Test your orchestrations in-process, with the real engine and store, on a virtual clock.

A 72-hour escalation or a two-minute polling monitor runs in milliseconds:

>>> from perdure.testing import DurableTestEnvironment
>>> with DurableTestEnvironment(app) as env:                       # doctest: +SKIP
...     instance_id = env.client.start_new("approval", client_input=order)
...     env.run_until_idle()                  # runs until it waits on the timer/event
...     env.advance(timedelta(hours=72))      # fires the timer
...     assert env.client.get_status(instance_id).output == "escalated"
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from perdure.app import App
from perdure.client import DurableOrchestrationClient, SyncClient
from perdure.errors import TimeoutError
from perdure.model.status import TERMINAL_STATUSES, DurableOrchestrationStatus
from perdure.store.sqlite.store import SqliteStore
from perdure.worker.clock import VirtualClock
from perdure.worker.worker import Worker

__all__ = ["DurableTestEnvironment", "VirtualClock"]


class DurableTestEnvironment:
    """The app's orchestrators and activities on a throw-away SQLite store and a virtual clock.

    Work runs only when you call :meth:`run_until_idle`, :meth:`advance` or
    :meth:`wait_for_completion` (which skips time to the next timer), so a test
    controls every step.

    Args:
        app: the App whose functions (and worker options, such as
            ``max_messages_per_episode``) to run; its own store is not touched.
        start: the virtual clock's start time (default 2026-01-01 UTC).
        path: SQLite file to use (default: a new temporary directory, removed on close).
    """

    def __init__(self, app: App, start: datetime | None = None, path: str | None = None) -> None:
        self.clock = VirtualClock(start or datetime(2026, 1, 1, tzinfo=UTC))
        self._tmp = None if path else tempfile.mkdtemp(prefix="perdure-test-")
        db = path or str(Path(self._tmp or ".") / "perdure-test.db")
        self.store = SqliteStore(db, hub=app.hub)
        self.worker = Worker(
            self.store,
            app.registry.orchestrators,
            app.registry.activities,
            entities=app.registry.entities,
            clock=self.clock,
            **app.worker_options,
        )
        self.client = SyncClient(
            self.store, app.registry.orchestrators, self.clock, app.registry.entities
        )

    def async_client(self) -> DurableOrchestrationClient:
        return DurableOrchestrationClient(self.client)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def run_until_idle(self) -> int:
        """Run orchestrations and activities until nothing is left to do at the current time."""
        return self.worker.run_until_idle()

    def advance(self, delta: timedelta) -> datetime:
        """Move the virtual clock forward (firing due timers on the way) and run until idle."""
        target = self.clock.now() + delta
        while True:
            self.run_until_idle()
            due = self.store.next_visible_at(self.clock.now())
            if due is None or due > target:
                break
            self.clock.set(due)
        self.clock.set(target)
        self.run_until_idle()
        return target

    def wait_for_completion(
        self, instance_id: str, max_time: timedelta = timedelta(days=365)
    ) -> DurableOrchestrationStatus:
        """Run, skipping virtual time from timer to timer, until the instance finishes.

        Raises:
            TimeoutError: it is still waiting (e.g. for an event) with no timer left,
                or ``max_time`` of virtual time passed.
        """
        limit = self.clock.now() + max_time
        while True:
            self.run_until_idle()
            status = self.client.get_status(instance_id)
            if status is not None and status.runtime_status in TERMINAL_STATUSES:
                return status
            due = self.store.next_visible_at(self.clock.now())
            if due is None or due > limit:
                state = status.runtime_status.value if status else "missing"
                raise TimeoutError(
                    f"instance {instance_id!r} is {state} and waits for something other "
                    "than a timer (an external event?)"
                )
            self.clock.set(due)

    def close(self) -> None:
        self.worker.activities.shutdown(wait=True)
        self.store.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DurableTestEnvironment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
