"""The client handed to HTTP handlers: the async client plus Durable Functions' HTTP helpers
(check-status responses, management payloads, wait-or-check-status)."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

import anyio
from starlette.requests import Request
from starlette.responses import Response

from perdure.client import DurableOrchestrationClient, SyncClient
from perdure.errors import InstanceNotFoundError, ValidationError
from perdure.http.params import JSON
from perdure.model.ids import validate_instance_id
from perdure.model.status import DurableOrchestrationStatus, OrchestrationRuntimeStatus

BASE_PATH = "/runtime/webhooks/durabletask"
START_RETRY_AFTER = "10"  # DF: the first check-status response says 10 s ...
POLL_RETRY_AFTER = "5"  # ... and each status poll that is still running says 5 s.


class DurableHttpClient(DurableOrchestrationClient):
    """The orchestration client of an HTTP handler (DF's ``DurableOrchestrationClient``
    with its HTTP helpers). Every async method of the normal client is available.

    >>> @app.route("/orders", methods=["POST"])                        # doctest: +SKIP
    ... async def kick_off(request, client):
    ...     instance_id = await client.start_new("process_order", None, await request.json())
    ...     return client.create_check_status_response(request, instance_id)
    """

    def __init__(
        self,
        sync: SyncClient,
        *,
        base_url: str,
        api_key: str,
        hub: str,
        stopping: threading.Event | None = None,
    ) -> None:
        super().__init__(sync)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.hub = hub
        self._stopping = stopping or threading.Event()

    def for_request(self, request: Request) -> DurableHttpClient:
        """The same client with URLs rooted at the request's origin (as DF does)."""
        return DurableHttpClient(
            self.sync,
            base_url=str(request.base_url),
            api_key=self._api_key,
            hub=self.hub,
            stopping=self._stopping,
        )

    # URLs ----------------------------------------------------------------------
    def _url(self, instance_id: str, suffix: str = "", placeholder_query: str = "") -> str:
        query = urlencode({"taskHub": self.hub, "code": self._api_key})
        if placeholder_query:
            # DF leaves '{text}' unescaped so a caller can substitute it with str.replace.
            query = f"{placeholder_query}&{query}"
        path = f"{self.base_url}{BASE_PATH}/instances/{quote(instance_id, safe='')}{suffix}"
        return f"{path}?{query}"

    def create_http_management_payload(self, instance_id: str) -> dict[str, str]:
        """The management URLs of an instance, as DF's ``create_http_management_payload``.

        Each URL carries the API key (``code=``); ``sendEventPostUri`` holds the literal
        placeholder ``{eventName}`` and the reason-taking URLs ``reason={text}``.

        >>> client.create_http_management_payload("abc")["statusQueryGetUri"]  # doctest: +SKIP
        'http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc?taskHub=default&code=...'
        """
        validate_instance_id(instance_id)
        reason = "reason={text}"
        return {
            "id": instance_id,
            "statusQueryGetUri": self._url(instance_id),
            "sendEventPostUri": self._url(instance_id, "/raiseEvent/{eventName}"),
            "terminatePostUri": self._url(instance_id, "/terminate", reason),
            "rewindPostUri": self._url(instance_id, "/rewind", reason),
            "purgeHistoryDeleteUri": self._url(instance_id),
            "restartPostUri": self._url(instance_id, "/restart"),
            "suspendPostUri": self._url(instance_id, "/suspend", reason),
            "resumePostUri": self._url(instance_id, "/resume", reason),
        }

    def create_check_status_response(self, request: Request, instance_id: str) -> Response:
        """202 with the management payload, ``Location`` (the status URL) and ``Retry-After: 10``.

        >>> return client.create_check_status_response(request, instance_id)  # doctest: +SKIP
        """
        payload = self.for_request(request).create_http_management_payload(instance_id)
        return JSON(
            payload,
            status_code=202,
            headers={"Location": payload["statusQueryGetUri"], "Retry-After": START_RETRY_AFTER},
        )

    # waiting -------------------------------------------------------------------
    async def wait_for_terminal_status(
        self, instance_id: str, timeout: float, retry_interval: float
    ) -> DurableOrchestrationStatus | None:
        """Poll until the instance is Completed/Failed/Terminated; None if ``timeout`` s passed
        first (or the server is shutting down, so that no request outlives a drain).

        Raises:
            InstanceNotFoundError: no such instance.
        """
        deadline = time.monotonic() + timeout
        # Start fast: most short orchestrations finish within a few hundred milliseconds.
        delay = min(0.02, retry_interval)
        while True:
            status = await self.get_status(instance_id)
            if status is None:
                raise InstanceNotFoundError(instance_id)
            if status.runtime_status.is_terminal:
                return status
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                return None
            await anyio.sleep(min(delay, left))
            delay = min(delay * 2, retry_interval)

    async def wait_for_completion_or_create_check_status_response(
        self,
        request: Request,
        instance_id: str,
        timeout_in_milliseconds: int = 10000,
        retry_interval_in_milliseconds: int = 1000,
        *,
        return_internal_server_error_on_failure: bool = True,
    ) -> Response:
        """Wait for the instance; answer with its output (200) if it completes in time, else
        the 202 check-status response.

        A Failed instance answers 500 with its status (v1 Python SDK behaviour; pass
        ``return_internal_server_error_on_failure=False`` for DF's 200); a Terminated one
        answers 200 with its status.

        Raises:
            ValidationError: a negative timeout, or a retry interval longer than the timeout.
            InstanceNotFoundError: no such instance.

        >>> return await client.wait_for_completion_or_create_check_status_response(
        ...     request, instance_id, timeout_in_milliseconds=5000)            # doctest: +SKIP
        """
        if timeout_in_milliseconds < 0 or retry_interval_in_milliseconds <= 0:
            raise ValidationError(
                "timeout must be >= 0 and retry interval > 0, got "
                f"{timeout_in_milliseconds} ms and {retry_interval_in_milliseconds} ms"
            )
        if retry_interval_in_milliseconds > timeout_in_milliseconds > 0:
            raise ValidationError(
                f"retry interval ({retry_interval_in_milliseconds} ms) must not be longer than "
                f"the timeout ({timeout_in_milliseconds} ms)"
            )
        status = await self.wait_for_terminal_status(
            instance_id, timeout_in_milliseconds / 1000, retry_interval_in_milliseconds / 1000
        )
        if status is None:
            return self.create_check_status_response(request, instance_id)
        return completion_response(status, return_internal_server_error_on_failure)


def completion_response(status: DurableOrchestrationStatus, fail_with_500: bool) -> Response:
    """200 with the output for Completed; the status payload for Failed (500 if asked) and
    Terminated/Canceled."""
    if status.runtime_status is OrchestrationRuntimeStatus.Completed:
        return JSON(status.output, status_code=200)
    failed = status.runtime_status is OrchestrationRuntimeStatus.Failed
    body: Any = status.to_json()
    return JSON(body, status_code=500 if failed and fail_with_500 else 200)
