"""Storage: the Store contract and its backends. The only place with SQL."""

from __future__ import annotations

from perdure.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, hub: str = "default") -> Store:
    """Open a store from a URL: ``sqlite:///path.db``, a bare path, or ``postgresql://...``."""
    from perdure.errors import ValidationError

    if url.startswith(("postgresql://", "postgres://")):
        try:
            from perdure.store.postgres.store import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ValidationError(
                "the PostgreSQL backend needs psycopg: pip install 'perdure[postgres]'"
            ) from exc
        return PostgresStore(url, hub=hub)
    from perdure.store.sqlite.store import SqliteStore

    if url.startswith("sqlite://"):
        path, _, query = url[len("sqlite://") :].partition("?")
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        options = dict(p.partition("=")[::2] for p in query.split("&") if p)
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ValidationError(f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}")
        return SqliteStore(path or ":memory:", hub=hub, **options)
    if "://" in url:
        raise ValidationError(
            f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://..."
        )
    return SqliteStore(url, hub=hub)
