"""An app for crash tests: every activity execution is appended (fsynced) to a log file."""

from __future__ import annotations

import os
import time

import perdure

app = perdure.App(
    store=os.environ.get("CRASH_STORE", "sqlite:///crash.db"),
    max_concurrent_activities=8,
)
LOG = os.environ.get("CRASH_LOG", "crash-executions.log")


def _record(key: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@app.activity
def step(n: int) -> int:
    info = perdure.current_activity()
    assert info is not None
    time.sleep(0.03)
    _record(f"{info.instance_id}:{info.task_id}")
    return n + 1


@app.orchestrator
def chain(context):
    value = 0
    for _ in range(context.get_input()):
        value = yield context.call_activity("step", value)
    return value


@app.orchestrator
def fan(context):
    results = yield context.task_all(
        [context.call_activity("step", i) for i in range(context.get_input())]
    )
    return sum(results)


if __name__ == "__main__":
    app.run()
