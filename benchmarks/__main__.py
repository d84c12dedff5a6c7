"""python -m benchmarks run [--store sqlite|postgres] [--runs 3] [--smoke] [--json FILE]

Each figure is the median of --runs runs, with min and max, all measured in this
invocation so ratios are fair on a noisy machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from benchmarks import workloads as w


@click.group()
def cli() -> None:
    """perdure benchmarks."""


@cli.command()
@click.option("--store", type=click.Choice(["sqlite", "postgres"]), default="sqlite")
@click.option("--runs", default=3, show_default=True, help="runs per figure (median reported)")
@click.option("--smoke", is_flag=True, help="one quick run of small sizes (CI)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def run(store: str, runs: int, smoke: bool, json_path: str | None) -> None:
    """Run W1-W4 and the raw-write limit; print a table and write JSON."""
    console = Console()
    if smoke:
        runs = 1
    sizes = {
        "w1": 50 if smoke else 500,
        "w2": [200] if smoke else [1000, 10000],
        "w3": [50, 200] if smoke else [100, 500, 1000, 5000],
        "w4": 20 if smoke else 200,
    }
    pg_url = os.environ.get("PERDURE_BENCH_POSTGRES") or os.environ.get("PERDURE_TEST_POSTGRES")
    if store == "postgres" and not pg_url:
        raise click.UsageError("set PERDURE_BENCH_POSTGRES=postgresql://... for --store postgres")

    def url() -> tuple[str, Callable[[], None]]:
        if store == "postgres":
            assert pg_url is not None
            return pg_url, lambda: None
        return w.fresh_sqlite_url()

    cases: list[tuple[str, Callable[[str], dict[str, float]]]] = [
        (f"W1 hello-cities x{sizes['w1']}", lambda u: w.w1_hello_cities(u, sizes["w1"])),
        *[(f"W2 fan-out {n}", partial(w.w2_fan_out, n=n)) for n in sizes["w2"]],
        *[(f"W3 chain {k}", partial(w.w3_chain, k=k)) for k in sizes["w3"]],
        (f"W4 latency x{sizes['w4']}", lambda u: w.w4_latency(u, sizes["w4"])),
        ("raw-write limit", lambda u: w.raw_write_limit(u)),
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, fn in cases:
        samples: dict[str, list[float]] = {}
        for i in range(runs):
            u, cleanup = url()
            try:
                t0 = time.perf_counter()
                figures = fn(u)
            finally:
                cleanup()
            console.print(
                f"  {name} run {i + 1}/{runs}: "
                + ", ".join(f"{k}={v:,.1f}" for k, v in figures.items())
                + f"  ({time.perf_counter() - t0:.1f}s)"
            )
            for key, value in figures.items():
                samples.setdefault(key, []).append(value)
        results[name] = {
            k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
            for k, v in samples.items()
        }
    _derived(results, sizes)
    table = Table(title=f"perdure on {store} ({runs} run(s) each; median [min-max])")
    table.add_column("workload")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, figures in results.items():
        for key, stats in figures.items():
            table.add_row(
                name, key, f"{stats['median']:,.2f} [{stats['min']:,.2f}-{stats['max']:,.2f}]"
            )
    console.print(table)
    out = Path(json_path or f"benchmarks/results/{store}-{int(time.time())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"store": store, "runs": runs, "results": results}, indent=2))
    console.print(f"written {out}")


def _derived(results: dict[str, dict[str, dict[str, float]]], sizes: dict[str, object]) -> None:
    limit = results.get("raw-write limit", {}).get("steps/s", {}).get("median")
    w1 = next((v for k, v in results.items() if k.startswith("W1")), None)
    if limit and w1:
        results["W1 vs raw-write limit"] = {
            "fraction": {s: w1["steps/s"][s] / limit for s in ("median", "min", "max")}
        }
    chains = {
        int(k.split()[-1]): v["seconds"]["median"] for k, v in results.items() if k.startswith("W3")
    }
    if 5000 in chains and 500 in chains:
        ratio = chains[5000] / chains[500]
        results["W3 t(5000)/t(500)"] = {"ratio": {"median": ratio, "min": ratio, "max": ratio}}


if __name__ == "__main__":
    sys.exit(cli())
