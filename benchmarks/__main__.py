"""python -m benchmarks run [--store sqlite|postgres|both] [--peer dbos] [--runs 3] [--smoke]
                          [--only w1,w3,...] [--json FILE]

Each figure is the median of --runs runs, with min and max, all measured in this
invocation, perdure's and the peer's runs interleaved, so ratios are fair on a noisy
machine. docs/benchmarks.md describes the workloads and how each figure is computed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from benchmarks import dbos_peer
from benchmarks import workloads as w

Stats = dict[str, float]
Figures = dict[str, Stats]

# Words marking a figure where lower is better (everything else: higher is better).
LOWER_IS_BETTER = {"ms", "MB", "seconds", "KB", "ratio", "late", "%"}


@dataclass
class Case:
    key: str  # w1..w8, raw
    name: str
    perdure: Callable[[str], w.Result]
    peer_size: int | None  # the DBOS run's size; None: perdure only


def _cases(smoke: bool, only: set[str] | None, overrides: dict[str, list[int]]) -> list[Case]:
    sizes: dict[str, Any] = {
        "w1": 50 if smoke else 500,
        "w2": [200] if smoke else [1000, 10_000],
        "w3": [50, 200] if smoke else [100, 500, 1000, 5000],
        "w4": 20 if smoke else 200,
        "w5": [300] if smoke else [10_000, 100_000],
        "w6": 300 if smoke else 10_000,
        "w7": 300 if smoke else 10_000,
        "w8": 2_500 if smoke else 50_000,
    }
    for key, values in overrides.items():
        if key not in sizes:
            raise click.UsageError(f"--size: unknown workload {key!r}")
        sizes[key] = values if isinstance(sizes[key], list) else values[0]
    cases = [
        Case(
            "w1",
            f"W1 hello-cities x{sizes['w1']}",
            partial(w.w1_hello_cities, n=sizes["w1"]),
            sizes["w1"],
        ),
        *[Case("w2", f"W2 fan-out {n}", partial(w.w2_fan_out, n=n), n) for n in sizes["w2"]],
        *[Case("w3", f"W3 chain {k}", partial(w.w3_chain, k=k), k) for k in sizes["w3"]],
        Case("w4", f"W4 latency x{sizes['w4']}", partial(w.w4_latency, n=sizes["w4"]), sizes["w4"]),
        # The 100,000 idle instances are perdure's alone (the target), not DBOS's.
        *[
            Case("w5", f"W5 idle {n}", partial(w.w5_idle, n=n), n if n <= 10_000 else None)
            for n in sizes["w5"]
        ],
        Case("w6", f"W6 timers {sizes['w6']}", partial(w.w6_timers, n=sizes["w6"]), sizes["w6"]),
        Case(
            "w7",
            f"W7 entity signals {sizes['w7']}",
            partial(w.w7_entities, n=sizes["w7"]),
            sizes["w7"],
        ),
        # perdure only, as W7: DBOS has no entities.
        Case(
            "w8",
            f"W8 entity burst {sizes['w8']}",
            partial(w.w8_entity_burst, n=sizes["w8"]),
            None,
        ),
        Case("raw", "raw-write limit", w.raw_write_limit, None),
    ]
    return [c for c in cases if only is None or c.key in only]


def _stats(samples: dict[str, list[float]]) -> Figures:
    return {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v)}
        for k, v in samples.items()
    }


def _num(value: float) -> str:
    return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}"


def _fmt(stats: Stats) -> str:
    if stats["min"] == stats["max"]:
        return _num(stats["median"])
    return f"{_num(stats['median'])} [{_num(stats['min'])}-{_num(stats['max'])}]"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("perdure", "dbos", "psycopg"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@click.group()
def cli() -> None:
    """perdure benchmarks."""


@cli.command()
@click.option("--store", type=click.Choice(["sqlite", "postgres", "both"]), default="sqlite")
@click.option(
    "--peer",
    type=click.Choice(["dbos"]),
    default=None,
    help="also run the same workloads on this peer (pip install -e '.[bench]')",
)
@click.option("--runs", default=3, show_default=True, help="runs per figure (median reported)")
@click.option(
    "--peer-runs",
    type=int,
    default=None,
    help="runs per peer figure (default: --runs); the peer runs with perdure's first ones",
)
@click.option(
    "--smoke", is_flag=True, help="one quick run of small sizes (CI runs it without --peer)"
)
@click.option("--only", default=None, help="comma-separated workloads: w1,...,w8,raw")
@click.option(
    "--peer-timeout",
    default=900.0,
    show_default=True,
    help="seconds before one peer run is abandoned (recorded as an error)",
)
@click.option(
    "--size",
    "size_overrides",
    multiple=True,
    metavar="WORKLOAD=N[,N...]",
    help="override a workload's size(s), e.g. --size w5=10000 --size w2=1000",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def run(
    store: str,
    peer: str | None,
    runs: int,
    peer_runs: int | None,
    smoke: bool,
    only: str | None,
    peer_timeout: float,
    size_overrides: tuple[str, ...],
    json_path: str | None,
) -> None:
    """Run W1-W8 and the raw-write limit; print tables and write JSON."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    started = time.time()
    if smoke:
        runs = 1
    peer_runs = min(peer_runs or runs, runs)
    if peer == "dbos" and not dbos_peer.available():
        raise click.UsageError("--peer dbos needs the bench extra: pip install -e '.[bench]'")
    pg_url = os.environ.get("PERDURE_BENCH_POSTGRES") or os.environ.get("PERDURE_TEST_POSTGRES")
    stores = ["sqlite", "postgres"] if store == "both" else [store]
    if "postgres" in stores and not pg_url:
        raise click.UsageError("set PERDURE_BENCH_POSTGRES=postgresql://... for postgres")
    selected = {s.strip().lower() for s in only.split(",")} if only else None
    overrides: dict[str, list[int]] = {}
    for item in size_overrides:
        key, _, values = item.partition("=")
        try:
            overrides[key.strip().lower()] = [int(v) for v in values.split(",")]
        except ValueError:
            raise click.UsageError(f"--size {item!r}: expected WORKLOAD=N[,N...]") from None
    cases = _cases(smoke, selected, overrides)

    def url(kind: str) -> tuple[str, Callable[[], None]]:
        if kind == "postgres":
            assert pg_url is not None
            return pg_url, lambda: None
        return w.fresh_sqlite_url()

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load average at start": list(os.getloadavg()),
        },
        "versions": _versions(),
        "runs": runs,
        "peer runs": peer_runs if peer else 0,
        "smoke": smoke,
        "peer": peer,
        "stores": {},
    }
    out = Path(json_path or f"benchmarks/results/{store}-{int(started)}.json")
    for kind in stores:
        perdure_samples: dict[str, dict[str, list[float]]] = {}
        peer_samples: dict[str, dict[str, list[float]]] = {}
        peer_notes: dict[str, str] = {}
        for case in cases:
            for i in range(runs):
                u, cleanup = url(kind)
                try:
                    t0 = time.perf_counter()
                    figures = case.perdure(u)
                    _show(console, kind, "perdure", case.name, i, runs, figures, t0)
                    for k, v in figures.items():
                        perdure_samples.setdefault(case.name, {}).setdefault(k, []).append(v)
                    if (
                        peer
                        and i < peer_runs
                        and case.peer_size is not None
                        and case.name not in peer_notes
                    ):
                        t0 = time.perf_counter()
                        try:
                            figures = dbos_peer.run(case.key, u, case.peer_size, peer_timeout)
                        except dbos_peer.Skipped as why:
                            peer_notes[case.name] = f"skipped: {why}"
                            console.print(f"  [{kind}] dbos {case.name}: skipped: {why}")
                            continue
                        except Exception as error:  # a peer failure is a result, not a crash
                            peer_notes[case.name] = f"error: {str(error)[-500:]}"
                            console.print(f"  [{kind}] dbos {case.name}: [red]{error}[/red]")
                            continue
                        _show(console, kind, "dbos", case.name, i, runs, figures, t0)
                        for k, v in figures.items():
                            peer_samples.setdefault(case.name, {}).setdefault(k, []).append(v)
                finally:
                    cleanup()
        ours = {name: _stats(s) for name, s in perdure_samples.items()}
        theirs = {name: _stats(s) for name, s in peer_samples.items()}
        _derived(ours, with_limit=True)
        if peer:
            _derived(theirs, with_limit=False, limit=_limit(ours))
        ratios = _ratios(ours, theirs)
        report["stores"][kind] = {
            "perdure": ours,
            **({"dbos": theirs, "dbos notes": peer_notes, "perdure/dbos": ratios} if peer else {}),
        }
        report["seconds"] = time.time() - started
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))  # after each store: nothing measured is lost
        console.print(_table(kind, runs, ours, theirs if peer else None, ratios, peer_notes))
    console.print(f"written {out} ({report['seconds']:.0f}s)")


def _show(
    console: Console,
    kind: str,
    engine: str,
    name: str,
    i: int,
    runs: int,
    figures: w.Result,
    t0: float,
) -> None:
    console.print(
        f"  [{kind}] {engine} {name} run {i + 1}/{runs}: "
        + ", ".join(f"{k}={v:,.1f}" for k, v in figures.items())
        + f"  ({time.perf_counter() - t0:.1f}s)"
    )


def _limit(results: dict[str, Figures]) -> float | None:
    return results.get("raw-write limit", {}).get("steps/s", {}).get("median")


def _one(value: float) -> Stats:
    return {"median": value, "min": value, "max": value, "runs": 1}


def _derived(results: dict[str, Figures], with_limit: bool, limit: float | None = None) -> None:
    """Add the ratios the issue asks for: steps/s as a fraction of the raw-write limit
    (W1, W2), t(5000)/t(500) for W3 and p99/p50 for W4."""
    limit = _limit(results) if with_limit else limit
    for name, figures in list(results.items()):
        rate = figures.get("steps/s") if name.startswith("W1") else figures.get("activities/s")
        if name.startswith("W1") and "e2e steps/s" in figures:
            rate = figures["e2e steps/s"]
        if limit and rate and name.startswith(("W1", "W2")):
            figures["fraction of raw-write limit"] = {
                s: rate[s] / limit for s in ("median", "min", "max")
            } | {"runs": rate["runs"]}
        if name.startswith("W4") and "p50 ms" in figures:
            figures["p99/p50 ratio"] = _one(
                figures["p99 ms"]["median"] / figures["p50 ms"]["median"]
            )
    chains = {
        int(k.split()[-1]): v["seconds"]["median"]
        for k, v in results.items()
        if k.startswith("W3") and "seconds" in v
    }
    if 5000 in chains and 500 in chains:
        results["W3 t(5000)/t(500)"] = {"ratio": _one(chains[5000] / chains[500])}
    elif len(chains) >= 2:  # the smoke sizes
        big, small = max(chains), min(chains)
        results[f"W3 t({big})/t({small})"] = {"ratio": _one(chains[big] / chains[small])}


def _ratios(ours: dict[str, Figures], theirs: dict[str, Figures]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, figures in theirs.items():
        for key, stats in figures.items():
            mine = ours.get(name, {}).get(key)
            if mine and stats["median"]:
                out.setdefault(name, {})[key] = mine["median"] / stats["median"]
    return out


def _better(key: str, ratio: float) -> str:
    lower = bool(LOWER_IS_BETTER & set(key.split()))
    if ratio <= 0 or ratio == float("inf"):
        return ""
    factor = 1 / ratio if lower else ratio
    return f"perdure {factor:,.1f}x" if factor >= 1 else f"dbos {1 / factor:,.1f}x"


def _table(
    kind: str,
    runs: int,
    ours: dict[str, Figures],
    theirs: dict[str, Figures] | None,
    ratios: dict[str, dict[str, float]],
    notes: dict[str, str],
) -> Table:
    title = f"{kind}: {runs} run(s) each; median [min-max]"
    table = Table(title=("perdure vs DBOS on " if theirs is not None else "perdure on ") + title)
    table.add_column("workload")
    table.add_column("figure")
    table.add_column("perdure", justify="right")
    if theirs is not None:
        table.add_column("DBOS", justify="right")
        table.add_column("perdure/DBOS", justify="right")
        table.add_column("better", justify="right")
    names = list(ours) + [n for n in (theirs or {}) if n not in ours]
    for name in names:
        keys = list(ours.get(name, {})) + [
            k for k in (theirs or {}).get(name, {}) if k not in ours.get(name, {})
        ]
        for key in keys:
            row = [name, key, _fmt(ours[name][key]) if key in ours.get(name, {}) else "-"]
            if theirs is not None:
                peer = theirs.get(name, {}).get(key)
                ratio = ratios.get(name, {}).get(key)
                row += [
                    _fmt(peer) if peer else notes.get(name, "-")[:40] if key == keys[0] else "",
                    f"{ratio:,.2f}" if ratio is not None else "",
                    _better(key, ratio) if ratio is not None else "",
                ]
            table.add_row(*row)
    return table


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def report(files: tuple[str, ...]) -> None:
    """Print JSON results as Markdown tables (for docs/benchmarks.md)."""
    for file in files:
        data = json.loads(Path(file).read_text())
        versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
        load = ", ".join(f"{x:.1f}" for x in data["machine"]["load average at start"]) or "n/a"
        for kind, section in data["stores"].items():
            peer = "dbos" in section
            click.echo(
                f"\n#### {kind}: {data['date']}, {data['machine']['cpus']} CPUs, load {load};"
                f" {data['runs']} runs"
                + (f" (DBOS: {data['peer runs']})" if peer else "")
                + f"; {versions}\n"
            )
            head = "| workload | figure | perdure |" + (
                " DBOS | perdure/DBOS | better |" if peer else ""
            )
            click.echo(head)
            click.echo("|" + "---|" * (head.count("|") - 1))
            ours, theirs = section["perdure"], section.get("dbos", {})
            ratios, notes = section.get("perdure/dbos", {}), section.get("dbos notes", {})
            for name in list(ours) + [n for n in theirs if n not in ours]:
                keys = list(ours.get(name, {}))
                keys += [k for k in theirs.get(name, {}) if k not in keys]
                for key in keys:
                    mine = ours.get(name, {}).get(key)
                    row = [name, key, _fmt(mine) if mine else "-"]
                    if peer:
                        other = theirs.get(name, {}).get(key)
                        ratio = ratios.get(name, {}).get(key)
                        note = notes.get(name, "").split(":")[0] if key == keys[0] else ""
                        row += [
                            _fmt(other) if other else note or "-",
                            f"{ratio:,.2f}" if ratio is not None else "",
                            _better(key, ratio) if ratio is not None else "",
                        ]
                    click.echo("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(cli())
