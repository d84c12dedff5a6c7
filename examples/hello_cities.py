"""Function chaining: three activities in sequence, durably, on the embedded SQLite store.

Run:  python examples/hello_cities.py
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table

import perdure

app = perdure.App(store=os.environ.get("PERDURE_STORE", "sqlite:///perdure-demo.db"))


@app.orchestrator
def hello_cities(context):
    outputs = []
    outputs.append((yield context.call_activity("say_hello", "Tokyo")))
    outputs.append((yield context.call_activity("say_hello", "Seattle")))
    outputs.append((yield context.call_activity("say_hello", "London")))
    return outputs


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


def main() -> int:
    console = Console()
    with app.running():
        client = app.sync_client()
        instance_id = client.start_new("hello_cities")
        console.print(f"started [bold]{instance_id}[/bold]")
        status = client.wait_for_completion(instance_id, timeout=30)
        console.print(f"{status.runtime_status.value}: {status.output}")
        full = client.get_status(instance_id, show_history=True, show_history_output=True)
    assert full is not None and full.history is not None
    table = Table(title=f"history of {instance_id}")
    for column in ("EventType", "Timestamp", "FunctionName", "Input", "Result"):
        table.add_column(column)
    for row in full.history:
        table.add_row(
            *(
                str(row.get(c, ""))
                for c in ("EventType", "Timestamp", "FunctionName", "Input", "Result")
            )
        )
    console.print(table)
    return 0 if status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"] else 1


if __name__ == "__main__":
    sys.exit(main())
