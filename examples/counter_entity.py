"""Durable entity: a counter that orchestrations call and clients signal.

Run:  python examples/counter_entity.py
"""

from __future__ import annotations

import os

import perdure
from perdure import EntityId

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@app.entity
def counter(ctx: perdure.EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
    elif ctx.operation_name == "reset":
        ctx.set_state(0)
    elif ctx.operation_name == "get":
        ctx.set_result(value)


@app.orchestrator
def count_visits(context):
    page = EntityId("counter", context.get_input())
    context.signal_entity(page, "add", 1)  # one-way
    return (yield context.call_entity(page, "get"))  # two-way: waits for the result


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        client.signal_entity(EntityId("counter", "home"), "reset")
        for _ in range(3):
            client.signal_entity(EntityId("counter", "home"), "add", 10)
        instance_id = client.start_new("count_visits", client_input="home")
        print("visits:", client.wait_for_completion(instance_id, timeout=30).output)  # 31
