"""Fan-out/fan-in: run many activities in parallel, then aggregate their results.

Run:  python examples/fan_out_fan_in.py
"""

from __future__ import annotations

import os

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@app.orchestrator
def backup_site(context):
    files = yield context.call_activity("list_files", context.get_input())
    tasks = [context.call_activity("copy_file", f) for f in files]
    sizes = yield context.task_all(tasks)
    return {"files": len(files), "bytes": sum(sizes)}


@app.activity
def list_files(root: str) -> list[str]:
    return [f"{root}/file{i}.txt" for i in range(100)]


@app.activity
def copy_file(path: str) -> int:
    return len(path) * 100  # pretend we copied this many bytes


if __name__ == "__main__":
    with app.running():
        client = app.sync_client()
        instance_id = client.start_new("backup_site", client_input="/data")
        print(client.wait_for_completion(instance_id, timeout=60).output)
