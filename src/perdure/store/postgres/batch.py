"""The SQL of a checkpoint batch commit: the lease fence, and the whole commit of a
plain batch as one statement.

psycopg's per-statement cost dwarfs a local round trip: six pipelined statements cost
about three times one statement. A plain batch (checkpoints that append history, consume
messages, schedule tasks and send messages to orchestrations) is therefore written by a
single statement of data-modifying CTEs, in autocommit: one parse, one round trip, one
WAL flush. Anything else (a new generation, rewritten history, sub-orchestrations,
entity messages, whose statements read what earlier ones wrote) takes the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from perdure.model.events import FailureDetails, event_to_json, history_rows
from perdure.model.status import TERMINAL_STATUSES
from perdure.store.base import Checkpoint

NOW = "extract(epoch from now())"  # the database clock: one time source for every host
LEASE_LOST = "PD001"  # raised by perdure.fence: a lease did not hold, nothing committed
# What an optimistic commit raises when a lease did not hold: the fence, or, should a
# history row of the lost episode be written before the fence is evaluated, the key the
# new lease holder already wrote. Either way the statement committed nothing.
OPTIMISM_FAILED = frozenset({LEASE_LOST, "23505"})
# Inbox rows a finished instance can never consume.
FINISHED_DROPS = "('TimerFired', 'TaskCompleted', 'TaskFailed')"


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column: the arrays that ``unnest`` turns back."""
    cols: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols


def failure_to_text(f: FailureDetails | None) -> str | None:
    return None if f is None else json.dumps([f.error_type, f.message, f.stack_trace])


def fence_update(
    hub: str, owner: str, cps: list[Checkpoint], stamp: float
) -> tuple[str, list[Any]]:
    """The fenced instance UPDATE of a batch: only rows still leased by ``owner``,
    unexpired (or, for a claim, leased by nobody), at the generation and history length
    each episode started from; RETURNING the instance IDs it wrote."""
    rows = []
    for cp in cps:
        new_exec = cp.new_execution
        if new_exec is not None:
            length = 0
        elif cp.replace_history:
            length = len(cp.history)
        else:
            length = cp.history_length + len(cp.history)
        rows.append((
            cp.instance_id, cp.status.value, cp.output, failure_to_text(cp.failure),
            cp.custom_status, stamp if cp.status in TERMINAL_STATUSES else None, length,
            new_exec.execution_id if new_exec else cp.execution_id,
            new_exec.input if new_exec else None,
            cp.execution_id, cp.history_length, cp.claim,
        ))
    sql = (
        "UPDATE perdure.instances i SET status = v.status, output = v.output,"
        " failure = v.failure, custom_status = v.custom_status, updated_at = %s,"
        " completed_at = v.completed_at, history_length = v.new_length,"
        " execution_id = v.new_execution_id, input = COALESCE(v.new_input, i.input),"
        " lock_owner = NULL, lock_expires = 0"
        " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
        " %b::float8[], %b::int[], %b::text[], %b::text[], %b::text[], %b::int[], %b::bool[])"
        " AS v(instance_id, status, output, failure, custom_status, completed_at,"
        " new_length, new_execution_id, new_input, execution_id, history_length, claim)"
        " WHERE i.hub = %s AND i.instance_id = v.instance_id"
        f" AND (i.lock_owner = %s AND i.lock_expires >= {NOW}"
        f" OR v.claim AND i.lock_expires < {NOW})"
        " AND i.execution_id = v.execution_id"
        " AND i.history_length = v.history_length RETURNING i.instance_id"
    )
    return sql, [stamp, *columns(rows, 12), hub, owner]


def finished_tasks(cps: list[Checkpoint]) -> list[int]:
    """The task rows whose results the batch consumed without the inbox."""
    return [t for cp in cps for t in cp.finished_tasks]


def fenced(
    hub: str, owner: str, cps: list[Checkpoint], stamp: float
) -> tuple[list[str], list[Any]]:
    """The CTEs of an all-or-nothing fence: ``won`` (the fenced UPDATE), ``dt`` (the
    finished tasks deleted, only those still leased by ``owner``) and ``f``, which
    raises PD001 unless every instance and every task matched."""
    fence, params = fence_update(hub, owner, cps, stamp)
    ctes = [f"won AS ({fence})"]
    tasks = finished_tasks(cps)
    matched = "(SELECT count(*) FROM won)"
    if tasks:
        ctes.append(
            "dt AS (DELETE FROM perdure.tasks WHERE id = ANY(%b::bigint[])"
            " AND lock_owner = %s RETURNING 1)"
        )
        params += [tasks, owner]
        matched += " + (SELECT count(*) FROM dt)"
    ctes.append(f"f AS (SELECT perdure.fence(%s, {matched}) AS ok)")
    params.append(len(cps) + len(tasks))
    return ctes, params


def is_plain(cps: list[Checkpoint]) -> bool:
    """Whether one statement can commit the batch (see the module docstring)."""
    return all(
        cp.new_execution is None
        and not cp.replace_history
        and not cp.sub_orchestrations
        and not any(m.instance_id.startswith("@") for m in cp.messages)
        for cp in cps
    )


def one_statement(
    hub: str,
    owner: str,
    cps: list[Checkpoint],
    stamp: float,
    take: int,
    lease_seconds: float,
    notify: tuple[str, str],
) -> tuple[str, list[Any]]:
    """The single statement committing a plain batch, all or nothing: ``perdure.fence``
    aborts it when a lease did not hold. Its rows: the tasks leased to ``owner`` (up to
    ``take``), as (id, instance_id, execution_id, task_id, name, input), or one row of
    NULLs when it leased none."""
    ctes, params = fenced(hub, owner, cps, stamp)
    history = [
        (cp.instance_id, cp.execution_id, *row)
        for cp in cps
        for row in history_rows(cp.history_length, cp.history)
    ]
    if history:
        ctes.append(
            "h AS (INSERT INTO perdure.history"
            " (hub, instance_id, execution_id, seq, event_type, data) SELECT %s, *"
            " FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[]))"
        )
        params += [hub, *columns(history, 5)]
    consumed = [i for cp in cps for i in cp.consumed]
    finished = [cp.instance_id for cp in cps if cp.status in TERMINAL_STATUSES]
    # Two DELETEs: ORed into one, the consumed IDs could not use the primary key, and the
    # generic plan scanned the inbox comparing each row with every ID (an entity's 1,000
    # messages among 20,000 waiting: 57 ms, against 1.7 ms). A row both consumed and
    # dropped is deleted by one of them; the other passes over it. Rows named by ID are
    # matched on the primary key alone (IDs are unique across hubs, and came from this
    # hub's rows): with the hub in the condition, a generic plan made while the inbox
    # was small walked a hub-leading index and tested every row against the IDs, 680 ms
    # for 1,000 among 50,000. Tasks and leases renewed by ID go the same way.
    if consumed:
        ctes.append("d AS (DELETE FROM perdure.inbox WHERE id = ANY(%b::bigint[]))")
        params += [consumed]
    if finished:
        # Pending timers and results for a finished instance can never matter.
        ctes.append(
            "dd AS (DELETE FROM perdure.inbox WHERE hub = %s AND instance_id = ANY(%b::text[])"
            f" AND event_type IN {FINISHED_DROPS})"
        )
        params += [hub, finished]
    tasks = [
        (t.instance_id, t.execution_id, t.task_id, t.name, t.input) for cp in cps for t in cp.tasks
    ]
    taken, queued = tasks[:take], tasks[take:]
    if taken:
        ctes.append(
            "tt AS (INSERT INTO perdure.tasks (hub, instance_id, execution_id, task_id, name,"
            " input, created_at, lock_owner, lock_expires, dequeue_count)"
            f" SELECT %s, v.*, %s, %s, {NOW} + %s, 1 FROM unnest(%b::text[],"
            " %b::text[], %b::int[], %b::text[], %b::text[]) AS v"
            " RETURNING id, instance_id, execution_id, task_id, name, input)"
        )
        params += [hub, stamp, owner, lease_seconds, *columns(taken, 5)]
    if queued:
        ctes.append(
            "tq AS (INSERT INTO perdure.tasks (hub, instance_id, execution_id, task_id, name,"
            " input, created_at) SELECT %s, v.*, %s FROM unnest(%b::text[], %b::text[],"
            " %b::int[], %b::text[], %b::text[]) AS v)"
        )
        params += [hub, stamp, *columns(queued, 5)]
    messages = [m for cp in cps for m in cp.messages]
    if messages:
        # A message to an instance of this batch needs no existence check (its lease is
        # ours), and could not have one: this statement's own UPDATE has its row. Any
        # other target must still exist; the key-share lock keeps a concurrent purge off.
        ours = {cp.instance_id for cp in cps}
        rows = [
            (
                m.instance_id, m.execution_id, m.event.event_type, event_to_json(m.event),
                m.visible_at.timestamp() if m.visible_at else 0.0, m.instance_id in ours,
            )
            for m in messages
        ]
        ctes.append(
            "m AS (INSERT INTO perdure.inbox"
            " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
            " SELECT %s, m.instance_id, m.execution_id, m.event_type, m.data, m.visible_at, %s"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::float8[],"
            " %b::bool[]) WITH ORDINALITY"
            " AS m(instance_id, execution_id, event_type, data, visible_at, ours, ord)"
            " WHERE m.ours OR EXISTS (SELECT 1 FROM perdure.instances i"
            " WHERE i.hub = %s AND i.instance_id = m.instance_id FOR KEY SHARE)"
            " ORDER BY m.ord)"
        )
        params += [hub, stamp, *columns(rows, 6), hub]
    select = "SELECT tt.* FROM f LEFT JOIN tt ON true" if taken else "SELECT f.ok FROM f"
    if queued or messages:  # new work for other processes: wake them at COMMIT
        ctes.append("n AS (SELECT pg_notify(%s, %s))")
        params += list(notify)
        select += " WHERE EXISTS (SELECT 1 FROM n)"
    return "WITH " + ", ".join(ctes) + " " + select, params
