"""The app the dashboard tests serve: approvals that wait for an event, a parent with a
child and a timer, and an orchestration that fails with a traceback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import perdure

app = perdure.App()


@app.activity
def greet(name: str) -> str:
    return f"hello {name}"


@app.activity
def explode(_: Any) -> None:
    raise ValueError("the <b>widget</b> broke")


@app.orchestrator
def approval(context: perdure.DurableOrchestrationContext) -> Any:
    order = context.get_input() or {}
    context.set_custom_status({"waiting_for": "Approval", "note": order.get("note")})
    decision = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"decided": decision})
    greeting = yield context.call_activity("greet", order.get("who", "you"))
    return {"approved": decision, "greeting": greeting}


@app.orchestrator
def family(context: perdure.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("greet", "parent")
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=50))
    second = yield context.call_sub_orchestrator("kid", "kid")
    return [first, second]


@app.orchestrator
def kid(context: perdure.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("greet", context.get_input()))


@app.orchestrator
def doomed(context: perdure.DurableOrchestrationContext) -> Any:
    yield context.call_activity("explode")
