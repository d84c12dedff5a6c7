"""Paging through instance listings: continuation tokens and per-status pages.

A listing is ordered by (created_at, instance_id). A filter on one status walks the
status index (hub, status, created_at) from the token on and stops after one page; a
filter on several statuses asks each status for a page and merges them, rather than
have the database read and sort every instance of those statuses per page.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from perdure.errors import ValidationError
from perdure.store.base import InstanceQuery

# Positions of created_at and instance_id in a store's instance row.
CREATED_AT = 8
INSTANCE_ID = 0


def encode_token(created_at: float, instance_id: str) -> str:
    raw = json.dumps([created_at, instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> tuple[float, str]:
    try:
        created_at, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created_at), str(instance_id)
    except Exception:
        raise ValidationError(f"invalid continuation token {token!r}") from None


def _key(row: Sequence[Any]) -> tuple[float, str]:
    return row[CREATED_AT], row[INSTANCE_ID]


def merge_pages(
    pages: Sequence[Sequence[Sequence[Any]]], limit: int, newest_first: bool
) -> list[Sequence[Any]]:
    """The first ``limit`` rows of ``pages`` (each already in listing order), in order.

    Instance IDs compare as the stores order them: by code point (SQLite's BINARY
    collation, PostgreSQL's "C"), as Python compares strings. The pages are separate
    reads, so an instance whose status changed between two of them can be in both: it
    is listed once.
    """
    if len(pages) == 1:
        return list(pages[0][:limit])
    out: list[Sequence[Any]] = []
    seen: set[str] = set()
    for r in heapq.merge(*pages, key=_key, reverse=newest_first):
        if r[INSTANCE_ID] not in seen:
            seen.add(r[INSTANCE_ID])
            out.append(r)
            if len(out) == limit:
                break
    return out


def split_page(
    rows: Sequence[Sequence[Any]], size: int
) -> tuple[Sequence[Sequence[Any]], str | None]:
    """A page of at most ``size`` rows (``size + 1`` were read) and the token after it."""
    if len(rows) <= size:
        return rows, None
    page = rows[:size]
    return page, encode_token(*_key(page[-1]))


def per_status(query: InstanceQuery) -> list[InstanceQuery]:
    """``query`` once per status it filters on (once if it filters on none or one)."""
    if not query.statuses or len(query.statuses) == 1:
        return [query]
    return [
        replace(query, statuses=frozenset({status}))
        for status in sorted(query.statuses, key=lambda s: s.value)
    ]


def list_page(
    query: InstanceQuery, read: Callable[[InstanceQuery, int], Sequence[Sequence[Any]]]
) -> tuple[Sequence[Sequence[Any]], str | None]:
    """One page of ``query`` and the token after it; ``read(q, limit)`` is a store's
    read of up to ``limit`` rows of ``q`` (one status at most) in listing order."""
    size = max(1, min(int(query.page_size), 1000))
    pages = [read(q, size + 1) for q in per_status(query)]
    return split_page(merge_pages(pages, size + 1, query.newest_first), size)
