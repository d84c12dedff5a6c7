"""In-process wake-ups a store gives after its own commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import InstanceRecord, Message, NewInstance, OrchestrationWorkItem


class Listeners:
    """Callbacks for the commits of this process: any new work (``add_listener``),
    instances it created (``add_start_listener``), and instances that reached a terminal
    status (``add_finish_listener``). Other processes' commits reach a worker through
    ``Store.wait_for_change`` instead."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._start_listeners: list[Callable[[OrchestrationWorkItem], bool]] = []
        self._finish_listeners: list[Callable[[Sequence[str]], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def add_start_listener(self, callback: Callable[[OrchestrationWorkItem], bool]) -> None:
        self._start_listeners.append(callback)

    def add_finish_listener(self, callback: Callable[[Sequence[str]], None]) -> None:
        self._finish_listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def _started(self, new: NewInstance, message_id: int | None) -> None:
        """After the commit that created ``new`` (its ExecutionStarted is inbox message
        ``message_id``, or None if the instance replaced an older one): offer it, as the
        work item a fetch would return, to the start listeners until one takes it; if
        none does, wake the others as for any new work."""
        if message_id is not None and self._start_listeners:
            item = _fresh_item(new, message_id)
            for callback in self._start_listeners:
                if callback(item):
                    return
        self._changed()

    def _finished(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            for callback in self._finish_listeners:
                callback(instance_ids)


def _fresh_item(new: NewInstance, message_id: int) -> OrchestrationWorkItem:
    """The work item of an instance as its creating commit left it."""
    start, created = new.start, new.created_at
    record = InstanceRecord(
        instance_id=new.instance_id,
        name=start.name,
        execution_id=start.execution_id,
        status=Status.Pending,
        input=start.input,
        output=None,
        failure=None,
        custom_status=None,
        created_at=created,
        updated_at=created,
        completed_at=None,
        parent_instance_id=start.parent_instance_id,
        history_length=0,
    )
    message = Message(new.instance_id, start, start.execution_id, None, message_id)
    return OrchestrationWorkItem(record, [message])
