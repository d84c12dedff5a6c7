"""Runtime statuses and the public status object returned by ``get_status``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class OrchestrationRuntimeStatus(str, enum.Enum):  # noqa: UP042 - keep str() == value
    """The lifecycle states of an orchestration instance (Durable Functions names)."""

    Pending = "Pending"
    Running = "Running"
    Completed = "Completed"
    ContinuedAsNew = "ContinuedAsNew"
    Failed = "Failed"
    Terminated = "Terminated"
    Suspended = "Suspended"
    Canceled = "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Failed,
        OrchestrationRuntimeStatus.Terminated,
        OrchestrationRuntimeStatus.Canceled,
    }
)
ACTIVE_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Pending,
        OrchestrationRuntimeStatus.Running,
        OrchestrationRuntimeStatus.ContinuedAsNew,
        OrchestrationRuntimeStatus.Suspended,
    }
)


def parse_status(value: str | OrchestrationRuntimeStatus) -> OrchestrationRuntimeStatus:
    """Parse a status name case-insensitively; raise ValidationError naming valid ones."""
    from perdure.errors import ValidationError

    if isinstance(value, OrchestrationRuntimeStatus):
        return value
    for status in OrchestrationRuntimeStatus:
        if status.value.lower() == str(value).strip().lower():
            return status
    names = ", ".join(s.value for s in OrchestrationRuntimeStatus)
    raise ValidationError(f"unknown runtime status {value!r}; expected one of {names}")


@dataclass
class DurableOrchestrationStatus:
    """The state of one orchestration instance, as ``client.get_status`` returns it.

    Field names follow the azure-functions-durable SDK (``input_``, ``runtime_status``).
    ``history`` is a list of readable dicts when requested with ``show_history=True``.
    """

    name: str
    instance_id: str
    created_time: datetime
    last_updated_time: datetime
    runtime_status: OrchestrationRuntimeStatus
    input_: Any = None
    output: Any = None
    custom_status: Any = None
    history: list[dict[str, Any]] | None = None
    execution_id: str | None = None
    parent_instance_id: str | None = None
    completed_time: datetime | None = None
    failure_details: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The Durable Functions HTTP status payload (camelCase keys)."""
        body: dict[str, Any] = {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status.value,
            "input": self.input_,
            "customStatus": self.custom_status,
            "output": self.output,
            "createdTime": _http_time(self.created_time),
            "lastUpdatedTime": _http_time(self.last_updated_time),
        }
        if self.history is not None:
            body["historyEvents"] = self.history
        return body


def _http_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PurgeHistoryResult:
    """How many instances a purge deleted."""

    instances_deleted: int
