"""Durable HTTP: a request made by a built-in activity, recorded in the history, that follows
the asynchronous 202 + Location pattern on durable timers until a final response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from perdure.orchestration.tasks import Task, TimerTask

HTTP_ACTIVITY = "BuiltIn::HttpActivity"
DEFAULT_POLL_INTERVAL = timedelta(seconds=30)  # Durable Functions' default when no Retry-After


@dataclass
class DurableHttpResponse:
    """The response of ``context.call_http`` (azure-functions-durable names)."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> DurableHttpResponse:
        return cls(int(data["status_code"]), dict(data.get("headers") or {}), data.get("content"))

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


def retry_after(response: DurableHttpResponse, default: timedelta) -> timedelta:
    value = response.header("Retry-After")
    try:
        return timedelta(seconds=max(0.0, float(value))) if value is not None else default
    except ValueError:
        return default


class HttpPollingTask(Task):
    """Completes with the final DurableHttpResponse, polling while the answer is 202 + Location."""

    __slots__ = ("_current", "_interval", "_location", "_now", "_poll", "_request", "_timer")

    def __init__(
        self,
        request: Callable[[str, str, str | None, dict[str, str] | None], Task],
        timer: Callable[[datetime], TimerTask],
        now: Callable[[], datetime],
        first: Task,
        uri: str,
        poll: bool,
        default_interval: timedelta = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        self._request = request
        self._timer = timer
        self._now = now
        self._poll = poll
        self._interval = default_interval
        self._location: str = uri
        self._current: Task | None = None
        self._begin(first)

    def _begin(self, task: Task) -> None:
        self._current = task
        task._parents.append(self)
        if task.is_completed:
            self._on_child_done(task)

    def _on_child_done(self, child: Task) -> None:
        if child is not self._current or self.is_completed:
            return
        if child.is_faulted:
            assert child.exception is not None
            self._fail(child.exception)
            return
        if isinstance(child, TimerTask):
            self._begin(self._request("GET", self._location, None, None))
            return
        response = DurableHttpResponse.from_json(child._result)
        location = response.header("Location")
        if self._poll and response.status_code == 202 and location:
            self._location = urljoin(self._location, location)  # Location may be relative
            self._begin(self._timer(self._now() + retry_after(response, self._interval)))
            return
        self._complete(response)
