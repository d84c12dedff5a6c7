"""Live orchestrations kept in memory so a new event resumes them instead of replaying.

A hit is valid only while the stored execution and history length match what the
cached runtime has seen; anything else (another worker, eviction, restart) is a
miss and falls back to a full replay, which gives the same result.
"""

from __future__ import annotations

from collections import OrderedDict

from perdure.orchestration.executor import OrchestrationRuntime


class RuntimeCache:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str, OrchestrationRuntime]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(
        self, instance_id: str, execution_id: str, history_length: int
    ) -> OrchestrationRuntime | None:
        entry = self._items.pop(instance_id, None)
        if (
            entry is not None
            and entry[0] == execution_id
            and entry[1].history_length == history_length
        ):
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def holds(self, instance_id: str, execution_id: str, history_length: int) -> bool:
        """Whether :meth:`get` would hit (without counting or reordering anything)."""
        entry = self._items.get(instance_id)
        return (
            entry is not None
            and entry[0] == execution_id
            and entry[1].history_length == history_length
        )

    def live(self, instance_id: str, execution_id: str) -> OrchestrationRuntime | None:
        """The cached runtime of this execution, whatever its history length (a claim's
        fence checks that against the store), without counting or reordering."""
        entry = self._items.get(instance_id)
        return entry[1] if entry is not None and entry[0] == execution_id else None

    def take(self, instance_id: str) -> tuple[str, OrchestrationRuntime]:
        """Remove and return an entry known to be there (see :meth:`live`)."""
        self.hits += 1
        return self._items.pop(instance_id)

    def put(self, instance_id: str, execution_id: str, runtime: OrchestrationRuntime) -> None:
        if self.capacity <= 0 or runtime.is_finished:
            return
        self._items[instance_id] = (execution_id, runtime)
        self._items.move_to_end(instance_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def discard(self, instance_id: str) -> None:
        self._items.pop(instance_id, None)

    def __len__(self) -> int:
        return len(self._items)
