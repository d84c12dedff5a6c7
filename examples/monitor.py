"""Monitor: poll a job on a durable timer until it finishes or the monitor expires.

The polling interval is 2 minutes and the expiry 2 hours, yet the test in
tests/e2e/test_examples.py runs this in milliseconds on perdure.testing's virtual clock.

Run:  python examples/monitor.py
"""

from __future__ import annotations

import os
from datetime import timedelta

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))
POLL = timedelta(minutes=2)


@app.orchestrator
def job_monitor(context):
    job = context.get_input()
    expiry = context.current_utc_datetime + timedelta(hours=2)
    while context.current_utc_datetime < expiry:
        state = yield context.call_activity("get_job_status", job)
        if state == "done":
            yield context.call_activity("send_alert", f"job {job['id']} finished")
            return "done"
        yield context.create_timer(context.current_utc_datetime + POLL)
    return "expired"


@app.activity
def get_job_status(job: dict) -> str:
    # A real check would call the job's API; this job finishes after `polls` checks.
    return "done" if _checks_seen(job["id"]) >= job.get("polls", 3) else "running"


_seen: dict[str, int] = {}


def _checks_seen(job_id: str) -> int:
    _seen[job_id] = _seen.get(job_id, 0) + 1
    return _seen[job_id]


@app.activity
def send_alert(message: str) -> None:
    print("ALERT:", message)


if __name__ == "__main__":
    POLL = timedelta(seconds=1)  # poll faster when run by hand
    with app.running():
        client = app.sync_client()
        instance_id = client.start_new("job_monitor", client_input={"id": "j1", "polls": 3})
        print(client.wait_for_completion(instance_id, timeout=30).output)
