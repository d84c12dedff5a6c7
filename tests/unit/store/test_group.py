"""GroupCommit: concurrent callers share batches; each gets its own result or error."""

from __future__ import annotations

import threading
import time

import pytest

from perdure.store.group import GroupCommit


def test_a_lone_caller_runs_at_once_in_a_batch_of_its_own() -> None:
    seen: list[list[int]] = []
    group = GroupCommit(lambda reqs: (seen.append(list(reqs)), [r + 1 for r in reqs])[1])
    assert [group.submit(1), group.submit(2)] == [2, 3]
    assert seen == [[1], [2]]


def test_callers_arriving_during_a_batch_share_the_next_one_in_arrival_order() -> None:
    release = threading.Event()
    seen: list[list[str]] = []

    def write(reqs: list[str]) -> list[str]:
        seen.append(list(reqs))
        if reqs == ["first"]:
            release.wait(5)  # hold the first batch while the others queue
        return [r.upper() for r in reqs]

    group = GroupCommit(write)
    results: dict[str, str] = {}
    first = threading.Thread(target=lambda: results.update(first=group.submit("first")))
    first.start()
    while not seen:
        time.sleep(0.001)
    others = [
        threading.Thread(target=lambda n=n: results.update({n: group.submit(n)}))
        for n in ("b", "c", "d")
    ]
    for t in others:
        t.start()
        while len(group._queue) < others.index(t) + 1:
            time.sleep(0.001)  # queued, in this order
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert results == {"first": "FIRST", "b": "B", "c": "C", "d": "D"}
    assert seen == [["first"], ["b", "c", "d"]]
    assert (group.batches, group.requests) == (2, 4)


def test_a_failed_batch_fails_every_caller_in_it() -> None:
    def write(reqs: list[int]) -> list[int]:
        raise ConnectionError("lost")

    group = GroupCommit(write)
    with pytest.raises(ConnectionError, match="lost"):
        group.submit(1)
    # and the group still works for the next caller
    group._write = lambda reqs: reqs
    assert group.submit(7) == 7


def test_a_rejected_batch_is_retried_one_by_one_so_only_the_bad_request_fails() -> None:
    def alone(r: int) -> int:
        if r < 0:
            raise ValueError(f"bad {r}")
        return r * 10

    group: GroupCommit[int, int] = GroupCommit(
        lambda reqs: [alone(r) for r in reqs], alone=alone
    )
    batch = [_slot(r) for r in (1, -2, 3)]
    group._run(batch)
    assert [(s.result, repr(s.error)) for s in batch] == [
        (10, "None"), (None, "ValueError('bad -2')"), (30, "None"),
    ]


def test_errors_that_leave_the_outcome_unknown_are_not_retried_alone() -> None:
    calls: list[int] = []

    def alone(r: int) -> int:
        calls.append(r)
        return r

    def write(reqs: list[int]) -> list[int]:
        raise TimeoutError("commit unknown")

    group = GroupCommit(
        write, alone=alone, alone_if=lambda exc: not isinstance(exc, TimeoutError)
    )
    batch = [_slot(1), _slot(2)]
    group._run(batch)
    assert calls == []
    assert all(isinstance(s.error, TimeoutError) for s in batch)


def test_a_write_returning_the_wrong_number_of_results_fails_its_callers() -> None:
    group = GroupCommit(lambda reqs: [])
    with pytest.raises(RuntimeError, match="a batch of 1 wrote 0 results"):
        group.submit(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        GroupCommit(lambda reqs: reqs, max_batch=0)


def _slot(request: int):  # type: ignore[no-untyped-def]
    from perdure.store.group import _Slot

    return _Slot(request)
