"""PostgreSQL only: behind a backlog the fetch plans its lease with random reads priced
low, for its own transaction only; every instance is still leased exactly once."""

from __future__ import annotations

from perdure.model.status import ACTIVE_STATUSES
from perdure.store.postgres.store import PostgresStore

from .conftest import new_hub
from .support import at, checkpoint, new_instance


def test_a_backlog_is_leased_once_each_and_the_cheaper_plan_stays_in_its_transaction(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url, hub=new_hub())
    try:
        with store._pool.connection() as conn:
            default = conn.execute("SHOW random_page_cost").fetchone()
        for n in range(300):  # more than one window (256 messages for a limit of 10)
            store.create_instance(new_instance(f"i{n:03}"), ACTIVE_STATUSES)
        leased: list[str] = []
        backlog: list[bool] = []
        while True:
            items = store.fetch_orchestration_work("w1", at(), 10, 30.0)
            backlog.append(store._backlog)
            if not items:
                break
            leased += [item.instance.instance_id for item in items]
            lost = store.commit_checkpoints("w1", [checkpoint(i) for i in items], at())
            assert lost == []
        assert sorted(leased) == [f"i{n:03}" for n in range(300)]
        # Full windows while more than 256 messages waited; then the default plan again.
        assert backlog[0] and not backlog[-1]
        assert backlog.index(False) == 5  # the sixth fetch saw the last 250 messages
        for _ in range(3):  # pooled connections kept the server's setting
            with store._pool.connection() as conn:
                assert conn.execute("SHOW random_page_cost").fetchone() == default
    finally:
        store.close()
