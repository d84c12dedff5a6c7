"""User-facing routes: the ready HTTP starter under ``/api/orchestrators`` and the routes an
app registers with ``@app.route`` (DF's HTTP-triggered "kick-off" functions)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from perdure.errors import PerdureError
from perdure.http.client import DurableHttpClient
from perdure.http.management import Handler, Management
from perdure.http.params import JSON, BadRequest, error_for, json_body, query_seconds
from perdure.model.ids import validate_instance_id

STARTER_PREFIX = "/api/orchestrators"


class Starter:
    """``POST /api/orchestrators/{functionName}[/{instanceId}][/wait]``."""

    def __init__(self, management: Management) -> None:
        self.management = management

    async def _start(self, request: Request) -> tuple[DurableHttpClient, str]:
        name = self.management.check_orchestrator(request.path_params["functionName"])
        instance_id = request.path_params.get("instanceId")
        if instance_id is not None:
            validate_instance_id(instance_id)
        body = await json_body(request)
        client = self.management.client.for_request(request)
        return client, await client.start_new(name, instance_id, body)

    async def start(self, request: Request) -> Response:
        """Start an orchestration; 202 with the check-status payload."""
        client, instance_id = await self._start(request)
        return client.create_check_status_response(request, instance_id)

    async def start_and_wait(self, request: Request) -> Response:
        """Start, then wait up to ``timeout`` s (default 10, polling every ``retryInterval``
        s, default 1): 200 with the output if it completed, else the 202 payload."""
        timeout = query_seconds(request, "timeout", 10.0)
        interval = query_seconds(request, "retryInterval", 1.0, minimum=0.001)
        assert timeout is not None and interval is not None
        if interval > timeout > 0:
            raise BadRequest(
                f"retryInterval ({interval:g} s) must not be longer than timeout ({timeout:g} s)"
            )
        client, instance_id = await self._start(request)
        return await client.wait_for_completion_or_create_check_status_response(
            request, instance_id, round(timeout * 1000), max(1, round(interval * 1000))
        )

    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, path, endpoint)``; '/wait' precedes '/{instanceId}' so that it is not
        taken for an instance ID."""
        return [
            ("POST", STARTER_PREFIX + "/{functionName}", self.start),
            ("POST", STARTER_PREFIX + "/{functionName}/wait", self.start_and_wait),
            ("POST", STARTER_PREFIX + "/{functionName}/{instanceId}/wait", self.start_and_wait),
            ("POST", STARTER_PREFIX + "/{functionName}/{instanceId}", self.start),
        ]


def user_endpoint(handler: Callable[..., Any], client: DurableHttpClient) -> Handler:
    """Adapt ``handler(request, client)`` (sync or async) to a Starlette endpoint.

    A handler may return a Starlette Response, or any JSON value (sent as 200).
    """
    is_async = inspect.iscoroutinefunction(handler)

    async def endpoint(request: Request) -> Response:
        bound = client.for_request(request)
        try:
            if is_async:
                result = await handler(request, bound)
            else:
                # A sync handler runs on a worker thread so that it cannot stall the loop;
                # it uses ``client.sync`` for the blocking client methods.
                result = await run_in_threadpool(handler, request, bound)
        except PerdureError as exc:
            return error_for(exc)
        return result if isinstance(result, Response) else JSON(result)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    endpoint.__doc__ = handler.__doc__
    return endpoint
