"""Merging per-status pages of instance rows into one listing page."""

from __future__ import annotations

from typing import Any

from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import InstanceQuery
from perdure.store.paging import (
    CREATED_AT,
    INSTANCE_ID,
    decode_token,
    merge_pages,
    per_status,
    split_page,
)


def row(created_at: float, instance_id: str) -> tuple[Any, ...]:
    cells: list[Any] = [None] * 13
    cells[CREATED_AT], cells[INSTANCE_ID] = created_at, instance_id
    return tuple(cells)


def ids(rows: list[Any]) -> list[str]:
    return [r[INSTANCE_ID] for r in rows]


def test_pages_merge_by_creation_time_then_id_up_to_the_limit() -> None:
    running = [row(1.0, "b"), row(2.0, "a"), row(4.0, "d")]
    pending = [row(1.0, "a2"), row(2.0, "c"), row(3.0, "e")]
    assert ids(merge_pages([running, pending], 4, newest_first=False)) == ["a2", "b", "a", "c"]
    newest = merge_pages([running[::-1], pending[::-1]], 3, newest_first=True)
    assert ids(newest) == ["d", "e", "c"]


def test_an_instance_read_under_two_statuses_is_listed_once() -> None:
    # It completed between the read of Running and the read of Completed.
    running = [row(1.0, "x"), row(5.0, "y")]
    completed = [row(1.0, "x"), row(2.0, "z")]
    assert ids(merge_pages([running, completed], 10, newest_first=False)) == ["x", "z", "y"]


def test_a_full_page_carries_the_token_of_its_last_row() -> None:
    rows = [row(1.0, "a"), row(2.0, "b"), row(3.0, "c")]
    page, token = split_page(rows, 2)
    assert ids(list(page)) == ["a", "b"]
    assert token is not None and decode_token(token) == (2.0, "b")
    assert split_page(rows, 3) == (rows, None)


def test_a_query_is_split_per_status_only_for_several() -> None:
    one = InstanceQuery(statuses=frozenset({Status.Running}), page_size=7)
    assert per_status(one) == [one]
    assert per_status(InstanceQuery()) == [InstanceQuery()]
    several = InstanceQuery(statuses=frozenset({Status.Running, Status.Pending}), name="n")
    split = per_status(several)
    assert [q.statuses for q in split] == [
        frozenset({Status.Pending}), frozenset({Status.Running})
    ]
    assert all(q.name == "n" for q in split)
