"""Checks after a chaos run, read straight from the store's tables (test tooling, so SQL
here is fine) and from the activity execution log.

Violations are strings; an empty list means the run held. Figures (re-executions,
instances checked) are returned alongside.
"""

from __future__ import annotations

import collections
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import perdure
from benchmarks.chaos_app import (
    COUNTERS,
    activities_of,
    counter_id,
    expected_output,
    ledger_id,
)
from perdure.model.codec import decode
from perdure.model.events import BATCH

# Events that close one scheduled task: at most one of them per task_scheduled_id.
_RESULTS = (
    "TaskCompleted",
    "TaskFailed",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceFailed",
)


@dataclass
class Tables:
    """The rows of one hub: instances (id -> columns) and history rows."""

    instances: dict[str, dict[str, Any]]
    history: list[tuple[str, str, int, str, str]]  # instance, execution, seq, type, data
    inbox: int
    tasks: int


@dataclass
class CheckResult:
    violations: list[str] = field(default_factory=list)
    instances_checked: int = 0
    histories_checked: int = 0
    activity_executions: int = 0
    activity_keys: int = 0
    activities_rerun: int = 0  # keys executed more than once
    extra_executions: int = 0  # executions beyond the first, summed


_COLUMNS = "instance_id, name, execution_id, status, input, output, parent_instance_id,"
_COLUMNS += " history_length"


def read_tables(store_url: str, hub: str) -> Tables:
    if store_url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(store_url) as conn:
            inst = conn.execute(
                f"SELECT {_COLUMNS} FROM perdure.instances WHERE hub = %s", (hub,)
            ).fetchall()
            hist = conn.execute(
                "SELECT instance_id, execution_id, seq, event_type, data::text"
                " FROM perdure.history WHERE hub = %s",
                (hub,),
            ).fetchall()
            inbox = conn.execute(
                "SELECT count(*) FROM perdure.inbox WHERE hub = %s", (hub,)
            ).fetchone()
            tasks = conn.execute(
                "SELECT count(*) FROM perdure.tasks WHERE hub = %s", (hub,)
            ).fetchone()
    else:
        path = store_url.removeprefix("sqlite:///")
        conn2 = sqlite3.connect(path)
        try:
            inst = conn2.execute(
                f"SELECT {_COLUMNS} FROM instances WHERE hub = ?", (hub,)
            ).fetchall()
            hist = conn2.execute(
                "SELECT instance_id, execution_id, seq, event_type, data FROM history"
                " WHERE hub = ?",
                (hub,),
            ).fetchall()
            inbox = conn2.execute("SELECT count(*) FROM inbox WHERE hub = ?", (hub,)).fetchone()
            tasks = conn2.execute("SELECT count(*) FROM tasks WHERE hub = ?", (hub,)).fetchone()
        finally:
            conn2.close()
    names = [c.strip() for c in _COLUMNS.split(",")]
    return Tables(
        instances={r[0]: dict(zip(names, r, strict=True)) for r in inst},
        history=_events(hist),
        inbox=int(inbox[0]) if inbox else 0,
        tasks=int(tasks[0]) if tasks else 0,
    )


def _events(rows: Any) -> list[tuple[str, str, int, str, str]]:
    """History rows as one entry per event: a row of several (BATCH) is split into its
    events at consecutive positions, each with its fields as JSON text."""
    out: list[tuple[str, str, int, str, str]] = []
    for iid, eid, seq, etype, data in rows:
        if etype == BATCH:
            out.extend(
                (iid, eid, seq + k, kind, json.dumps(fields))
                for k, (kind, fields) in enumerate(json.loads(data))
            )
        else:
            out.append((iid, eid, seq, etype, data))
    return out


def check_histories(tables: Tables, result: CheckResult) -> None:
    """No gaps, no duplicate sequence numbers, no stale generations, one completion each."""
    by_execution: dict[tuple[str, str], list[tuple[int, str, str]]] = collections.defaultdict(
        list
    )
    for iid, eid, seq, etype, data in tables.history:
        by_execution[(iid, eid)].append((seq, etype, data))
    for (iid, eid), rows in sorted(by_execution.items()):
        result.histories_checked += 1
        inst = tables.instances.get(iid)
        if inst is None:
            result.violations.append(f"history of {iid!r} has no instance row")
            continue
        if eid != inst["execution_id"]:
            result.violations.append(
                f"{iid!r}: history rows of a stale execution {eid!r} (current"
                f" {inst['execution_id']!r})"
            )
            continue
        seqs = sorted(seq for seq, _, _ in rows)
        if len(set(seqs)) != len(seqs):
            dupes = [s for s, n in collections.Counter(seqs).items() if n > 1]
            result.violations.append(f"{iid!r}: duplicate history sequence numbers {dupes}")
        if seqs != list(range(len(seqs))):
            missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
            result.violations.append(f"{iid!r}: history gaps at {missing[:10]}")
        if len(seqs) != inst["history_length"]:
            result.violations.append(
                f"{iid!r}: {len(seqs)} history events but history_length"
                f" {inst['history_length']}"
            )
        ordered = sorted(rows)
        types = [etype for _, etype, _ in ordered]
        completions = types.count("ExecutionCompleted")
        if completions > 1:
            result.violations.append(f"{iid!r}: ExecutionCompleted {completions} times")
        results = collections.Counter(
            (etype, json.loads(data).get("task_scheduled_id"))
            for _, etype, data in ordered
            if etype in _RESULTS
        )
        for (etype, task), n in results.items():
            if n > 1:
                result.violations.append(f"{iid!r}: {etype} for task {task} recorded {n} times")
        scheduled = collections.Counter(
            json.loads(data).get("event_id")
            for _, etype, data in ordered
            if etype in ("TaskScheduled", "SubOrchestrationInstanceCreated", "TimerCreated")
        )
        for task, n in scheduled.items():
            if n > 1:
                result.violations.append(f"{iid!r}: task {task} scheduled {n} times")


def _decode(text: str | None) -> Any:
    return None if text is None else decode(text)


def check_outcomes(
    tables: Tables,
    started: dict[str, tuple[str, int]],
    client: perdure.SyncClient,
    result: CheckResult,
) -> None:
    """Every orchestration Completed with its expected output, and completed exactly once."""
    orchestrations = {i: r for i, r in tables.instances.items() if not i.startswith("@")}
    for iid in started:
        if iid not in orchestrations:
            result.violations.append(f"{iid!r}: instance missing from the store")
    locked: dict[str, list[Any]] = collections.defaultdict(list)
    for iid, row in sorted(orchestrations.items()):
        result.instances_checked += 1
        if row["status"] != "Completed":
            result.violations.append(f"{iid!r}: final status {row['status']}, not Completed")
            continue
        output = _decode(row["output"])
        if iid in started:
            kind, n = started[iid]
            if kind == "locked":
                locked[counter_id(n).instance_id].append(output)
            elif output != expected_output(kind, n):
                result.violations.append(
                    f"{iid!r}: output {output!r}, expected {expected_output(kind, n)!r}"
                )
        elif row["parent_instance_id"] is not None and row["name"] == "chain":
            value, length = _decode(row["input"])
            if output != value + length:
                result.violations.append(f"child {iid!r}: output {output!r} != {value + length}")
        else:
            result.violations.append(f"{iid!r}: an orchestration nobody started")
        # The ledger entity counts completion episodes: exactly one must have committed.
        ledger = client.read_entity_state(ledger_id(iid))
        count = (ledger.entity_state or {}).get("count", 0) if ledger.entity_exists else 0
        if count != 1:
            result.violations.append(f"{iid!r}: completed {count} times (ledger)")
        elif ledger.entity_state["outputs"] != [output]:
            result.violations.append(
                f"{iid!r}: ledger saw {ledger.entity_state['outputs']!r}, store has {output!r}"
            )
    # Critical sections: each counter was incremented once per locked instance, and the
    # values the instances saw are exactly 1..count (no lost update, no double update).
    per_counter = collections.Counter(
        counter_id(n).instance_id for kind, n in started.values() if kind == "locked"
    )
    for k in range(COUNTERS):
        target = counter_id(k)
        want = per_counter.get(target.instance_id, 0)
        if not want:
            continue
        state = client.read_entity_state(target).entity_state
        if state != want:
            result.violations.append(f"counter {target.instance_id}: {state}, expected {want}")
        seen = sorted(locked.get(target.instance_id, []))
        if seen != list(range(1, want + 1)):
            result.violations.append(f"counter {target.instance_id}: outputs {seen}")
    if tables.tasks:
        result.violations.append(f"{tables.tasks} activity task(s) left in the queue")
    if tables.inbox:
        result.violations.append(f"{tables.inbox} message(s) left undelivered in the inbox")


def check_activity_log(
    log: Path, started: dict[str, tuple[str, int]], result: CheckResult
) -> collections.Counter[str]:
    runs = collections.Counter(log.read_text().split() if log.exists() else [])
    expected = sum(activities_of(kind) for kind, _ in started.values())
    result.activity_executions = sum(runs.values())
    result.activity_keys = len(runs)
    result.activities_rerun = sum(1 for n in runs.values() if n > 1)
    result.extra_executions = sum(n - 1 for n in runs.values())
    if len(runs) != expected:
        result.violations.append(
            f"{len(runs)} distinct activity executions logged, expected {expected}"
        )
    return runs


def check_run(
    store_url: str,
    hub: str,
    log: Path,
    started: dict[str, tuple[str, int]],
    client: perdure.SyncClient,
) -> CheckResult:
    result = CheckResult()
    tables = read_tables(store_url, hub)
    check_histories(tables, result)
    check_outcomes(tables, started, client, result)
    check_activity_log(log, started, result)
    return result


def drop_hub(store_url: str, hub: str) -> None:
    """Delete a PostgreSQL hub's rows after a passing run (SQLite runs use a temp file)."""
    if not store_url.startswith(("postgresql://", "postgres://")):
        return
    import psycopg

    with psycopg.connect(store_url) as conn:
        for table in ("history", "inbox", "tasks", "instances", "settings"):
            conn.execute(f"DELETE FROM perdure.{table} WHERE hub = %s", (hub,))
