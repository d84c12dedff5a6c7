"""App: the registry of orchestrators and activities, wired to a store, a worker and clients."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from perdure.client import DurableOrchestrationClient, SyncClient
from perdure.errors import ValidationError
from perdure.registry import Registry
from perdure.store import open_store
from perdure.store.base import Store
from perdure.worker.clock import Clock, SystemClock
from perdure.worker.worker import Worker

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STORE = "sqlite:///perdure.db"
_HUB_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,44}$")


class App:
    """A perdure application.

    Args:
        store: a store URL (``sqlite:///path.db``, ``postgresql://...``) or a Store;
            default ``$PERDURE_STORE`` or ``./perdure.db``.
        hub: the task hub name isolating this app's instances (default
            ``$PERDURE_HUB`` or "default").
        clock: time source (perdure.testing passes a virtual clock).
        worker_options: passed to :class:`perdure.worker.worker.Worker`
            (``max_concurrent_activities``, ``lease_seconds``, ...).

    >>> app = perdure.App()
    >>> @app.activity
    ... def say_hello(city: str) -> str:
    ...     return f"Hello {city}!"
    """

    def __init__(
        self,
        store: str | Store | None = None,
        hub: str | None = None,
        *,
        clock: Clock | None = None,
        **worker_options: Any,
    ) -> None:
        hub = hub or os.environ.get("PERDURE_HUB") or "default"
        if not _HUB_RE.match(hub):
            raise ValidationError(
                f"task hub name {hub!r} must start with a letter and hold 1-45 letters, "
                "digits, '-' or '_'"
            )
        self.hub = hub
        self._store_spec = store
        self._store: Store | None = None
        self.clock = clock or SystemClock()
        self.registry = Registry()
        self.worker_options = worker_options
        self._worker: Worker | None = None
        self._sync_client: SyncClient | None = None
        self._lock = threading.Lock()
        # (path, methods, handler, anonymous) from @app.route; served by perdure.http.
        self.http_routes: list[tuple[str, list[str], Callable[..., Any], bool]] = []

    # registration ----------------------------------------------------------
    @overload
    def orchestrator(self, fn: F) -> F: ...
    @overload
    def orchestrator(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def orchestrator(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Register a generator function as an orchestrator (``@app.orchestrator``)."""

        def register(f: F) -> F:
            self.registry.add_orchestrator(f, name)
            return f

        return register(fn) if fn is not None else register

    @overload
    def activity(self, fn: F) -> F: ...
    @overload
    def activity(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def activity(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Register a function (sync or async) as an activity (``@app.activity``)."""

        def register(f: F) -> F:
            self.registry.add_activity(f, name)
            return f

        return register(fn) if fn is not None else register

    @overload
    def entity(self, fn: F) -> F: ...
    @overload
    def entity(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def entity(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Register an entity function taking an EntityContext (``@app.entity``).

        Entity names are case-insensitive; address one with ``perdure.EntityId(name, key)``.
        """

        def register(f: F) -> F:
            self.registry.add_entity(f, name)
            return f

        return register(fn) if fn is not None else register

    # wiring ----------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
        with self._lock:
            if self._store is None:
                spec = self._store_spec or os.environ.get("PERDURE_STORE") or DEFAULT_STORE
                self._store = open_store(spec, self.hub) if isinstance(spec, str) else spec
            return self._store

    def sync_client(self) -> SyncClient:
        """A client with blocking methods, for scripts."""
        with self._lock:
            existing = self._sync_client
        if existing is None:
            existing = SyncClient(
                self.store, self.registry.orchestrators, self.clock, self.registry.entities
            )
            with self._lock:
                self._sync_client = self._sync_client or existing
        return self._sync_client or existing

    def client(self) -> DurableOrchestrationClient:
        """The async client (azure-functions-durable method names)."""
        return DurableOrchestrationClient(self.sync_client())

    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = Worker(
                self.store,
                self.registry.orchestrators,
                self.registry.activities,
                entities=self.registry.entities,
                clock=self.clock,
                **self.worker_options,
            )
        return self._worker

    @contextmanager
    def running(self) -> Iterator[App]:
        """Run a worker on background threads for the duration of the block.

        >>> with app.running():                                   # doctest: +SKIP
        ...     client = app.sync_client()
        ...     client.wait_for_completion(client.start_new("hello_cities"))
        """
        worker = self.worker()
        worker.start()
        try:
            yield self
        finally:
            worker.stop()

    def run(self) -> None:
        """Run a worker until SIGINT or SIGTERM, then drain gracefully."""
        stop = threading.Event()
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            with self.running():
                stop.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        if self._worker is not None and self._worker.running:
            self._worker.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    # HTTP ------------------------------------------------------------------
    def route(
        self, path: str, methods: list[str] | None = None, *, anonymous: bool = False
    ) -> Callable[[F], F]:
        """Register an HTTP handler ``handler(request, client)`` served by ``perdure serve``.

        The handler (sync or async) gets the Starlette request and a
        :class:`perdure.http.DurableHttpClient`, and returns a Response or a JSON value.
        Like a Durable Functions HTTP trigger with function-level auth, it needs the API
        key unless ``anonymous=True``.

        >>> @app.route("/orders", methods=["POST"])                     # doctest: +SKIP
        ... async def kick_off(request, client):
        ...     instance_id = await client.start_new("process_order", None, await request.json())
        ...     return client.create_check_status_response(request, instance_id)
        """
        if not path.startswith("/"):
            raise ValidationError(f"route path {path!r} must start with '/'")

        def register(f: F) -> F:
            self.http_routes.append((path, [m.upper() for m in methods or ["GET"]], f, anonymous))
            return f

        return register
