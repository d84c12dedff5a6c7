"""In-process wake-ups a store gives after its own commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class Listeners:
    """Callbacks for the commits of this process: any new work (``add_listener``), and
    instances that reached a terminal status (``add_finish_listener``). Other processes'
    commits reach a worker through ``Store.wait_for_change`` instead."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._finish_listeners: list[Callable[[Sequence[str]], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def add_finish_listener(self, callback: Callable[[Sequence[str]], None]) -> None:
        self._finish_listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def _finished(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            for callback in self._finish_listeners:
                callback(instance_ids)
