"""Entity batch executor and lock protocol. Pure: (record, requests) -> (record, messages).

Operations on one entity run one at a time, in arrival order. While an orchestration
holds the entity's lock, requests from anyone else wait in the entity's queue. A lock
request carries the whole sorted lock set: each entity locks itself and forwards the
request to the next, and the last one answers the orchestration, so two critical
sections can never deadlock.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure.entities.context import EntityContext
from perdure.model import codec
from perdure.model import events as ev
from perdure.model.entity_id import EntityId

EntityFunction = Callable[[EntityContext], Any]


@dataclass
class EntityRecord:
    """What an entity persists between batches: its state (the instance's output column)
    and, as JSON in its custom-status column, whether it exists, its lock and its queue."""

    state: str | None = None  # encoded JSON
    exists: bool = False
    locked_by: str | None = None
    queue: list[ev.EntityRequest] = field(default_factory=list)
    last_operation_at: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "exists": self.exists,
                "locked_by": self.locked_by,
                "queue": [ev.event_to_json(q) for q in self.queue],
                "last_operation_at": self.last_operation_at,
            }
        )

    @classmethod
    def from_json(cls, text: str | None, state: str | None) -> EntityRecord:
        if not text:
            return cls(state, state is not None)
        data = json.loads(text)
        queue = [ev.event_from_json("EntityRequest", q) for q in data.get("queue", [])]
        return cls(
            state,
            bool(data.get("exists")),
            data.get("locked_by"),
            queue,  # type: ignore[arg-type]
            data.get("last_operation_at"),
        )


@dataclass
class Outgoing:
    """A message the batch sends: to a caller (its result) or to the next entity of a lock set."""

    instance_id: str
    execution_id: str | None
    event: ev.HistoryEvent


@dataclass
class EntityBatchResult:
    record: EntityRecord
    messages: list[Outgoing]
    operations: int


def run_entity_batch(
    fn: EntityFunction | None,
    entity_id: EntityId,
    record: EntityRecord,
    events: list[ev.HistoryEvent],
    now: datetime,
) -> EntityBatchResult:
    """Apply a batch of requests and unlocks to an entity, in order."""
    out: list[Outgoing] = []
    ops = 0
    pending: list[ev.HistoryEvent] = list(events)
    while pending:
        event = pending.pop(0)
        if isinstance(event, ev.EntityUnlock):
            if record.locked_by == event.owner:
                record.locked_by = None
                # Requests that waited for the lock get their turn now, in order.
                pending[0:0] = record.queue
                record.queue = []
            continue
        if not isinstance(event, ev.EntityRequest):
            continue
        owner = event.parent_instance_id
        if record.locked_by is not None and owner != record.locked_by:
            record.queue.append(event)
            continue
        if event.lock_set is not None:
            record.locked_by = owner
            _grant(entity_id, event, now, out)
            continue
        ops += 1
        _run_operation(fn, entity_id, record, event, now, out)
    return EntityBatchResult(record, out, ops)


def _grant(
    entity_id: EntityId, event: ev.EntityRequest, now: datetime, out: list[Outgoing]
) -> None:
    assert event.lock_set is not None and event.parent_instance_id is not None
    nxt = event.position + 1
    if nxt < len(event.lock_set):
        forward = ev.EntityRequest(
            timestamp=now,
            parent_instance_id=event.parent_instance_id,
            parent_execution_id=event.parent_execution_id,
            task_id=event.task_id,
            lock_set=event.lock_set,
            position=nxt,
        )
        out.append(Outgoing(event.lock_set[nxt], None, forward))
    else:
        granted = ev.TaskCompleted(timestamp=now, task_scheduled_id=event.task_id, result=None)
        out.append(Outgoing(event.parent_instance_id, event.parent_execution_id, granted))


def _run_operation(
    fn: EntityFunction | None,
    entity_id: EntityId,
    record: EntityRecord,
    event: ev.EntityRequest,
    now: datetime,
    out: list[Outgoing],
) -> None:
    operation = event.operation or ""
    record.last_operation_at = now.isoformat()
    error: BaseException | None = None
    result_text: str | None = None
    tb = ""
    if operation == "delete":  # built-in, as in Durable Functions: removes the state
        record.state, record.exists = None, False
    elif fn is None:
        error = LookupError(f"entity {entity_id.name!r} is not registered in this app")
    else:
        state = codec.decode(record.state) if record.exists else None
        ctx = EntityContext(entity_id, operation, event.input, state, record.exists)
        try:
            fn(ctx)
            if ctx._destruct:
                new_state, exists = None, False
            else:
                new_state = (
                    codec.encode(ctx._state, f"state of entity {entity_id}")
                    if ctx._exists
                    else None
                )
                exists = ctx._exists
            result_text = codec.encode(ctx._result, f"result of {entity_id} {operation!r}")
        except Exception as exc:
            error, tb = exc, traceback.format_exc()
        else:
            record.state, record.exists = new_state, exists
    if event.task_id < 0 or event.parent_instance_id is None:
        return  # a signal: nobody waits for the result
    reply: ev.HistoryEvent
    if error is None:
        reply = ev.TaskCompleted(timestamp=now, task_scheduled_id=event.task_id, result=result_text)
    else:
        failure = ev.FailureDetails(type(error).__name__, str(error), tb)
        reply = ev.TaskFailed(timestamp=now, task_scheduled_id=event.task_id, failure=failure)
    out.append(Outgoing(event.parent_instance_id, event.parent_execution_id, reply))
