"""The storage contract: one Protocol, shaped around transactions, and its records.

Every method that changes state runs as ONE transaction. Leases fence workers:
a commit by a worker whose lease expired changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from perdure.errors import ValidationError
from perdure.model.events import ExecutionStarted, FailureDetails, HistoryEvent
from perdure.model.status import TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status

# Messages one fetch hands out per instance. An entity signalled 50,000 times in a burst
# would otherwise apply them all in one episode of over a second, and every instance
# fetched with it (or after it) would wait that long; 1,000 keeps a round near 25 ms.
MESSAGES_PER_FETCH = 1000


def check_message_limit(value: object, name: str = "message_limit") -> None:
    """Reject a per-instance message limit that is not a count a fetch can progress by."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"{name} must be a whole number of at least 1, not {value!r}")


@dataclass
class InstanceRecord:
    """One row of the instances table."""

    instance_id: str
    name: str
    execution_id: str
    status: Status
    input: str | None
    output: str | None
    failure: FailureDetails | None
    custom_status: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    parent_instance_id: str | None
    history_length: int


@dataclass
class Message:
    """An event delivered to an instance's inbox; visible from ``visible_at`` (timers)."""

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None  # target generation; None means the current one
    visible_at: datetime | None = None
    id: int = 0  # assigned by the store


@dataclass
class NewInstance:
    """An instance to create (client start or sub-orchestration) with its first message."""

    start: ExecutionStarted
    instance_id: str
    created_at: datetime

    @property
    def name(self) -> str:
        return self.start.name

    @property
    def execution_id(self) -> str:
        return self.start.execution_id


@dataclass
class ActivityTask:
    """An activity to run for task ``task_id`` of an instance's execution."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class ActivityWorkItem(ActivityTask):
    id: int = 0
    dequeue_count: int = 1


@dataclass
class ActivityResult:
    """The outcome of an activity work item: a TaskCompleted or TaskFailed event."""

    item: ActivityWorkItem
    event: HistoryEvent


@dataclass
class OrchestrationWorkItem:
    """A leased instance and the messages waiting for it, oldest first.

    ``more``: the instance has visible messages beyond these (a fetch hands out at most
    ``message_limit`` per instance); the rest come with a later fetch."""

    instance: InstanceRecord
    messages: list[Message]
    more: bool = False


@dataclass
class SubOrchestrationStart:
    """Create ``child``; if an active instance already has that ID, deliver ``on_conflict``."""

    child: NewInstance
    on_conflict: Message


@dataclass
class Checkpoint:
    """Everything one episode changes, committed atomically and fenced by the lease.

    The fence: the instance row must still be leased by this owner and still be at
    ``execution_id`` / ``history_length``; otherwise nothing of the checkpoint is written.

    ``claim``: the episode ran on a live in-memory runtime without fetching, so the fence
    also accepts an instance nobody holds a lease on (still at that position).
    ``finished_tasks``: activity tasks (row ids) whose results the episode consumed
    straight from this worker, without the inbox; each must still be leased by this
    owner, and is deleted with the checkpoint. A checkpoint whose fence fails is lost as
    a whole, and its results can take the usual path.
    """

    instance_id: str
    execution_id: str
    history_length: int
    consumed: list[int]
    history: list[HistoryEvent]
    status: Status
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    replace_history: bool = False
    new_execution: ExecutionStarted | None = None  # continue-as-new: the next generation's start
    tasks: list[ActivityTask] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    sub_orchestrations: list[SubOrchestrationStart] = field(default_factory=list)
    claim: bool = False
    finished_tasks: list[int] = field(default_factory=list)


@dataclass
class InstanceQuery:
    """Filters and paging for listing instances (all optional).

    Entities (IDs ``@name@key``) are listed only when ``instance_id_prefix`` starts with "@".
    """

    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: frozenset[Status] | None = None
    instance_id_prefix: str | None = None
    name: str | None = None
    page_size: int = 100
    continuation_token: str | None = None
    newest_first: bool = False


@dataclass
class Backlog:
    """Work waiting in the store: what an autoscaler (KEDA, say) scales workers on."""

    orchestration_messages: int  # inbox messages visible now: episodes waiting to run
    timers: int  # inbox messages visible later (durable timers, retry back-offs)
    activity_tasks: int  # activity tasks no worker holds (never leased, or lease expired)
    activities_running: int  # activity tasks a worker holds a live lease on


class Store(Protocol):
    """What every backend provides. Methods are thread-safe."""

    hub: str
    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after this process commits new work (in-process wake-up)."""

    def add_start_listener(self, callback: Callable[[OrchestrationWorkItem], bool]) -> None:
        """Offer each instance that ``create_instance`` in this process created under a
        new ID to ``callback`` after the commit, as the work item a fetch would return
        (unleased; its only message the ExecutionStarted). A callback that returns True
        takes it, and the ``add_listener`` callbacks are not called for that commit."""

    def add_finish_listener(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Call ``callback`` with the IDs of instances that a checkpoint commit of this
        process brought to a terminal status (waiters on those instances look again)."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until another process may have added work; True if so."""

    def maintain(self) -> None:
        """Housekeeping the worker's watch loop calls every few seconds (cheap when there
        is nothing to do)."""

    def close(self) -> None: ...

    # client side ------------------------------------------------------------
    def create_instance(self, new: NewInstance, dedupe: frozenset[Status]) -> None:
        """Create an instance and enqueue its ExecutionStarted, atomically.

        An existing instance whose status is in ``dedupe`` makes this raise
        InstanceAlreadyExistsError; any other existing instance is replaced
        (its history, inbox and tasks deleted) in the same transaction.
        """

    def enqueue_if(self, message: Message, allowed: frozenset[Status]) -> Status | None:
        """Enqueue ``message`` if the target's status is in ``allowed``; return that status.

        Returns None (and enqueues nothing) when the instance does not exist.
        """

    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    def get_instances(
        self, instance_ids: Sequence[str], statuses: frozenset[Status] | None = None
    ) -> list[InstanceRecord]:
        """The rows of those of ``instance_ids`` that exist (and, if given, have one of
        ``statuses``), in no particular order."""

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history, in order."""

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        """One page of instances and the token of the next page (None at the end)."""

    def count_by_status(self) -> dict[Status, int]: ...

    def backlog(self, now: datetime) -> Backlog:
        """Counts of queued work; ``now`` (the worker clock) splits due messages from timers."""

    def purge_instances(
        self,
        instance_ids: list[str] | None = None,
        query: InstanceQuery | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete instances (history, inbox, tasks, row). By filter: terminal ones only.

        Deletes in batches, one transaction each; returns how many were deleted.
        """

    # worker side ------------------------------------------------------------
    def fetch_orchestration_work(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        message_limit: int = MESSAGES_PER_FETCH,
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances that have visible messages, with the oldest
        ``message_limit`` of each one's visible messages (see ``OrchestrationWorkItem.more``)."""

    def complete_and_fetch(
        self,
        owner: str,
        results: list[ActivityResult],
        now: datetime,
        limit: int,
        lease_seconds: float,
        message_limit: int = MESSAGES_PER_FETCH,
    ) -> tuple[int, list[OrchestrationWorkItem]]:
        """``complete_activities`` then ``fetch_orchestration_work``, in one transaction: a
        finished activity's result reaches its orchestration without a commit of its own.
        Returns how many results were accepted and the leased work items."""

    def load_history(self, instance_id: str, execution_id: str) -> list[HistoryEvent]:
        """The history of one execution, in order (for a replay)."""

    def load_histories(
        self, executions: list[tuple[str, str]]
    ) -> dict[str, list[HistoryEvent]]:
        """The histories of several ``(instance_id, execution_id)`` executions, each in
        order, keyed by instance ID, in one read: a round's replays cost one query."""

    def commit_checkpoints(
        self, owner: str, checkpoints: list[Checkpoint], now: datetime
    ) -> list[str]:
        """Commit every checkpoint in one transaction; return IDs whose lease was lost."""

    def commit_and_take_tasks(
        self,
        owner: str,
        checkpoints: list[Checkpoint],
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[str], list[ActivityWorkItem]]:
        """``commit_checkpoints``, also leasing to ``owner``, in the same transaction, up to
        ``limit`` of the activity tasks it adds (in checkpoint order): a worker with free
        activity slots runs them at once instead of fetching them. Returns the lost IDs
        and the leased tasks; the rest are queued as usual. A store may fill the slots
        left with tasks already queued, oldest first (SQLite does), as a fetch would."""

    def release_instances(self, owner: str, instance_ids: list[str]) -> None:
        """Give up leases without changing anything (the work will be fetched again)."""

    def fetch_activity_work(
        self, owner: str, limit: int, lease_seconds: float
    ) -> list[ActivityWorkItem]: ...

    def complete_activities(self, owner: str, results: list[ActivityResult], now: datetime) -> int:
        """Delete each finished task and enqueue its result event, in one transaction.

        A task no longer leased by ``owner`` is skipped (its result discarded);
        returns how many results were accepted.
        """

    def renew_activity_leases(self, owner: str, ids: list[int], lease_seconds: float) -> None: ...

    def lock_owners(self) -> set[str]:
        """Owners currently holding unexpired leases."""

    def release_owner(self, owner: str) -> int:
        """Expire every lease held by ``owner`` (a worker known to be dead)."""

    def next_visible_at(self, after: datetime) -> datetime | None:
        """The earliest future message visibility time (the next timer), if any."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value."""


def finished_ids(checkpoints: list[Checkpoint], lost: list[str]) -> list[str]:
    """IDs of the committed checkpoints that leave their instance terminal."""
    gone = set(lost)
    return [
        cp.instance_id
        for cp in checkpoints
        if cp.status in TERMINAL_STATUSES and cp.new_execution is None
        and cp.instance_id not in gone
    ]
