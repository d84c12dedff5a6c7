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


def test_a_queue_longer_than_max_batch_is_written_in_several_batches_in_order() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def write(reqs: list[int]) -> list[int]:
        seen.append(list(reqs))
        if reqs == [0]:
            release.wait(5)
        return [r * 10 for r in reqs]

    group = GroupCommit(write, max_batch=2)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda n=n: results.update({n: group.submit(n)}))
               for n in range(6)]
    threads[0].start()
    while not seen:
        time.sleep(0.001)
    for i, t in enumerate(threads[1:], start=1):
        t.start()
        while len(group._queue) < i:
            time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert results == {n: n * 10 for n in range(6)}
    assert seen == [[0], [1, 2], [3, 4], [5]]


def test_many_threads_each_get_their_own_result_and_the_group_goes_idle() -> None:
    def write(reqs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        time.sleep(0.0005)  # a commit's latency, so callers pile up behind it
        return [(t, i * 2) for t, i in reqs]

    group = GroupCommit(write, max_batch=7)
    wrong: list[str] = []

    def caller(t: int) -> None:
        for i in range(200):
            if group.submit((t, i)) != (t, i * 2):
                wrong.append(f"thread {t} request {i}")

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []
    assert group.requests == 16 * 200
    assert group.batches < group.requests  # callers did share batches
    assert (group._running, group._queue) == (False, [])


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

    return _Slot(request, wait=False)
