"""Multiple parameters: an activity takes one input, so several values travel together as a
list/tuple, a dict, or a dataclass.

Run:  python examples/multiple_parameters.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@dataclass
class Shipment:
    city: str
    weight_kg: float
    express: bool


@app.activity
def quote_from_tuple(args: list) -> float:
    city, weight_kg = args  # a tuple arrives as a list
    return round(weight_kg * (2.0 if city == "Tokyo" else 1.5), 2)


@app.activity
def quote_from_dict(args: dict) -> float:
    return round(args["weight_kg"] * args["rate"], 2)


@app.activity
def quote_from_dataclass(shipment: Shipment) -> float:
    base = shipment.weight_kg * 1.5
    return round(base * (2 if shipment.express else 1), 2)


@app.orchestrator
def quotes(context):
    a = yield context.call_activity("quote_from_tuple", ("Tokyo", 3.0))
    b = yield context.call_activity("quote_from_dict", {"weight_kg": 3.0, "rate": 1.25})
    c = yield context.call_activity("quote_from_dataclass", Shipment("Seattle", 3.0, True))
    return [a, b, c]


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        print(client.wait_for_completion(client.start_new("quotes"), timeout=30).output)
