"""EntityContext: what an entity function receives for one operation (DF SDK names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure.model import codec
from perdure.model.entity_id import EntityId


class EntityContext:
    """One operation on one entity.

    >>> @app.entity
    ... def counter(ctx):
    ...     value = ctx.get_state(lambda: 0)
    ...     if ctx.operation_name == "add":
    ...         ctx.set_state(value + ctx.get_input())
    ...     elif ctx.operation_name == "get":
    ...         ctx.set_result(value)
    """

    def __init__(
        self, entity_id: EntityId, operation: str, input_text: str | None, state: Any, exists: bool
    ) -> None:
        self._id = entity_id
        self._operation = operation
        self._input_text = input_text
        self._state = state
        self._exists = exists
        self.is_newly_constructed = not exists
        self._result: Any = None
        self._destruct = False

    @property
    def entity_name(self) -> str:
        return self._id.name

    @property
    def entity_key(self) -> str:
        return self._id.key

    @property
    def entity_id(self) -> EntityId:
        return self._id

    @property
    def operation_name(self) -> str:
        return self._operation

    def get_input(self, expected_type: type | None = None) -> Any:
        value = codec.decode(self._input_text)
        if (
            expected_type is not None
            and isinstance(value, dict)
            and not isinstance(value, expected_type)
        ):
            return expected_type(**value)
        return value

    def get_state(self, initializer: Callable[[], Any] | None = None) -> Any:
        """The entity's state; ``initializer()`` (or None) when it has none yet."""
        if not self._exists:
            return initializer() if initializer is not None else None
        return self._state

    def set_state(self, state: Any) -> None:
        codec.encode(state, f"state of entity {self._id}")  # fail here, at the call, if invalid
        self._state = state
        self._exists = True
        self._destruct = False

    def set_result(self, result: Any) -> None:
        """The value returned to an orchestration that called this operation."""
        codec.encode(result, f"result of entity operation {self._operation!r}")
        self._result = result

    def destruct_on_exit(self) -> None:
        """Delete the entity's state when this operation ends."""
        self._destruct = True
