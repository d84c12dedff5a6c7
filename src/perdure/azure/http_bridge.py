"""HTTP-triggered functions: Functions host routes to Starlette routes, Starlette requests to
``azure.functions.HttpRequest``, and ``HttpResponse`` (or an ``Out`` binding) back.

User client functions run on one long-lived event loop of their own (:class:`FunctionLoop`):
the SDK keeps a single global aiohttp session bound to the loop that created it, so every
call must happen on that same loop, and user code must not stall perdure's server loop.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import re
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from perdure.azure.loader import CLIENT_BINDINGS, FunctionSpec
from perdure.http.auth import require_key
from perdure.http.params import JSON, error

log = logging.getLogger("perdure.azure")

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_PARAM = re.compile(r"\{([^{}]+)\}")


class FunctionLoop:
    """An asyncio loop on a daemon thread, alive for the server's lifetime."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "FunctionLoop.start() first"
        return self._loop

    def start(self) -> None:
        # Made here, not in __init__, so that a host that never serves leaks no loop.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="perdure-azure-functions", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        try:
            from azure.durable_functions.models.utils import (
                http_utils,
            )

            # Close the SDK's shared session on its own loop (no "unclosed session" warning).
            self.submit(http_utils._close_session()).result(timeout=5)
        except Exception:  # pragma: no cover - best effort on shutdown
            log.debug("closing the SDK's HTTP session failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def route_paths(prefix: str, route: str) -> list[str]:
    """Starlette paths for a Functions route template.

    ``{x}`` stays, ``{x:int}`` becomes ``{x:int}``, other constraints (``alpha``,
    ``guid``, ...) match any segment, ``{*rest}`` takes the rest of the path, and an
    optional ``{x?}`` segment yields a path with it and one without it.

    >>> route_paths("api", "orders/{id:int}/{part?}")
    ['/api/orders/{id:int}/{part}', '/api/orders/{id:int}']
    """
    segments = [s for s in route.strip("/").split("/") if s]
    choices: list[list[str | None]] = []
    for segment in segments:
        optional = False

        def convert(match: re.Match[str]) -> str:
            nonlocal optional
            body = match.group(1)
            if body.startswith("*"):
                return "{" + body[1:].split(":")[0].rstrip("?") + ":path}"
            name, _, constraint = body.partition(":")
            if name.endswith("?") or constraint.endswith("?"):
                optional = True
            name = name.rstrip("?")
            kind = constraint.rstrip("?").split("(")[0].lower()
            # Starlette converters that match Azure's constraints of the same name.
            return "{" + name + (":int" if kind in ("int", "long") else "") + "}"

        converted = _PARAM.sub(convert, segment)
        choices.append([converted, None] if optional else [converted])
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    paths = []
    for combo in itertools.product(*choices):
        rest = "/".join(s for s in combo if s is not None)
        paths.append(f"{base}/{rest}" if rest else base or "/")
    return paths


class OutBinding:
    """An ``azure.functions.Out`` the function sets (the HTTP response or a stub)."""

    def __init__(self, binding: Mapping[str, Any]) -> None:
        self.binding = dict(binding)
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


def _out_type() -> type:
    import azure.functions as func

    # A real subclass, so isinstance(x, func.Out) holds in user code.
    return type("Out", (OutBinding, func.Out), {})


def to_response(value: Any) -> Response:
    """A Starlette response for what the function returned (or set on its http Out)."""
    import azure.functions as func

    if isinstance(value, Response):
        return value
    if isinstance(value, func.HttpResponse):
        headers = dict(value.headers.items())
        media_type = None
        if not any(k.lower() == "content-type" for k in headers) and value.mimetype:
            media_type = value.mimetype + (f"; charset={value.charset}" if value.charset else "")
        return Response(value.get_body(), value.status_code, headers, media_type)
    if value is None:
        return Response(status_code=204)
    if isinstance(value, bytes):
        return Response(value, 200, media_type="application/octet-stream")
    if isinstance(value, str):
        return Response(value, 200, media_type="text/plain; charset=utf-8")
    return JSON(value)


class HttpFunction:
    """One HTTP-triggered function served as Starlette routes."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        client_binding: Callable[[], str],
        stub: Callable[[Mapping[str, Any]], Any],
        loop: FunctionLoop,
    ) -> None:
        self.spec = spec
        self.client_binding = client_binding
        self.stub = stub
        self.loop = loop
        self.out_type = _out_type()

    def paths(self, prefix: str) -> list[str]:
        return route_paths(prefix, str(self.spec.trigger.get("route") or self.spec.name))

    @property
    def methods(self) -> list[str]:
        methods = self.spec.trigger.get("methods")
        return [str(m).upper() for m in methods] if methods else ALL_METHODS

    @property
    def anonymous(self) -> bool:
        return str(self.spec.trigger.get("authLevel", "function")).lower() == "anonymous"

    def _request(self, request: Request, body: bytes) -> Any:
        import azure.functions as func

        return func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers.items()),
            params=dict(request.query_params.items()),
            route_params={k: str(v) for k, v in request.path_params.items()},
            body=body,
        )

    async def __call__(self, request: Request) -> Response:
        spec = self.spec
        kwargs: dict[str, Any] = {str(spec.trigger["name"]): self._request(
            request, await request.body())}
        http_out: OutBinding | None = None
        for binding in spec.bindings:
            name, kind = str(binding.get("name")), str(binding.get("type"))
            if kind in CLIENT_BINDINGS:
                # A string, as the host passes it: v2's middleware and v1 user code both
                # build the SDK's DurableOrchestrationClient from it.
                kwargs[name] = self.client_binding()
            elif kind == "http":
                if name != "$return":
                    http_out = kwargs[name] = self.out_type(binding)
            elif name != "$return":
                kwargs[name] = self.stub(binding)
        entry = spec.entry
        try:
            if inspect.iscoroutinefunction(entry):
                result = await asyncio.wrap_future(self.loop.submit(entry(**kwargs)))
            else:
                result = await run_in_threadpool(entry, **kwargs)
        except Exception:
            log.exception("function %r failed", spec.name)
            return error(500, f"function {spec.name!r} failed (see the server log)")
        if result is None and http_out is not None:
            result = http_out.value
        return to_response(result)

    def routes(self, prefix: str, api_key: str) -> list[Route]:
        endpoint: Callable[[Request], Any] = self.__call__
        if not self.anonymous:
            endpoint = require_key(api_key, self.__call__)
        return [
            Route(path, endpoint, methods=self.methods, name=f"{self.spec.name} {path}")
            for path in self.paths(prefix)
        ]


def describe(functions: list[HttpFunction], prefix: str) -> list[str]:
    """One line per HTTP function, for the start-up banner."""
    lines = []
    for fn in functions:
        auth = "anonymous" if fn.anonymous else "key"
        methods = ",".join(fn.methods) if fn.spec.trigger.get("methods") else "*"
        route = str(fn.spec.trigger.get("route") or fn.spec.name).strip("/")
        path = f"/{prefix}/{route}" if prefix else f"/{route}"
        lines.append(f"{fn.spec.name}: [{methods}] {path} ({auth})")
    return lines

