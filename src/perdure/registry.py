"""Name -> function tables for orchestrators and activities, checked at registration."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from perdure.errors import ValidationError
from perdure.model.ids import validate_name


class Registry:
    def __init__(self) -> None:
        self.orchestrators: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, Callable[..., Any]] = {}
        self.entities: dict[str, Callable[..., Any]] = {}

    def add_orchestrator(self, fn: Callable[..., Any], name: str | None = None) -> str:
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise ValidationError(
                f"orchestrator {fn.__name__!r} is 'async def'; orchestrators must be generator "
                "functions that 'yield' tasks (use 'def' with 'yield context.call_activity(...)')"
            )
        return self._add(self.orchestrators, "orchestrator", fn, name)

    def add_activity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        if inspect.isgeneratorfunction(fn):
            raise ValidationError(
                f"activity {fn.__name__!r} is a generator function; activities are plain "
                "(or async) functions that return a JSON-serializable value"
            )
        return self._add(self.activities, "activity", fn, name)

    def add_entity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
            raise ValidationError(
                f"entity {fn.__name__!r} must be a plain function taking an EntityContext"
            )
        key = str(name or getattr(fn, "__name__", "")).lower()
        if "@" in key:
            raise ValidationError(f"entity name {key!r} must not contain '@'")
        return self._add(self.entities, "entity", fn, key)

    def _add(
        self,
        table: dict[str, Callable[..., Any]],
        kind: str,
        fn: Callable[..., Any],
        name: str | None,
    ) -> str:
        if not callable(fn):
            raise ValidationError(f"{kind} must be a function, got {fn!r}")
        key = validate_name(kind, name or getattr(fn, "__name__", ""))
        existing = table.get(key)
        if existing is not None and existing is not fn:
            raise ValidationError(f"{kind} {key!r} is already registered")
        table[key] = fn
        try:
            fn.__perdure_name__ = key  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        return key
