"""perdure: Durable Functions for Python that runs anywhere.

>>> import perdure
>>> app = perdure.App()
"""

from perdure.app import App
from perdure.client import DurableOrchestrationClient, SyncClient
from perdure.entities.context import EntityContext
from perdure.errors import (
    InstanceAlreadyExistsError,
    InstanceFinishedError,
    InstanceNotFoundError,
    InstanceStateError,
    NonDeterminismError,
    PerdureError,
    SerializationError,
    TaskFailedError,
    TimeoutError,
    ValidationError,
)
from perdure.model.entity_id import EntityId
from perdure.model.events import FailureDetails
from perdure.model.status import (
    DurableOrchestrationStatus,
    OrchestrationRuntimeStatus,
    PurgeHistoryResult,
)
from perdure.orchestration.context import DurableOrchestrationContext
from perdure.orchestration.durable_http import DurableHttpResponse
from perdure.orchestration.retry import RetryOptions
from perdure.orchestration.tasks import CriticalSection, Task, TimerTask
from perdure.worker.activities import ActivityContext, current_activity

__version__ = "0.1.0"

__all__ = [
    "ActivityContext",
    "App",
    "CriticalSection",
    "DurableHttpResponse",
    "DurableOrchestrationClient",
    "DurableOrchestrationContext",
    "DurableOrchestrationStatus",
    "EntityContext",
    "EntityId",
    "FailureDetails",
    "InstanceAlreadyExistsError",
    "InstanceFinishedError",
    "InstanceNotFoundError",
    "InstanceStateError",
    "NonDeterminismError",
    "OrchestrationRuntimeStatus",
    "PerdureError",
    "PurgeHistoryResult",
    "RetryOptions",
    "SerializationError",
    "SyncClient",
    "Task",
    "TaskFailedError",
    "TimeoutError",
    "TimerTask",
    "ValidationError",
    "current_activity",
]
