"""SQLite backend: one file, WAL, IMMEDIATE transactions, leases for multi-process safety.

One connection per store, guarded by a lock: SQLite has a single writer anyway,
and batching (many checkpoints per transaction) is what makes it fast.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from perdure.errors import (
    InstanceAlreadyExistsError,
    PerdureError,
    TimeoutError,
    ValidationError,
)
from perdure.model.events import (
    FailureDetails,
    HistoryEvent,
    event_from_json,
    event_to_json,
    events_from_row,
    events_from_rows,
    history_rows,
)
from perdure.model.status import TERMINAL_STATUSES
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
    check_message_limit,
    finished_ids,
)
from perdure.store.group import GroupCommit
from perdure.store.listeners import Listeners
from perdure.store.migrate import load_migrations
from perdure.store.paging import decode_token, list_page
from perdure.store.starts import Created, StartRequest, group_starts, submit_start

_INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, input, output, failure, custom_status, "
    "created_at, updated_at, completed_at, parent_instance_id, history_length"
)
_TERMINAL = tuple(s.value for s in TERMINAL_STATUSES)
_BUSY_TIMEOUT_MS = 30_000
# The last message of a fetch's window: the ?3-th visible message, oldest first (its
# visible_at and id; none when fewer are visible). An index-only walk of the window.
_WINDOW_END = (
    "SELECT visible_at, id FROM inbox WHERE hub=? AND visible_at<=?"
    " ORDER BY visible_at, id LIMIT 1 OFFSET ?"
)
# Instances with visible messages and no live lease, oldest message first: walks of
# inbox_visible checking each message's lease, which stop once ?4 are found. Within a
# window (the messages visible before its last one's time, then those of that time up
# to its ID: both ranges of the index) a walk costs the same with any backlog.
_WALK = (
    "SELECT DISTINCT m.instance_id FROM inbox m JOIN instances i"
    " ON i.hub = m.hub AND i.instance_id = m.instance_id"
    " WHERE m.hub=?1 AND {range} AND i.lock_expires<?3 ORDER BY m.visible_at, m.id LIMIT ?4"
)
_VISIBLE = _WALK.format(range="m.visible_at<=?2")
_BEFORE = _WALK.format(range="m.visible_at<?2")
_AT = _WALK.format(range="m.visible_at=?2 AND m.id<=?5")
# When that window came up short, what is beyond it, if few instances hold messages (a
# burst of signals to one entity): each is visited once through inbox_instance, one
# seek from each to the next, and ordered by its first visible message (50,000 messages
# of one instance and 3 others: 0.03 ms; and 99 others: 0.33 ms). The first row counts the instances
# visited, at most ?5: more, and _VISIBLE walks every visible message instead.
# That costs what lies before the ones found: little behind other workers' leases,
# 24 ms behind one instance's 50,000 messages.
_SPARSE_CANDIDATES = (
    "WITH RECURSIVE ids(instance_id) AS (SELECT (SELECT instance_id FROM inbox"
    " WHERE hub=?1 ORDER BY instance_id LIMIT 1) UNION ALL SELECT (SELECT instance_id"
    " FROM inbox WHERE hub=?1 AND instance_id>ids.instance_id ORDER BY instance_id LIMIT 1)"
    " FROM ids WHERE ids.instance_id IS NOT NULL LIMIT ?5),"
    " d(instance_id, first_id) AS MATERIALIZED (SELECT instance_id, (SELECT x.id"
    " FROM inbox x WHERE x.hub=?1 AND x.instance_id=ids.instance_id AND +x.visible_at<=?2"
    " ORDER BY x.id LIMIT 1) FROM ids WHERE instance_id IS NOT NULL)"
    " SELECT 0, NULL, (SELECT count(*) FROM d) UNION ALL SELECT 1, d.instance_id,"
    " d.first_id FROM d JOIN instances i ON i.hub=?1 AND i.instance_id=d.instance_id"
    " WHERE d.first_id IS NOT NULL AND i.lock_expires<?3 ORDER BY 1, 3 LIMIT ?4 + 1"
)
# The visible messages of the instances a fetch leased, oldest first, at most ? in all
# (see _fetch_tx). "+visible_at" keeps the planner off inbox_visible, which walks every
# due message of the hub per fetch (10,000 timers due at once: 19 us per fetched
# instance) instead of each leased instance's own few.
_MESSAGES_OF = (
    "SELECT id, instance_id, execution_id, event_type, data, NULL FROM inbox"
    " WHERE hub=? AND instance_id IN ({marks}) AND +visible_at<=? ORDER BY id LIMIT ?"
)
# The same, up to ?3 of each instance's: when the read above came back full. "stop" is
# an instance's first visible message past the limit (NULL: none), found by walking at
# most ?3 + 1 of its messages; MATERIALIZED makes that once per instance, not once per
# message. Always read this way, a fetch of 100 instances took 40% longer.
_CAPPED_MESSAGES_OF = (
    "WITH b(instance_id, stop) AS MATERIALIZED (SELECT value, (SELECT x.id FROM inbox x"
    " WHERE x.hub=?1 AND x.instance_id=value AND +x.visible_at<=?2 ORDER BY x.id"
    " LIMIT 1 OFFSET ?3) FROM json_each(?4))"
    " SELECT m.id, m.instance_id, m.execution_id, m.event_type, m.data, b.stop"
    " FROM b CROSS JOIN inbox m ON m.hub=?1 AND m.instance_id=b.instance_id"
    " AND m.id < coalesce(b.stop, 9223372036854775807)"
    " WHERE +m.visible_at<=?2 ORDER BY m.id"
)
_CHECKPOINT_EVERY = 0.01  # seconds between background WAL checkpoints
# WAL pages at which a commit checkpoints by itself (SQLite's default is 1,000). The
# watcher's background checkpoints do the copying; this bounds the WAL (40 MB) where
# none run, and keeps the commit that restarts the WAL rare.
_AUTO_CHECKPOINT_PAGES = 10_000
_UNSURE_WAKE = 0.1  # seconds between wake-ups for changes our own commits may explain


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _failure_to_text(f: FailureDetails | None) -> str | None:
    return None if f is None else json.dumps([f.error_type, f.message, f.stack_trace])


def _failure_from_text(text: str | None) -> FailureDetails | None:
    return None if text is None else FailureDetails(*json.loads(text))

# What a checkpoint sets in its instance row, but the status (see _commit_tx).
_CHECKPOINT_SET = (
    " output=?, failure=?, custom_status=?, updated_at=?, completed_at=?, history_length=?,"
    " execution_id=?, input=COALESCE(?, input), lock_owner=NULL, lock_expires=0"
    " WHERE hub=? AND instance_id=?"
)


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


def _locked_error(exc: sqlite3.OperationalError, path: str) -> Exception:
    """Another process held the database longer than the busy timeout: a clear timeout.
    The disk (or a size limit) is full: a clear error; SQLite rolled the transaction back."""
    if "locked" in str(exc) or "busy" in str(exc):
        return TimeoutError(
            f"the SQLite store {path!r} stayed locked by another process for more than "
            f"{_BUSY_TIMEOUT_MS / 1000:g} s; nothing was changed"
        )
    if "full" in str(exc):
        return PerdureError(
            f"the SQLite store {path!r} could not be written: {exc} (free some disk space; "
            "work resumes by itself); nothing was changed"
        )
    return exc


class SqliteStore(Listeners):
    """The embedded default store.

    >>> store = SqliteStore("perdure.db", hub="orders")  # doctest: +SKIP
    """

    def __init__(self, path: str, hub: str = "default", synchronous: str = "normal") -> None:
        if synchronous.lower() not in ("normal", "full", "extra"):
            raise ValidationError(
                f"SQLite synchronous must be normal, full or extra, got {synchronous!r}"
            )
        self.path = path
        self.hub = hub
        self.synchronous = synchronous.upper()
        self._lock = threading.RLock()
        Listeners.__init__(self)
        self._conn = self._connect()
        # Reads run on their own connection: in WAL mode they see the last commit without
        # waiting for this process's writer, and the sqlite3 module lets them run beside it
        # (a status poll or a dashboard page never holds up a checkpoint commit).
        self._reader = self._conn if path == ":memory:" else self._connect()
        self._read_lock = threading.Lock() if path != ":memory:" else self._lock
        self._watch_conn: sqlite3.Connection | None = None
        self._watch_version: int | None = None
        # Write transactions this store began: tells the watcher whether a change it sees
        # may be only this process's own (which the in-process listeners already report).
        self._writes = 0
        self._watch_writes = 0
        self._last_unsure_wake = 0.0
        self._unsure = False  # a change seen that our own commits may not explain
        self._last_checkpoint = 0.0
        # Concurrent client messages (raise, signal) share one transaction: the writer
        # lock, BEGIN and COMMIT are paid once per batch instead of once per message.
        # A failed batch rolled back whole, so its requests may run again one by one,
        # except after a busy timeout, which would only be waited for once per request.
        self._messages: GroupCommit[tuple[Message, frozenset[Status]], Status | None]
        self._messages = GroupCommit(
            self._enqueue_many,
            alone=lambda request: self._enqueue_many([request])[0],
            alone_if=lambda exc: not isinstance(exc, TimeoutError),
        )
        # Concurrent starts likewise (see _create_many).
        self._starts = group_starts(self._create_many, lambda e: not isinstance(e, TimeoutError))
        self.migrate()

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise ValidationError(f"directory {parent!r} for the SQLite store does not exist")
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        self._enter_wal(conn)
        # NORMAL (default): a commit survives a killed process; on power loss or an OS crash
        # the last commits may be rolled back (never corrupted). FULL/EXTRA also survive
        # power loss, at the price of an fsync per commit.
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_AUTO_CHECKPOINT_PAGES}")
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new database to WAL. Several processes opening a fresh file at once
        contend for the lock the switch takes, and SQLite reports that contention as
        "locked" at once, without its busy handler (waiting could deadlock): retry with
        a short back-off, up to the busy timeout."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        pause = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    conn.close()
                    raise
                if time.monotonic() >= deadline:
                    conn.close()
                    raise _locked_error(exc, self.path) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # transactions -----------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                cur.close()
                raise _locked_error(exc, self.path) from exc
            self._writes += 1
            try:
                yield cur
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                clear = _locked_error(exc, self.path)
                if clear is exc:
                    raise
                raise clear from exc
            except BaseException:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            else:
                try:
                    cur.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    # SQLite may have rolled back already (SQLITE_FULL does): a second
                    # ROLLBACK would raise and hide the real error.
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise _locked_error(exc, self.path) from exc
            finally:
                cur.close()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def migrate(self) -> None:
        """Apply pending numbered migrations; safe when several processes start at once."""
        with self._tx() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in cur.execute("SELECT version FROM schema_version")}
            for version, name, sql in load_migrations("perdure.store.sqlite.migrations"):
                if version in done:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)", (version, name, time.time())
                )

    def wait_for_change(self, timeout: float) -> bool:
        """Poll ``PRAGMA data_version`` (cheap: no disk read) for other processes' commits.

        The version also moves with this store's own commits. A move with none of ours
        since the last look is another process's; one that ours may explain is reported
        at most every ``_UNSURE_WAKE`` seconds, so a busy worker is not woken for its own
        commits every 10 ms, and others' work still reaches it within that bound."""
        if self.path == ":memory:":
            time.sleep(timeout)
            return False
        if self._watch_conn is None:
            self._watch_conn = sqlite3.connect(self.path, check_same_thread=False)
            self._watch_version = self._watch_conn.execute("PRAGMA data_version").fetchone()[0]
            self._watch_writes = self._writes
        deadline = time.monotonic() + timeout
        while True:
            self._checkpoint_wal()
            writes = self._writes  # read first: a write counted later is not missed
            version = self._watch_conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._watch_version:
                self._watch_version = version
                ours, self._watch_writes = writes != self._watch_writes, writes
                if not ours:
                    return True
                self._unsure = True
            now = time.monotonic()
            if self._unsure and now - self._last_unsure_wake >= _UNSURE_WAKE:
                self._unsure = False
                self._last_unsure_wake = now
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_CHECKPOINT_EVERY, left))

    def maintain(self) -> None:
        """Nothing to do: the watcher checkpoints the WAL, and SQLite plans every statement
        from the schema alone."""

    def _checkpoint_wal(self) -> None:
        """Copy the WAL back into the database from the watcher's own connection.

        A checkpoint syncs the database file; done inside a commit (SQLite's auto-checkpoint)
        it stalls that commit, and the step waiting on it, for milliseconds: at SQLite's
        default of 1,000 pages, every 26th one-activity orchestration paid 2-3 ms. PASSIVE
        never blocks writers. Copied every 10 ms, the WAL rarely holds uncopied pages, and
        the commit that reaches ``_AUTO_CHECKPOINT_PAGES`` (the bound, and the checkpoint
        of processes running no worker) finds little left to copy before it restarts it.
        """
        now = time.monotonic()
        if self._watch_conn is None or now - self._last_checkpoint < _CHECKPOINT_EVERY:
            return
        self._last_checkpoint = now
        try:
            self._watch_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:
            pass  # busy: the next round tries again

    def close(self) -> None:
        with self._lock, self._read_lock if self._reader is not self._conn else self._lock:
            self._conn.close()
            if self._reader is not self._conn:
                self._reader.close()
            if self._watch_conn is not None:
                self._watch_conn.close()

    # client side ------------------------------------------------------------
    def create_instance(self, new: NewInstance, dedupe: frozenset[Status]) -> None:
        self._started(new, submit_start(self._starts, new, dedupe))

    def _create_many(self, requests: list[StartRequest]) -> list[Created]:
        """Create the instances of concurrent ``create_instance`` calls in one transaction,
        in arrival order, as if one after another: each its start message's ID (None if
        it replaced an instance), or the error refusing it, which fails only its caller.
        16 threads starting at once made 6,800 starts/s one transaction each, half of
        what one thread makes: every start queued for the writer lock."""
        out: list[Created] = []
        with self._tx() as cur:
            for new, dedupe in requests:
                try:
                    fresh = self._create_instance_tx(cur, new, dedupe)
                except InstanceAlreadyExistsError as refused:  # raised before any write
                    out.append(refused)
                    continue
                # The start message was the last insert.
                last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
                out.append(last if fresh else None)
        return out

    def _create_instance_tx(
        self, cur: sqlite3.Cursor, new: NewInstance, dedupe: frozenset[Status]
    ) -> bool:
        """Create (or replace) the instance with its ExecutionStarted queued; True if the
        ID was new."""
        row = cur.execute(
            "SELECT status FROM instances WHERE hub=? AND instance_id=?",
            (self.hub, new.instance_id),
        ).fetchone()
        now = ts(new.created_at)
        start = new.start
        if row is not None:
            if Status(row[0]) in dedupe:
                raise InstanceAlreadyExistsError(
                    new.instance_id,
                    row[0],
                    f"an instance with ID {new.instance_id!r} already exists and is {row[0]}",
                )
            self._delete_instance_data_tx(cur, [new.instance_id], keep_row=True)
            cur.execute(
                "UPDATE instances SET name=?, execution_id=?, status='Pending', input=?,"
                " output=NULL,"
                " failure=NULL, custom_status=NULL, created_at=?, updated_at=?, completed_at=NULL,"
                " parent_instance_id=?, history_length=0, lock_owner=NULL, lock_expires=0"
                " WHERE hub=? AND instance_id=?",
                (
                    start.name,
                    start.execution_id,
                    start.input,
                    now,
                    now,
                    start.parent_instance_id,
                    self.hub,
                    new.instance_id,
                ),
            )
        else:
            cur.execute(
                "INSERT INTO instances (hub, instance_id, name, execution_id, status, input,"
                " created_at, updated_at, parent_instance_id) VALUES (?,?,?,?,'Pending',?,?,?,?)",
                (
                    self.hub,
                    new.instance_id,
                    start.name,
                    start.execution_id,
                    start.input,
                    now,
                    now,
                    start.parent_instance_id,
                ),
            )
        self._insert_messages_tx(cur, [Message(new.instance_id, start, start.execution_id)], now)
        return row is None

    def _delete_instance_data_tx(
        self, cur: sqlite3.Cursor, ids: list[str], keep_row: bool = False
    ) -> None:
        params = [(self.hub, i) for i in ids]
        cur.executemany("DELETE FROM history WHERE hub=? AND instance_id=?", params)
        cur.executemany("DELETE FROM inbox WHERE hub=? AND instance_id=?", params)
        cur.executemany("DELETE FROM tasks WHERE hub=? AND instance_id=?", params)
        if not keep_row:
            cur.executemany("DELETE FROM instances WHERE hub=? AND instance_id=?", params)

    def _ensure_entities_tx(self, cur: sqlite3.Cursor, ids: list[str], now: float | None) -> None:
        """Entities exist implicitly: the first message to ``@name@key`` creates its row."""
        cur.executemany(
            "INSERT OR IGNORE INTO instances (hub, instance_id, name, execution_id, status,"
            " created_at, updated_at) VALUES (?,?,?,'entity','Running',?,?)",
            [(self.hub, i, i[1:].partition("@")[0], now, now) for i in ids],
        )

    def _insert_messages_tx(
        self, cur: sqlite3.Cursor, messages: list[Message], now: float | None, ensure: bool = True
    ) -> None:
        entities = {m.instance_id for m in messages if m.instance_id.startswith("@")}
        if entities and ensure:
            self._ensure_entities_tx(cur, sorted(entities), now)
        if messages:
            # Only into existing instances: a message to an unknown ID is dropped, not orphaned.
            cur.executemany(
                "INSERT INTO inbox (hub, instance_id, execution_id, event_type, data, visible_at,"
                " created_at) SELECT ?,?,?,?,?,?,? WHERE EXISTS"
                " (SELECT 1 FROM instances WHERE hub=? AND instance_id=?)",
                [
                    (
                        self.hub,
                        m.instance_id,
                        m.execution_id,
                        m.event.event_type,
                        event_to_json(m.event),
                        ts(m.visible_at) if m.visible_at else 0.0,
                        now,
                        self.hub,
                        m.instance_id,
                    )
                    for m in messages
                ],
            )

    def enqueue_if(self, message: Message, allowed: frozenset[Status]) -> Status | None:
        status = self._messages.submit((message, allowed))
        if status in allowed:
            self._changed()
        return status

    def _enqueue_many(
        self, requests: list[tuple[Message, frozenset[Status]]]
    ) -> list[Status | None]:
        """Commit the messages of concurrent ``enqueue_if`` calls in one transaction.

        Each is checked against its target's status as of that transaction; client
        messages change no status, so the order within the batch does not matter to it."""
        now = time.time()
        with self._tx() as cur:
            entities = sorted({m.instance_id for m, _ in requests if m.instance_id[:1] == "@"})
            if entities:
                self._ensure_entities_tx(cur, entities, now)
            statuses: dict[str, Status | None] = {}
            for message, _ in requests:
                if message.instance_id not in statuses:
                    row = cur.execute(
                        "SELECT status FROM instances WHERE hub=? AND instance_id=?",
                        (self.hub, message.instance_id),
                    ).fetchone()
                    statuses[message.instance_id] = None if row is None else Status(row[0])
            results = [statuses[m.instance_id] for m, _ in requests]
            accepted = [
                m for (m, allowed), status in zip(requests, results, strict=True)
                if status in allowed
            ]
            self._insert_messages_tx(cur, accepted, now, ensure=False)
        return results

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        rows = self._read(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE hub=? AND instance_id=?",
            (self.hub, instance_id),
        )
        return _record(rows[0]) if rows else None

    def get_instances(
        self, instance_ids: Sequence[str], statuses: frozenset[Status] | None = None
    ) -> list[InstanceRecord]:
        ids = list(dict.fromkeys(instance_ids))
        wanted = sorted(s.value for s in statuses) if statuses is not None else []
        only = f" AND status IN ({','.join('?' * len(wanted))})" if statuses is not None else ""
        out: list[InstanceRecord] = []
        for start in range(0, len(ids), 500):  # well under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE hub=? AND instance_id IN"
                f" ({marks}){only}",
                [self.hub, *chunk, *wanted],
            )
            out.extend(_record(r) for r in rows)
        return out

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._read_lock:
            self._reader.execute("BEGIN")  # one snapshot for both reads
            try:
                row = self._reader.execute(
                    "SELECT execution_id FROM instances WHERE hub=? AND instance_id=?",
                    (self.hub, instance_id),
                ).fetchone()
                return [] if row is None else self._load_history(instance_id, row[0])
            finally:
                self._reader.execute("COMMIT")

    def _load_history(self, instance_id: str, execution_id: str) -> list[HistoryEvent]:
        rows = self._reader.execute(
            "SELECT event_type, data FROM history WHERE hub=? AND instance_id=? AND execution_id=?"
            " ORDER BY seq",
            (self.hub, instance_id, execution_id),
        ).fetchall()
        return events_from_rows(rows)

    def _where(self, q: InstanceQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = ["hub=?"]
        params: list[Any] = [self.hub]
        if q.created_from is not None:
            clauses.append("created_at>=?")
            params.append(ts(q.created_from))
        if q.created_to is not None:
            clauses.append("created_at<=?")
            params.append(ts(q.created_to))
        if q.statuses:
            clauses.append(f"status IN ({','.join('?' * len(q.statuses))})")
            params.extend(s.value for s in q.statuses)
        if q.instance_id_prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            params.extend([len(q.instance_id_prefix), q.instance_id_prefix])
        if not (q.instance_id_prefix or "").startswith("@"):
            clauses.append("substr(instance_id, 1, 1) <> '@'")  # entities are listed apart
        if q.name:
            clauses.append("name=?")
            params.append(q.name)
        return " AND ".join(clauses), params

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        rows, token = list_page(query, self._instance_page)
        return [_record(r) for r in rows], token

    def _instance_page(self, query: InstanceQuery, limit: int) -> list[Any]:
        where, params = self._where(query)
        op, order = ("<", "DESC") if query.newest_first else (">", "ASC")
        if query.continuation_token:
            # A row value: the index range starts at the token instead of at the status.
            where += f" AND (created_at, instance_id) {op} (?, ?)"
            params += list(decode_token(query.continuation_token))
        # One status: its index range, in created_at order, with only the ties sorted by
        # instance_id, stopping after the page. Left to itself the planner avoids that
        # sort by walking instances_created and testing every instance's status (a page
        # of a status none of 100,000 instances has: 34 ms, against 0.02 ms so). Ending
        # the index with instance_id would need no sort but makes every start 5% slower.
        index = " INDEXED BY instances_status" if query.statuses else ""
        return self._read(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances{index} WHERE {where}"
            f" ORDER BY created_at {order}, instance_id {order} LIMIT ?",
            [*params, limit],
        )

    def count_by_status(self) -> dict[Status, int]:
        rows = self._read(
            "SELECT status, COUNT(*) FROM instances WHERE hub=? GROUP BY status", (self.hub,)
        )
        return {Status(s): n for s, n in rows}

    def backlog(self, now: datetime) -> Backlog:
        # Message visibility follows the worker clock (virtual in tests); task leases
        # follow wall time, as fetch_activity_work does.
        rows = self._read(
            "SELECT (SELECT COUNT(*) FROM inbox WHERE hub=? AND visible_at<=?),"
            " (SELECT COUNT(*) FROM inbox WHERE hub=? AND visible_at>?),"
            " (SELECT COUNT(*) FROM tasks WHERE hub=? AND lock_expires<?),"
            " (SELECT COUNT(*) FROM tasks WHERE hub=? AND lock_expires>=?)",
            (self.hub, now.timestamp()) * 2 + (self.hub, time.time()) * 2,
        )
        return Backlog(*rows[0])

    def purge_instances(
        self,
        instance_ids: list[str] | None = None,
        query: InstanceQuery | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        if instance_ids is not None:
            with self._tx() as cur:
                existing = [
                    i
                    for i in instance_ids
                    if cur.execute(
                        "SELECT 1 FROM instances WHERE hub=? AND instance_id=?", (self.hub, i)
                    ).fetchone()
                ]
                self._delete_instance_data_tx(cur, existing)
            return len(existing)
        q = query or InstanceQuery()
        statuses = frozenset(q.statuses or TERMINAL_STATUSES) & TERMINAL_STATUSES
        if not statuses:
            return 0
        q = InstanceQuery(q.created_from, q.created_to, statuses, q.instance_id_prefix, q.name)
        where, params = self._where(q)
        total = 0
        while True:
            with self._tx() as cur:
                ids = [
                    r[0]
                    for r in cur.execute(
                        f"SELECT instance_id FROM instances WHERE {where} LIMIT 500", params
                    )
                ]
                self._delete_instance_data_tx(cur, ids)
            total += len(ids)
            if progress is not None and ids:
                progress(total)
            if len(ids) < 500:
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
        wall = time.time()
        # Look before taking the write lock, so idle workers never contend for it.
        with self._read_lock:
            if not self._candidates(self._reader.execute, now.timestamp(), wall, 1):
                return []
        with self._tx() as cur:
            return self._fetch_tx(cur, owner, now, wall, limit, lease_seconds, message_limit)

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
        with self._tx() as cur:
            accepted = self._complete_tx(cur, owner, results, now.timestamp())
            items = self._fetch_tx(
                cur, owner, now, time.time(), limit, lease_seconds, message_limit
            )
        if accepted:
            self._changed()
        return accepted, items

    def _candidates(
        self,
        execute: Callable[[str, Sequence[Any]], sqlite3.Cursor],
        visible: float,
        wall: float,
        limit: int,
    ) -> list[str]:
        """Up to ``limit`` unleased instances with visible messages, oldest message first:
        from the oldest few hundred messages, or when those are all some instances' (a
        burst of signals to one entity, messages of leased instances), from all."""
        window = max(256, 4 * limit)
        end = execute(_WINDOW_END, (self.hub, visible, window - 1)).fetchone()
        if end is None:  # all visible messages fit in the window
            return [r[0] for r in execute(_VISIBLE, (self.hub, visible, wall, limit))]
        last_at, last_id = end
        ids = [r[0] for r in execute(_BEFORE, (self.hub, last_at, wall, limit))]
        if len(ids) < limit:
            seen = set(ids)
            at = execute(_AT, (self.hub, last_at, wall, limit, last_id))
            ids += [r[0] for r in at if r[0] not in seen][: limit - len(ids)]
        if len(ids) < limit:
            # ~1.6 us per instance visited: past the window's size, walking is cheaper
            args = (self.hub, visible, wall, limit)
            counted, *found = execute(_SPARSE_CANDIDATES, (*args, window + 1))
            if counted[2] <= window:
                return [r[1] for r in found]
            ids = [r[0] for r in execute(_VISIBLE, args)]
        return ids

    def _fetch_tx(
        self,
        cur: sqlite3.Cursor,
        owner: str,
        now: datetime,
        wall: float,
        limit: int,
        lease_seconds: float,
        message_limit: int,
    ) -> list[OrchestrationWorkItem]:
        visible = now.timestamp()
        ids = self._candidates(cur.execute, visible, wall, limit)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        cur.execute(
            "UPDATE instances SET lock_owner=?, lock_expires=?"
            f" WHERE hub=? AND instance_id IN ({marks})",
            [owner, wall + lease_seconds, self.hub, *ids],
        )
        records = {
            r[0]: _record(r)
            for r in cur.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances"
                f" WHERE hub=? AND instance_id IN ({marks})",
                [self.hub, *ids],
            )
        }
        items = {i: OrchestrationWorkItem(records[i], []) for i in ids}
        rows = cur.execute(
            _MESSAGES_OF.format(marks=marks), [self.hub, *ids, visible, message_limit + 1]
        ).fetchall()
        if len(rows) > message_limit:  # some instance may have more than it is handed
            rows = cur.execute(
                _CAPPED_MESSAGES_OF, (self.hub, visible, message_limit, json.dumps(ids))
            ).fetchall()
        for mid, iid, eid, etype, data, stop in rows:
            item = items[iid]
            item.messages.append(Message(iid, event_from_json(etype, data), eid, None, mid))
            item.more = stop is not None
        return list(items.values())

    def load_history(self, instance_id: str, execution_id: str) -> list[HistoryEvent]:
        with self._read_lock:
            return self._load_history(instance_id, execution_id)

    def load_histories(
        self, executions: list[tuple[str, str]]
    ) -> dict[str, list[HistoryEvent]]:
        wanted = dict(executions)
        out: dict[str, list[HistoryEvent]] = {i: [] for i in wanted}
        ids = list(wanted)
        with self._read_lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = self._reader.execute(
                    "SELECT instance_id, execution_id, event_type, data FROM history"
                    f" WHERE hub=? AND instance_id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY instance_id, seq",
                    [self.hub, *chunk],
                ).fetchall()
                for iid, eid, etype, data in rows:
                    if wanted[iid] == eid:
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
        stamp = now.timestamp()
        taken: list[ActivityWorkItem] = []
        with self._tx() as cur:
            lost = self._commit_tx(
                cur, owner, checkpoints, stamp, time.time(), limit, lease_seconds, taken
            )
        self._changed()
        self._finished(finished_ids(checkpoints, lost))
        return lost, taken

    def _commit_tx(
        self,
        cur: sqlite3.Cursor,
        owner: str,
        checkpoints: list[Checkpoint],
        stamp: float,
        wall: float,
        take: int = 0,
        lease_seconds: float = 0.0,
        taken: list[ActivityWorkItem] | None = None,
    ) -> list[str]:
        hub = self.hub
        # The fence: a checkpoint is written only if its instance is still leased by this
        # owner (or, for a claim, leased by nobody) at the execution and history position
        # the episode started from, with the tasks whose results it consumed still ours.
        # Nobody else can write between this read and the updates: we hold the write lock.
        rows: dict[str, tuple[Any, ...]] = {}
        ids = [cp.instance_id for cp in checkpoints]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in cur.execute(
                "SELECT instance_id, lock_owner, lock_expires, execution_id, history_length,"
                f" status FROM instances WHERE hub=? AND instance_id IN ({marks})",
                [hub, *chunk],
            ):
                rows[row[0]] = row
        owned = self._owned_tasks(cur, owner, [t for cp in checkpoints for t in cp.finished_tasks])
        valid: list[Checkpoint] = []
        lost: list[str] = []
        for cp in checkpoints:
            row = rows.get(cp.instance_id)
            if (
                row is not None
                and ((row[1] == owner and row[2] >= wall) or (cp.claim and row[2] < wall))
                and row[3] == cp.execution_id
                and row[4] == cp.history_length
                and all(t in owned for t in cp.finished_tasks)
            ):
                valid.append(cp)
            else:
                lost.append(cp.instance_id)
        if not valid:
            return lost
        # Rows whose status changes, and the rest: an UPDATE that sets the status rewrites
        # its entry in instances_status even when the value stays, so most checkpoints
        # (Running to Running) leave the column out.
        updates: list[tuple[Any, ...]] = []
        same_status: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        consumed: list[tuple[int]] = []
        finished: list[tuple[str, str]] = []
        reset: list[tuple[str, str]] = []
        messages: list[Message] = []
        tasks: list[tuple[Any, ...]] = []
        for cp in valid:
            done = cp.status in TERMINAL_STATUSES
            new_exec = cp.new_execution
            if new_exec is not None or cp.replace_history:
                reset.append((hub, cp.instance_id))
            if new_exec is not None:
                length = 0
            else:
                first = 0 if cp.replace_history else cp.history_length
                length = first + len(cp.history)
                history.extend(
                    (hub, cp.instance_id, cp.execution_id, seq, kind, data)
                    for seq, kind, data in history_rows(first, cp.history)
                )
            fields = (
                cp.output,
                _failure_to_text(cp.failure),
                cp.custom_status,
                stamp,
                stamp if done else None,
                length,
                new_exec.execution_id if new_exec else cp.execution_id,
                new_exec.input if new_exec else None,
                hub,
                cp.instance_id,
            )
            status = cp.status.value
            if rows[cp.instance_id][5] == status:
                same_status.append(fields)
            else:
                updates.append((status, *fields))
            consumed.extend((i,) for i in cp.consumed)
            if done:
                finished.append((hub, cp.instance_id))
            tasks.extend(
                (hub, t.instance_id, t.execution_id, t.task_id, t.name, t.input, stamp)
                for t in cp.tasks
            )
        if updates:
            cur.executemany("UPDATE instances SET status=?," + _CHECKPOINT_SET, updates)
        if same_status:
            cur.executemany("UPDATE instances SET" + _CHECKPOINT_SET, same_status)
        if reset:
            cur.executemany("DELETE FROM history WHERE hub=? AND instance_id=?", reset)
        if history:
            cur.executemany(
                "INSERT INTO history (hub, instance_id, execution_id, seq, event_type, data)"
                " VALUES (?,?,?,?,?,?)",
                history,
            )
        if consumed:
            cur.executemany("DELETE FROM inbox WHERE id=?", consumed)
        finished_tasks = [(t,) for cp in valid for t in cp.finished_tasks]
        if finished_tasks:
            cur.executemany("DELETE FROM tasks WHERE id=?", finished_tasks)
        if finished:
            # Pending timers and results for a finished instance can never matter.
            cur.executemany(
                "DELETE FROM inbox WHERE hub=? AND instance_id=? AND event_type IN"
                " ('TimerFired', 'TaskCompleted', 'TaskFailed')",
                finished,
            )
        # Messages and child instances go in checkpoint order, so the batch behaves
        # exactly like committing its checkpoints one by one.
        for cp in valid:
            messages.extend(cp.messages)
            if cp.sub_orchestrations:
                self._insert_messages_tx(cur, messages, stamp)
                messages = []
                for sub in cp.sub_orchestrations:
                    try:
                        self._create_instance_tx(cur, sub.child, _ACTIVE)
                    except InstanceAlreadyExistsError:
                        messages.append(sub.on_conflict)
        self._insert_messages_tx(cur, messages, stamp)
        if taken is not None and take > 0:
            # Leased to this worker in the same transaction: it runs them without a fetch.
            mine = tasks[:take]
            if mine:
                cur.executemany(
                    "INSERT INTO tasks (hub, instance_id, execution_id, task_id, name, input,"
                    " created_at, lock_owner, lock_expires, dequeue_count)"
                    " VALUES (?,?,?,?,?,?,?,?,?,1)",
                    [(*row, owner, wall + lease_seconds) for row in mine],
                )
                # One statement under the write lock on an AUTOINCREMENT key: the rows took
                # consecutive IDs, ending at the last one inserted.
                first = cur.execute("SELECT last_insert_rowid()").fetchone()[0] - len(mine) + 1
                taken.extend(
                    ActivityWorkItem(r[1], r[2], r[3], r[4], r[5], id=first + k, dequeue_count=1)
                    for k, r in enumerate(mine)
                )
            tasks = tasks[take:]
        if tasks:
            cur.executemany(
                "INSERT INTO tasks"
                " (hub, instance_id, execution_id, task_id, name, input, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                tasks,
            )
        elif taken is not None and take > len(taken):
            # Slots left (those the finished tasks free among them): queued tasks fill
            # them here, rather than in a fetch of the activity loop's own.
            taken.extend(self._lease_tasks_tx(cur, owner, take - len(taken), wall, lease_seconds))
        return lost

    def release_instances(self, owner: str, instance_ids: list[str]) -> None:
        if not instance_ids:
            return
        with self._tx() as cur:
            cur.executemany(
                "UPDATE instances SET lock_owner=NULL, lock_expires=0"
                " WHERE hub=? AND instance_id=? AND lock_owner=?",
                [(self.hub, i, owner) for i in instance_ids],
            )

    def fetch_activity_work(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[ActivityWorkItem]:
        wall = time.time()
        ready = "SELECT 1 FROM tasks WHERE hub=? AND lock_expires<? LIMIT 1"
        if not self._read(ready, (self.hub, wall)):
            return []
        with self._tx() as cur:
            return self._lease_tasks_tx(cur, owner, limit, wall, lease_seconds)

    def _lease_tasks_tx(
        self, cur: sqlite3.Cursor, owner: str, limit: int, wall: float, lease_seconds: float
    ) -> list[ActivityWorkItem]:
        rows = cur.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input, dequeue_count"
            " FROM tasks"
            " WHERE hub=? AND lock_expires<? ORDER BY lock_expires, id LIMIT ?",
            (self.hub, wall, limit),
        ).fetchall()
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        cur.execute(
            "UPDATE tasks SET lock_owner=?, lock_expires=?, dequeue_count=dequeue_count+1"
            f" WHERE id IN ({marks})",
            [owner, wall + lease_seconds, *(r[0] for r in rows)],
        )
        return [
            ActivityWorkItem(r[1], r[2], r[3], r[4], r[5], id=r[0], dequeue_count=r[6] + 1)
            for r in rows
        ]

    def complete_activities(self, owner: str, results: list[ActivityResult], now: datetime) -> int:
        with self._tx() as cur:
            accepted = self._complete_tx(cur, owner, results, now.timestamp())
        if accepted:
            self._changed()
        return accepted

    def _owned_tasks(self, cur: sqlite3.Cursor, owner: str, ids: list[int]) -> set[int]:
        """Which of the task rows ``ids`` are still leased by ``owner``."""
        owned: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            owned.update(
                row[0]
                for row in cur.execute(
                    f"SELECT id FROM tasks WHERE id IN ({marks}) AND lock_owner=?",
                    [*chunk, owner],
                )
            )
        return owned

    def _complete_tx(
        self, cur: sqlite3.Cursor, owner: str, results: list[ActivityResult], stamp: float
    ) -> int:
        owned = self._owned_tasks(cur, owner, [r.item.id for r in results])
        # A task no longer leased by us was taken over (or finished) by another
        # worker: its result is discarded, which is what at-least-once allows.
        done = [r for r in results if r.item.id in owned]
        cur.executemany("DELETE FROM tasks WHERE id=?", [(r.item.id,) for r in done])
        self._insert_messages_tx(
            cur,
            [Message(r.item.instance_id, r.event, r.item.execution_id) for r in done],
            stamp,
        )
        return len(done)

    def renew_activity_leases(self, owner: str, ids: list[int], lease_seconds: float) -> None:
        if not ids:
            return
        expires = time.time() + lease_seconds
        with self._tx() as cur:
            cur.executemany(
                "UPDATE tasks SET lock_expires=? WHERE id=? AND lock_owner=?",
                [(expires, i, owner) for i in ids],
            )

    def lock_owners(self) -> set[str]:
        wall = time.time()
        rows = self._read(
            "SELECT lock_owner FROM instances WHERE hub=? AND lock_expires>=?"
            " UNION SELECT lock_owner FROM tasks WHERE hub=? AND lock_expires>=?",
            (self.hub, wall, self.hub, wall),
        )
        return {r[0] for r in rows if r[0]}

    def release_owner(self, owner: str) -> int:
        with self._tx() as cur:
            cur.execute(
                "UPDATE instances SET lock_owner=NULL, lock_expires=0 WHERE hub=? AND lock_owner=?",
                (self.hub, owner),
            )
            n = cur.rowcount
            cur.execute(
                "UPDATE tasks SET lock_owner=NULL, lock_expires=0 WHERE hub=? AND lock_owner=?",
                (self.hub, owner),
            )
            n += cur.rowcount
        if n:
            self._changed()
        return n

    def next_visible_at(self, after: datetime) -> datetime | None:
        rows = self._read(
            "SELECT MIN(visible_at) FROM inbox WHERE hub=? AND visible_at>?",
            (self.hub, after.timestamp()),
        )
        return dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def get_setting(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM settings WHERE hub=? AND key=?", (self.hub, key))
        return rows[0][0] if rows else None

    def set_setting_if_absent(self, key: str, value: str) -> str:
        with self._tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO settings (hub, key, value) VALUES (?,?,?)",
                (self.hub, key, value),
            )
            return str(
                cur.execute(
                    "SELECT value FROM settings WHERE hub=? AND key=?", (self.hub, key)
                ).fetchone()[0]
            )


_ACTIVE = frozenset({Status.Pending, Status.Running, Status.ContinuedAsNew, Status.Suspended})
