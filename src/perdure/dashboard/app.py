"""Dashboard routes: thin pages over the client and the store's queries.

Security model:

* Same key as the management API. ``/dashboard?code=KEY`` checks the key once, then sets
  a cookie holding an HMAC *derived* from the key (never the key itself, so the cookie
  cannot be replayed against the management API) and redirects to a URL without the key.
  The cookie is HttpOnly and SameSite=Strict, and Secure wherever the browser honours it.
* Every change is a POST form carrying a CSRF token (also derived from the key) and is
  refused when the Origin header names another site. SameSite=Strict alone already keeps
  the cookie off cross-site requests; the token is the second lock.
* Jinja2 autoescapes everything, including the SVG timeline; a Content-Security-Policy
  forbids inline scripts, so even a missed escape could not run user data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from perdure.client import SyncClient
from perdure.dashboard import timeline
from perdure.errors import PerdureError
from perdure.http.auth import key_matches, require_key
from perdure.model import events as ev
from perdure.model.history_view import history_view
from perdure.model.status import ACTIVE_STATUSES, TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.observability import metrics
from perdure.store.base import InstanceQuery

PREFIX = "/dashboard"
COOKIE = "perdure_dashboard"
_HERE = Path(__file__).parent
_PAGE_SIZES = (25, 50, 100, 200)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

Endpoint = Callable[[Request], Awaitable[Response]]

_env = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _derive(key: str, purpose: str) -> str:
    message = f"perdure-dashboard:{purpose}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _pretty(text: str | None) -> str:
    """Stored JSON text, indented for reading (shown as text, never as markup)."""
    if text is None:
        return "null"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _href(path: str, **params: Any) -> str:
    query = urllib.parse.urlencode(
        [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])
         if v not in (None, "")]
    )
    return f"{PREFIX}{path}" + (f"?{query}" if query else "")


def _instance_href(instance_id: str) -> str:
    return f"{PREFIX}/instances/{urllib.parse.quote(instance_id, safe='')}"


_env.globals.update(
    href=_href, instance_href=_instance_href, when=_when, describe=timeline.describe,
    static=lambda name: f"{PREFIX}/static/{name}",
)


def _parse_time(text: str | None) -> datetime | None:
    """A ``datetime-local`` value (or ISO 8601); a naive time means UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Dashboard:
    """The dashboard's endpoints, bound to a client and the API key."""

    def __init__(self, client: SyncClient, api_key: str) -> None:
        self.client = client
        self.session = _derive(api_key, "session")
        self.csrf = _derive(api_key, "csrf")
        self.api_key = api_key

    # auth -------------------------------------------------------------------------
    def guard(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if "code" in request.query_params:
                if not key_matches(request, self.api_key):
                    return self.page("denied.html", status_code=401)
                # Trade the key in the URL for a cookie, and drop it from the address bar.
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "code"]
                target = request.url.path + ("?" + urllib.parse.urlencode(rest) if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    COOKIE, self.session, httponly=True, samesite="strict", path=PREFIX,
                    secure=_secure_context(request),
                )
                return response
            cookie = request.cookies.get(COOKIE, "")
            if not (hmac.compare_digest(cookie.encode(), self.session.encode())
                    or key_matches(request, self.api_key)):
                return self.page("denied.html", status_code=401)
            if request.method == "POST" and not await self._post_allowed(request):
                return self.page("denied.html", status_code=403, csrf_failed=True)
            return await endpoint(request)

        return guarded

    async def _post_allowed(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin and origin != "null":
            if urllib.parse.urlsplit(origin).netloc != request.headers.get("host", ""):
                return False
        form = await _form(request)
        token = form.get("csrf", "")
        return hmac.compare_digest(token.encode(), self.csrf.encode())

    def page(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = _env.get_template(template).render(csrf=self.csrf, hub=self.client.store.hub,
                                                  **values)
        return HTMLResponse(
            html,
            status_code=status_code,
            headers={"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
        )

    # pages ------------------------------------------------------------------------
    async def instances(self, request: Request) -> Response:
        """The instance list: filters, sort, keyset paging, counts per status."""
        q = request.query_params
        statuses = [s for s in q.getlist("status") if s in Status.__members__]
        try:
            size = int(q.get("size", "50"))
        except ValueError:
            size = 50
        size = size if size in _PAGE_SIZES else 50
        order = "oldest" if q.get("order") == "oldest" else "newest"
        query = InstanceQuery(
            created_from=_parse_time(q.get("from")),
            created_to=_parse_time(q.get("to")),
            statuses=frozenset(Status(s) for s in statuses) or None,
            instance_id_prefix=q.get("prefix") or None,
            name=q.get("name") or None,
            page_size=size,
            newest_first=order == "newest",
        )
        query.continuation_token = q.get("after") or None
        filters = {"status": statuses, "name": q.get("name", ""), "prefix": q.get("prefix", ""),
                   "from": q.get("from", ""), "to": q.get("to", ""), "order": order,
                   "size": str(size)}

        def load() -> tuple[Any, Any, Any]:
            try:
                records, token = self.client.store.query_instances(query)
            except PerdureError:  # a stale or hand-edited paging token
                query.continuation_token = None
                records, token = self.client.store.query_instances(query)
            return records, token, self.client.store.count_by_status()

        records, token, counts = await run_in_threadpool(load)
        return self.page(
            "list.html",
            records=records,
            next_token=token,
            counts=[(s.value, counts.get(s, 0)) for s in Status],
            total=sum(counts.values()),
            filters=filters,
            paged=bool(query.continuation_token),
            page_sizes=_PAGE_SIZES,
            all_statuses=[s.value for s in Status],
            message=q.get("msg"),
            error=q.get("error"),
        )

    async def instance(self, request: Request) -> Response:
        """One instance: status, payloads, failure, timeline, history, children, actions."""
        instance_id = request.path_params["instance_id"]
        store = self.client.store

        def load() -> tuple[Any, list[ev.HistoryEvent]]:
            record = store.get_instance(instance_id)
            history = store.get_history(instance_id) if record is not None else []
            return record, history

        record, history = await run_in_threadpool(load)
        if record is None:
            return self.page("missing.html", status_code=404, instance_id=instance_id)
        rows = history_view(history, show_output=True)
        for row in rows:  # pre-format payload cells so the template only escapes text
            for name in ("Input", "Result"):
                if name in row:
                    row[name] = json.dumps(row[name], ensure_ascii=False, default=str)
        children = [
            (e.instance_id, e.name) for e in history
            if isinstance(e, ev.SubOrchestrationInstanceCreated)
        ]
        now = self.client.clock.now()
        return self.page(
            "instance.html",
            record=record,
            status=record.status.value,
            active=record.status in ACTIVE_STATUSES,
            terminal=record.status in TERMINAL_STATUSES,
            failed=record.status is Status.Failed,
            suspended=record.status is Status.Suspended,
            input=_pretty(record.input),
            output=_pretty(record.output) if record.output is not None else None,
            custom_status=(
                _pretty(record.custom_status) if record.custom_status is not None else None
            ),
            failure=record.failure,
            rows=rows,
            history_length=len(history),
            chart=timeline.build(history, now),
            children=children,
            message=request.query_params.get("msg"),
            error=request.query_params.get("error"),
        )

    # actions ----------------------------------------------------------------------
    async def action(self, request: Request) -> Response:
        """POST instances/{id}/{action}: raise, terminate, suspend, resume, rewind,
        restart, purge; then back to a page with a message."""
        instance_id = request.path_params["instance_id"]
        verb = request.path_params["action"]
        form = await _form(request)
        reason = form.get("reason") or "from the dashboard"
        back = _instance_href(instance_id)
        c = self.client
        try:
            if verb == "raise":
                name = form.get("event", "").strip()
                try:
                    data = json.loads(form.get("data") or "null")
                except ValueError as exc:
                    return _redirect(back, error=f"event data is not valid JSON: {exc}")
                await run_in_threadpool(c.raise_event, instance_id, name, data)
                message = f"raised event {name!r}"
            elif verb in ("terminate", "suspend", "resume", "rewind"):
                await run_in_threadpool(getattr(c, verb), instance_id, reason)
                message = f"{verb} requested"
            elif verb == "restart":
                new_id = await run_in_threadpool(
                    c.restart, instance_id, form.get("same_id") != "on"
                )
                return _redirect(_instance_href(new_id), msg=f"restarted from {instance_id}")
            elif verb == "purge":
                result = await run_in_threadpool(c.purge_instance_history, instance_id)
                return _redirect(
                    PREFIX + "/",
                    msg=f"purged {instance_id} ({result.instances_deleted} instance deleted)",
                )
            else:
                return self.page("missing.html", status_code=404, instance_id=instance_id)
        except (PerdureError, ValueError) as exc:
            return _redirect(back, error=str(exc))
        return _redirect(back, msg=message)

    async def metrics_page(self, request: Request) -> Response:
        text = await run_in_threadpool(
            metrics.render, self.client.store, self.client.clock.now()
        )
        return Response(text, media_type=metrics.CONTENT_TYPE)


def _secure_context(request: Request) -> bool:
    # Browsers drop a Secure cookie set over plain HTTP except on loopback hosts, which
    # they treat as secure; elsewhere plain HTTP already exposes the key on the wire.
    host = (request.url.hostname or "").strip("[]")
    return request.url.scheme == "https" or host in ("localhost", "127.0.0.1", "::1")


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form body (parsed here: no python-multipart dependency)."""
    cached: dict[str, str] | None = request.scope.get("perdure.form")
    if cached is None:
        body = (await request.body()).decode("utf-8", "replace")
        cached = {k: v for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True)}
        request.scope["perdure.form"] = cached
    return cached


def _redirect(path: str, **params: str) -> RedirectResponse:
    query = urllib.parse.urlencode(params)
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def dashboard_routes(client: SyncClient, api_key: str) -> list[Route]:
    """The routes to add to the Starlette app: ``/dashboard`` and its static files.

    >>> routes += dashboard_routes(app.sync_client(), api_key)   # doctest: +SKIP
    """
    board = Dashboard(client, api_key)
    guard = board.guard
    # The package's own few assets, read once; nothing else on disk is reachable.
    assets = {
        p.name: (p.read_bytes(), _TYPES.get(p.suffix, "application/octet-stream"))
        for p in (_HERE / "static").iterdir() if p.is_file()
    }

    async def root(request: Request) -> Response:
        query = "?" + request.url.query if request.url.query else ""
        return RedirectResponse(PREFIX + "/" + query, 307)

    async def static(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(found[0], media_type=found[1],
                        headers={"Cache-Control": "max-age=3600"})

    p = PREFIX
    return [
        Route(p, root, methods=["GET"]),
        Route(p + "/", guard(board.instances), methods=["GET"]),
        Route(p + "/static/{name:str}", static, methods=["GET"]),
        Route(p + "/instances/{instance_id:path}/{action:str}", guard(board.action),
              methods=["POST"]),
        Route(p + "/instances/{instance_id:path}", guard(board.instance), methods=["GET"]),
    ]


_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def metrics_route(client: SyncClient, api_key: str) -> Route:
    """``GET /metrics`` (Prometheus text format), behind the API key."""
    board = Dashboard(client, api_key)
    return Route("/metrics", require_key(api_key, board.metrics_page), methods=["GET"])




