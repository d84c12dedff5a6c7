"""context.call_http against a loopback HTTP server started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

import perdure
from perdure.testing import DurableTestEnvironment


class Handler(BaseHTTPRequestHandler):
    polls: ClassVar[dict[str, int]] = {}
    received: ClassVar[list[tuple[str, str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.received.append(("GET", self.path, ""))
        if self.path == "/ok":
            self._send(200, {"hello": "world"}, {"X-Test": "yes"})
        elif self.path.startswith("/status/"):
            n = self.polls[self.path] = self.polls.get(self.path, 0) + 1
            if n < 3:
                self._send(202, None, {"Location": self.path, "Retry-After": "5"})
            else:
                self._send(200, {"backup": "done", "polls": n})
        else:
            self._send(404, {"error": "no such path"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.received.append(("POST", self.path, body))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._send(202, {"accepted": True}, {"Location": f"{base}/status/job1"})


@pytest.fixture
def server() -> Iterator[str]:
    Handler.polls, Handler.received = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_app() -> perdure.App:
    app = perdure.App()

    @app.orchestrator
    def fetch(context):
        response = yield context.call_http("GET", context.get_input() + "/ok")
        return [response.status_code, json.loads(response.content), response.header("x-test")]

    @app.orchestrator
    def backup(context):
        start = context.current_utc_datetime
        response = yield context.call_http(
            "POST", context.get_input() + "/backups", content={"site": "a"}
        )
        waited = (context.current_utc_datetime - start).total_seconds()
        return [response.status_code, json.loads(response.content), waited]

    @app.orchestrator
    def no_polling(context):
        response = yield context.call_http(
            "POST", context.get_input() + "/backups", asynchronous_patterns=False
        )
        return response.status_code

    @app.orchestrator
    def not_found(context):
        response = yield context.call_http("GET", context.get_input() + "/missing")
        return response.status_code

    @app.orchestrator
    def bad_uri(context):
        yield context.call_http("GET", "file:///etc/passwd")

    return app


def test_call_http_returns_status_headers_and_content(server: str) -> None:
    with DurableTestEnvironment(make_app()) as env:
        status = env.wait_for_completion(env.client.start_new("fetch", client_input=server))
    assert status.output == [200, {"hello": "world"}, "yes"]


def test_call_http_follows_202_location_polling_on_durable_timers(server: str) -> None:
    with DurableTestEnvironment(make_app()) as env:
        instance_id = env.client.start_new("backup", client_input=server)
        status = env.wait_for_completion(instance_id)
        history = env.client.get_status(instance_id, show_history=True).history
    # 30 s default wait after the POST's 202 (no Retry-After), then two Retry-After: 5
    assert status.output == [200, {"backup": "done", "polls": 3}, 40.0]
    assert Handler.received[0] == ("POST", "/backups", '{"site":"a"}')
    assert [h["EventType"] for h in history].count("TimerFired") == 3


def test_call_http_polling_can_be_disabled_and_errors_are_results(server: str) -> None:
    with DurableTestEnvironment(make_app()) as env:
        assert (
            env.wait_for_completion(env.client.start_new("no_polling", client_input=server)).output
            == 202
        )
        assert (
            env.wait_for_completion(env.client.start_new("not_found", client_input=server)).output
            == 404
        )
        failed = env.wait_for_completion(env.client.start_new("bad_uri"))
    assert failed.runtime_status is perdure.OrchestrationRuntimeStatus.Failed
    assert "http(s) URI" in failed.output


def test_call_http_is_durable_across_replays(server: str) -> None:
    with DurableTestEnvironment(make_app()) as env:
        instance_id = env.client.start_new("backup", client_input=server)
        env.run_until_idle()
        env.worker.orchestrations.cache.discard(instance_id)  # force full replays
        env.advance(timedelta(seconds=30))
        env.worker.orchestrations.cache.discard(instance_id)
        status = env.wait_for_completion(instance_id)
    assert status.output[1] == {"backup": "done", "polls": 3}
    assert sum(1 for r in Handler.received if r[0] == "POST") == 1  # never re-sent on replay
