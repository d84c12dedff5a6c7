"""EntityId: the address of a durable entity, and its instance ID ``@name@key``."""

from __future__ import annotations

from dataclasses import dataclass

from perdure.errors import ValidationError


@dataclass(frozen=True, order=True)
class EntityId:
    """Identifies one entity: a name (the entity function, case-insensitive) and a key.

    >>> EntityId("Counter", "north").instance_id
    '@counter@north'
    """

    name: str
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "@" in self.name:
            raise ValidationError(
                f"entity name must be a non-empty string without '@', got {self.name!r}"
            )
        if not isinstance(self.key, str):
            raise ValidationError(f"entity key must be a string, got {type(self.key).__name__}")
        if any(ord(c) < 32 for c in self.key) or len(self.key) > 100:
            raise ValidationError(
                f"entity key {self.key!r} is invalid (control characters or >100 chars)"
            )
        object.__setattr__(self, "name", self.name.lower())

    @property
    def instance_id(self) -> str:
        return f"@{self.name}@{self.key}"

    @classmethod
    def from_instance_id(cls, instance_id: str) -> EntityId:
        if not instance_id.startswith("@") or instance_id.count("@") < 2:
            raise ValidationError(f"{instance_id!r} is not an entity instance ID (@name@key)")
        name, _, key = instance_id[1:].partition("@")
        return cls(name, key)

    @classmethod
    def coerce(cls, value: object) -> EntityId:
        """Accept an EntityId, the azure-functions-durable SDK's EntityId, or "@name@key"."""
        if isinstance(value, EntityId):
            return value
        if isinstance(value, str):
            return cls.from_instance_id(value)
        name, key = getattr(value, "name", None), getattr(value, "key", None)
        if isinstance(name, str) and isinstance(key, str):
            return cls(name, key)
        raise ValidationError(f"expected an EntityId, got {value!r}")

    def __str__(self) -> str:
        return self.instance_id


def is_entity_instance(instance_id: str) -> bool:
    return instance_id.startswith("@")
