"""Structured logs: a JSON formatter, secret redaction, and the switch that installs them.

``PERDURE_LOG_FORMAT=json`` (or ``perdure serve --log-format json``) prints one JSON object
per line with the worker's fields (instance_id, execution_id, event_type, duration_ms, ...),
and raises the worker's per-step records from DEBUG to INFO so they are seen.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

ENV = "PERDURE_LOG_FORMAT"
FORMATS = ("text", "json")

# Fields the worker and the replay-safe orchestrator logger put on records (``extra=``).
FIELDS = (
    "instance_id",
    "execution_id",
    "event_type",
    "function_name",
    "status",
    "task_id",
    "attempt",
    "duration_ms",
    "error_type",
)
_CODE = re.compile(r"((?:^|[?&\s\"'])code=)[^&\s\"']+")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_step_level = logging.DEBUG


def step_level() -> int:
    """The level of the worker's per-episode and per-activity records."""
    return _step_level


def set_step_level(level: int) -> None:
    """Log worker steps at ``level`` (DEBUG by default; INFO once JSON logs are on)."""
    global _step_level
    _step_level = level


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the known extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and blanks secrets out of the finished line.

    Redacting the *formatted* text (not the record's msg/args) catches a secret wherever it
    hides: in arguments, in extras, in an exception message or in a traceback.
    """

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = _CODE.sub(r"\1***", self.inner.format(record))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


_HANDLER_MARK = "_perdure_handler"


def configure_logging(
    fmt: str | None = None,
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> logging.Handler:
    """Send log records to ``stream`` (stderr) as text or JSON, with ``secrets`` redacted.

    Args:
        fmt: "text" or "json"; default ``$PERDURE_LOG_FORMAT`` or "text".
        level: the root logger's level.
        secrets: strings that must never appear in a log line (the API key).

    Replaces a handler this function installed before, so calling it twice is harmless.

    >>> configure_logging("json", secrets=[api_key])       # doctest: +SKIP
    """
    chosen = (fmt or os.environ.get(ENV) or "text").strip().lower()
    if chosen not in FORMATS:
        from perdure.errors import ValidationError

        raise ValidationError(f"log format {chosen!r} is not one of {', '.join(FORMATS)}")
    inner: logging.Formatter = JsonFormatter() if chosen == "json" else logging.Formatter(_TEXT)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(inner, secrets))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if chosen == "json":
        set_step_level(logging.INFO)
        # uvicorn installs its own text handlers; route its records through ours instead.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    return handler
