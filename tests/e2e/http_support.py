"""Shared helpers for the HTTP tests: an in-process server over the example app, and a
real ``perdure serve`` subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
from starlette.types import ASGIApp

import perdure
from perdure.http import BASE_PATH, create_asgi_app
from tests.e2e import http_app

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-0123456789"
MGMT = BASE_PATH


def make_app(tmp_path: Path, **options: Any) -> perdure.App:
    """A fresh App with the example app's orchestrators, activities and routes."""
    app = perdure.App(store=f"sqlite:///{tmp_path / 'http.db'}", **options)
    app.registry = http_app.app.registry
    app.http_routes = list(http_app.app.http_routes)
    return app


class _PortalTransport(httpx.BaseTransport):
    """Calls an ASGI app in-process from sync code: httpx's ASGITransport run on an event
    loop in a helper thread (what Starlette's TestClient does, without its httpx2 need)."""

    def __init__(self, asgi: ASGIApp, portal: anyio.from_thread.BlockingPortal) -> None:
        self.inner = httpx.ASGITransport(app=asgi)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self.inner.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self.portal.call(call)


@contextmanager
def asgi_client(asgi: ASGIApp, headers: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """A sync httpx client bound to ``asgi`` at http://testserver."""
    with anyio.from_thread.start_blocking_portal() as portal, httpx.Client(
        transport=_PortalTransport(asgi, portal), base_url="http://testserver",
        headers=headers or {},
    ) as client:
        yield client


@dataclass
class InProcess:
    app: perdure.App
    asgi: Any  # the Starlette app
    http: httpx.Client  # sends the key
    anon: httpx.Client  # sends no key

    def wait_status(self, instance_id: str, want: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self.http.get(f"{MGMT}/instances/{instance_id}").json()
            if body.get("runtimeStatus") == want:
                return body
            assert time.monotonic() < deadline, f"{instance_id} is {body} not {want}"
            time.sleep(0.02)

    def ids(self) -> list[str]:
        return [s["instanceId"] for s in self.http.get(f"{MGMT}/instances?top=1000").json()]


@contextmanager
def in_process(tmp_path: Path, *, anonymous_starters: bool = False) -> Iterator[InProcess]:
    app = make_app(tmp_path)
    asgi = create_asgi_app(app, api_key=KEY, anonymous_starters=anonymous_starters)
    try:
        with app.running(), asgi_client(asgi, {"x-functions-key": KEY}) as http, \
                asgi_client(asgi) as anon:
            yield InProcess(app, asgi, http, anon)
    finally:
        app.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM, the graceful path
        return self.process.wait(timeout=timeout)


def start_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "serve"
) -> LiveServer:
    """Start ``perdure serve tests.e2e.http_app:app`` and wait until it answers."""
    port = free_port()
    full_env = {**os.environ, "PERDURE_STORE": f"sqlite:///{tmp_path / 'live.db'}", **(env or {})}
    if "PERDURE_API_KEY" not in (env or {}):
        full_env.pop("PERDURE_API_KEY", None)  # let the server generate and print one
    log = tmp_path / f"{name}-{port}.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "perdure.cli", "serve", "tests.e2e.http_app:app",
             "--port", str(port), "--log-level", "warning", *args],
            cwd=ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    server = LiveServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"perdure serve exited:\n{server.output()}"
        try:
            httpx.get(f"{server.base}/health", timeout=1)
            return server
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"server did not start:\n{server.output()}"
            time.sleep(0.05)


def key_from_output(text: str) -> str:
    for line in text.splitlines():
        if "generated API key" in line:
            return line.rsplit(": ", 1)[1].strip()
    raise AssertionError(f"no generated key in:\n{text}")
