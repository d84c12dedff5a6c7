"""Function chaining with compensation: reserve inventory, pay, ship, email.

Run:  python examples/order_checkout.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@dataclass
class Order:
    id: str
    item: str
    quantity: int
    amount: float


@app.orchestrator
def checkout(context):
    order: Order = context.get_input()
    retry = perdure.RetryOptions(
        first_retry_interval_in_milliseconds=500, max_number_of_attempts=3, backoff_coefficient=2
    )
    reservation = yield context.call_activity("reserve_inventory", order)
    try:
        receipt = yield context.call_activity_with_retry("charge_payment", retry, order)
    except perdure.TaskFailedError as error:
        yield context.call_activity("release_inventory", reservation)
        return {"order": order.id, "status": "payment failed", "reason": error.error_message}
    tracking = yield context.call_activity("ship", order)
    yield context.call_activity("send_email", {"order": order.id, "tracking": tracking})
    return {"order": order.id, "status": "shipped", "receipt": receipt, "tracking": tracking}


@app.activity
def reserve_inventory(order: Order) -> str:
    return f"res-{order.id}"


@app.activity
def release_inventory(reservation: str) -> None:
    print("released", reservation)


@app.activity
def charge_payment(order: Order) -> str:
    if order.amount <= 0:
        raise ValueError(f"invalid amount {order.amount}")
    return f"rcpt-{order.id}"


@app.activity
def ship(order: Order) -> str:
    return f"trk-{order.id}"


@app.activity
def send_email(message: dict) -> None:
    print("email sent:", message)


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        ok = client.start_new("checkout", client_input=Order("o-1", "book", 1, 12.5))
        print(client.wait_for_completion(ok, timeout=30).output)
