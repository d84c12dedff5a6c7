"""Contract for queries and purge: paging with continuation tokens, filters, terminal-only purge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from perdure.errors import ValidationError
from perdure.model.status import ACTIVE_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import InstanceQuery, Message, Store

from .support import at, checkpoint, create, lease, raised

BASE = at(-3600)


def populate(store: Store) -> list[str]:
    """25 instances: two share each creation time (ties are broken by ID); 'c*' complete."""
    ids = []
    for n in range(25):
        iid = f"{'c' if n % 3 == 0 else 'r'}{n:02}"
        create(store, iid, name="even" if n % 2 == 0 else "odd",
               created_at=BASE + timedelta(seconds=n // 2))
        ids.append(iid)
    items = lease(store, "A")
    cps = [
        checkpoint(item, status=Status.Completed if iid.startswith("c") else Status.Running)
        for iid, item in items.items()
    ]
    assert store.commit_checkpoints("A", cps, at()) == []
    return ids


def all_pages(store: Store, query: InstanceQuery) -> list[list[str]]:
    pages = []
    while True:
        records, token = store.query_instances(query)
        pages.append([r.instance_id for r in records])
        if token is None:
            return pages
        query.continuation_token = token


def expected_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda i: (int(i[1:]) // 2, i))


def test_paging_returns_every_instance_once_in_creation_order(store: Store) -> None:
    ids = populate(store)
    pages = all_pages(store, InstanceQuery(page_size=10))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == expected_order(ids)


def test_paging_newest_first(store: Store) -> None:
    ids = populate(store)
    pages = all_pages(store, InstanceQuery(page_size=7, newest_first=True))
    assert [i for p in pages for i in p] == expected_order(ids)[::-1]


def test_query_filters(store: Store) -> None:
    ids = populate(store)

    def ids_for(**kwargs: object) -> list[str]:
        return sorted(i for p in all_pages(store, InstanceQuery(**kwargs)) for i in p)  # type: ignore[arg-type]

    assert ids_for(statuses=frozenset({Status.Completed})) == sorted(i for i in ids if i[0] == "c")
    assert ids_for(statuses=frozenset({Status.Completed, Status.Running})) == sorted(ids)
    assert ids_for(name="odd") == sorted(i for i in ids if int(i[1:]) % 2)
    assert ids_for(instance_id_prefix="r1") == sorted(i for i in ids if i.startswith("r1"))
    window = ids_for(
        created_from=BASE + timedelta(seconds=2), created_to=BASE + timedelta(seconds=3)
    )
    assert window == sorted(i for i in ids if int(i[1:]) // 2 in (2, 3))
    assert ids_for(name="none") == []


def test_a_bad_continuation_token_is_a_validation_error(store: Store) -> None:
    with pytest.raises(ValidationError):
        store.query_instances(InstanceQuery(continuation_token="not-a-token"))


def test_count_by_status(store: Store) -> None:
    assert store.count_by_status() == {}
    populate(store)
    assert store.count_by_status() == {Status.Completed: 9, Status.Running: 16}


def test_purge_by_ids_deletes_any_status_with_all_rows(store: Store) -> None:
    populate(store)
    create(store, "pending")
    assert store.purge_instances(["c00", "r01", "pending", "ghost"]) == 3
    for iid in ("c00", "r01", "pending"):
        assert store.get_instance(iid) is None and store.get_history(iid) == []
    assert lease(store, "B") == {}
    assert store.count_by_status() == {Status.Completed: 8, Status.Running: 15}


def test_purge_by_filter_deletes_only_finished_instances(store: Store) -> None:
    populate(store)
    seen: list[int] = []
    assert store.purge_instances(query=InstanceQuery(), progress=seen.append) == 9
    assert seen == [9]
    assert store.count_by_status() == {Status.Running: 16}
    running_only = InstanceQuery(statuses=frozenset({Status.Running}))
    assert store.purge_instances(query=running_only) == 0
    assert store.count_by_status() == {Status.Running: 16}


def test_purge_by_filter_honours_the_filters(store: Store) -> None:
    ids = populate(store)
    query = InstanceQuery(created_to=BASE + timedelta(seconds=4), name="even")
    expected = [i for i in ids if i[0] == "c" and int(i[1:]) // 2 <= 4 and int(i[1:]) % 2 == 0]
    assert store.purge_instances(query=query) == len(expected)
    for iid in expected:
        assert store.get_instance(iid) is None


def test_entities_are_listed_only_when_asked_for_by_prefix(store: Store) -> None:
    populate(store)
    store.enqueue_if(Message("@cart@42", raised()), ACTIVE_STATUSES)
    everything = [i for p in all_pages(store, InstanceQuery(page_size=100)) for i in p]
    assert len(everything) == 25 and "@cart@42" not in everything
    entities = all_pages(store, InstanceQuery(instance_id_prefix="@cart@"))
    assert entities == [["@cart@42"]]


@pytest.mark.parametrize("newest_first", [False, True])
def test_paging_over_several_statuses_merges_them_in_creation_order(
    store: Store, newest_first: bool
) -> None:
    ids = populate(store)
    for n in range(5):  # Pending instances created among the others
        create(store, f"p{n:02}", created_at=BASE + timedelta(seconds=2 * n, milliseconds=1))
    statuses = frozenset({Status.Pending, Status.Completed, Status.Running})
    pages = all_pages(store, InstanceQuery(statuses=statuses, page_size=4,
                                           newest_first=newest_first))
    listed = [i for p in pages for i in p]
    key = {i: (BASE + timedelta(seconds=int(i[1:]) // 2), i) for i in ids}
    key |= {f"p{n:02}": (BASE + timedelta(seconds=2 * n, milliseconds=1), f"p{n:02}")
            for n in range(5)}
    assert listed == sorted(key, key=key.__getitem__, reverse=newest_first)
    assert all(len(p) == 4 for p in pages[:-1])
    two = all_pages(store, InstanceQuery(statuses=frozenset({Status.Pending, Status.Completed}),
                                         page_size=3, newest_first=newest_first))
    assert [i for p in two for i in p] == [i for i in listed if i[0] in "pc"]


def test_paging_one_status_from_a_token_returns_the_rest_in_order(store: Store) -> None:
    ids = populate(store)
    running = InstanceQuery(statuses=frozenset({Status.Running}), page_size=5)
    pages = all_pages(store, running)
    assert [len(p) for p in pages] == [5, 5, 5, 1]
    assert [i for p in pages for i in p] == [i for i in expected_order(ids) if i[0] == "r"]
