"""The API key guarding the management routes: where it comes from and how it is checked.

The key never goes to a logger; it is only printed once, by ``perdure serve``, when it is
first generated.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from perdure.http.params import error
from perdure.store.base import Store

SETTING = "api_key"
ENV = "PERDURE_API_KEY"
HEADER = "x-functions-key"

Endpoint = Callable[[Request], Awaitable[Response]]


def resolve_api_key(store: Store, environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """Return ``(key, generated)``: ``$PERDURE_API_KEY``, else the hub's stored key, else a
    new random key stored in the hub (``generated`` is True only in that last case).

    >>> key, generated = resolve_api_key(app.store)   # doctest: +SKIP
    """
    env = os.environ if environ is None else environ
    from_env = env.get(ENV, "").strip()
    if from_env:
        return from_env, False
    existing = store.get_setting(SETTING)
    if existing:
        return existing, False
    candidate = secrets.token_urlsafe(32)
    # Two servers starting at once on one hub must agree on a single key.
    stored = store.set_setting_if_absent(SETTING, candidate)
    return stored, stored == candidate


def key_matches(request: Request, key: str) -> bool:
    """True if the request carries ``key`` as ``?code=`` or the ``x-functions-key`` header."""
    given = request.headers.get(HEADER) or request.query_params.get("code") or ""
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))


def require_key(key: str, endpoint: Endpoint) -> Endpoint:
    """Wrap ``endpoint`` so that it answers 401 unless the request carries ``key``."""

    async def guarded(request: Request) -> Response:
        if not key_matches(request, key):
            return error(
                401,
                "missing or wrong API key: pass it as the 'code' query parameter or the "
                "x-functions-key header",
            )
        return await endpoint(request)

    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    guarded.__doc__ = endpoint.__doc__
    guarded.requires_key = True  # type: ignore[attr-defined]
    return guarded
