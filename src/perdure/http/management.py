"""The Durable Functions management API under ``/runtime/webhooks/durabletask``.

Thin: parse and validate the request, call the client, shape the response. Routes,
parameters, headers and status codes follow DF's ``HttpApiHandler``; where DF answers
500 for a caller's mistake (start over a running ID) perdure answers 409 instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from perdure.errors import InstanceNotFoundError, PerdureError
from perdure.http.client import POLL_RETRY_AFTER, DurableHttpClient, completion_response
from perdure.http.params import (
    JSON,
    MAX_BODY_BYTES,
    BadRequest,
    error_for,
    json_body,
    query_bool,
    query_int,
    query_seconds,
    query_statuses,
    query_time,
)
from perdure.model.entity_id import EntityId
from perdure.model.ids import validate_instance_id, validate_name
from perdure.store.base import InstanceQuery

Handler = Callable[[Request], Awaitable[Response]]
CONTINUATION_HEADER = "x-ms-continuation-token"
MAX_PAGE = 1000


def handle_errors(fn: Handler) -> Handler:
    """Turn perdure's errors into DF status codes with a JSON body."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except PerdureError as exc:
            return error_for(exc)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


class Management:
    """The management endpoints, bound to one client and the set of known orchestrators."""

    def __init__(self, client: DurableHttpClient, orchestrators: dict[str, object]) -> None:
        self.client = client
        self.orchestrators = orchestrators

    # helpers ---------------------------------------------------------------------
    def _check_hub(self, request: Request) -> None:
        hub = request.query_params.get("taskHub")
        if hub and hub != self.client.hub:
            raise BadRequest(f"this server serves task hub {self.client.hub!r}, not {hub!r}")

    def _instance_id(self, request: Request) -> str:
        self._check_hub(request)
        return validate_instance_id(request.path_params["instanceId"])

    def check_orchestrator(self, name: str) -> str:
        validate_name("orchestrator", name)
        if name not in self.orchestrators:
            known = ", ".join(sorted(self.orchestrators)) or "none"
            raise BadRequest(
                f"no orchestrator named {name!r} is registered (known: {known})"
            )
        return name

    # start ----------------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        """POST orchestrators/{functionName}[/{instanceId}]: start; wait if ``timeout`` given."""
        self._check_hub(request)
        name = self.check_orchestrator(request.path_params["functionName"])
        instance_id = request.path_params.get("instanceId")
        if instance_id is not None:
            validate_instance_id(instance_id)
        timeout = query_seconds(request, "timeout")
        interval = query_seconds(request, "pollingInterval", 1.0, minimum=0.001)
        fail_with_500 = query_bool(request, "returnInternalServerErrorOnFailure", False)
        body = await json_body(request)
        client = self.client.for_request(request)
        new_id = await client.start_new(name, instance_id, body)
        return await self._respond_started(
            request, client, new_id, timeout, interval, fail_with_500
        )

    async def _respond_started(
        self,
        request: Request,
        client: DurableHttpClient,
        instance_id: str,
        timeout: float | None,
        interval: float | None,
        fail_with_500: bool,
    ) -> Response:
        if timeout is None:
            return client.create_check_status_response(request, instance_id)
        status = await client.wait_for_terminal_status(instance_id, timeout, interval or 1.0)
        if status is None:
            return client.create_check_status_response(request, instance_id)
        return completion_response(status, fail_with_500)

    # status ---------------------------------------------------------------------
    async def get_status(self, request: Request) -> Response:
        """GET instances/{instanceId}: 202 while active, 200 when finished, 404 unknown."""
        instance_id = self._instance_id(request)
        show_history = query_bool(request, "showHistory", False)
        show_history_output = query_bool(request, "showHistoryOutput", False)
        show_input = query_bool(request, "showInput", True)
        fail_with_500 = query_bool(request, "returnInternalServerErrorOnFailure", False)
        status = await self.client.get_status(
            instance_id, show_history, show_history_output, show_input
        )
        if status is None:
            raise InstanceNotFoundError(instance_id)
        body = status.to_json()
        if not status.runtime_status.is_terminal:
            headers = {"Location": str(request.url), "Retry-After": POLL_RETRY_AFTER}
            return JSON(body, status_code=202, headers=headers)
        failed = status.runtime_status.value == "Failed"
        return JSON(body, status_code=500 if failed and fail_with_500 else 200)

    async def list_instances(self, request: Request) -> Response:
        """GET instances: one page; ``x-ms-continuation-token`` points at the next."""
        self._check_hub(request)
        query = InstanceQuery(
            created_from=query_time(request, "createdTimeFrom"),
            created_to=query_time(request, "createdTimeTo"),
            statuses=query_statuses(request),
            instance_id_prefix=request.query_params.get("instanceIdPrefix") or None,
            page_size=query_int(request, "top", 100, low=1, high=MAX_PAGE),
            continuation_token=request.headers.get(CONTINUATION_HEADER) or None,
        )
        show_input = query_bool(request, "showInput", True)
        page, token = await run_in_threadpool(self.client.sync.list_instances, query, show_input)
        # DF always sends the header; empty means there is no next page.
        return JSON(
            [s.to_json() for s in page], headers={CONTINUATION_HEADER: token or ""}
        )

    # messages -------------------------------------------------------------------
    async def raise_event(self, request: Request) -> Response:
        """POST instances/{instanceId}/raiseEvent/{eventName} (JSON body)."""
        instance_id = self._instance_id(request)
        event_name = validate_name("event", request.path_params["eventName"])
        data = await json_body(request, require_json_type=True)
        await self.client.raise_event(instance_id, event_name, data)
        return Response(status_code=202)

    def _operation(self, verb: str) -> Handler:
        async def operation(request: Request) -> Response:
            instance_id = self._instance_id(request)
            reason = request.query_params.get("reason")
            await getattr(self.client, verb)(instance_id, reason)
            return Response(status_code=202)

        operation.__name__ = verb
        operation.__doc__ = f"POST instances/{{instanceId}}/{verb}?reason=: 202, 404, 410."
        return operation

    async def restart(self, request: Request) -> Response:
        """POST instances/{instanceId}/restart: start again with the original input."""
        instance_id = self._instance_id(request)
        new_id_wanted = query_bool(request, "restartWithNewInstanceId", True)
        timeout = query_seconds(request, "timeout")
        interval = query_seconds(request, "pollingInterval", 1.0, minimum=0.001)
        client = self.client.for_request(request)
        try:
            new_id = await client.restart(instance_id, new_id_wanted)
        except InstanceNotFoundError as exc:
            # DF answers an unknown instance on restart with 400, not 404.
            raise BadRequest(str(exc)) from None
        return await self._respond_started(request, client, new_id, timeout, interval, False)

    # purge ----------------------------------------------------------------------
    async def purge_one(self, request: Request) -> Response:
        """DELETE instances/{instanceId}: 200 ``{"instancesDeleted": 1}`` or 404."""
        instance_id = self._instance_id(request)
        result = await self.client.purge_instance_history(instance_id)
        if result.instances_deleted == 0:
            raise InstanceNotFoundError(instance_id)
        return JSON({"instancesDeleted": result.instances_deleted})

    async def purge_many(self, request: Request) -> Response:
        """DELETE instances?createdTimeFrom=...: purge finished instances by filter."""
        self._check_hub(request)
        created_from = query_time(request, "createdTimeFrom")
        if created_from is None:
            raise BadRequest("Please provide value for 'createdTimeFrom'")
        created_to = query_time(request, "createdTimeTo") or datetime.now(UTC)
        statuses = query_statuses(request)
        result = await self.client.purge_instance_history_by(created_from, created_to, statuses)
        if result.instances_deleted == 0:
            return JSON(
                {"instancesDeleted": 0, "error": "no finished instances matched the filter"},
                status_code=404,
            )
        return JSON({"instancesDeleted": result.instances_deleted})

    # entities -------------------------------------------------------------------
    def _entity_id(self, request: Request) -> EntityId:
        self._check_hub(request)
        key = request.path_params["key"]
        return EntityId(request.path_params["name"], "" if key == "$" else key)

    async def get_entity(self, request: Request) -> Response:
        """GET entities/{name}/{key}: 200 with the state, 404 if it has none (key ``$`` = "")."""
        entity_id = self._entity_id(request)
        response = await self.client.read_entity_state(entity_id)
        if not response.entity_exists:
            return JSON({"error": f"entity {entity_id} does not exist"}, status_code=404)
        return JSON(response.entity_state)

    async def list_entities(self, request: Request) -> Response:
        """GET entities[/{name}]: one page of entities; ``x-ms-continuation-token`` for more."""
        self._check_hub(request)
        name = request.path_params.get("name")
        if name is not None:
            EntityId(name, "")  # validates the name
        since = query_time(request, "lastOperationTimeFrom")
        until = query_time(request, "lastOperationTimeTo")
        fetch_state = query_bool(request, "fetchState", False)
        top = query_int(request, "top", 100, low=1, high=MAX_PAGE)
        token = request.headers.get(CONTINUATION_HEADER) or None
        page, next_token = await self.client.list_entities(name, top, token, fetch_state)
        body = []
        for entity in page:
            if (since and entity.last_operation_time < since) or (
                until and entity.last_operation_time > until
            ):
                continue
            item = {
                "entityId": {"name": entity.entity_id.name, "key": entity.entity_id.key},
                "lastOperationTime": entity.last_operation_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if fetch_state:
                item["state"] = entity.state
            body.append(item)
        return JSON(body, headers={CONTINUATION_HEADER: next_token or ""})

    async def signal_entity(self, request: Request) -> Response:
        """POST entities/{name}/{key}?op=: signal an operation (JSON or raw-text body); 202."""
        entity_id = self._entity_id(request)
        operation = request.query_params.get("op", "")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            data = await json_body(request)
        else:
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise BadRequest(f"request body is larger than {MAX_BODY_BYTES:,} bytes")
            try:
                data = raw.decode("utf-8") if raw else None
            except UnicodeDecodeError:
                raise BadRequest("request body is not valid UTF-8 text") from None
        await self.client.signal_entity(entity_id, operation or "(none)", data)
        return Response(status_code=202)

    async def delete_entity(self, request: Request) -> Response:
        """DELETE entities/{name}/{key}: signal the built-in ``delete`` operation; 202."""
        entity_id = self._entity_id(request)
        await self.client.signal_entity(entity_id, "delete")
        return Response(status_code=202)

    # routes ---------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, path, endpoint)`` for every management route, relative to the base."""
        return [
            ("POST", "/orchestrators/{functionName}", self.start),
            ("POST", "/orchestrators/{functionName}/{instanceId}", self.start),
            ("GET", "/instances", self.list_instances),
            ("DELETE", "/instances", self.purge_many),
            ("GET", "/instances/{instanceId}", self.get_status),
            ("DELETE", "/instances/{instanceId}", self.purge_one),
            ("POST", "/instances/{instanceId}/raiseEvent/{eventName}", self.raise_event),
            ("POST", "/instances/{instanceId}/terminate", self._operation("terminate")),
            ("POST", "/instances/{instanceId}/suspend", self._operation("suspend")),
            ("POST", "/instances/{instanceId}/resume", self._operation("resume")),
            ("POST", "/instances/{instanceId}/rewind", self._operation("rewind")),
            ("POST", "/instances/{instanceId}/restart", self.restart),
            ("GET", "/entities", self.list_entities),
            ("GET", "/entities/{name}", self.list_entities),
            ("GET", "/entities/{name}/{key}", self.get_entity),
            ("POST", "/entities/{name}/{key}", self.signal_entity),
            ("DELETE", "/entities/{name}/{key}", self.delete_entity),
        ]
