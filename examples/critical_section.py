"""Critical section (the seeds' "Synchronize"): move money between two accounts atomically.

Locks are taken in one global order, so two transfers in opposite directions never deadlock.

Run:  python examples/critical_section.py
"""

from __future__ import annotations

import os

import perdure
from perdure import EntityId

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@app.entity
def account(ctx: perdure.EntityContext) -> None:
    balance = ctx.get_state(lambda: 0)
    if ctx.operation_name == "deposit":
        ctx.set_state(balance + ctx.get_input())
    elif ctx.operation_name == "withdraw":
        amount = ctx.get_input()
        if amount > balance:
            raise ValueError(f"insufficient funds: {balance} < {amount}")
        ctx.set_state(balance - amount)
    elif ctx.operation_name == "balance":
        ctx.set_result(balance)


@app.orchestrator
def transfer(context):
    source, target, amount = context.get_input()  # several parameters travel as one list
    a, b = EntityId("account", source), EntityId("account", target)
    with (yield context.lock([a, b])):
        if (yield context.call_entity(a, "balance")) < amount:
            return "insufficient funds"
        yield context.call_entity(a, "withdraw", amount)
        yield context.call_entity(b, "deposit", amount)
    return "done"


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        client.signal_entity(EntityId("account", "alice"), "deposit", 100)
        client.signal_entity(EntityId("account", "bob"), "deposit", 50)
        ids = [
            client.start_new("transfer", client_input=["alice", "bob", 30]),
            client.start_new("transfer", client_input=["bob", "alice", 10]),
        ]
        print([client.wait_for_completion(i, timeout=30).output for i in ids])
        print("alice:", client.read_entity_state(EntityId("account", "alice")).entity_state)
        print("bob:", client.read_entity_state(EntityId("account", "bob")).entity_state)
