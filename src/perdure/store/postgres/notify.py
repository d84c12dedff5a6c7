"""LISTEN/NOTIFY wake-ups for idle workers: one dedicated connection per store.

Writers call ``pg_notify`` in the same transaction that adds inbox or task rows, so a
notification is only ever seen for committed work. The listening connection
reconnects with backoff; after a reconnect it reports a change, because
notifications sent while it was away are lost.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import psycopg
from psycopg import sql

log = logging.getLogger("perdure.store.postgres")

_MAX_CHANNEL = 63  # PostgreSQL identifiers are at most NAMEDATALEN - 1 bytes


def channel_name(hub: str) -> str:
    """The notification channel of a task hub (hashed if the name would not fit)."""
    name = f"perdure_{hub}"
    if len(name.encode()) <= _MAX_CHANNEL:
        return name
    return "perdure_" + hashlib.sha256(hub.encode()).hexdigest()[:40]


class ChangeListener:
    """Blocks until another process notifies the hub's channel.

    ``ignore`` is this store's own notification payload: a process already wakes its
    own threads in memory, so its own notifications would only cause extra rounds.
    """

    def __init__(self, conninfo: str, channel: str, ignore: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.ignore = ignore
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()
        self._backoff = 0.1
        self._retry_at = 0.0
        self._closed = False

    def _connect(self) -> None:
        conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # it is broken already; only the socket matters
                pass

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True if work may have been added by another process."""
        with self._lock:
            if self._closed:
                time.sleep(timeout)
                return False
            if self._conn is None:
                return self._reconnect(timeout)
            deadline = time.monotonic() + timeout
            conn = self._conn
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    for notify in conn.notifies(timeout=left):
                        if notify.payload != self.ignore:
                            return True
            except psycopg.Error as exc:
                log.warning("lost the LISTEN connection (%s); reconnecting", exc)
                self._drop()
                self._retry_at = time.monotonic()
                return True

    def _reconnect(self, timeout: float) -> bool:
        delay = self._retry_at - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, timeout))
            if delay > timeout:
                return False
        try:
            self._connect()
        except psycopg.Error as exc:
            log.warning("cannot LISTEN yet (%s); retrying in %.1fs", exc, self._backoff)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 5.0)
            return False
        self._backoff = 0.1
        return True  # notifications sent while disconnected are lost: assume a change

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._drop()
