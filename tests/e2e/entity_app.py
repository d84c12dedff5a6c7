"""An app for the critical-section crash test: 20 read-modify-writes through a lock."""

from __future__ import annotations

import os

import perdure
from perdure import EntityId

app = perdure.App(store=os.environ.get("ENTITY_STORE", "sqlite:///entities.db"))
COUNTER = EntityId("counter", "shared")


@app.entity
def counter(ctx: perdure.EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "get":
        ctx.set_result(value)
    elif ctx.operation_name == "set":
        ctx.set_state(ctx.get_input())


@app.activity
def think(value: int) -> int:
    import time

    time.sleep(0.05)  # a slow step inside the critical section widens the race window
    return value + 1


@app.orchestrator
def increment(context):
    with (yield context.lock([COUNTER])):
        current = yield context.call_entity(COUNTER, "get")
        updated = yield context.call_activity("think", current)
        yield context.call_entity(COUNTER, "set", updated)
    return updated


if __name__ == "__main__":
    app.run()
