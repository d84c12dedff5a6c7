"""The SQLite fetch's three ways of finding instances with visible messages: the window
of the oldest messages, and beyond it, a visit of each instance that holds messages (few
of them) or a walk of the visible messages (many)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perdure.model.status import ACTIVE_STATUSES
from perdure.store.base import Message
from perdure.store.sqlite import store as sqlite_store
from tests.contract.support import arm_timer, at, create, lease, raised


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite_store.SqliteStore]:
    s = sqlite_store.SqliteStore(str(tmp_path / "c.db"), hub="h")
    yield s
    s.close()


def _burst_then(store: sqlite_store.SqliteStore, *behind: str) -> None:
    """One instance with more messages than the window, then others with one each."""
    create(store, "hot")
    for _ in range(300):
        store.enqueue_if(Message("hot", raised()), ACTIVE_STATUSES)
    for name in behind:
        create(store, name)


# Behind the burst: a few instances (each visited), or more than the window holds
# messages, so that the fetch walks the visible messages instead.
BEHIND = {"visit-each": ["z", "a", "m"], "walk": [f"w{i:03}" for i in range(300)]}


@pytest.mark.parametrize("behind", BEHIND.values(), ids=BEHIND.keys())
def test_beyond_the_window_instances_come_oldest_first(
    store: sqlite_store.SqliteStore, behind: list[str]
) -> None:
    _burst_then(store, *behind)
    items = store.fetch_orchestration_work("w", at(), 10, 30, message_limit=5)
    assert [i.instance.instance_id for i in items] == ["hot", *behind[:9]]
    assert items[0].more and not any(i.more for i in items[1:])


@pytest.mark.parametrize("behind", BEHIND.values(), ids=BEHIND.keys())
def test_beyond_the_window_leased_instances_are_passed_over(
    store: sqlite_store.SqliteStore, behind: list[str]
) -> None:
    _burst_then(store, *behind)
    assert list(lease(store, "A", limit=1, message_limit=5)) == ["hot"]
    create(store, "last")
    served: list[str] = []
    while batch := lease(store, "B", limit=7):
        served += batch
    assert served == [*behind, "last"]


def test_an_instance_whose_messages_are_all_later_is_not_a_candidate(
    store: sqlite_store.SqliteStore,
) -> None:
    create(store, "later")
    arm_timer(store, "later")
    _burst_then(store)
    assert list(lease(store, "w", limit=10, message_limit=5)) == ["hot"]
    assert list(lease(store, "w", limit=10, now=at(61))) == ["later"]
