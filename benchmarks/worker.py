"""A perdure worker process for the benchmarks: ``python -m benchmarks.worker STORE HUB``.

It registers the same functions as the in-process workloads and runs until SIGTERM, so a
workload can measure the worker's own memory (W5)."""

from __future__ import annotations

import sys

from benchmarks.workloads import _app


def main(argv: list[str]) -> None:
    store_url, hub = argv
    _app(store_url, hub).run()


if __name__ == "__main__":
    main(sys.argv[1:])
