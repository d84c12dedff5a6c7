"""Assembles the Starlette application: management API, HTTP starter, user routes, auth."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from perdure.dashboard import dashboard_routes, metrics_route
from perdure.errors import ValidationError
from perdure.http.auth import require_key
from perdure.http.client import BASE_PATH, DurableHttpClient
from perdure.http.management import Handler, Management, handle_errors
from perdure.http.openapi import openapi_document
from perdure.http.params import JSON, error
from perdure.http.starters import STARTER_PREFIX, Starter, user_endpoint

if TYPE_CHECKING:
    from perdure.app import App


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server log (uvicorn); the caller learns nothing internal.
    return error(500, "internal server error")


def create_asgi_app(
    app: App,
    *,
    api_key: str,
    anonymous_starters: bool = False,
    stopping: threading.Event | None = None,
) -> Starlette:
    """The ASGI application serving ``app`` over HTTP.

    Args:
        app: the perdure App (its store, registry and ``@app.route`` handlers).
        api_key: the key every management route demands (see ``resolve_api_key``).
        anonymous_starters: serve ``/api/orchestrators/...`` without the key.
        stopping: set when the server shuts down; pending waits then answer 202 at once.

    >>> asgi = create_asgi_app(app, api_key="secret")          # doctest: +SKIP
    >>> uvicorn.run(asgi, host="127.0.0.1", port=7071)        # doctest: +SKIP
    """
    if not api_key:
        raise ValidationError("api_key must be a non-empty string")
    client = DurableHttpClient(
        app.sync_client(), base_url="", api_key=api_key, hub=app.hub, stopping=stopping
    )
    management = Management(client, app.registry.orchestrators)  # type: ignore[arg-type]
    user_routes: list[tuple[str, list[str], Any, bool]] = list(getattr(app, "http_routes", []))
    doc = openapi_document(
        [(p, m, (h.__doc__ or "").strip().split("\n")[0], anon) for p, m, h, anon in user_routes],
        anonymous_starters,
    )

    async def openapi(request: Request) -> Response:
        """GET openapi.json: this API's OpenAPI document."""
        return JSON(doc)

    def route(method: str, path: str, fn: Handler, guarded: bool) -> Route:
        endpoint = handle_errors(fn)
        if guarded:
            endpoint = require_key(api_key, endpoint)
        return Route(path, endpoint, methods=[method], name=f"{method} {path}")

    routes = [route(m, BASE_PATH + p, fn, True) for m, p, fn in management.routes()]
    routes.append(route("GET", BASE_PATH + "/openapi.json", openapi, True))
    routes += [
        route(m, p, fn, not anonymous_starters) for m, p, fn in Starter(management).routes()
    ]
    # The dashboard and /metrics come before user routes, so an app cannot shadow them.
    routes += dashboard_routes(app.sync_client(), api_key)
    routes.append(metrics_route(app.sync_client(), api_key))
    for path, methods, handler, anonymous in user_routes:
        if not path.startswith("/") or path.startswith((BASE_PATH, STARTER_PREFIX)):
            raise ValidationError(
                f"route {path!r} must start with '/' and must not be under {BASE_PATH} "
                f"or {STARTER_PREFIX} (perdure serves those)"
            )
        for method in methods:
            endpoint = user_endpoint(handler, client)
            routes.append(route(method.upper(), path, endpoint, not anonymous))
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
