"""The SQLite fetch reads messages through the index that fits it (a plan, not a timing)."""

from __future__ import annotations

from pathlib import Path

from perdure.store.sqlite import store as sqlite_store


def test_the_fetch_reads_each_leased_instances_messages_not_every_due_one(
    tmp_path: Path,
) -> None:
    # With many messages due at once (a timer storm), a plan over inbox_visible walks all
    # of them on every fetch; the instance index reads only the leased instances' rows.
    # Each instance's cut-off for the per-instance limit is found once (materialized),
    # not again for each of its messages.
    store = sqlite_store.SqliteStore(str(tmp_path / "plans.db"), hub="h")
    try:
        reads = [
            (sqlite_store._MESSAGES_OF.format(marks="?,?"), ["h", "a", "b", 1.0, 11]),
            (sqlite_store._CAPPED_MESSAGES_OF, ["h", 1.0, 10, '["a","b"]']),
        ]
        for sql, params in reads:
            plan = store._read("EXPLAIN QUERY PLAN " + sql, params)
            details = " ".join(str(row[-1]) for row in plan)
            assert "inbox_instance" in details, details
            assert "inbox_visible" not in details, details
        assert "MATERIALIZE b" in details, details
    finally:
        store.close()


def test_a_checkpoint_that_keeps_the_status_leaves_the_status_index_alone(
    tmp_path: Path,
) -> None:
    # SQLite rewrites an index entry whenever the UPDATE sets one of its columns, changed
    # or not; most checkpoints (Running to Running) must not pay for instances_status.
    store = sqlite_store.SqliteStore(str(tmp_path / "plans.db"), hub="h")
    try:
        [(root,)] = store._read(
            "SELECT rootpage FROM sqlite_master WHERE name = 'instances_status'"
        )

        def opens_status_index(sql: str) -> bool:
            program = store._read("EXPLAIN " + sql, [None] * sql.count("?"))
            # OpenWrite's p2 is the root page of the b-tree it opens for writing
            return any(op[1] == "OpenWrite" and op[3] == root for op in program)

        assert opens_status_index("UPDATE instances SET status=?," + sqlite_store._CHECKPOINT_SET)
        assert not opens_status_index("UPDATE instances SET" + sqlite_store._CHECKPOINT_SET)
    finally:
        store.close()


def test_a_page_of_one_status_is_read_from_the_status_index_in_order(tmp_path: Path) -> None:
    # Through instances_created, a page of a rare status reads every instance row to test
    # its status; through instances_status it reads the status's range from the token on,
    # sorts only ties of created_at by ID, and stops after the page.
    from perdure.model.status import OrchestrationRuntimeStatus as Status
    from perdure.store.base import InstanceQuery
    from perdure.store.paging import encode_token

    store = sqlite_store.SqliteStore(str(tmp_path / "plans.db"), hub="h")
    seen: list[str] = []
    read = store._read

    def recording(sql: str, params: object = ()) -> list[object]:
        if sql.startswith("SELECT") and "FROM instances" in sql:
            seen.extend(str(r[-1]) for r in read("EXPLAIN QUERY PLAN " + sql, params))  # type: ignore[arg-type]
        return read(sql, params)  # type: ignore[arg-type]

    try:
        store._read = recording  # type: ignore[method-assign]
        for token in (None, encode_token(1.0, "x")):
            for newest_first in (False, True):
                seen.clear()
                store.query_instances(InstanceQuery(
                    statuses=frozenset({Status.Pending}), continuation_token=token,
                    newest_first=newest_first, name="n",
                ))
                details = " | ".join(seen)
                assert "USING INDEX instances_status (hub=? AND status=?" in details, details
                sorts = [d for d in seen if "TEMP B-TREE" in d]
                assert all("RIGHT PART OF ORDER BY" in d for d in sorts), details
                if token:
                    assert "created_at>?" in details or "created_at<?" in details, details
    finally:
        store.close()
