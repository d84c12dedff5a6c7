"""JSON codec for payloads: plain JSON plus dataclasses, datetimes, dates and tuples-as-lists.

Payloads are stored as JSON text so that people and other tools can read them.
Non-JSON types are written as small tagged objects (``{"$datetime": "..."}``);
a user dict that happens to use a tag key is escaped as ``{"$dict": {...}}`` so
every value round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
from typing import Any

from perdure.errors import SerializationError

#: Largest encoded payload (input, output, event data, custom status) accepted, in bytes.
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024

_TAGS = frozenset({"$datetime", "$date", "$dataclass", "$dict", "$object"})
_SCALARS = (str, int, float, bool, type(None))
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_quote = json.encoder.encode_basestring  # what _dumps writes for a str (ensure_ascii=False)
_SMALL_INT = 1 << 62
_CONSTANTS: dict[str, Any] = {"null": None, "true": True, "false": False}


def _prepare(value: Any) -> Any:
    t = type(value)
    if t in _SCALARS:
        return value
    if t is list or t is tuple:
        return [_prepare(v) for v in value]
    if t is dict:
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"dict key {k!r} of type {type(k).__name__} is not allowed")
            out[k if isinstance(k, str) else json.dumps(k)] = _prepare(v)
        if _TAGS.intersection(out):
            return {"$dict": out}
        return out
    if isinstance(value, _dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {
            "$dataclass": f"{cls.__module__}:{cls.__qualname__}",
            "value": {f.name: _prepare(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    to_json = getattr(value, "to_json", None)
    if callable(to_json) and callable(getattr(type(value), "from_json", None)):
        cls = type(value)
        # Called through the class, as the DF SDK does, so both an instance method and the
        # SDK samples' ``@staticmethod def to_json(obj)`` work.
        return {"$object": f"{cls.__module__}:{cls.__qualname__}", "value": cls.to_json(value)}
    if isinstance(value, (list, tuple)):
        return [_prepare(v) for v in value]
    if isinstance(value, dict):
        return _prepare(dict(value))
    if isinstance(value, str):  # str subclasses such as str-valued enums
        return str.__str__(value)
    if isinstance(value, (int, float)):  # bool is a scalar above; IntEnum and friends here
        return int(value) if isinstance(value, int) else float(value)
    raise TypeError(f"Object of type {t.__name__} is not JSON serializable")


def encode(value: Any, what: str = "payload") -> str:
    """Encode ``value`` as JSON text.

    Raises:
        SerializationError: naming ``what`` (e.g. "input of call_activity('pay')")
            when the value cannot be encoded or exceeds MAX_PAYLOAD_BYTES.

    >>> encode({"a": [1, 2]})
    '{"a":[1,2]}'
    """
    t = type(value)
    # The common scalars directly: the JSON encoder builds a fresh C encoder per call,
    # which costs several times what an int or a string needs.
    if t is str:
        text = _quote(value)
    elif t is int and -_SMALL_INT < value < _SMALL_INT:
        return int.__repr__(value)
    elif value is None:
        return "null"
    else:
        try:
            text = _dumps(_prepare(value))
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"{what} is not JSON-serializable: {exc}") from None
    if len(text) > MAX_PAYLOAD_BYTES // 4 and len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise SerializationError(
            f"{what} is {len(text.encode()):,} bytes encoded; the limit is {MAX_PAYLOAD_BYTES:,}"
        )
    return text


def _resolve(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _restore(obj: Any) -> Any:
    t = type(obj)
    if t is list:
        return [_restore(v) for v in obj]
    if t is not dict:
        return obj
    if len(obj) == 1:
        if "$datetime" in obj:
            return _dt.datetime.fromisoformat(obj["$datetime"])
        if "$date" in obj:
            return _dt.date.fromisoformat(obj["$date"])
        if "$dict" in obj:
            return {k: _restore(v) for k, v in obj["$dict"].items()}
    elif len(obj) == 2 and "value" in obj:
        if "$dataclass" in obj:
            fields = {k: _restore(v) for k, v in obj["value"].items()}
            try:
                cls = _resolve(obj["$dataclass"])
                if isinstance(cls, type) and dataclasses.is_dataclass(cls):
                    return cls(**fields)
            except Exception:
                pass
            return fields
        if "$object" in obj:
            try:
                return _resolve(obj["$object"]).from_json(obj["value"])
            except Exception:
                return obj["value"]
    return {k: _restore(v) for k, v in obj.items()}


def decode(text: str | None) -> Any:
    """Decode JSON text written by :func:`encode` (``None`` stays ``None``)."""
    if text is None:
        return None
    # Integers and constants, as encode writes them, without the JSON decoder's set-up.
    if text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
        return int(text)
    constant = _CONSTANTS.get(text, _CONSTANTS)
    if constant is not _CONSTANTS:
        return constant
    # A string with nothing escaped is itself between its quotes (isprintable excludes
    # the control characters JSON forbids unescaped).
    if (
        text[:1] == '"'
        and text.count('"') == 2
        and text[-1] == '"'
        and "\\" not in text
        and text.isprintable()
    ):
        return text[1:-1]
    value = json.loads(text)
    if '"$' not in text:
        return value
    return _restore(value)
