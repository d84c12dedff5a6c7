"""The activity loop's flush reports results the orchestration loop cannot claim, and
leaves the claimable ones queued for it, waking it to look again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from perdure.model import events as ev
from perdure.store.base import ActivityResult, ActivityWorkItem
from perdure.worker.activities import ActivityDispatcher
from perdure.worker.clock import SystemClock


class _Recorder:
    def __init__(self) -> None:
        self.reported: list[list[int]] = []

    def complete_activities(self, owner: str, batch: list[ActivityResult], now: Any) -> int:
        self.reported.append([r.item.id for r in batch])
        return len(batch)


def _result(n: int) -> ActivityResult:
    item = ActivityWorkItem(f"i{n}", "e", 0, "act", None, id=n)
    event = ev.TaskCompleted(timestamp=datetime.now(UTC), task_scheduled_id=0, result="1")
    return ActivityResult(item, event)


def test_flush_reports_the_rest_and_keeps_claimable_results_for_the_other_loop() -> None:
    store = _Recorder()
    dispatcher = ActivityDispatcher(store, {}, SystemClock(), "w1")  # type: ignore[arg-type]
    woken: list[bool] = []
    dispatcher.claimable = lambda r: r.item.id % 2 == 0
    dispatcher.on_kept = lambda: woken.append(True)
    for n in range(6):
        dispatcher.results.put(_result(n))
    assert dispatcher.flush() == 3
    assert store.reported == [[1, 3, 5]]
    assert woken == [True]
    assert sorted(r.item.id for r in dispatcher.take_results()) == [0, 2, 4]


def test_flush_with_only_claimable_results_writes_nothing() -> None:
    store = _Recorder()
    dispatcher = ActivityDispatcher(store, {}, SystemClock(), "w1")  # type: ignore[arg-type]
    dispatcher.claimable = lambda r: True
    dispatcher.results.put(_result(7))
    assert dispatcher.flush() == 0
    assert store.reported == []
    assert [r.item.id for r in dispatcher.take_results()] == [7]
