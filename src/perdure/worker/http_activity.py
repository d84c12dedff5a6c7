"""The built-in activity behind ``context.call_http``: one HTTP request with urllib."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

TIMEOUT_SECONDS = 100.0


def http_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Perform the request; any HTTP status is a result, only transport errors raise."""
    body = request.get("content")
    data = body.encode() if isinstance(body, str) else None
    req = urllib.request.Request(
        request["uri"], data=data, method=request["method"], headers=request.get("headers") or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as response:
            status, headers, raw = response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers.items()), error.read()
    return {
        "status_code": status,
        "headers": headers,
        "content": raw.decode("utf-8", errors="replace") if raw else None,
    }
