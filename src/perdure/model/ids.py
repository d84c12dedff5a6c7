"""Instance-ID generation and validation (the Durable Functions rules)."""

from __future__ import annotations

import uuid

from perdure.errors import ValidationError

MAX_INSTANCE_ID_LENGTH = 100
_FORBIDDEN = "/\\#?"


def new_instance_id() -> str:
    """A random GUID in hex ("N") form, like Durable Functions' default."""
    return uuid.uuid4().hex


def validate_instance_id(instance_id: object) -> str:
    """Return ``instance_id`` if it is valid, else raise ValidationError naming the rule broken.

    Rules: a string of 1-100 characters, not starting with ``@`` (reserved for
    entities), containing none of ``/ \\ # ?`` and no control characters.
    """
    if not isinstance(instance_id, str):
        raise ValidationError(
            f"instance ID must be a string, not {type(instance_id).__name__}"
        )
    if not instance_id:
        raise ValidationError("instance ID must not be empty")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise ValidationError(
            f"instance ID is {len(instance_id)} characters long; "
            f"the limit is {MAX_INSTANCE_ID_LENGTH}"
        )
    if instance_id.startswith("@"):
        raise ValidationError(
            f"instance ID {instance_id!r} must not start with '@' (reserved for entities)"
        )
    for ch in instance_id:
        if ch in _FORBIDDEN:
            raise ValidationError(
                f"instance ID {instance_id!r} must not contain {ch!r} "
                "(forbidden characters: / \\ # ?)"
            )
        if ord(ch) < 32 or 127 <= ord(ch) < 160:
            raise ValidationError(
                f"instance ID {instance_id!r} must not contain control characters "
                f"(found U+{ord(ch):04X})"
            )
    return instance_id


def validate_name(kind: str, name: object) -> str:
    """Validate an orchestrator, activity or event name."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{kind} name must be a non-empty string, got {name!r}")
    if len(name) > 256:
        raise ValidationError(f"{kind} name is longer than 256 characters")
    return name
