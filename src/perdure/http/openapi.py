"""The OpenAPI 3.1 document of the HTTP API, written by hand (it is small and stable)."""

from __future__ import annotations

from typing import Any

from perdure import __version__

_ID = {"name": "instanceId", "in": "path", "required": True, "schema": {"type": "string"}}
_FN = {"name": "functionName", "in": "path", "required": True, "schema": {"type": "string"}}
_EVENT = {"name": "eventName", "in": "path", "required": True, "schema": {"type": "string"}}
_HUB = {"name": "taskHub", "in": "query", "schema": {"type": "string"},
        "description": "Must match the server's task hub when given."}


def _q(name: str, type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": type_, **extra},
            "description": description}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = {h: {"schema": {"type": "string"}, "description": d}
                          for h, d in headers.items()}
    return out


_ERR = _json(_ref("Error"), "Bad request: the body names the problem")
_401 = _json(_ref("Error"), "Missing or wrong API key")
_404 = _json(_ref("Error"), "No such instance")
_410 = _json(_ref("Error"), "The instance already finished")
_409 = _json(_ref("Error"), "The instance's status does not allow this")
_202_CHECK = _json(_ref("CheckStatus"), "Started; poll statusQueryGetUri",
                   Location="statusQueryGetUri", **{"Retry-After": "10 (seconds)"})
_ANY_BODY = {"required": False, "content": {"application/json": {"schema": {}}},
             "description": "The orchestration input (any JSON value)"}
_TIMEOUT = _q("timeout", "number", "Wait up to this many seconds for completion")
_POLL = _q("pollingInterval", "number", "Poll interval in seconds while waiting (default 1)")
_FAIL500 = _q("returnInternalServerErrorOnFailure", "boolean", "Answer 500 for Failed")
_REASON = _q("reason", "string", "Recorded in the history")


_ENAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_EKEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The entity key; '$' means the empty key"}
_ENTITY_LIST = [
    _q("lastOperationTimeFrom", "string", "ISO 8601", format="date-time"),
    _q("lastOperationTimeTo", "string", "ISO 8601", format="date-time"),
    _q("fetchState", "boolean", "Include each entity's state"),
    _q("top", "integer", "Page size (1-1000, default 100)"),
    {"name": "x-ms-continuation-token", "in": "header", "schema": {"type": "string"}},
    _HUB,
]
_ENTITY_PAGE = {"200": _json({"type": "array", "items": {"type": "object"}}, "One page",
                             **{"x-ms-continuation-token": "Next page; empty at the end"})}


def _operation(summary: str, params: list[dict[str, Any]], responses: dict[str, Any],
               body: dict[str, Any] | None = None, secured: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params,
                          "responses": {**responses, "400": _ERR}}
    if secured:
        op["responses"]["401"] = _401
    else:
        op["security"] = []
    if body is not None:
        op["requestBody"] = body
    return op


def _control(verb: str) -> dict[str, Any]:
    return {"post": _operation(
        f"{verb.capitalize()} an instance", [_ID, _REASON, _HUB],
        {"202": {"description": "Accepted"}, "404": _404, "409": _409, "410": _410},
    )}


def openapi_document(
    user_routes: list[tuple[str, list[str], str, bool]] | None = None,
    anonymous_starters: bool = False,
) -> dict[str, Any]:
    """The OpenAPI document; ``user_routes`` are ``(path, methods, summary, anonymous)``."""
    base = "/runtime/webhooks/durabletask"
    started = {"202": _202_CHECK, "200": _json({}, "Finished in time (when waiting)"),
               "409": _409}
    paths: dict[str, Any] = {
        f"{base}/orchestrators/{{functionName}}": {"post": _operation(
            "Start an orchestration", [_FN, _TIMEOUT, _POLL, _FAIL500, _HUB], started, _ANY_BODY)},
        f"{base}/orchestrators/{{functionName}}/{{instanceId}}": {"post": _operation(
            "Start an orchestration with a chosen instance ID",
            [_FN, _ID, _TIMEOUT, _POLL, _FAIL500, _HUB], started, _ANY_BODY)},
        f"{base}/instances": {
            "get": _operation("List instances (one page)", [
                _q("instanceIdPrefix", "string", "Only IDs starting with this"),
                _q("createdTimeFrom", "string", "ISO 8601", format="date-time"),
                _q("createdTimeTo", "string", "ISO 8601", format="date-time"),
                _q("runtimeStatus", "string", "Comma-separated status names"),
                _q("top", "integer", "Page size (1-1000, default 100)"),
                _q("showInput", "boolean", "Include inputs (default true)"),
                {"name": "x-ms-continuation-token", "in": "header", "schema": {"type": "string"}},
                _HUB,
            ], {"200": _json({"type": "array", "items": _ref("Status")}, "One page",
                             **{"x-ms-continuation-token": "Next page; empty at the end"})}),
            "delete": _operation("Purge finished instances by filter", [
                _q("createdTimeFrom", "string", "Required, ISO 8601", format="date-time"),
                _q("createdTimeTo", "string", "ISO 8601 (default now)", format="date-time"),
                _q("runtimeStatus", "string", "Comma-separated status names"), _HUB,
            ], {"200": _json(_ref("Purged"), "Deleted"), "404": _json(_ref("Purged"), "None")}),
        },
        f"{base}/instances/{{instanceId}}": {
            "get": _operation("Get an instance's status", [
                _ID, _q("showHistory", "boolean", "Include historyEvents"),
                _q("showHistoryOutput", "boolean", "Include results in historyEvents"),
                _q("showInput", "boolean", "Include the input (default true)"), _FAIL500, _HUB,
            ], {"200": _json(_ref("Status"), "Finished"),
                "202": _json(_ref("Status"), "Still active", Location="This URL",
                             **{"Retry-After": "5 (seconds)"}),
                "404": _404, "500": _json(_ref("Status"), "Failed (with the flag)")}),
            "delete": _operation("Purge one instance", [_ID, _HUB],
                                 {"200": _json(_ref("Purged"), "Deleted"), "404": _404}),
        },
        f"{base}/instances/{{instanceId}}/raiseEvent/{{eventName}}": {"post": _operation(
            "Raise an external event", [_ID, _EVENT, _HUB],
            {"202": {"description": "Accepted"}, "404": _404, "410": _410},
            {"required": False, "content": {"application/json": {"schema": {}}},
             "description": "Event data; Content-Type must be application/json"})},
        f"{base}/instances/{{instanceId}}/terminate": _control("terminate"),
        f"{base}/instances/{{instanceId}}/suspend": _control("suspend"),
        f"{base}/instances/{{instanceId}}/resume": _control("resume"),
        f"{base}/instances/{{instanceId}}/rewind": _control("rewind"),
        f"{base}/instances/{{instanceId}}/restart": {"post": _operation(
            "Start the same orchestrator again with the original input", [
                _ID, _q("restartWithNewInstanceId", "boolean", "Default true"),
                _TIMEOUT, _POLL, _HUB], started)},
        f"{base}/entities": {"get": _operation("List entities (one page)", _ENTITY_LIST,
                                               _ENTITY_PAGE)},
        f"{base}/entities/{{name}}": {"get": _operation(
            "List entities of one name (one page)", [_ENAME, *_ENTITY_LIST], _ENTITY_PAGE)},
        f"{base}/entities/{{name}}/{{key}}": {
            "get": _operation("Read an entity's state", [_ENAME, _EKEY, _HUB], {
                "200": _json({}, "The entity's state"),
                "404": _json(_ref("Error"), "No such entity")}),
            "post": _operation("Signal an entity operation", [
                _ENAME, _EKEY, _q("op", "string", "Operation name"), _HUB],
                {"202": {"description": "Accepted (a signal, not a call)"}},
                {"required": False, "content": {"application/json": {"schema": {}},
                                                "text/plain": {"schema": {"type": "string"}}},
                 "description": "Operation input: JSON, or raw text"}),
            "delete": _operation("Delete an entity (built-in delete operation)",
                                 [_ENAME, _EKEY, _HUB], {"202": {"description": "Accepted"}}),
        },
        f"{base}/openapi.json": {"get": _operation(
            "This document", [], {"200": {"description": "OpenAPI 3.1"}})},
        "/metrics": {"get": _operation(
            "Prometheus metrics (instance counts by status, backlog, worker activity)", [],
            {"200": {"description": "Prometheus text format",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}})},
    }
    starter = "/api/orchestrators/{functionName}"
    wait_params = [_q("timeout", "number", "Seconds to wait (default 10)"),
                   _q("retryInterval", "number", "Seconds between polls (default 1)")]
    finished = {"200": _json({}, "Completed in time: the output"), "202": _202_CHECK,
                "409": _409, "500": _json(_ref("Status"), "Failed")}
    for path, params, responses in (
        (starter, [_FN], {"202": _202_CHECK, "409": _409}),
        (starter + "/{instanceId}", [_FN, _ID], {"202": _202_CHECK, "409": _409}),
        (starter + "/wait", [_FN, *wait_params], finished),
        (starter + "/{instanceId}/wait", [_FN, _ID, *wait_params], finished),
    ):
        paths[path] = {"post": _operation("HTTP starter: start an orchestration", params,
                                          responses, _ANY_BODY, secured=not anonymous_starters)}
    for path, methods, summary, anonymous in user_routes or []:
        entry = paths.setdefault(path, {})
        for method in methods:
            entry[method.lower()] = _operation(
                summary or "User route", [], {"200": {"description": "Handler response"}},
                secured=not anonymous,
            )
    status_props: dict[str, Any] = {k: {"type": "string"} for k in
                    ("name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime")}
    status_props.update({"input": {}, "output": {}, "customStatus": {},
                         "historyEvents": {"type": "array", "items": {"type": "object"}}})
    check_props = {k: {"type": "string"} for k in (
        "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
        "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "perdure HTTP API", "version": __version__,
                 "description": "Durable Functions' management API, served by perdure."},
        "security": [{"code": []}, {"functionsKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "code": {"type": "apiKey", "in": "query", "name": "code"},
                "functionsKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Status": {"type": "object", "properties": status_props},
                "CheckStatus": {"type": "object", "properties": check_props},
                "Purged": {"type": "object",
                           "properties": {"instancesDeleted": {"type": "integer"}}},
            },
        },
    }
