"""Request parsing and JSON responses for the HTTP layer.

Every parser raises :class:`BadRequest` with a message naming the parameter, so a bad
request becomes a 400 with ``{"error": ...}`` before anything is changed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from perdure.errors import (
    InstanceAlreadyExistsError,
    InstanceFinishedError,
    InstanceNotFoundError,
    InstanceStateError,
    ValidationError,
)
from perdure.model.status import OrchestrationRuntimeStatus, parse_status

#: Largest request body read, in bytes (payloads are capped lower by the codec anyway).
MAX_BODY_BYTES = 16 * 1024 * 1024

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class BadRequest(ValidationError):
    """A malformed request; the message names the parameter and the problem."""


def _default(value: Any) -> Any:
    # Outputs are decoded by perdure's codec, so they may hold datetimes or dataclasses;
    # HTTP clients get their plain-JSON shape.
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if callable(getattr(value, "to_json", None)):
        return type(value).to_json(value)  # instance method or DF's staticmethod to_json(obj)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JSON(JSONResponse):
    """A JSON response that also renders perdure payload types (datetimes, dataclasses)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, default=_default, separators=(",", ":")
        ).encode("utf-8")


def error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status_code``."""
    return JSON({"error": message}, status_code=status_code, headers=headers)


def error_for(exc: Exception) -> Response:
    """Map a perdure exception to the Durable Functions status code (else re-raise)."""
    if isinstance(exc, InstanceNotFoundError):
        return error(404, str(exc))
    if isinstance(exc, InstanceFinishedError):
        return error(410, str(exc))
    if isinstance(exc, (InstanceAlreadyExistsError, InstanceStateError)):
        # DF surfaces these as 500; a conflict is the caller's problem, not the server's.
        return error(409, str(exc))
    if isinstance(exc, ValidationError):
        return error(400, str(exc))
    raise exc


def query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"query parameter {name!r} must be true or false, got {raw!r}")


def query_seconds(
    request: Request, name: str, default: float | None = None, *, minimum: float = 0.0
) -> float | None:
    """A duration in seconds (DF sends doubles); None when absent and no default."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(
            f"query parameter {name!r} must be a number of seconds, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < minimum:
        raise BadRequest(f"query parameter {name!r} must be a number >= {minimum:g}, got {raw!r}")
    return value


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be between {low} and {high}, got {value}")
    return value


def query_time(request: Request, name: str) -> _dt.datetime | None:
    """An ISO 8601 time; a time without an offset is taken as UTC (as DF does)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = _dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadRequest(
            f"query parameter {name!r} must be an ISO 8601 time such as "
            f"2024-05-01T00:00:00Z, got {raw!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def query_statuses(
    request: Request, name: str = "runtimeStatus"
) -> frozenset[OrchestrationRuntimeStatus] | None:
    """Comma-separated and/or repeated status names (DF accepts both)."""
    values = [
        part.strip()
        for raw in request.query_params.getlist(name)
        for part in raw.split(",")
        if part.strip()
    ]
    if not values:
        return None
    try:
        return frozenset(parse_status(v) for v in values)
    except ValidationError as exc:
        raise BadRequest(f"query parameter {name!r}: {exc}") from None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


async def json_body(request: Request, *, require_json_type: bool = False) -> Any:
    """The request body as JSON (an empty body is ``None``).

    Args:
        require_json_type: demand ``Content-Type: application/json`` (raiseEvent does).
    """
    if require_json_type:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise BadRequest(
                f"Content-Type must be application/json, got {content_type or 'none'!r}"
            )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"request body is larger than {MAX_BODY_BYTES:,} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"request body is larger than {MAX_BODY_BYTES:,} bytes")
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
