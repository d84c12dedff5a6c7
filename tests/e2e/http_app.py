"""An example app served by ``perdure serve`` in the HTTP tests (store from $PERDURE_STORE)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import perdure
from perdure.http import DurableHttpClient

app = perdure.App()


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.activity
def flaky(flag_path: str) -> str:
    # Fails until the test creates the flag file: lets a test rewind a Failed instance.
    if not os.path.exists(flag_path):
        raise RuntimeError(f"flag {flag_path} is missing")
    return "recovered"


@app.orchestrator
def hello_cities(context: perdure.DurableOrchestrationContext) -> Any:
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestrator
def approval(context: perdure.DurableOrchestrationContext) -> Any:
    context.set_custom_status("waiting for approval")
    decision = yield context.wait_for_external_event("Approval")
    return {"approved": decision}


@app.orchestrator
def slow(context: perdure.DurableOrchestrationContext) -> Any:
    seconds = context.get_input() or 1.0
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return "slept"


@app.orchestrator
def napping(context: perdure.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("nap", context.get_input()))


@app.orchestrator
def fragile(context: perdure.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("flaky", context.get_input()))


@app.route("/orders", methods=["POST"])
async def place_order(request: Request, client: DurableHttpClient) -> Response:
    """Start hello_cities for an order (the seeds' HTTP kick-off function)."""
    order = await request.json()
    instance_id = await client.start_new("hello_cities", None, order.get("cities"))
    return client.create_check_status_response(request, instance_id)


@app.route("/orders/wait", methods=["POST"])
async def place_order_and_wait(request: Request, client: DurableHttpClient) -> Response:
    """Start hello_cities and wait briefly for its output."""
    instance_id = await client.start_new("hello_cities", None, ["Oslo"])
    return await client.wait_for_completion_or_create_check_status_response(
        request, instance_id, timeout_in_milliseconds=5000, retry_interval_in_milliseconds=100
    )


@app.route("/health", methods=["GET"], anonymous=True)
def health(request: Request, client: DurableHttpClient) -> dict[str, Any]:
    """A sync, anonymous handler (it must not hand out management URLs: they carry the key)."""
    return {"ok": True, "hub": client.hub, "orchestrators": client.sync.store.count_by_status()}
