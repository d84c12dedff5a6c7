"""The orchestration client: start, query, raise, terminate, suspend/resume, rewind, purge, wait.

``DurableOrchestrationClient`` has the azure-functions-durable SDK's async methods;
``SyncClient`` is the same client for scripts. Both are thin faces over one core.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from perdure.entities.executor import EntityRecord
from perdure.errors import (
    InstanceFinishedError,
    InstanceNotFoundError,
    InstanceStateError,
    TimeoutError,
    ValidationError,
)
from perdure.model import codec
from perdure.model import events as ev
from perdure.model.entity_id import EntityId
from perdure.model.history_view import history_view
from perdure.model.ids import new_instance_id, validate_instance_id, validate_name
from perdure.model.status import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    DurableOrchestrationStatus,
    OrchestrationRuntimeStatus,
    PurgeHistoryResult,
    parse_status,
)
from perdure.observability import tracing
from perdure.orchestration.context import function_name
from perdure.store.base import InstanceQuery, InstanceRecord, Message, NewInstance, Store
from perdure.worker.clock import Clock, SystemClock

Status = OrchestrationRuntimeStatus
_ANY_STATUS = frozenset(Status)


class _Waiter:
    """One wait on some instances: set when a commit of this process finishes any of them,
    remembering which."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._finished: list[str] = []

    def hit(self, instance_id: str) -> None:
        with self._lock:
            self._finished.append(instance_id)
        self.event.set()

    def take(self) -> list[str]:
        """The instances finished since the last take (clear ``event`` first)."""
        with self._lock:
            out, self._finished = self._finished, []
        return out


class _Finishes:
    """Wakes the waiters of an instance when a commit of this process finishes it (the
    store's finish listener), so a wait does not re-read the status on every commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[_Waiter]] = {}

    def watch(self, instance_ids: Iterable[str]) -> _Waiter:
        waiter = _Waiter()
        with self._lock:
            for instance_id in instance_ids:
                self._waiters.setdefault(instance_id, []).append(waiter)
        return waiter

    def unwatch(self, instance_ids: Iterable[str], waiter: _Waiter) -> None:
        with self._lock:
            for instance_id in instance_ids:
                waiters = self._waiters.get(instance_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(instance_id, None)

    def notify(self, instance_ids: Sequence[str]) -> None:
        with self._lock:
            if not self._waiters:
                return
            hits = [(w, i) for i in instance_ids for w in self._waiters.get(i, ())]
        for waiter, instance_id in hits:
            waiter.hit(instance_id)


def _statuses(value: Any) -> frozenset[Status] | None:
    if value is None:
        return None
    if isinstance(value, (str, Status)):
        value = [value]
    return frozenset(parse_status(v) for v in value)


class SyncClient:
    """Manage orchestration instances from a script.

    >>> client = app.sync_client()                          # doctest: +SKIP
    >>> instance_id = client.start_new("hello_cities")      # doctest: +SKIP
    >>> client.wait_for_completion(instance_id).output      # doctest: +SKIP
    ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']
    """

    def __init__(
        self,
        store: Store,
        orchestrators: Iterable[str] | None = None,
        clock: Clock | None = None,
        entities: Iterable[str] | None = None,
    ) -> None:
        self.store = store
        self._known = orchestrators
        self._known_entities = entities
        self.clock = clock or SystemClock()
        self._finishes = _Finishes()
        store.add_finish_listener(self._finishes.notify)

    # starting ----------------------------------------------------------------
    def start_new(
        self,
        orchestration_function_name: str | Callable[..., Any],
        instance_id: str | None = None,
        client_input: Any = None,
    ) -> str:
        """Start an orchestration; return its instance ID (a random GUID if none is given).

        Raises:
            ValidationError: bad instance ID, unknown orchestrator, or unserializable input.
            InstanceAlreadyExistsError: the ID belongs to a Pending/Running/Suspended instance.
        """
        name = function_name(orchestration_function_name)
        known = self._known
        if known is not None and len(known) and name not in known:  # type: ignore[arg-type]
            raise ValidationError(f"orchestrator {name!r} is not registered in this app")
        instance_id = (
            new_instance_id() if instance_id is None else validate_instance_id(instance_id)
        )
        text = codec.encode(client_input, f"input of orchestration {name!r}")
        now = self.clock.now()
        start = ev.ExecutionStarted(
            timestamp=now,
            name=name,
            execution_id=uuid.uuid4().hex,
            input=text,
            trace_context=tracing.start_context(name, instance_id),
        )
        self.store.create_instance(NewInstance(start, instance_id, now), ACTIVE_STATUSES)
        return instance_id

    # queries -----------------------------------------------------------------
    def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus | None:
        """The instance's status, or None if no such instance exists."""
        record = self.store.get_instance(instance_id)
        if record is None:
            return None
        status = _to_status(record, show_input)
        if show_history and record.status is not Status.Pending:
            status.history = history_view(
                self.store.get_history(instance_id), show_output=show_history_output
            )
        return status

    def get_status_all(self) -> list[DurableOrchestrationStatus]:
        """Every instance in the task hub (all pages)."""
        return self.get_status_by()

    def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[Status | str] | Status | str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        """Instances matching the filters (all pages)."""
        query = InstanceQuery(created_time_from, created_time_to, _statuses(runtime_status))
        query.page_size = 1000
        out: list[DurableOrchestrationStatus] = []
        while True:
            records, token = self.store.query_instances(query)
            out.extend(_to_status(r, False) for r in records)
            if token is None:
                return out
            query.continuation_token = token

    def list_instances(
        self, query: InstanceQuery, show_input: bool = False
    ) -> tuple[list[DurableOrchestrationStatus], str | None]:
        """One page of instances and the continuation token of the next page."""
        records, token = self.store.query_instances(query)
        return [_to_status(r, show_input) for r in records], token

    # messages ----------------------------------------------------------------
    def _send(
        self, instance_id: str, event: ev.HistoryEvent, allowed: frozenset[Status], verb: str
    ) -> Status:
        validate_instance_id(instance_id)
        status = self.store.enqueue_if(Message(instance_id, event), allowed)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        if status not in allowed:
            error = InstanceFinishedError if status in TERMINAL_STATUSES else InstanceStateError
            raise error(
                instance_id,
                status.value,
                f"cannot {verb} instance {instance_id!r}: it is {status.value}",
            )
        return status

    def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        """Send event ``event_name`` to a Pending/Running/Suspended instance.

        Raises:
            ValidationError: empty event name or unserializable data.
            InstanceNotFoundError / InstanceFinishedError: nothing can receive it.
        """
        validate_name("event", event_name)
        text = codec.encode(event_data, f"data of event {event_name!r}")
        event = ev.EventRaised(timestamp=self.clock.now(), name=event_name, input=text)
        self._send(instance_id, event, ACTIVE_STATUSES, f"raise event {event_name!r} on")

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Stop an instance at its next step (running activities are not cancelled)."""
        event = ev.ExecutionTerminated(timestamp=self.clock.now(), reason=reason)
        self._send(instance_id, event, ACTIVE_STATUSES, "terminate")

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Pause an instance; events that arrive meanwhile are kept for when it resumes."""
        event = ev.ExecutionSuspended(timestamp=self.clock.now(), reason=reason)
        self._send(instance_id, event, ACTIVE_STATUSES, "suspend")

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance."""
        event = ev.ExecutionResumed(timestamp=self.clock.now(), reason=reason)
        self._send(instance_id, event, ACTIVE_STATUSES, "resume")

    def rewind(self, instance_id: str, reason: str | None = None) -> None:
        """Put a Failed instance back to Running; only the failed work runs again."""
        event = ev.ExecutionRewound(timestamp=self.clock.now(), reason=reason)
        self._send(instance_id, event, frozenset({Status.Failed}), "rewind")

    def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        """Start the same orchestrator again with the original input; return the new ID."""
        record = self.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        new_id = None if restart_with_new_instance_id else instance_id
        return self.start_new(record.name, new_id, codec.decode(record.input))

    # purge ---------------------------------------------------------------------
    def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        """Delete one instance and its history."""
        return PurgeHistoryResult(self.store.purge_instances([instance_id]))

    def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[Status | str] | Status | str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PurgeHistoryResult:
        """Delete finished (Completed, Failed, Terminated) instances matching the filters."""
        query = InstanceQuery(created_time_from, created_time_to, _statuses(runtime_status))
        return PurgeHistoryResult(self.store.purge_instances(query=query, progress=progress))

    # entities ------------------------------------------------------------------
    def signal_entity(
        self, entity_id: EntityId | Any, operation_name: str, operation_input: Any = None
    ) -> None:
        """Send a one-way operation to an entity (created on first use).

        >>> client.signal_entity(EntityId("counter", "a"), "add", 5)  # doctest: +SKIP
        """
        target = EntityId.coerce(entity_id)
        validate_name("operation", operation_name)
        known = self._known_entities
        if known is not None and len(known) and target.name not in known:  # type: ignore[arg-type]
            raise ValidationError(f"entity {target.name!r} is not registered in this app")
        text = codec.encode(
            operation_input, f"input of signal_entity({target}, {operation_name!r})"
        )
        request = ev.EntityRequest(timestamp=self.clock.now(), operation=operation_name, input=text)
        self.store.enqueue_if(Message(target.instance_id, request), _ANY_STATUS)

    def read_entity_state(self, entity_id: EntityId | Any) -> EntityStateResponse:
        """The entity's last committed state."""
        record = self.store.get_instance(EntityId.coerce(entity_id).instance_id)
        if record is None:
            return EntityStateResponse(False)
        entity = EntityRecord.from_json(record.custom_status, record.output)
        if not entity.exists:
            return EntityStateResponse(False)
        return EntityStateResponse(True, codec.decode(entity.state))

    def list_entities(
        self,
        entity_name: str | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        fetch_state: bool = True,
    ) -> tuple[list[EntityStatus], str | None]:
        """One page of entities (optionally of one name) and the next page's token."""
        prefix = "@" if not entity_name else f"@{entity_name.lower()}@"
        query = InstanceQuery(instance_id_prefix=prefix, page_size=page_size)
        query.continuation_token = continuation_token
        records, token = self.store.query_instances(query)
        out = []
        for r in records:
            entity = EntityRecord.from_json(r.custom_status, r.output)
            if not entity.exists and not entity.locked_by and not entity.queue:
                continue
            out.append(
                EntityStatus(
                    EntityId.from_instance_id(r.instance_id),
                    r.updated_at,
                    codec.decode(entity.state) if fetch_state else None,
                    entity.locked_by,
                    len(entity.queue),
                )
            )
        return out, token

    def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        """Delete entities without state and free locks whose holder no longer runs."""
        removed = released = 0
        token: str | None = None
        while True:
            query = InstanceQuery(instance_id_prefix="@", page_size=500)
            query.continuation_token = token
            records, token = self.store.query_instances(query)
            empty = []
            for r in records:
                entity = EntityRecord.from_json(r.custom_status, r.output)
                owner = entity.locked_by
                if owner and release_orphaned_locks:
                    holder = self.store.get_instance(owner)
                    if holder is None or holder.status in TERMINAL_STATUSES:
                        unlock = ev.EntityUnlock(timestamp=self.clock.now(), owner=owner)
                        self.store.enqueue_if(Message(r.instance_id, unlock), _ANY_STATUS)
                        released += 1
                elif not entity.exists and not entity.queue and remove_empty_entities:
                    empty.append(r.instance_id)
            if empty:
                removed += self.store.purge_instances(empty)
            if token is None:
                return CleanEntityStorageResult(removed, released)

    # waiting -------------------------------------------------------------------
    def wait_for_completion(
        self, instance_id: str, timeout: float = 10.0, poll_interval: float = 1.0
    ) -> DurableOrchestrationStatus:
        """Block until the instance is Completed, Failed or Terminated; return its status.

        Raises:
            InstanceNotFoundError: no such instance.
            TimeoutError: it did not finish within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        # Watching before the first look: a finish committed in between is not missed.
        # A worker in this process wakes the wait at once; one elsewhere is seen by the
        # poll, which backs off from 10 ms to ``poll_interval``.
        waiter = self._finishes.watch([instance_id])
        finished = waiter.event
        try:
            while True:
                finished.clear()
                status = self.get_status(instance_id)
                if status is None:
                    raise InstanceNotFoundError(instance_id)
                if status.runtime_status in TERMINAL_STATUSES:
                    return status
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"instance {instance_id!r} is still {status.runtime_status.value} "
                        f"after {timeout:g}s"
                    )
                finished.wait(min(delay, left))
                delay = min(delay * 2, poll_interval)
        finally:
            self._finishes.unwatch([instance_id], waiter)

    def wait_for_all(
        self, instance_ids: Iterable[str], timeout: float = 10.0, poll_interval: float = 1.0
    ) -> list[DurableOrchestrationStatus]:
        """Block until every one of the instances is Completed, Failed or Terminated;
        return their statuses in the order given.

        One read covers many instances: after the first look, instances that commits of
        this process finish are read once all the rest are known finished too, and the
        poll for workers elsewhere (backing off from 10 ms to ``poll_interval``) reads
        those of the unfinished ones that have finished since. Waiting for n instances
        costs a few reads, not n.

        >>> ids = [client.start_new("hello_cities") for _ in range(100)]  # doctest: +SKIP
        >>> outputs = [s.output for s in client.wait_for_all(ids, timeout=60)]  # doctest: +SKIP

        Raises:
            ValidationError: an ID is not a valid instance ID.
            InstanceNotFoundError: no such instance (the first such ID given), at the first
                look; one purged while waited for is waited for until the timeout.
            TimeoutError: some did not finish within ``timeout`` seconds.
        """
        ids = [validate_instance_id(i) for i in instance_ids]
        wanted = list(dict.fromkeys(ids))
        deadline = time.monotonic() + timeout
        delay = 0.01
        next_poll = time.monotonic() + delay
        done: dict[str, DurableOrchestrationStatus] = {}
        reported: set[str] = set()  # finished by this process, not yet read
        waiter = self._finishes.watch(wanted)  # before the first look, as above
        try:
            records = self.store.get_instances(wanted)
            found = {r.instance_id for r in records}
            missing = next((i for i in wanted if i not in found), None)
            if missing is not None:
                raise InstanceNotFoundError(missing)
            while True:
                for record in records:
                    if record.status in TERMINAL_STATUSES:
                        done[record.instance_id] = _to_status(record, False)
                pending = [i for i in wanted if i not in done]
                if not pending:
                    return [done[i] for i in ids]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(pending)} of {len(wanted)} instances are unfinished after "
                        f"{timeout:g}s, e.g. {pending[0]!r}"
                    )
                waiter.event.wait(max(0.0, min(next_poll - time.monotonic(), left)))
                waiter.event.clear()
                reported.update(waiter.take())
                if time.monotonic() >= next_poll:
                    look = pending
                    delay = min(delay * 2, poll_interval)
                    next_poll = time.monotonic() + delay
                elif reported.issuperset(pending):
                    look = pending
                else:
                    # Read the ones this process finished only once all are: one read
                    # instead of one per commit while the rest still run.
                    records = []
                    continue
                reported.difference_update(look)
                # Only finished rows: the unfinished ones would be read (and decoded) for
                # nothing on every poll. One reported finished but started again since
                # (replaced, rewound) stays pending.
                records = self.store.get_instances(look, TERMINAL_STATUSES)
        finally:
            self._finishes.unwatch(wanted, waiter)


@dataclass
class EntityStateResponse:
    """``read_entity_state``'s answer (azure-functions-durable names)."""

    entity_exists: bool
    entity_state: Any = None


@dataclass
class EntityStatus:
    """One entity, as listed by ``list_entities``."""

    entity_id: EntityId
    last_operation_time: datetime
    state: Any = None
    locked_by: str | None = None
    queued: int = 0


@dataclass
class CleanEntityStorageResult:
    empty_entities_removed: int
    orphaned_locks_released: int


def _to_status(record: InstanceRecord, show_input: bool) -> DurableOrchestrationStatus:
    return DurableOrchestrationStatus(
        name=record.name,
        instance_id=record.instance_id,
        created_time=record.created_at,
        last_updated_time=record.updated_at,
        runtime_status=record.status,
        input_=codec.decode(record.input) if show_input else None,
        output=codec.decode(record.output),
        custom_status=codec.decode(record.custom_status),
        execution_id=record.execution_id,
        parent_instance_id=record.parent_instance_id,
        completed_time=record.completed_at,
        failure_details=record.failure,
    )


_T = TypeVar("_T")
# The async client's blocking calls run on threads of its own rather than on the loop's
# default executor, whose few threads (CPU count + 4) capped how many concurrent callers
# could meet in one group commit, and which a few long waits (wait_for_completion) could
# fill: 1,000 starts awaited at once made 3,100/s on PostgreSQL through the default
# executor's 6 threads, 5,200/s through these. Threads start only as calls need them.
_THREADS = 64
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


async def _off_loop(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on a client thread, in the caller's context (as asyncio.to_thread)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="perdure-client")
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_executor, context.run, fn, *args)


class DurableOrchestrationClient:
    """The async client, with the azure-functions-durable SDK's method names.

    >>> client = app.client()                                       # doctest: +SKIP
    >>> instance_id = await client.start_new("hello_cities")        # doctest: +SKIP
    >>> status = await client.get_status(instance_id)               # doctest: +SKIP
    """

    def __init__(self, sync: SyncClient) -> None:
        self.sync = sync

    async def start_new(
        self,
        orchestration_function_name: str | Callable[..., Any],
        instance_id: str | None = None,
        client_input: Any = None,
    ) -> str:
        return await _off_loop(
            self.sync.start_new, orchestration_function_name, instance_id, client_input
        )

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus | None:
        return await _off_loop(
            self.sync.get_status, instance_id, show_history, show_history_output, show_input
        )

    async def get_status_all(self) -> list[DurableOrchestrationStatus]:
        return await _off_loop(self.sync.get_status_all)

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[Status | str] | Status | str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        return await _off_loop(
            self.sync.get_status_by, created_time_from, created_time_to, runtime_status
        )

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        await _off_loop(self.sync.raise_event, instance_id, event_name, event_data)

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        await _off_loop(self.sync.terminate, instance_id, reason)

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        await _off_loop(self.sync.suspend, instance_id, reason)

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        await _off_loop(self.sync.resume, instance_id, reason)

    async def rewind(self, instance_id: str, reason: str | None = None) -> None:
        await _off_loop(self.sync.rewind, instance_id, reason)

    async def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        return await _off_loop(self.sync.restart, instance_id, restart_with_new_instance_id)

    async def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        return await _off_loop(self.sync.purge_instance_history, instance_id)

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[Status | str] | Status | str | None = None,
    ) -> PurgeHistoryResult:
        return await _off_loop(
            self.sync.purge_instance_history_by, created_time_from, created_time_to, runtime_status
        )

    async def signal_entity(
        self, entity_id: EntityId | Any, operation_name: str, operation_input: Any = None
    ) -> None:
        await _off_loop(self.sync.signal_entity, entity_id, operation_name, operation_input)

    async def read_entity_state(self, entity_id: EntityId | Any) -> EntityStateResponse:
        return await _off_loop(self.sync.read_entity_state, entity_id)

    async def list_entities(
        self,
        entity_name: str | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        fetch_state: bool = True,
    ) -> tuple[list[EntityStatus], str | None]:
        return await _off_loop(
            self.sync.list_entities, entity_name, page_size, continuation_token, fetch_state
        )

    async def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        return await _off_loop(
            self.sync.clean_entity_storage, remove_empty_entities, release_orphaned_locks
        )

    async def wait_for_completion(
        self, instance_id: str, timeout: float = 10.0, poll_interval: float = 1.0
    ) -> DurableOrchestrationStatus:
        return await _off_loop(
            self.sync.wait_for_completion, instance_id, timeout, poll_interval
        )

    async def wait_for_all(
        self, instance_ids: Iterable[str], timeout: float = 10.0, poll_interval: float = 1.0
    ) -> list[DurableOrchestrationStatus]:
        """Statuses of the instances once all have finished (see SyncClient.wait_for_all)."""
        return await _off_loop(
            self.sync.wait_for_all, list(instance_ids), timeout, poll_interval
        )
