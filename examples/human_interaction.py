"""Human interaction: ask for approval, escalate if nobody answers within 72 hours.

Run:  python examples/human_interaction.py   (approves after a second)
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@app.orchestrator
def approval_workflow(context):
    request = context.get_input()
    yield context.call_activity("request_approval", request)
    deadline = context.current_utc_datetime + timedelta(hours=72)
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("ApprovalEvent")
    winner = yield context.task_any([approval, timeout])
    if winner is approval:
        timeout.cancel()
        yield context.call_activity("process_approval", approval.result)
        return "approved"
    yield context.call_activity("escalate", request)
    return "escalated"


@app.activity
def request_approval(request: dict) -> None:
    print("approval requested for", request)


@app.activity
def process_approval(answer: dict) -> None:
    print("approved by", answer["by"])


@app.activity
def escalate(request: dict) -> None:
    print("escalated", request)


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        instance_id = client.start_new("approval_workflow", client_input={"order": 42})
        threading.Timer(
            1.0, client.raise_event, (instance_id, "ApprovalEvent", {"by": "ana"})
        ).start()
        print(client.wait_for_completion(instance_id, timeout=30).output)
