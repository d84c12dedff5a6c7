"""The orchestration dispatcher's offered starts: which it takes, and that a round runs
them without a fetch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import OrchestrationWorkItem
from perdure.store.sqlite.store import SqliteStore
from perdure.worker.clock import SystemClock
from perdure.worker.orchestrations import OrchestrationDispatcher
from tests.contract.support import create


def hello(context: Any) -> Any:
    return "hello " + (context.get_input() or "")
    yield  # a generator


def _dispatcher(
    tmp_path: Path, batch_size: int = 100, listen: bool = True
) -> tuple[SqliteStore, OrchestrationDispatcher]:
    store = SqliteStore(str(tmp_path / "s.db"))
    dispatcher = OrchestrationDispatcher(
        store, {"orch": hello}, SystemClock(), "W", batch_size=batch_size
    )
    if listen:
        store.add_start_listener(dispatcher.offer_start)
    return store, dispatcher


def test_an_offered_start_runs_in_a_round_without_a_fetch(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "a", input='"world"')
    fetches: list[Any] = []
    store.complete_and_fetch = lambda *a: fetches.append(a)  # type: ignore[method-assign]
    assert dispatcher.tick(fetch=False) == 1
    assert fetches == []
    inst = store.get_instance("a")
    assert inst is not None and inst.status is Status.Completed
    assert inst.output == '"hello world"'
    store.close()


def test_a_start_a_fetch_also_leased_runs_once(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path)
    create(store, "a")
    assert dispatcher.tick(fetch=True) == 1  # the fetch and the offer hold the same start
    history = [type(e).__name__ for e in store.get_history("a")]
    assert history.count("ExecutionStarted") == 1
    assert dispatcher.tick(fetch=False) == 0
    store.close()


def test_unknown_orchestrators_and_a_full_queue_are_declined(tmp_path: Path) -> None:
    store, dispatcher = _dispatcher(tmp_path, batch_size=2, listen=False)
    offered: list[bool] = []

    def spy(item: OrchestrationWorkItem) -> bool:
        offered.append(dispatcher.offer_start(item))
        return offered[-1]

    store.add_start_listener(spy)
    create(store, "x", name="unknown")
    for n in range(3):
        create(store, f"o{n}")
    assert offered == [False, True, True, False]  # the queue holds one round's worth
    assert dispatcher.tick(fetch=False) == 2
    store.close()
