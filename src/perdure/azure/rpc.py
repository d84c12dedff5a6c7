"""The loopback listener behind the SDK's ``DurableOrchestrationClient``.

On Azure the SDK client talks to the Functions host's keyless RPC endpoint
(``http://127.0.0.1:17071/durabletask/``). perdure serves the same routes from its own
management handlers, on a second listener that:

- binds 127.0.0.1 only (and refuses any peer that is not loopback),
- lives under an unguessable path (``/durabletask/<random token>/``), so another local
  user or process cannot reach it by guessing, and
- needs no key, because the SDK client sends none.

Wire differences from the public API, all the SDK's: request bodies are JSON-encoded
twice (``json=df_dumps(value)``), so they are decoded twice here (perdure stores the value
itself, not the JSON text of it as Azure does); 400 answers carry ``ExceptionMessage``;
an unknown instance's status is a JSON string (the SDK turns it into a falsy status);
restart answers the new instance ID.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from perdure.errors import InstanceNotFoundError, PerdureError
from perdure.http.client import DurableHttpClient
from perdure.http.management import Management
from perdure.http.params import (
    JSON,
    MAX_BODY_BYTES,
    BadRequest,
    error_for,
    query_bool,
    query_statuses,
    query_time,
)
from perdure.model.entity_id import EntityId
from perdure.model.ids import validate_instance_id, validate_name
from perdure.store.base import InstanceQuery

log = logging.getLogger("perdure.azure")
Endpoint = Callable[[Request], Awaitable[Response]]
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


async def sdk_body(request: Request) -> Any:
    """The value the SDK sent: its body is the JSON text of the SDK's own JSON text."""
    from azure.durable_functions.models.utils.df_serialization import (
        df_loads,
    )

    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"request body is larger than {MAX_BODY_BYTES:,} bytes")
    if not raw.strip():
        return None
    try:
        outer = df_loads(raw.decode("utf-8"))
        # df_loads also rebuilds the SDK's {"__class__", "__module__", "__data__"} objects,
        # which perdure's codec then stores with their to_json/from_json.
        return df_loads(outer) if isinstance(outer, str) else outer
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not the SDK's JSON: {exc}") from None


def _rpc(fn: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except PerdureError as exc:
            response = error_for(exc)
            message = str(exc)
            # start_new reports a 400's "ExceptionMessage"; other methods only read the code.
            return JSON({"error": message, "ExceptionMessage": message},
                        status_code=response.status_code)

    endpoint.__name__ = fn.__name__
    return endpoint


class _LoopbackOnly:
    """Refuse any peer that is not loopback (the socket is bound to 127.0.0.1 anyway)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and (client is None or client[0] not in _LOOPBACK):
            await Response(status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RpcListener:
    """perdure's management API as the SDK client expects to find it, on loopback.

    >>> rpc = RpcListener(client, app.registry.orchestrators)   # doctest: +SKIP
    >>> rpc.start(); rpc.base_url                                # doctest: +SKIP
    'http://127.0.0.1:40123/durabletask/Xq...9/'
    """

    def __init__(self, client: DurableHttpClient, orchestrators: dict[str, object]) -> None:
        self.client = client
        self.management = Management(client, orchestrators)
        self.token = secrets.token_urlsafe(32)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/durabletask/{self.token}/"

    # endpoints that differ from the public API ------------------------------------
    async def start_new(self, request: Request) -> Response:
        name = self.management.check_orchestrator(request.path_params["functionName"])
        instance_id = request.path_params.get("instanceId")
        if instance_id is not None:
            validate_instance_id(instance_id)
        new_id = await self.client.start_new(name, instance_id, await sdk_body(request))
        return JSON({"id": new_id}, status_code=202)

    async def get_status(self, request: Request) -> Response:
        try:
            return await self.management.get_status(request)
        except InstanceNotFoundError:
            # A JSON string: DurableOrchestrationStatus.from_json makes it a falsy status.
            instance_id = request.path_params["instanceId"]
            return JSON(f"No instance with ID '{instance_id}' found.", status_code=404)

    async def list_all(self, request: Request) -> Response:
        """Every matching instance in one answer: the SDK does not page."""
        statuses = query_statuses(request)
        created_from = query_time(request, "createdTimeFrom")
        created_to = query_time(request, "createdTimeTo")
        prefix = request.query_params.get("instanceIdPrefix") or None
        show_input = query_bool(request, "showInput", False)

        def collect() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            token: str | None = None
            while True:
                query = InstanceQuery(created_from, created_to, statuses,
                                      instance_id_prefix=prefix, page_size=1000,
                                      continuation_token=token)
                page, token = self.client.sync.list_instances(query, show_input)
                rows += [s.to_json() for s in page]
                if not token:
                    return rows

        return JSON(await run_in_threadpool(collect))

    async def raise_event(self, request: Request) -> Response:
        instance_id = validate_instance_id(request.path_params["instanceId"])
        event_name = validate_name("event", request.path_params["eventName"])
        await self.client.raise_event(instance_id, event_name, await sdk_body(request))
        return Response(status_code=202)

    async def restart(self, request: Request) -> Response:
        instance_id = validate_instance_id(request.path_params["instanceId"])
        new_id = await self.client.restart(
            instance_id, query_bool(request, "restartWithNewInstanceId", True)
        )
        return JSON(new_id, status_code=202)

    async def signal_entity(self, request: Request) -> Response:
        key = request.path_params["key"]
        entity_id = EntityId(request.path_params["name"], key)
        operation = validate_name("operation", request.query_params.get("op", ""))
        await self.client.signal_entity(entity_id, operation, await sdk_body(request))
        return Response(status_code=202)

    def routes(self) -> list[Route]:
        m = self.management
        table: list[tuple[str, str, Endpoint]] = [
            ("POST", "/orchestrators/{functionName}", self.start_new),
            ("POST", "/orchestrators/{functionName}/{instanceId}", self.start_new),
            ("GET", "/instances/", self.list_all),
            ("GET", "/instances", self.list_all),
            ("DELETE", "/instances/", m.purge_many),
            ("DELETE", "/instances", m.purge_many),
            ("GET", "/instances/{instanceId}", self.get_status),
            ("DELETE", "/instances/{instanceId}", m.purge_one),
            ("POST", "/instances/{instanceId}/raiseEvent/{eventName}", self.raise_event),
            ("POST", "/instances/{instanceId}/restart", self.restart),
            ("GET", "/entities/{name}/{key}", m.get_entity),
            ("POST", "/entities/{name}/{key}", self.signal_entity),
        ]
        table += [
            ("POST", f"/instances/{{instanceId}}/{verb}", m._operation(verb))
            for verb in ("terminate", "suspend", "resume", "rewind")
        ]
        return [Route(path, _rpc(fn), methods=[method]) for method, path, fn in table]

    def asgi(self) -> ASGIApp:
        inner = Starlette(routes=[Mount(f"/durabletask/{self.token}", routes=self.routes())])
        inner.router.redirect_slashes = False  # "instances/" and "instances" are both served
        return _LoopbackOnly(inner)

    # lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Listen on an ephemeral 127.0.0.1 port, on a thread of its own."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.asgi(), log_level="warning", access_log=False,
                                lifespan="off")
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="perdure-azure-rpc", daemon=True,
        )
        self._thread.start()
        # uvicorn runs off the main thread here, so it installs no signal handlers.
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the loopback listener for the durable client did not start")
            threading.Event().wait(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
