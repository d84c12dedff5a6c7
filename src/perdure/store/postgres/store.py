"""PostgreSQL backend: many worker processes on many hosts share one task hub.

Same tables and meaning as the SQLite store (see ``migrations/``), plus what a shared
server needs: ``FOR UPDATE SKIP LOCKED`` so workers never queue behind each other's
leases, lease times from the database clock (hosts' clocks may disagree), LISTEN/NOTIFY
wake-ups, and statements batched over arrays so a group commit of N checkpoints costs
two round trips, not N.
"""

from __future__ import annotations

import json
import logging
import select
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from perdure.errors import InstanceAlreadyExistsError
from perdure.model.events import (
    FailureDetails,
    HistoryEvent,
    event_from_json,
    event_to_json,
    events_from_row,
    events_from_rows,
    history_rows,
)
from perdure.model.status import ACTIVE_STATUSES, TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import (
    MESSAGES_PER_FETCH,
    ActivityResult,
    ActivityWorkItem,
    Backlog,
    Checkpoint,
    InstanceQuery,
    InstanceRecord,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    SubOrchestrationStart,
    check_message_limit,
    finished_ids,
)
from perdure.store.group import GroupCommit
from perdure.store.listeners import Listeners
from perdure.store.migrate import load_migrations
from perdure.store.paging import decode_token, list_page
from perdure.store.postgres.batch import (
    FINISHED_DROPS,
    fence_update,
    fenced,
    finished_tasks,
    is_plain,
    one_statement,
)
from perdure.store.postgres.batch import NOW as _NOW
from perdure.store.postgres.batch import OPTIMISM_FAILED as _OPTIMISM_FAILED
from perdure.store.postgres.batch import columns as _columns
from perdure.store.postgres.notify import ChangeListener, channel_name
from perdure.store.sqlite.store import dt, ts
from perdure.store.starts import Created, StartRequest, group_starts, submit_start

log = logging.getLogger("perdure.store.postgres")

T = TypeVar("T")
U = TypeVar("U")
Conn = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]

_INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, input, output, failure, custom_status, "
    "created_at, updated_at, completed_at, parent_instance_id, history_length"
)
_LEASED_COLUMNS = ", ".join("i." + c for c in _INSTANCE_COLUMNS.split(", "))


def _capped_read(where: str) -> str:
    """The instances ``i`` matching ``where``, each with its oldest messages visible at a
    time, up to a limit: one index scan per instance, which stops there. Parameters: the
    time, the limit, then those of ``where``."""
    return (
        f"SELECT {_LEASED_COLUMNS}, m.id, m.execution_id, m.event_type, m.data, true"
        " FROM perdure.instances i LEFT JOIN LATERAL (SELECT x.id, x.execution_id,"
        " x.event_type, x.data FROM perdure.inbox x WHERE x.hub = i.hub"
        " AND x.instance_id = i.instance_id AND x.visible_at <= %s ORDER BY x.id"
        f" LIMIT %s) m ON true WHERE {where}"
    )
_TERMINAL = [s.value for s in TERMINAL_STATUSES]
# Any 64-bit constant works; it only has to be the same in every perdure process.
_MIGRATION_LOCK = 0x70657264757265  # "perdure"
_RETRIES = 3  # extra attempts after a connection error that provably committed nothing
_PURGE_BATCH = 500
# maintain(): how often it looks, which tables it may analyze, from what size.
_MAINTAIN_EVERY = 5.0
_ANALYZED_TABLES = frozenset({"instances", "history", "inbox", "tasks"})
_ANALYZE_AT_ROWS = 1000
_UNDERESTIMATED = 2  # re-analyze when live rows exceed the planner's estimate this many times
_ANALYZE_EVERY = 10.0  # seconds: at most this often per table
_VACUUMED_TABLES = frozenset({"instances", "inbox", "tasks"})  # rewritten all the time
_VACUUM_AT_DEAD = 10_000
_FETCH_RANDOM_PAGE_COST = "1.1"  # see _fetch_tx


# At most this many instances holding messages, a fetch past its full window visits
# each (see _fetch_tx); more, and it groups the visible messages.
_SPARSE = 16


def _fetch_window(limit: int) -> int:
    """How many of the oldest visible messages one fetch looks at (see _fetch_tx)."""
    return max(256, 4 * limit)


# Client messages (raise_event, signal_entity) are one autocommit statement per batch
# (see perdure.store.group): one round trip and one WAL flush for however many concurrent
# callers queued. FOR SHARE keeps each status read from changing (a checkpoint waits)
# until the messages are committed with it; a message goes in only if its target's status
# is in its allowed list, and the notify only with a message. Entities exist implicitly
# (see _ensure_entities_tx): one missing from the statement's snapshot is inserted; a
# conflict then means another client created it after the snapshot was taken, which no
# read here could see, and the no-op update locks that row and returns its status.
_ENQUEUE_MANY = (
    "WITH r AS (SELECT * FROM unnest(%(ids)b::text[], %(execution_ids)b::text[],"
    " %(event_types)b::text[], %(data)b::text[], %(visible_at)b::float8[],"
    " %(allowed)b::text[], %(entity)b::bool[]) WITH ORDINALITY"
    " AS r(instance_id, execution_id, event_type, data, visible_at, allowed, entity, ord)),"
    " s AS (SELECT i.instance_id, i.status FROM perdure.instances i"
    " WHERE i.hub = %(hub)s AND i.instance_id IN (SELECT instance_id FROM r)"
    " ORDER BY i.instance_id FOR SHARE),"
    " e AS (INSERT INTO perdure.instances AS i (hub, instance_id, name, execution_id,"
    " status, created_at, updated_at) SELECT DISTINCT %(hub)s, r.instance_id,"
    " split_part(substr(r.instance_id, 2), '@', 1), 'entity', 'Running', %(now)s, %(now)s"
    " FROM r WHERE r.entity AND r.instance_id NOT IN (SELECT instance_id FROM s)"
    " ON CONFLICT (hub, instance_id) DO UPDATE SET status = i.status"
    " RETURNING i.instance_id, i.status),"
    " t AS (SELECT instance_id, status FROM s UNION ALL SELECT instance_id, status FROM e),"
    " m AS (INSERT INTO perdure.inbox"
    " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
    " SELECT %(hub)s, r.instance_id, r.execution_id, r.event_type, r.data, r.visible_at,"
    " %(now)s FROM r JOIN t ON t.instance_id = r.instance_id"
    " WHERE t.status = ANY(string_to_array(r.allowed, ',')) ORDER BY r.ord RETURNING 1)"
    " SELECT t.status, (SELECT pg_notify(%(channel)s, %(token)s)"
    " WHERE EXISTS (SELECT 1 FROM m)) FROM r LEFT JOIN t ON t.instance_id = r.instance_id"
    " ORDER BY r.ord"
)
# One message alone (no concurrent caller to share a batch with) takes a statement of
# scalar parameters: the server keeps its generic plan, where the array form above is
# planned afresh each time (its custom plans look cheaper), at about the cost of running.
_ENQUEUE_S = (
    "WITH s AS (SELECT status FROM perdure.instances"
    " WHERE hub = %(hub)s AND instance_id = %(id)s FOR SHARE),"
)
_ENQUEUE_M = (
    " m AS (INSERT INTO perdure.inbox"
    " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
    " SELECT %(hub)s, %(id)s, %(execution_id)s, %(event_type)s, %(data)s, %(visible_at)s,"
    " %(now)s FROM t WHERE t.status = ANY(%(allowed)b::text[]) RETURNING 1)"
    " SELECT t.status, (SELECT pg_notify(%(channel)s, %(token)s) FROM m) FROM t"
)
_ENQUEUE_IF = _ENQUEUE_S + " t AS (SELECT status FROM s)," + _ENQUEUE_M
_ENQUEUE_IF_ENTITY = (
    _ENQUEUE_S
    + " e AS (INSERT INTO perdure.instances AS i (hub, instance_id, name, execution_id,"
    " status, created_at, updated_at) SELECT %(hub)s, %(id)s,"
    " split_part(substr(%(id)s, 2), '@', 1), 'entity', 'Running', %(now)s, %(now)s"
    " WHERE NOT EXISTS (SELECT 1 FROM s)"
    " ON CONFLICT (hub, instance_id) DO UPDATE SET status = i.status RETURNING i.status),"
    " t AS (SELECT status FROM s UNION ALL SELECT status FROM e),"
    + _ENQUEUE_M
)
# create_instance for an ID not in use (the common case): the row, its ExecutionStarted
# and the notify. One row back means created; none means the ID exists, which
# create_instance then settles in a transaction.
_CREATE_NEW = (
    "WITH c AS (INSERT INTO perdure.instances (hub, instance_id, name, execution_id, status,"
    " input, created_at, updated_at, parent_instance_id) VALUES (%(hub)s, %(id)s, %(name)s,"
    " %(execution_id)s, 'Pending', %(input)s, %(created_at)s, %(created_at)s, %(parent)s)"
    " ON CONFLICT (hub, instance_id) DO NOTHING RETURNING instance_id),"
    " m AS (INSERT INTO perdure.inbox"
    " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
    " SELECT %(hub)s, c.instance_id, %(execution_id)s, %(event_type)s, %(data)s, 0,"
    " %(queued_at)s FROM c RETURNING id)"
    " SELECT m.id, pg_notify(%(channel)s, %(token)s) FROM m"
)


# The same for the starts of concurrent callers, over arrays (one ID once each): the
# start message's ID for each instance inserted; IDs that exist are created again one by
# one (see _create_many).
_CREATE_MANY = (
    "WITH r AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::float8[], %b::text[], %b::text[], %b::text[], %b::float8[]) WITH ORDINALITY"
    " AS r(instance_id, name, execution_id, input, created_at, parent, event_type, data,"
    " queued_at, ord)),"
    " c AS (INSERT INTO perdure.instances (hub, instance_id, name, execution_id, status,"
    " input, created_at, updated_at, parent_instance_id) SELECT %s, r.instance_id, r.name,"
    " r.execution_id, 'Pending', r.input, r.created_at, r.created_at, r.parent FROM r"
    " ORDER BY r.ord ON CONFLICT (hub, instance_id) DO NOTHING RETURNING instance_id),"
    " m AS (INSERT INTO perdure.inbox"
    " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
    " SELECT %s, r.instance_id, r.execution_id, r.event_type, r.data, 0, r.queued_at"
    " FROM r JOIN c ON c.instance_id = r.instance_id ORDER BY r.ord"
    " RETURNING instance_id, id)"
    " SELECT m.instance_id, m.id,"
    " (SELECT pg_notify(%s, %s) WHERE EXISTS (SELECT 1 FROM m)) FROM m"
)


def _failure_from_text(text: str | None) -> FailureDetails | None:
    return None if text is None else FailureDetails(*json.loads(text))


def _record(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        status=Status(row[3]),
        input=row[4],
        output=row[5],
        failure=_failure_from_text(row[6]),
        custom_status=row[7],
        created_at=dt(row[8]),  # type: ignore[arg-type]
        updated_at=dt(row[9]),  # type: ignore[arg-type]
        completed_at=dt(row[10]),
        parent_instance_id=row[11],
        history_length=row[12],
    )


def _same(value: T) -> T:
    return value


def _rows(cursor: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return cursor.fetchall()


def _accepted(cursor: Cursor) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _work_items(
    rows: Sequence[Sequence[Any]], message_limit: int | None = None
) -> list[OrchestrationWorkItem]:
    """Rows of a fetch's SELECT (instance columns, then one message) as work items, in
    order of each instance's oldest message. With ``message_limit``, an instance's
    messages past it (the read took one more) are left out and flag it ``more``."""
    items: dict[str, OrchestrationWorkItem] = {}
    for row in rows:
        iid = row[0]
        item = items.get(iid)
        if item is None:
            item = items[iid] = OrchestrationWorkItem(_record(row[:13]), [])
        if row[13] is None:
            continue
        if message_limit is not None and len(item.messages) == message_limit:
            item.more = True
            continue
        event = event_from_json(row[15], row[16])
        item.messages.append(Message(iid, event, row[14], None, row[13]))
    return list(items.values())


class _Leased(NamedTuple):
    """What a fetch transaction leased (see :func:`_leased`)."""

    instance_ids: list[str]
    rows: list[Any] | None  # their messages, or None: more than one fetch hands out
    window_full: bool
    limit: int


def _leased(cursors: tuple[Cursor, Cursor], limit: int, message_limit: int) -> _Leased:
    """The fetch transaction's results. Its window was full when a backlog of messages
    is waiting; the rows read stop after ``message_limit`` + 1 messages in all, so more
    rows than ``message_limit`` mean some instance may hold more than one fetch hands
    out, and the messages are read again per instance (:meth:`_messages_of`)."""
    scanned, ids = cursors[0].fetchone() or (0, None)
    rows = cursors[1].fetchall()
    full = scanned == _fetch_window(limit)
    uncapped = sum(1 for row in rows if not row[17])
    return _Leased(
        ids or [],
        rows if uncapped <= message_limit else None,
        full,
        limit,
    )


def _taken(rows: list[tuple[Any, ...]]) -> list[ActivityWorkItem]:
    """Activity tasks a checkpoint commit leased to its worker, from their
    (id, instance_id, execution_id, task_id, name, input) rows, in ID order."""
    return [
        ActivityWorkItem(r[1], r[2], r[3], r[4], r[5], id=r[0], dequeue_count=1)
        for r in sorted(rows)
    ]


def _configure(conn: Conn) -> None:
    """Session settings for each pooled connection.

    Generic plans for prepared statements: most of the store's statements pick rows by
    key, one plan serves every execution, and planning the checkpoint statement anew
    each time cost more than running it. The fetches that scan a queue table (visible
    messages, ready tasks) run unprepared instead, so each gets a custom plan from the
    tables' current sizes: those tables swing between empty and many thousands of rows,
    and a plan made while they were small (a fresh database, an idle worker) walks every
    row of a hub once they have grown, hundreds of times slower."""
    conn.execute("SET plan_cache_mode = force_generic_plan")


def _roll_back(conn: Conn) -> None:
    """End a transaction that failed part-way, so its connection goes back to the pool
    clean (a broken connection is left to the pool to discard)."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection is broken: the pool checks and drops it


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - no poll() on Windows


def _closed_by_server(conn: Conn) -> bool:
    """Whether the server has closed this idle connection (a restart, a terminated
    backend). Its last message and the EOF are already in the socket, so this costs no
    round trip."""
    pgconn = conn.pgconn
    try:
        for _ in range(3):  # pending bytes (the server's FATAL message), then the EOF
            if not _readable(pgconn.socket):
                break
            pgconn.consume_input()
    except (OSError, psycopg.OperationalError):
        return True
    return pgconn.status != psycopg.pq.ConnStatus.OK


class PostgresStore(Listeners):
    """The scale-out store.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:5432/dbname``.
        hub: the task hub; hubs share the database but never see each other's rows.
        min_size / max_size: bounds of the connection pool.
        timeout: seconds to wait for a pooled connection before an operation fails.

    >>> store = PostgresStore("postgresql://app@db/perdure", hub="orders")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        hub: str = "default",
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.hub = hub
        Listeners.__init__(self)
        self._token = uuid.uuid4().hex  # tells our own notifications apart from others'
        self._channel = channel_name(hub)
        # A direct first connection gives a clear error for a bad URL or password;
        # a pool would only report a timeout.
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            self._migrate(conn)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": 10},
            configure=_configure,
            name=f"perdure-{hub}",
        )
        self._pool.open(wait=False)
        self._watcher = ChangeListener(url, self._channel, self._token)
        self._last_maintain = 0.0
        self._may_analyze = True
        self._may_vacuum = True  # False once the server refuses (not the tables' owner)
        self._messages: GroupCommit[tuple[Message, frozenset[Status]], Status | None]
        self._backlog = False  # the last fetch's window was full (see _fetch_tx)
        # Instances a recent fetch handed fewer messages than they had, with how many
        # more fetches to remember them: these read theirs capped per instance at once
        # (see _fetch_tx).
        self._bursting: dict[str, int] = {}
        self._messages = GroupCommit(
            self._enqueue_many,
            alone=lambda request: self._enqueue_many([request])[0],
            alone_if=lambda exc: not isinstance(exc, psycopg.OperationalError),
        )
        self._starts = group_starts(
            self._create_many, lambda exc: not isinstance(exc, psycopg.OperationalError)
        )

    # infrastructure ----------------------------------------------------------
    def _migrate(self, conn: Conn) -> None:
        """Apply pending numbered migrations, serialized across processes by an advisory
        lock held for the transaction (so concurrent starters wait, then find them done)."""
        pending = load_migrations("perdure.store.postgres.migrations")
        if self._applied(conn) >= {v for v, _, _ in pending}:
            return  # the common start-up: no lock, no DDL rights needed
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE SCHEMA IF NOT EXISTS perdure")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS perdure.schema_version (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = self._applied(conn)
            for version, name, script in pending:
                if version in done:
                    continue
                conn.execute(script.encode())  # no parameters: a multi-statement script
                conn.execute(
                    "INSERT INTO perdure.schema_version (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                log.info("applied PostgreSQL migration %s", name)

    @staticmethod
    def _applied(conn: Conn) -> set[int]:
        row = conn.execute("SELECT to_regclass('perdure.schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return set()
        return {r[0] for r in conn.execute("SELECT version FROM perdure.schema_version")}

    def migrate(self) -> None:
        """Apply pending migrations (they also run when the store opens)."""
        with self._pool.connection() as conn:
            self._migrate(conn)

    def _run(
        self,
        body: Callable[[Conn], T],
        *,
        transaction: bool = True,
        durable: bool = True,
        idempotent: bool = True,
    ) -> T:
        """Run ``body`` on a pooled connection: in one pipelined transaction (statements
        whose results are not read go out together, with the COMMIT), or in autocommit.

        ``durable=False`` commits without waiting for the WAL flush. Only for changes that
        are safe to lose in a server crash: leases (a lost lease fails its holder's fenced
        commit) and activity results (a lost one runs its activity again); any later
        durable commit flushes the earlier ones anyway.

        A connection error is retried when it provably committed nothing: raised before
        COMMIT was sent, or by an autocommit body whose statements are all idempotent.
        An autocommit body with ``idempotent=False`` (one statement: a retry after it
        committed would apply it twice) is retried only when the error comes before the
        statement is sent; a pooled connection the server already closed is caught then.
        An error during COMMIT is ambiguous and propagates (the worker loop retries).
        """
        return self._run_then(
            body, _same, transaction=transaction, durable=durable, idempotent=idempotent
        )

    def _run_then(
        self,
        body: Callable[[Conn], T],
        then: Callable[[T], U],
        *,
        transaction: bool = True,
        durable: bool = True,
        idempotent: bool = True,
    ) -> U:
        """:meth:`_run`, then ``then(result)`` after COMMIT, still on the connection: a
        body that only queues statements and reads their cursors in ``then`` costs one
        round trip in all."""
        delay = 0.05
        for attempt in range(_RETRIES + 1):
            committing = False
            try:
                with self._pool.connection() as conn:
                    if not transaction:
                        if not idempotent:
                            if _closed_by_server(conn):
                                raise psycopg.OperationalError("the server closed the connection")
                            committing = True  # the statement is its own COMMIT
                        return then(body(conn))
                    # BEGIN and COMMIT go out as plain pipelined statements: one sync
                    # for the whole transaction (a transaction block would add more).
                    try:
                        with conn.pipeline():
                            conn.execute("BEGIN")
                            if not durable:
                                conn.execute("SET LOCAL synchronous_commit = off")
                            result = body(conn)
                            committing = True
                            conn.execute("COMMIT")
                            return then(result)
                    except BaseException:
                        _roll_back(conn)
                        raise
            except psycopg.OperationalError as exc:
                if committing or attempt == _RETRIES:
                    raise
                log.warning("database connection failed (%s); retrying in %.2fs", exc, delay)
                self._pool.check()  # drop every dead idle connection, not one per retry
                time.sleep(delay)
                delay *= 4
        raise AssertionError("unreachable")  # pragma: no cover

    def _notify_tx(self, conn: Conn) -> None:
        """Wake other processes when this transaction commits (identical ones coalesce)."""
        conn.execute("SELECT pg_notify(%s, %s)", (self._channel, self._token))

    def maintain(self) -> None:
        """Do what autovacuum would, where it has not (in time): statistics for a table the
        planner believes far smaller than it is, and a VACUUM for a queue table full of
        dead rows.

        A queue table swings between empty and many thousands of rows. Statistics taken
        while it was empty (by an ANALYZE, or by the VACUUM below, which counts rows too),
        or none at all on a fresh database, make every plan over it look free: the
        commit's prepared statement then deleted consumed messages by walking the hub's
        whole delivery index (21 ms per 100 timers fired instead of 6; a p99 of 4.1 s for
        10,000 timers instead of 2.2), and the fetches' custom plans looked up each
        waiting message's instance by scanning the hub. So a table holding at least
        ``_ANALYZE_AT_ROWS`` live rows, more than ``_UNDERESTIMATED`` times what the
        planner was last told, and not analyzed in the last ``_ANALYZE_EVERY`` s, is analyzed: that
        re-plans the prepared statements too. Without the right to analyze or vacuum (not
        the tables' owner) it gives up quietly."""
        now = time.monotonic()
        if now - self._last_maintain < _MAINTAIN_EVERY:
            return
        self._last_maintain = now
        if self._may_analyze:
            self._analyze_stale_tables()
        if self._may_vacuum:
            self._vacuum_queues()

    def _analyze_stale_tables(self) -> None:
        try:
            stale = self._statement(
                "SELECT s.relname FROM pg_stat_user_tables s"
                " JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.schemaname = 'perdure' AND s.relname = ANY(%s)"
                " AND s.n_live_tup >= %s AND s.n_live_tup > %s * greatest(c.reltuples, 0)"
                " AND coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity')"
                " < now() - make_interval(secs => %s)",
                (list(_ANALYZED_TABLES), _ANALYZE_AT_ROWS, _UNDERESTIMATED, _ANALYZE_EVERY),
            )
            for (table,) in stale:
                # A known name only (never text from the server).
                if table in _ANALYZED_TABLES:
                    self._maintenance(f"ANALYZE perdure.{table}")
                    log.info("analyzed perdure.%s (its statistics were far behind it)", table)
        except psycopg.errors.InsufficientPrivilege:
            log.debug("no right to ANALYZE the perdure tables; leaving it to autovacuum")
            self._may_analyze = False
        except psycopg.Error:  # an optimization only: the next look tries again
            log.debug("could not look at the perdure tables' statistics", exc_info=True)

    def _vacuum_queues(self) -> None:
        """VACUUM a queue table that holds more dead rows than live ones (at least
        ``_VACUUM_AT_DEAD``) and that autovacuum has not seen to in the last minute
        (it is off, or behind). Leases, checkpoints and consumed messages leave a dead row
        each; unvacuumed, the fetches walk them: with autovacuum off, a second fan-out of
        10,000 activities ran 5x slower than the first, and timers fired 6x later behind
        the dead inbox rows of 100,000 events. SKIP_LOCKED: a table another worker is
        vacuuming is left to it."""
        try:
            bloated = self._statement(
                "SELECT relname FROM pg_stat_user_tables"
                " WHERE schemaname = 'perdure' AND relname = ANY(%s)"
                " AND n_dead_tup >= %s AND n_dead_tup > n_live_tup"
                " AND (last_autovacuum IS NULL OR last_autovacuum < now() - interval '1 minute')"
                " AND (last_vacuum IS NULL OR last_vacuum < now() - interval '10 seconds')",
                (list(_VACUUMED_TABLES), _VACUUM_AT_DEAD),
            )
            for (table,) in bloated:
                if table not in _VACUUMED_TABLES:  # a known name only, never server text
                    continue
                started = time.monotonic()
                self._maintenance(f"VACUUM (SKIP_LOCKED) perdure.{table}")
                log.info(
                    "vacuumed perdure.%s in %.2f s (more dead rows than live ones)",
                    table,
                    time.monotonic() - started,
                )
        except psycopg.errors.InsufficientPrivilege:
            log.debug("no right to VACUUM the perdure tables; leaving it to autovacuum")
            self._may_vacuum = False
        except psycopg.Error:  # an optimization only: the next look tries again
            log.debug("could not vacuum the perdure queue tables", exc_info=True)

    def _maintenance(self, statement: str) -> None:
        """One ANALYZE or VACUUM, outside any transaction (VACUUM refuses to run in one)."""
        self._run(lambda conn: conn.execute(statement), transaction=False)

    def wait_for_change(self, timeout: float) -> bool:
        """Block on LISTEN until another process commits work, or ``timeout`` s pass."""
        return self._watcher.wait(timeout)

    def close(self) -> None:
        self._watcher.close()
        self._pool.close()

    # shared transaction pieces -------------------------------------------------
    def _insert_messages_tx(
        self, conn: Conn, messages: list[Message], created_at: list[float], *, check: bool = True
    ) -> None:
        """Insert inbox rows in list order. With ``check``, only for existing instances: a
        message to an unknown ID is dropped, not orphaned (the key-share lock keeps a
        concurrent purge from deleting the target before we commit)."""
        if not messages:
            return
        entities = sorted({m.instance_id for m in messages if m.instance_id.startswith("@")})
        if entities:
            self._ensure_entities_tx(conn, entities, created_at[0])
        cols = _columns(
            (
                (
                    m.instance_id,
                    m.execution_id,
                    m.event.event_type,
                    event_to_json(m.event),
                    ts(m.visible_at) if m.visible_at else 0.0,
                    at,
                )
                for m, at in zip(messages, created_at, strict=True)
            ),
            6,
        )
        exists = (
            " WHERE EXISTS (SELECT 1 FROM perdure.instances i"
            " WHERE i.hub = %s AND i.instance_id = m.instance_id FOR KEY SHARE)"
            if check
            else ""
        )
        conn.execute(
            "INSERT INTO perdure.inbox"
            " (hub, instance_id, execution_id, event_type, data, visible_at, created_at)"
            " SELECT %s, m.instance_id, m.execution_id, m.event_type, m.data, m.visible_at,"
            " m.created_at FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::float8[], %b::float8[]) WITH ORDINALITY"
            " AS m(instance_id, execution_id, event_type, data, visible_at, created_at, ord)"
            f"{exists} ORDER BY m.ord",
            [self.hub, *cols, *([self.hub] if check else [])],
        )

    def _ensure_entities_tx(self, conn: Conn, ids: list[str], now: float) -> None:
        """Entities exist implicitly: the first message to ``@name@key`` creates its row."""
        conn.execute(
            "INSERT INTO perdure.instances (hub, instance_id, name, execution_id, status,"
            " created_at, updated_at) SELECT %s, v.id, split_part(substr(v.id, 2), '@', 1),"
            " 'entity', 'Running', %s, %s FROM unnest(%b::text[]) AS v(id)"
            " ON CONFLICT (hub, instance_id) DO NOTHING",
            (self.hub, now, now, ids),
        )

    def _delete_instance_data_tx(self, conn: Conn, ids: list[str]) -> None:
        """Delete history, inbox and tasks of ``ids`` (the instance rows stay)."""
        for table in ("history", "inbox", "tasks"):
            conn.execute(
                f"DELETE FROM perdure.{table} WHERE hub = %s AND instance_id = ANY(%b::text[])",
                (self.hub, ids),
            )

    def _create_tx(
        self, conn: Conn, news: list[NewInstance], dedupe: frozenset[Status]
    ) -> list[tuple[NewInstance, Status]]:
        """Create instances with their ExecutionStarted; return those refused by ``dedupe``
        with the status that refused them. Other existing instances are replaced."""
        ids = [n.instance_id for n in news]
        if len(set(ids)) != len(ids):  # a later duplicate meets the earlier one's row
            cut = next(k for k, i in enumerate(ids) if i in ids[:k])
            return self._create_tx(conn, news[:cut], dedupe) + self._create_tx(
                conn, news[cut:], dedupe
            )
        by_id = {n.instance_id: n for n in news}
        started: list[NewInstance] = []
        refused: list[tuple[NewInstance, Status]] = []
        pending = list(news)
        for _ in range(3):  # a row purged between our two looks is simply inserted again
            if not pending:
                break
            cols = _columns(
                (
                    (n.instance_id, n.name, n.execution_id, n.start.input,
                     n.start.parent_instance_id, ts(n.created_at))
                    for n in pending
                ),
                6,
            )
            # Insert-or-skip first: two creators of one ID then queue on the row instead
            # of one failing with a unique violation.
            inserted = {
                r[0]
                for r in conn.execute(
                    "INSERT INTO perdure.instances (hub, instance_id, name, execution_id, status,"
                    " input, created_at, updated_at, parent_instance_id)"
                    " SELECT %s, v.instance_id, v.name, v.execution_id, 'Pending', v.input,"
                    " v.created_at, v.created_at, v.parent FROM unnest(%b::text[], %b::text[],"
                    " %b::text[], %b::text[], %b::text[], %b::float8[])"
                    " AS v(instance_id, name, execution_id, input, parent, created_at)"
                    " ON CONFLICT (hub, instance_id) DO NOTHING RETURNING instance_id",
                    [self.hub, *cols],
                ).fetchall()
            }
            started += [n for n in pending if n.instance_id in inserted]
            rest = [n.instance_id for n in pending if n.instance_id not in inserted]
            if not rest:
                break
            existing = {
                r[0]: Status(r[1])
                for r in conn.execute(
                    "SELECT instance_id, status FROM perdure.instances"
                    " WHERE hub = %s AND instance_id = ANY(%b::text[])"
                    " ORDER BY instance_id FOR UPDATE",  # one lock order for every creator
                    (self.hub, rest),
                ).fetchall()
            }
            replace = [by_id[i] for i, s in existing.items() if s not in dedupe]
            refused += [(by_id[i], s) for i, s in existing.items() if s in dedupe]
            if replace:
                self._delete_instance_data_tx(conn, [n.instance_id for n in replace])
                cols = _columns(
                    (
                        (n.instance_id, n.name, n.execution_id, n.start.input,
                         n.start.parent_instance_id, ts(n.created_at))
                        for n in replace
                    ),
                    6,
                )
                conn.execute(
                    "UPDATE perdure.instances i SET name = v.name, execution_id = v.execution_id,"
                    " status = 'Pending', input = v.input, output = NULL, failure = NULL,"
                    " custom_status = NULL, created_at = v.created_at, updated_at = v.created_at,"
                    " completed_at = NULL, parent_instance_id = v.parent, history_length = 0,"
                    " lock_owner = NULL, lock_expires = 0"
                    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
                    " %b::float8[])"
                    " AS v(instance_id, name, execution_id, input, parent, created_at)"
                    " WHERE i.hub = %s AND i.instance_id = v.instance_id",
                    [*cols, self.hub],
                )
                started += replace
            pending = [by_id[i] for i in rest if i not in existing]
        self._insert_messages_tx(
            conn,
            [Message(n.instance_id, n.start, n.execution_id) for n in started],
            [ts(n.created_at) or 0.0 for n in started],
            check=False,  # the rows were created or locked by this transaction
        )
        return refused

    # client side ------------------------------------------------------------
    def create_instance(self, new: NewInstance, dedupe: frozenset[Status]) -> None:
        self._started(new, submit_start(self._starts, new, dedupe))

    def _create_many(self, requests: list[StartRequest]) -> list[Created]:
        """Commit the starts of concurrent ``create_instance`` calls: the new IDs in one
        statement, then any that exist (or came twice) one by one, as if one after
        another. Each gets its start message's ID (None if it replaced an instance) or
        the error refusing it, which fails only its caller. One statement per start,
        16 threads made 3,100 starts/s, bound by one WAL flush each."""
        if len(requests) == 1:
            # A lone start keeps a statement of its own: through the arrays of
            # _CREATE_MANY, 2,000 sequential starts made 1,700-1,800/s, not 2,200-2,300.
            new, dedupe = requests[0]
            stamp = ts(new.created_at)
            rows = self._write(
                _CREATE_NEW,
                {
                    "hub": self.hub,
                    "id": new.instance_id,
                    "name": new.name,
                    "execution_id": new.execution_id,
                    "input": new.start.input,
                    "created_at": stamp,
                    "parent": new.start.parent_instance_id,
                    "event_type": new.start.event_type,
                    "data": event_to_json(new.start),
                    "queued_at": stamp or 0.0,
                    "channel": self._channel,
                    "token": self._token,
                },
            )
            created = {new.instance_id: int(rows[0][0])} if rows else {}
            firsts = {0}
        else:
            first_of: dict[str, int] = {}
            for k, (new, _) in enumerate(requests):
                first_of.setdefault(new.instance_id, k)
            firsts = set(first_of.values())
            batch = [requests[k][0] for k in sorted(firsts)]
            cols = _columns(
                (
                    (n.instance_id, n.name, n.execution_id, n.start.input, ts(n.created_at),
                     n.start.parent_instance_id, n.start.event_type, event_to_json(n.start),
                     ts(n.created_at) or 0.0)
                    for n in batch
                ),
                9,
            )
            rows = self._write(
                _CREATE_MANY, [*cols, self.hub, self.hub, self._channel, self._token]
            )
            created = {r[0]: int(r[1]) for r in rows}
        out: list[Created] = []
        for k, (new, dedupe) in enumerate(requests):
            if k in firsts and new.instance_id in created:
                out.append(created[new.instance_id])
                continue
            try:
                self._run(partial(self._create_existing_tx, new=new, dedupe=dedupe))
            except InstanceAlreadyExistsError as refused:
                out.append(refused)
            else:
                out.append(None)
        return out

    def _create_existing_tx(
        self, conn: Conn, new: NewInstance, dedupe: frozenset[Status]
    ) -> None:
        refused = self._create_tx(conn, [new], dedupe)
        if refused:
            status = refused[0][1].value
            raise InstanceAlreadyExistsError(
                new.instance_id,
                status,
                f"an instance with ID {new.instance_id!r} already exists and is {status}",
            )
        self._notify_tx(conn)

    def enqueue_if(self, message: Message, allowed: frozenset[Status]) -> Status | None:
        status = self._messages.submit((message, allowed))
        if status in allowed:
            self._changed()
        return status

    def _enqueue_many(
        self, requests: list[tuple[Message, frozenset[Status]]]
    ) -> list[Status | None]:
        """Commit the messages of concurrent ``enqueue_if`` calls in one statement.

        The share locks of several messages (taken in ID order) can still close a cycle
        with a checkpoint updating several of the same instances; the server then aborts
        one of the two, and an aborted statement committed nothing, so it runs again."""
        if len(requests) == 1:
            message, allowed = requests[0]
            rows = self._write(
                _ENQUEUE_IF_ENTITY if message.instance_id.startswith("@") else _ENQUEUE_IF,
                {
                    "hub": self.hub,
                    "id": message.instance_id,
                    "execution_id": message.execution_id,
                    "event_type": message.event.event_type,
                    "data": event_to_json(message.event),
                    "visible_at": ts(message.visible_at) if message.visible_at else 0.0,
                    "now": time.time(),
                    "allowed": sorted(s.value for s in allowed),
                    "channel": self._channel,
                    "token": self._token,
                },
            )
            return [Status(rows[0][0]) if rows else None]
        params = {
            "hub": self.hub,
            "ids": [m.instance_id for m, _ in requests],
            "execution_ids": [m.execution_id for m, _ in requests],
            "event_types": [m.event.event_type for m, _ in requests],
            "data": [event_to_json(m.event) for m, _ in requests],
            "visible_at": [ts(m.visible_at) if m.visible_at else 0.0 for m, _ in requests],
            "allowed": [",".join(sorted(s.value for s in a)) for _, a in requests],
            "entity": [m.instance_id.startswith("@") for m, _ in requests],
            "now": time.time(),
            "channel": self._channel,
            "token": self._token,
        }
        for attempt in range(_RETRIES + 1):
            try:
                rows = self._write(_ENQUEUE_MANY, params)
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == _RETRIES:
                    raise
        return [None if r[0] is None else Status(r[0]) for r in rows]

    def _write(self, query: str, params: Any) -> list[Any]:
        """One autocommit statement that a retry after its COMMIT would apply twice."""

        def body(conn: Conn) -> list[Any]:
            return conn.execute(query, params).fetchall()

        return self._run(body, transaction=False, idempotent=False)

    def _statement(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        def body(conn: Conn) -> list[Any]:
            return conn.execute(query, params).fetchall()

        return self._run(body, transaction=False)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        rows = self._statement(
            f"SELECT {_INSTANCE_COLUMNS} FROM perdure.instances"
            " WHERE hub = %s AND instance_id = %s",
            (self.hub, instance_id),
        )
        return _record(rows[0]) if rows else None

    def get_instances(
        self, instance_ids: Sequence[str], statuses: frozenset[Status] | None = None
    ) -> list[InstanceRecord]:
        ids = list(dict.fromkeys(instance_ids))
        if not ids or (statuses is not None and not statuses):
            return []
        only = " AND status = ANY(%b::text[])" if statuses is not None else ""
        params: list[Any] = [self.hub, ids]
        if statuses is not None:
            params.append(sorted(s.value for s in statuses))
        rows = self._statement(
            f"SELECT {_INSTANCE_COLUMNS} FROM perdure.instances"
            f" WHERE hub = %s AND instance_id = ANY(%b::text[]){only}",
            params,
        )
        return [_record(r) for r in rows]

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        rows = self._statement(
            "SELECT h.event_type, h.data FROM perdure.history h JOIN perdure.instances i"
            " ON i.hub = h.hub AND i.instance_id = h.instance_id"
            " AND i.execution_id = h.execution_id"
            " WHERE i.hub = %s AND i.instance_id = %s ORDER BY h.seq",
            (self.hub, instance_id),
        )
        return events_from_rows(rows)

    def _where(self, q: InstanceQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = ["hub = %s"]
        params: list[Any] = [self.hub]
        if q.created_from is not None:
            clauses.append("created_at >= %s")
            params.append(ts(q.created_from))
        if q.created_to is not None:
            clauses.append("created_at <= %s")
            params.append(ts(q.created_to))
        if q.statuses and len(q.statuses) == 1:
            # Equality, not ANY: only then does the status index yield rows in created_at
            # order, leaving the planner only ties to sort (an incremental sort) rather
            # than every instance of the status, per page.
            clauses.append("status = %s")
            params.append(next(iter(q.statuses)).value)
        elif q.statuses:
            clauses.append("status = ANY(%b::text[])")
            params.append(sorted(s.value for s in q.statuses))
        if q.instance_id_prefix:
            clauses.append("starts_with(instance_id, %s)")
            params.append(q.instance_id_prefix)
        if not (q.instance_id_prefix or "").startswith("@"):
            clauses.append("NOT starts_with(instance_id, '@')")  # entities are listed apart
        if q.name:
            clauses.append("name = %s")
            params.append(q.name)
        return " AND ".join(clauses), params

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        rows, token = list_page(query, self._instance_page)
        return [_record(r) for r in rows], token

    def _instance_page(self, query: InstanceQuery, limit: int) -> list[Any]:
        where, params = self._where(query)
        op, order = ("<", "DESC") if query.newest_first else (">", "ASC")
        if query.continuation_token:
            # A row comparison: the index range starts at the token, not at the status.
            where += f" AND (created_at, instance_id) {op} (%s, %s)"
            params += list(decode_token(query.continuation_token))
        return self._statement(
            f"SELECT {_INSTANCE_COLUMNS} FROM perdure.instances WHERE {where}"
            f" ORDER BY created_at {order}, instance_id {order} LIMIT %s",
            [*params, limit],
        )

    def count_by_status(self) -> dict[Status, int]:
        rows = self._statement(
            "SELECT status, count(*) FROM perdure.instances WHERE hub = %s GROUP BY status",
            (self.hub,),
        )
        return {Status(s): n for s, n in rows}

    def backlog(self, now: datetime) -> Backlog:
        # Message visibility follows the worker clock; task leases follow the server's
        # clock, as fetch_activity_work does.
        rows = self._statement(
            "SELECT (SELECT count(*) FROM perdure.inbox WHERE hub = %s AND visible_at <= %s),"
            " (SELECT count(*) FROM perdure.inbox WHERE hub = %s AND visible_at > %s),"
            f" (SELECT count(*) FROM perdure.tasks WHERE hub = %s AND lock_expires < {_NOW}),"
            f" (SELECT count(*) FROM perdure.tasks WHERE hub = %s AND lock_expires >= {_NOW})",
            (self.hub, now.timestamp()) * 2 + (self.hub, self.hub),
        )
        return Backlog(*rows[0])

    def _purge_statement(self, victims: str) -> str:
        """One statement deleting the instances selected by ``victims`` and all their rows."""
        return (
            "WITH v AS (DELETE FROM perdure.instances"
            f" WHERE hub = %s AND instance_id IN ({victims})"
            " RETURNING instance_id),"
            " h AS (DELETE FROM perdure.history WHERE hub = %s"
            " AND instance_id IN (SELECT instance_id FROM v)),"
            " m AS (DELETE FROM perdure.inbox WHERE hub = %s"
            " AND instance_id IN (SELECT instance_id FROM v)),"
            " t AS (DELETE FROM perdure.tasks WHERE hub = %s"
            " AND instance_id IN (SELECT instance_id FROM v))"
            " SELECT count(*) FROM v"
        )

    def purge_instances(
        self,
        instance_ids: list[str] | None = None,
        query: InstanceQuery | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        hub = self.hub
        if instance_ids is not None:
            statement = self._purge_statement("SELECT unnest(%b::text[])")
            rows = self._statement(statement, [hub, list(instance_ids), hub, hub, hub])
            return int(rows[0][0])
        q = query or InstanceQuery()
        statuses = frozenset(q.statuses or TERMINAL_STATUSES) & TERMINAL_STATUSES
        if not statuses:
            return 0
        q = InstanceQuery(q.created_from, q.created_to, statuses, q.instance_id_prefix, q.name)
        where, params = self._where(q)
        statement = self._purge_statement(
            f"SELECT instance_id FROM perdure.instances WHERE {where} LIMIT {_PURGE_BATCH}"
        )
        total = 0
        while True:
            n = int(self._statement(statement, [hub, *params, hub, hub, hub])[0][0])
            total += n
            if progress is not None and n:
                progress(total)
            if n < _PURGE_BATCH:
                return total

    # worker side ------------------------------------------------------------
    def fetch_orchestration_work(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        message_limit: int = MESSAGES_PER_FETCH,
    ) -> list[OrchestrationWorkItem]:
        check_message_limit(message_limit)
        visible = now.timestamp()
        leased = self._run_then(
            lambda conn: self._fetch_tx(
                conn, owner, visible, limit, lease_seconds, message_limit
            ),
            lambda cursors: _leased(cursors, limit, message_limit),
            durable=False,
        )
        return self._fetched(owner, visible, lease_seconds, message_limit, leased)

    def _fetched(
        self,
        owner: str,
        visible: float,
        lease_seconds: float,
        message_limit: int,
        leased: _Leased,
    ) -> list[OrchestrationWorkItem]:
        """The work items of a windowed fetch. When it came up short, fewer than its
        limit leased though its window was full (of messages of instances leased
        elsewhere, or of a few instances' bursts), look at every visible message once,
        so that no waiting instance is passed over while work remains. Even a window
        full of messages all handed out with the instances leased is short: a message
        behind them (an activity's result committed in this same transaction) would
        otherwise wait for a fetch that nothing asks for, the worker's 1 s poll."""
        self._backlog = leased.window_full
        items = self._items(visible, message_limit, leased)
        if leased.window_full and len(items) < leased.limit:
            more = self._run_then(
                lambda conn: self._fetch_tx(
                    conn, owner, visible, leased.limit - len(items), lease_seconds,
                    message_limit, window=False,
                ),
                lambda cursors: _leased(cursors, leased.limit - len(items), message_limit),
                durable=False,
            )
            items += self._items(visible, message_limit, more)
        # An instance this fetch did not lease (its round's commit still held it) is
        # remembered for a few fetches; one it leased is known afresh. Any other falls
        # back to reading its messages again (_messages_of).
        handed = {i.instance.instance_id for i in items}
        kept = {i: n - 1 for i, n in self._bursting.items() if i not in handed and n > 1}
        kept.update((i.instance.instance_id, 4) for i in items if i.more)
        self._bursting = kept
        return items

    def _items(
        self, visible: float, message_limit: int, leased: _Leased
    ) -> list[OrchestrationWorkItem]:
        if leased.rows is not None:
            return _work_items(leased.rows, message_limit)
        return self._messages_of(leased.instance_ids, visible, message_limit)

    def _messages_of(
        self, instance_ids: list[str], visible: float, message_limit: int
    ) -> list[OrchestrationWorkItem]:
        """Leased instances with up to ``message_limit`` of each one's oldest visible
        messages, for a fetch whose messages were more than that in all. The lease keeps
        them ours, so this read needs no transaction of its own. Each instance's
        messages are one index scan that stops after the limit (one more, to tell
        whether more wait): an entity with 20,000 waiting costs 2-8 ms, not the 25-32 ms
        of reading them all."""
        rows = self._statement(
            _capped_read("i.hub = %s AND i.instance_id = ANY(%b::text[])") + " ORDER BY m.id",
            (visible, message_limit + 1, self.hub, instance_ids),
        )
        return _work_items(rows, message_limit)

    def complete_and_fetch(
        self,
        owner: str,
        results: list[ActivityResult],
        now: datetime,
        limit: int,
        lease_seconds: float,
        message_limit: int = MESSAGES_PER_FETCH,
    ) -> tuple[int, list[OrchestrationWorkItem]]:
        check_message_limit(message_limit)
        if not results:
            return 0, self.fetch_orchestration_work(
                owner, now, limit, lease_seconds, message_limit
            )
        visible = now.timestamp()

        def body(conn: Conn) -> tuple[Cursor, tuple[Cursor, Cursor]]:
            done = self._complete_tx(conn, owner, results, visible)
            return done, self._fetch_tx(
                conn, owner, visible, limit, lease_seconds, message_limit
            )

        def then(cursors: tuple[Cursor, tuple[Cursor, Cursor]]) -> tuple[int, _Leased]:
            return _accepted(cursors[0]), _leased(cursors[1], limit, message_limit)

        # Not durable: a result lost in a server crash leaves its task to run again
        # (activities are at-least-once), and the next durable commit, the checkpoint
        # that consumes it, flushes this one first.
        accepted, leased = self._run_then(body, then, durable=False)
        if accepted:
            self._changed()
        return accepted, self._fetched(owner, visible, lease_seconds, message_limit, leased)

    def _fetch_tx(
        self,
        conn: Conn,
        owner: str,
        visible: float,
        limit: int,
        lease_seconds: float,
        message_limit: int,
        *,
        window: bool = True,
    ) -> tuple[Cursor, Cursor]:
        """Queue the two fetch statements: lease up to ``limit`` instances with visible
        messages, then read the leased rows with up to ``message_limit`` messages each.
        The lease statement yields (inbox rows in the window, the IDs leased); see
        :func:`_leased`."""
        hub = self.hub
        if window and self._backlog:
            # Behind a backlog (the last window was full), random reads are priced near
            # sequential ones, as on SSDs and for a task hub's live rows, which stay in
            # cache; for this transaction only. At the server's default of 4, leasing
            # 100 of 10,000 due instances joined them by scanning the whole instances
            # table twice: 15 ms instead of 4 (10,000 timers due at once: p99 15-34%
            # lower in paired runs).
            # Small fetches keep the default plan and skip the statement.
            conn.execute(
                "SELECT set_config('random_page_cost', %s, true)"
                " WHERE current_setting('random_page_cost')::float8 > %s",
                (_FETCH_RANDOM_PAGE_COST, float(_FETCH_RANDOM_PAGE_COST)),
                prepare=False,
            )
        # Oldest waiting message first; rows another worker is leasing right now are
        # skipped, not waited for. The lease re-check on the locked row version keeps
        # a just-leased instance out. With ``window`` only the oldest few hundred
        # visible messages are looked at, so a backlog of many thousands (timers all
        # due at once, a burst of events) costs each fetch the same, not O(backlog).
        if window:
            due = (
                "w AS (SELECT instance_id, id FROM perdure.inbox"
                " WHERE hub = %s AND visible_at <= %s ORDER BY visible_at, id LIMIT %s),"
                " m AS (SELECT instance_id, min(id) AS first_id FROM w GROUP BY instance_id)"
            )
            params: list[Any] = [hub, visible, _fetch_window(limit)]
            scanned = "(SELECT count(*) FROM w)"
        else:
            # Beyond the window. When few instances hold messages (one instance's burst
            # fills the window), step from instance to instance on inbox_instance, one
            # index descent each, then look up each one's first visible message.
            # Grouping every visible message instead cost O(backlog), 5-7 ms a fetch
            # beside a burst of 50,000, on every fetch while its instance was leased.
            # Past _SPARSE instances the statement groups (the one-time filters run one
            # branch only): a step and its lookup cost 10-20 us, a grouped message
            # 0.15 us, and fetches behind other workers' leases see many instances.
            # - The steps ignore visibility: stepping to instances with a visible
            #   message only would walk every message not yet due on the way.
            # - A lookup must walk one instance's messages in order and stop at the first
            #   visible one. Its range of one ID orders by (instance_id, id), which the
            #   primary key cannot give; bitmap scans are off for the transaction, as
            #   the planner, expecting a row or two, fetched a whole burst by bitmap and
            #   sorted it (17 ms for 48,000).
            # - MATERIALIZED runs each part once, not once per row of the join; OFFSET 0
            #   tests the count above the grouping, not on each message it reads.
            conn.execute("SELECT set_config('enable_bitmapscan', 'off', true)", prepare=False)
            sparse = _SPARSE
            due = (
                "ids(instance_id) AS ((SELECT instance_id FROM perdure.inbox"
                " WHERE hub = %s ORDER BY instance_id LIMIT 1) UNION ALL"
                " SELECT (SELECT x.instance_id FROM perdure.inbox x WHERE x.hub = %s"
                " AND x.instance_id > ids.instance_id ORDER BY x.instance_id LIMIT 1)"
                " FROM ids WHERE ids.instance_id IS NOT NULL),"
                " s AS MATERIALIZED (SELECT instance_id FROM ids"
                " WHERE instance_id IS NOT NULL LIMIT %s),"
                " m AS MATERIALIZED (SELECT s.instance_id, f.first_id FROM s CROSS JOIN LATERAL"
                " (SELECT x.id AS first_id FROM perdure.inbox x WHERE x.hub = %s"
                " AND x.instance_id >= s.instance_id AND x.instance_id <= s.instance_id"
                " AND x.visible_at <= %s ORDER BY x.instance_id, x.id LIMIT 1) f"
                " WHERE (SELECT count(*) FROM s) <= %s"
                " UNION ALL SELECT * FROM (SELECT instance_id, min(id) FROM perdure.inbox"
                " WHERE hub = %s AND visible_at <= %s GROUP BY instance_id OFFSET 0) g"
                " WHERE (SELECT count(*) FROM s) > %s)"
            )
            params = [hub, hub, sparse + 1, hub, visible, sparse, hub, visible, sparse]
            scanned = "NULL::bigint"
        lease = conn.execute(
            f"WITH {'' if window else 'RECURSIVE '}{due},"
            " cand AS (SELECT i.instance_id FROM perdure.instances i"
            " JOIN m ON m.instance_id = i.instance_id"
            f" WHERE i.hub = %s AND i.lock_expires < {_NOW}"
            " ORDER BY m.first_id LIMIT %s FOR UPDATE OF i SKIP LOCKED),"
            f" leased AS (UPDATE perdure.instances i SET lock_owner = %s,"
            f" lock_expires = {_NOW} + %s"
            " FROM cand WHERE i.hub = %s AND i.instance_id = cand.instance_id"
            " RETURNING i.instance_id)"
            f" SELECT {scanned},"
            " (SELECT array_agg(instance_id) FROM leased)",
            (*params, hub, limit, owner, lease_seconds, hub),
            prepare=False,  # a custom plan: see _configure
        )
        # A second statement on purpose: it takes a fresh snapshot, so it cannot see
        # messages that the previous lease holder consumed and committed while the
        # statement above ran. now() is fixed for the transaction, so the expiry
        # just written picks out exactly the rows this transaction leased. It reads
        # at most ``message_limit`` + 1 messages in all: as many as one instance may be
        # handed, and one more to tell that some instance may hold more (see _leased).
        # Capping each instance here instead (a LATERAL scan or a cut-off subquery per
        # instance) made every fetch of 100 instances 1.5-3x slower on a small inbox.
        # Only the instances the last fetch left messages to (``_bursting``) are read
        # capped, one index scan each that stops after the limit (the last column says
        # which): reading all of a burst of 50,000 to keep 1,001 took 15-20 ms.
        leased = f"i.hub = %s AND i.lock_owner = %s AND i.lock_expires = {_NOW} + %s"
        plain = (
            f"SELECT {_LEASED_COLUMNS}, m.id, m.execution_id, m.event_type, m.data, false"
            " FROM perdure.instances i LEFT JOIN perdure.inbox m ON m.hub = i.hub"
            " AND m.instance_id = i.instance_id AND m.visible_at <= %s"
        )
        read: list[Any] = [visible, hub, owner, lease_seconds]
        bursting = list(self._bursting)
        if not bursting:
            query = f"{plain} WHERE {leased} ORDER BY m.id LIMIT %s"
            read.append(message_limit + 1)
        else:  # planned anew each fetch: the common case keeps the simpler statement
            query = (
                f"({plain} WHERE {leased} AND i.instance_id <> ALL(%b::text[])"
                " ORDER BY m.id LIMIT %s)"
                f" UNION ALL ({_capped_read(leased + ' AND i.instance_id = ANY(%b::text[])')})"
                " ORDER BY 14"
            )
            read += [
                bursting, message_limit + 1,
                visible, message_limit + 1, hub, owner, lease_seconds, bursting,
            ]
        rows = conn.execute(query, read, prepare=False)
        return lease, rows

    def load_history(self, instance_id: str, execution_id: str) -> list[HistoryEvent]:
        rows = self._statement(
            "SELECT event_type, data FROM perdure.history"
            " WHERE hub = %s AND instance_id = %s AND execution_id = %s ORDER BY seq",
            (self.hub, instance_id, execution_id),
        )
        return events_from_rows(rows)

    def load_histories(
        self, executions: list[tuple[str, str]]
    ) -> dict[str, list[HistoryEvent]]:
        out: dict[str, list[HistoryEvent]] = {i: [] for i, _ in executions}
        rows = self._statement(
            "SELECT h.instance_id, h.event_type, h.data FROM perdure.history h"
            " JOIN unnest(%b::text[], %b::text[]) AS v(instance_id, execution_id)"
            " ON h.instance_id = v.instance_id AND h.execution_id = v.execution_id"
            " WHERE h.hub = %s ORDER BY h.instance_id, h.seq",
            (*_columns(executions, 2), self.hub),
        )
        for iid, etype, data in rows:
            out[iid].extend(events_from_row(etype, data))
        return out

    def commit_checkpoints(
        self, owner: str, checkpoints: list[Checkpoint], now: datetime
    ) -> list[str]:
        return self.commit_and_take_tasks(owner, checkpoints, now, 0, 0.0)[0]

    def commit_and_take_tasks(
        self,
        owner: str,
        checkpoints: list[Checkpoint],
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[str], list[ActivityWorkItem]]:
        if not checkpoints:
            return [], []
        stamp = now.timestamp()

        def body(
            conn: Conn, optimistic: bool
        ) -> tuple[list[str], psycopg.Cursor[tuple[Any, ...]] | None]:
            taking: list[Any] = []
            lost, wake = self._commit_tx(
                conn, owner, checkpoints, stamp, limit, lease_seconds, taking, optimistic
            )
            if wake:
                self._notify_tx(conn)
            return lost, (taking[0] if taking else None)

        def then(
            result: tuple[list[str], psycopg.Cursor[tuple[Any, ...]] | None],
        ) -> tuple[list[str], list[ActivityWorkItem]]:
            lost, cursor = result
            return lost, _taken(_rows(cursor) if cursor is not None else [])

        def plain(conn: Conn) -> Cursor:
            query, params = one_statement(
                self.hub, owner, checkpoints, stamp, limit, lease_seconds,
                (self._channel, self._token),
            )
            return conn.execute(query, params)

        def plain_then(cursor: Cursor) -> tuple[list[str], list[ActivityWorkItem]]:
            # One row of NULLs (or the bare fence result) when no task was taken.
            return [], _taken([r for r in cursor.fetchall() if len(r) > 1 and r[0] is not None])

        # Assume every lease holds, as it nearly always does: a plain batch is then one
        # statement, any other one pipelined transaction. perdure.fence aborts either if
        # a lease did not hold, and the batch is committed again, checking first.
        try:
            if is_plain(checkpoints):
                lost, taken = self._run_then(
                    plain, plain_then, transaction=False, idempotent=False
                )
            else:
                lost, taken = self._run_then(lambda conn: body(conn, True), then)
        except psycopg.Error as exc:
            if exc.sqlstate not in _OPTIMISM_FAILED:
                raise
            lost, taken = self._run_then(lambda conn: body(conn, False), then)
        self._changed()
        self._finished(finished_ids(checkpoints, lost))
        return lost, taken

    def _commit_tx(
        self,
        conn: Conn,
        owner: str,
        cps: list[Checkpoint],
        stamp: float,
        take: int = 0,
        lease_seconds: float = 0.0,
        taking: list[Any] | None = None,
        optimistic: bool = False,
    ) -> tuple[list[str], bool]:
        """Queue the statements of a batch commit. ``optimistic``: assume every lease
        holds and let ``perdure.fence`` abort the transaction if one does not, so nothing
        is read before COMMIT; else read which leases hold first and commit only those."""
        hub = self.hub
        if optimistic:
            ctes, params = fenced(hub, owner, cps, stamp)
            conn.execute(f"WITH {', '.join(ctes)} SELECT ok FROM f", params)
            lost: list[str] = []
            done = cps
        else:
            task_ids = finished_tasks(cps)
            if task_ids:
                # Locked, so no other worker can take them between this read and COMMIT.
                owned = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM perdure.tasks WHERE id = ANY(%b::bigint[])"
                        " AND lock_owner = %s FOR UPDATE",
                        (task_ids, owner),
                    ).fetchall()
                }
                lost = [
                    cp.instance_id for cp in cps if not owned.issuperset(cp.finished_tasks)
                ]
                cps = [cp for cp in cps if owned.issuperset(cp.finished_tasks)]
            else:
                lost = []
            fence, params = fence_update(hub, owner, cps, stamp)
            won = {r[0] for r in conn.execute(fence, params).fetchall()} if cps else set()
            lost += [cp.instance_id for cp in cps if cp.instance_id not in won]
            done = [cp for cp in cps if cp.instance_id in won]
            if not done:
                return lost, False
            if task_ids:
                conn.execute(
                    "DELETE FROM perdure.tasks WHERE id = ANY(%b::bigint[])",
                    (finished_tasks(done),),
                )

        reset = [
            cp.instance_id for cp in done if cp.new_execution is not None or cp.replace_history
        ]
        if reset:
            conn.execute(
                "DELETE FROM perdure.history WHERE hub = %s AND instance_id = ANY(%b::text[])",
                (hub, reset),
            )
        history = [
            (cp.instance_id, cp.execution_id, *row)
            for cp in done if cp.new_execution is None
            for row in history_rows(0 if cp.replace_history else cp.history_length, cp.history)
        ]
        if history:
            # The primary key makes a second writer of the same positions fail here.
            conn.execute(
                "INSERT INTO perdure.history"
                " (hub, instance_id, execution_id, seq, event_type, data) SELECT %s, *"
                " FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[])",
                [hub, *_columns(history, 5)],
            )
        consumed = [i for cp in done for i in cp.consumed]
        if consumed:
            conn.execute(
                "DELETE FROM perdure.inbox WHERE id = ANY(%b::bigint[])",
                (consumed,),
            )
        finished = [cp.instance_id for cp in done if cp.status in TERMINAL_STATUSES]
        if finished:
            # Pending timers and results for a finished instance can never matter.
            conn.execute(
                "DELETE FROM perdure.inbox WHERE hub = %s AND instance_id = ANY(%b::text[])"
                f" AND event_type IN {FINISHED_DROPS}",
                (hub, finished),
            )
        tasks = [
            (t.instance_id, t.execution_id, t.task_id, t.name, t.input)
            for cp in done for t in cp.tasks
        ]
        if taking is not None and take > 0 and tasks:
            # Leased to this worker in the same transaction: it runs them without a fetch.
            # The rows come back after COMMIT, in the same round trip.
            taking.append(
                conn.execute(
                    "INSERT INTO perdure.tasks (hub, instance_id, execution_id, task_id, name,"
                    " input, created_at, lock_owner, lock_expires, dequeue_count)"
                    f" SELECT %s, v.*, %s, %s, {_NOW} + %s, 1 FROM unnest(%b::text[],"
                    " %b::text[], %b::int[], %b::text[], %b::text[]) AS v"
                    " RETURNING id, instance_id, execution_id, task_id, name, input",
                    [hub, stamp, owner, lease_seconds, *_columns(tasks[:take], 5)],
                )
            )
            tasks = tasks[take:]
        if tasks:
            conn.execute(
                "INSERT INTO perdure.tasks (hub, instance_id, execution_id, task_id, name, input,"
                " created_at) SELECT %s, v.*, %s FROM unnest(%b::text[], %b::text[], %b::int[],"
                " %b::text[], %b::text[]) AS v",
                [hub, stamp, *_columns(tasks, 5)],
            )
        sent = self._send_tx(conn, done, stamp)
        return lost, bool(tasks or sent)

    def _send_tx(self, conn: Conn, done: list[Checkpoint], stamp: float) -> bool:
        """Insert the checkpoints' messages and create their sub-orchestrations with the
        effect of doing it checkpoint by checkpoint: a message to a child created by an
        earlier checkpoint arrives, one to a child created later is dropped. Runs are
        batched; a run ends where batching would change that outcome."""
        messages: list[Message] = []
        subs: list[SubOrchestrationStart] = []
        children: set[str] = set()
        sent = False

        def flush() -> None:
            self._insert_messages_tx(conn, messages, [stamp] * len(messages))
            if subs:
                refused = self._create_tx(conn, [s.child for s in subs], ACTIVE_STATUSES)
                no = {n.instance_id for n, _ in refused}
                messages[:] = [s.on_conflict for s in subs if s.child.instance_id in no]
            else:
                messages.clear()
            subs.clear()
            children.clear()

        for cp in done:
            if children and any(m.instance_id in children for m in cp.messages):
                flush()
            messages.extend(cp.messages)
            for sub in cp.sub_orchestrations:
                if sub.child.instance_id in children:
                    flush()
                subs.append(sub)
                children.add(sub.child.instance_id)
            sent = sent or bool(cp.messages or cp.sub_orchestrations)
        flush()
        if messages:  # refusals of the last run
            self._insert_messages_tx(conn, messages, [stamp] * len(messages))
        return sent

    def release_instances(self, owner: str, instance_ids: list[str]) -> None:
        if not instance_ids:
            return
        self._statement(
            "WITH r AS (UPDATE perdure.instances SET lock_owner = NULL, lock_expires = 0"
            " WHERE hub = %s AND instance_id = ANY(%b::text[]) AND lock_owner = %s RETURNING 1)"
            " SELECT (SELECT pg_notify(%s, %s) WHERE EXISTS (SELECT 1 FROM r))",
            (self.hub, instance_ids, owner, self._channel, self._token),
        )

    def fetch_activity_work(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[ActivityWorkItem]:
        hub = self.hub
        rows = self._run_then(
            lambda conn: conn.execute(
                "WITH cand AS (SELECT id FROM perdure.tasks"
                f" WHERE hub = %s AND lock_expires < {_NOW} ORDER BY lock_expires, id LIMIT %s"
                " FOR UPDATE SKIP LOCKED)"
                f" UPDATE perdure.tasks t SET lock_owner = %s, lock_expires = {_NOW} + %s,"
                " dequeue_count = t.dequeue_count + 1 FROM cand WHERE t.id = cand.id"
                " RETURNING t.id, t.instance_id, t.execution_id, t.task_id, t.name, t.input,"
                " t.dequeue_count",
                (hub, limit, owner, lease_seconds),
                prepare=False,  # a custom plan: see _configure
            ),
            _rows,
            durable=False,
        )
        rows.sort(key=lambda r: r[0])
        return [
            ActivityWorkItem(r[1], r[2], r[3], r[4], r[5], id=r[0], dequeue_count=r[6])
            for r in rows
        ]

    def complete_activities(self, owner: str, results: list[ActivityResult], now: datetime) -> int:
        if not results:
            return 0
        stamp = now.timestamp()
        accepted = self._run_then(
            lambda conn: self._complete_tx(conn, owner, results, stamp),
            _accepted,
            transaction=False,
        )
        if accepted:
            self._changed()
        return accepted

    def _complete_tx(
        self, conn: Conn, owner: str, results: list[ActivityResult], stamp: float
    ) -> Cursor:
        cols = _columns(
            (
                (r.item.id, r.item.instance_id, r.item.execution_id, r.event.event_type,
                 event_to_json(r.event))
                for r in results
            ),
            5,
        )
        hub = self.hub
        # One statement: delete the tasks still leased by us (a task another worker took
        # over is skipped, its result discarded), enqueue the results of exactly those,
        # into existing instances only, and notify if anything was accepted. Run twice,
        # it accepts nothing the second time: the tasks are gone.
        return conn.execute(
            "WITH r AS (SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[],"
            " %b::text[]) WITH ORDINALITY"
            " AS r(id, instance_id, execution_id, event_type, data, ord)),"
            " done AS (DELETE FROM perdure.tasks t USING r"
            " WHERE t.id = r.id AND t.lock_owner = %s"
            " RETURNING r.instance_id, r.execution_id, r.event_type, r.data, r.ord),"
            " ins AS (INSERT INTO perdure.inbox (hub, instance_id, execution_id, event_type, data,"
            " visible_at, created_at) SELECT %s, d.instance_id, d.execution_id, d.event_type,"
            " d.data, 0, %s FROM done d WHERE EXISTS (SELECT 1 FROM perdure.instances i"
            " WHERE i.hub = %s AND i.instance_id = d.instance_id FOR KEY SHARE) ORDER BY d.ord)"
            " SELECT (SELECT count(*) FROM done),"
            " (SELECT pg_notify(%s, %s) WHERE EXISTS (SELECT 1 FROM done))",
            [*cols, owner, hub, stamp, hub, self._channel, self._token],
        )

    def renew_activity_leases(self, owner: str, ids: list[int], lease_seconds: float) -> None:
        if not ids:
            return
        self._run(
            lambda conn: conn.execute(
                f"UPDATE perdure.tasks SET lock_expires = {_NOW} + %s"
                " WHERE id = ANY(%b::bigint[]) AND lock_owner = %s",
                (lease_seconds, ids, owner),
            ),
            durable=False,
        )

    def lock_owners(self) -> set[str]:
        rows = self._statement(
            "SELECT lock_owner FROM perdure.instances WHERE hub = %s AND lock_owner IS NOT NULL"
            f" AND lock_expires >= {_NOW}"
            " UNION SELECT lock_owner FROM perdure.tasks WHERE hub = %s AND lock_owner IS NOT NULL"
            f" AND lock_expires >= {_NOW}",
            (self.hub, self.hub),
        )
        return {r[0] for r in rows}

    def release_owner(self, owner: str) -> int:
        rows = self._statement(
            "WITH a AS (UPDATE perdure.instances SET lock_owner = NULL, lock_expires = 0"
            " WHERE hub = %s AND lock_owner = %s RETURNING 1),"
            " b AS (UPDATE perdure.tasks SET lock_owner = NULL, lock_expires = 0"
            " WHERE hub = %s AND lock_owner = %s RETURNING 1)"
            " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b),"
            " (SELECT pg_notify(%s, %s)"
            " WHERE EXISTS (SELECT 1 FROM a) OR EXISTS (SELECT 1 FROM b))",
            (self.hub, owner, self.hub, owner, self._channel, self._token),
        )
        n = int(rows[0][0])
        if n:
            self._changed()
        return n

    def next_visible_at(self, after: datetime) -> datetime | None:
        rows = self._statement(
            "SELECT min(visible_at) FROM perdure.inbox WHERE hub = %s AND visible_at > %s",
            (self.hub, after.timestamp()),
        )
        return dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def get_setting(self, key: str) -> str | None:
        rows = self._statement(
            "SELECT value FROM perdure.settings WHERE hub = %s AND key = %s", (self.hub, key)
        )
        return rows[0][0] if rows else None

    def set_setting_if_absent(self, key: str, value: str) -> str:
        def body(conn: Conn) -> str:
            conn.execute(
                "INSERT INTO perdure.settings (hub, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (hub, key) DO NOTHING",
                (self.hub, key, value),
            )
            # A second statement: a fresh snapshot sees a concurrent winner's row.
            row = conn.execute(
                "SELECT value FROM perdure.settings WHERE hub = %s AND key = %s", (self.hub, key)
            ).fetchone()
            assert row is not None
            return str(row[0])

        return self._run(body)
