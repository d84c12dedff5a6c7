"""Every public exception perdure raises.

PerdureError
├── ValidationError (also ValueError)         bad input: instance IDs, names, options
│   └── SerializationError (also TypeError)   a payload that is not JSON-serializable or too large
├── InstanceNotFoundError (also KeyError)     no instance with that ID in the task hub
├── InstanceStateError                        the instance's status forbids the operation
│   ├── InstanceAlreadyExistsError            start over a Pending/Running/Suspended ID
│   └── InstanceFinishedError                 the instance already reached a terminal status
├── TaskFailedError                           an activity or sub-orchestration failed
├── NonDeterminismError                       orchestrator code diverged from its history
└── TimeoutError (also builtins.TimeoutError) waiting took longer than allowed
"""

from __future__ import annotations

import builtins


class PerdureError(Exception):
    """Root of every perdure exception."""


class ValidationError(PerdureError, ValueError):
    """A bad argument: names the problem; nothing was changed."""


class SerializationError(ValidationError, TypeError):
    """A payload could not be encoded as JSON (or exceeds the payload size limit)."""


class InstanceNotFoundError(PerdureError, KeyError):
    """No orchestration instance with the given ID exists in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id)
        self.instance_id = instance_id

    def __str__(self) -> str:
        return f"no instance with ID {self.instance_id!r} in this task hub"


class InstanceStateError(PerdureError):
    """The instance's current runtime status does not allow the requested operation."""

    def __init__(self, instance_id: str, status: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.status = status


class InstanceAlreadyExistsError(InstanceStateError):
    """An instance with this ID is Pending, Running, ContinuedAsNew or Suspended."""


class InstanceFinishedError(InstanceStateError):
    """The instance is Completed, Failed or Terminated."""


class TaskFailedError(PerdureError):
    """An activity or sub-orchestration failed.

    Attributes:
        name: the activity or orchestrator name.
        error_type: the class name of the original exception.
        error_message: its message.
        stack_trace: the original traceback text, as recorded in the history.
    """

    def __init__(
        self, name: str, error_type: str, error_message: str, stack_trace: str = ""
    ) -> None:
        super().__init__(f"{name!r} failed: {error_type}: {error_message}")
        self.name = name
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace


class NonDeterminismError(PerdureError):
    """Replayed orchestrator code made a different call than its history recorded."""


class TimeoutError(PerdureError, builtins.TimeoutError):
    """An operation did not finish within its time limit."""
