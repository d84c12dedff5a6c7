"""``perdure serve``: the worker and uvicorn in one process (plus optional worker processes),
with a graceful shutdown on SIGTERM/SIGINT.

Shutdown order: stop accepting requests and end pending waits with 202; let uvicorn finish
in-flight requests; tell extra worker processes to drain; drain this process's worker
(in-flight activities finish and are reported, leases are released); wait for the children.
Nothing is lost: unfinished work stays in the store and is picked up on the next start.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp

from perdure.http.asgi import create_asgi_app
from perdure.http.auth import ENV, resolve_api_key
from perdure.observability.logs import ENV as LOG_FORMAT_ENV
from perdure.observability.logs import configure_logging

if TYPE_CHECKING:
    from perdure.app import App
    from perdure.azure.host import FunctionsHost

log = logging.getLogger("perdure.serve")
_CODE = re.compile(r"((?:^|[?&])code=)[^&\s\"]*")


class RedactKeys(logging.Filter):
    """Hide ``code=...`` in log records (uvicorn's access log prints full query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _CODE.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _CODE.sub(r"\1***", record.msg)
        return True


class _Server(uvicorn.Server):
    """uvicorn's server, also telling perdure's pending waits that shutdown has begun."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def spawn_workers(spec: str, count: int, concurrency: int | None) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` ``perdure worker`` processes for the app at ``spec``."""
    args = [sys.executable, "-m", "perdure.cli", "worker", spec]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    return [subprocess.Popen(args) for _ in range(count)]


def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 7071,
    workers: int = 1,
    app_spec: str | None = None,
    concurrency: int | None = None,
    anonymous_starters: bool = False,
    log_level: str = "info",
    log_format: str | None = None,
    echo: Callable[[str], None] = print,
    drain_seconds: float = 30.0,
    functions_host: FunctionsHost | None = None,
) -> None:
    """Serve ``app`` over HTTP and run its worker until SIGTERM/SIGINT, then drain.

    Args:
        workers: worker processes in total: this one plus ``workers - 1`` children running
            ``perdure worker app_spec`` (processes, not threads, so activities use more
            than one CPU). ``workers=0`` serves HTTP only.
        concurrency: activities each worker process runs at once (default 128).
        anonymous_starters: serve ``/api/orchestrators/...`` without the API key.
        functions_host: an Azure Functions app's HTTP side (``--functions-app``), served
            in front of the management API.

    >>> serve(app, port=7071)          # doctest: +SKIP
    """
    if concurrency is not None:
        app.worker_options["max_concurrent_activities"] = concurrency
    api_key, generated = resolve_api_key(app.store)
    stopping = threading.Event()
    asgi: ASGIApp = create_asgi_app(
        app, api_key=api_key, anonymous_starters=anonymous_starters, stopping=stopping
    )
    if functions_host is not None:
        asgi = functions_host.wrap(asgi, api_key=api_key, public_base=f"http://{host}:{port}")
        for line in functions_host.banner():
            echo(line)
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logging.getLogger(name).addFilter(RedactKeys())
    structured = (log_format or os.environ.get(LOG_FORMAT_ENV, "")).strip().lower() == "json"
    if structured:
        configure_logging("json", log_level, secrets=[api_key])
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None if structured else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=int(drain_seconds),
        lifespan="off",
    )
    server = _Server(config, stopping)

    echo(f"perdure: task hub {app.hub!r}, {len(app.registry.orchestrators)} orchestrator(s), "
         f"{len(app.registry.activities)} activit(y/ies), {max(workers, 0)} worker process(es)")
    if generated:
        # Printed once, on the start that created it; later starts do not repeat it.
        echo(f"perdure: generated API key (stored in task hub {app.hub!r}; shown only now, "
             f"`perdure key` prints it again): {api_key}")
    elif os.environ.get(ENV, "").strip():
        echo(f"perdure: API key from ${ENV}")
    else:
        echo(f"perdure: API key stored in task hub {app.hub!r} (`perdure key` prints it)")
    echo(f"perdure: management API at http://{host}:{port}/runtime/webhooks/durabletask/")

    children: list[subprocess.Popen[bytes]] = []
    worker = app.worker() if workers >= 1 else None
    if worker is not None:
        worker.drain_seconds = drain_seconds
        worker.start()
    if workers > 1:
        if app_spec is None:
            raise ValueError("workers > 1 needs app_spec (MODULE:app) to start worker processes")
        children = spawn_workers(app_spec, workers - 1, concurrency)

    # uvicorn re-raises the signal it caught once it has stopped; with this handler in
    # place that re-raise is a no-op and we get to drain the worker before exiting.
    previous = {
        sig: signal.signal(sig, lambda *_: stopping.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run()
    finally:
        stopping.set()
        for child in children:
            child.send_signal(signal.SIGTERM)
        if worker is not None:
            echo("perdure: draining the worker ...")
            worker.stop()
        for child in children:
            try:
                child.wait(timeout=drain_seconds + 10)
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not drain in time; killing it", child.pid)
                child.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if functions_host is not None:
            functions_host.close()
        app.close()
        echo("perdure: stopped")
