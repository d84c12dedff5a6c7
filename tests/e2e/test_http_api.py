"""The HTTP API in-process (httpx over ASGI): the Durable Functions contract, route by
route, plus auth and bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

import perdure
from perdure.errors import ValidationError
from perdure.http import create_asgi_app, resolve_api_key
from tests.e2e.http_support import KEY, MGMT, InProcess, asgi_client, in_process, make_app

CHECK_STATUS_KEYS = {
    "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
    "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri",
}


@pytest.fixture
def s(tmp_path: Path) -> Iterator[InProcess]:
    with in_process(tmp_path) as served:
        yield served


def start(s: InProcess, name: str, body: Any = None, instance_id: str | None = None) -> str:
    path = f"/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    response = s.http.post(path, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


# --- the async HTTP API pattern -----------------------------------------------------------
def test_starter_returns_check_status_payload_then_polling_ends_in_200_with_output(
    s: InProcess,
) -> None:
    response = s.http.post("/api/orchestrators/hello_cities", json=["Tokyo", "Lima"])
    assert response.status_code == 202
    payload = response.json()
    assert set(payload) == CHECK_STATUS_KEYS
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"
    for name in CHECK_STATUS_KEYS - {"id"}:
        assert f"code={KEY}" in payload[name] and "taskHub=default" in payload[name]
    assert "{eventName}" in payload["sendEventPostUri"]
    assert "reason={text}" in payload["terminatePostUri"]

    deadline = time.monotonic() + 10
    while True:  # the client follows the URL it was given, with no key of its own
        poll = s.anon.get(payload["statusQueryGetUri"])
        if poll.status_code == 200:
            break
        assert poll.status_code == 202 and poll.headers["Retry-After"] == "5"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = poll.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Tokyo!", "Hello Lima!"]
    assert body["input"] == ["Tokyo", "Lima"]  # showInput defaults to true over HTTP
    assert body["createdTime"].endswith("Z") and len(body["createdTime"]) == 20


def test_running_instance_answers_202_with_location_and_retry_after_5(s: InProcess) -> None:
    instance_id = start(s, "approval")
    s.wait_status(instance_id, "Running")
    response = s.http.get(f"{MGMT}/instances/{instance_id}?showInput=false")
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Location"] == str(response.url)
    assert response.json()["customStatus"] == "waiting for approval"
    assert response.json()["input"] is None


def test_approval_event_raised_over_http_completes_the_instance(s: InProcess) -> None:
    payload = s.http.post("/api/orchestrators/approval").json()
    s.wait_status(payload["id"], "Running")
    url = payload["sendEventPostUri"].replace("{eventName}", "Approval")
    response = s.anon.post(url, json=True)
    assert response.status_code == 202
    assert s.wait_status(payload["id"], "Completed")["output"] == {"approved": True}
    # A finished instance cannot receive events: 410.
    assert s.anon.post(url, json=True).status_code == 410
    assert s.http.post(f"{MGMT}/instances/nope/raiseEvent/Approval", json=1).status_code == 404


def test_raise_event_demands_json_content_type_and_valid_json(s: InProcess) -> None:
    instance_id = start(s, "approval")
    url = f"{MGMT}/instances/{instance_id}/raiseEvent/Approval"
    wrong_type = s.http.post(url, content=b"true", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400
    assert "application/json" in wrong_type.json()["error"]
    bad_json = s.http.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    nan = s.http.post(url, content=b"NaN", headers={"Content-Type": "application/json"})
    assert nan.status_code == 400
    time.sleep(0.2)
    assert s.wait_status(instance_id, "Running")  # nothing reached it
    ok = s.http.post(url, content=b"false", headers={"Content-Type": "application/json"})
    assert ok.status_code == 202
    assert s.wait_status(instance_id, "Completed")["output"] == {"approved": False}


# --- instance control -------------------------------------------------------------------
def test_terminate_then_410_and_404(s: InProcess) -> None:
    payload = s.http.post("/api/orchestrators/approval").json()
    url = payload["terminatePostUri"].replace("{text}", "no longer needed")
    assert s.anon.post(url).status_code == 202
    body = s.wait_status(payload["id"], "Terminated")
    assert body["output"] == "no longer needed"
    assert s.http.get(payload["statusQueryGetUri"]).status_code == 200
    assert s.anon.post(url).status_code == 410
    assert s.http.post(f"{MGMT}/instances/missing/terminate").status_code == 404


def test_suspend_and_resume(s: InProcess) -> None:
    payload = s.http.post("/api/orchestrators/approval").json()
    s.wait_status(payload["id"], "Running")
    assert s.anon.post(payload["suspendPostUri"].replace("{text}", "pause")).status_code == 202
    s.wait_status(payload["id"], "Suspended")
    assert s.http.get(payload["statusQueryGetUri"]).status_code == 202
    events = payload["sendEventPostUri"].replace("{eventName}", "Approval")
    assert s.anon.post(events, json=True).status_code == 202  # kept while suspended
    assert s.anon.post(payload["resumePostUri"].replace("{text}", "go")).status_code == 202
    assert s.wait_status(payload["id"], "Completed")["output"] == {"approved": True}
    assert s.anon.post(payload["suspendPostUri"]).status_code == 410
    assert s.anon.post(payload["resumePostUri"]).status_code == 410
    assert s.http.post(f"{MGMT}/instances/missing/suspend").status_code == 404
    assert s.http.post(f"{MGMT}/instances/missing/resume").status_code == 404


def test_failed_instance_is_200_or_500_on_request_and_rewind_recovers_it(
    s: InProcess, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    payload = s.http.post("/api/orchestrators/fragile", json=str(flag)).json()
    failed = s.wait_status(payload["id"], "Failed")
    assert "flag" in str(failed["output"])
    status_url = payload["statusQueryGetUri"]
    assert s.anon.get(status_url).status_code == 200
    assert s.anon.get(status_url + "&returnInternalServerErrorOnFailure=true").status_code == 500

    flag.write_text("ok")
    assert s.anon.post(payload["rewindPostUri"].replace("{text}", "fixed")).status_code == 202
    assert s.wait_status(payload["id"], "Completed")["output"] == "recovered"
    assert s.anon.post(payload["rewindPostUri"]).status_code == 410  # Completed: gone
    running = start(s, "approval")
    s.wait_status(running, "Running")
    conflict = s.http.post(f"{MGMT}/instances/{running}/rewind")
    assert conflict.status_code == 409 and "Running" in conflict.json()["error"]
    assert s.http.post(f"{MGMT}/instances/missing/rewind").status_code == 404


def test_restart_with_new_and_same_instance_id(s: InProcess) -> None:
    first = start(s, "hello_cities", ["Rome"], "restart-me")
    s.wait_status(first, "Completed")
    fresh = s.http.post(f"{MGMT}/instances/{first}/restart")
    assert fresh.status_code == 202 and fresh.json()["id"] != first
    assert s.wait_status(fresh.json()["id"], "Completed")["output"] == ["Hello Rome!"]
    same = s.http.post(f"{MGMT}/instances/{first}/restart?restartWithNewInstanceId=false")
    assert same.status_code == 202 and same.json()["id"] == first
    waited = s.http.post(f"{MGMT}/instances/{first}/restart?timeout=5&pollingInterval=0.05")
    assert waited.status_code == 200 and waited.json() == ["Hello Rome!"]
    assert s.http.post(f"{MGMT}/instances/missing/restart").status_code == 400  # as DF


# --- purge ------------------------------------------------------------------------------
def test_purge_one_instance(s: InProcess) -> None:
    instance_id = start(s, "hello_cities")
    s.wait_status(instance_id, "Completed")
    response = s.http.delete(f"{MGMT}/instances/{instance_id}")
    assert response.status_code == 200 and response.json() == {"instancesDeleted": 1}
    assert s.http.get(f"{MGMT}/instances/{instance_id}").status_code == 404
    assert s.http.delete(f"{MGMT}/instances/{instance_id}").status_code == 404


def test_purge_by_filter_requires_created_time_from_and_only_deletes_finished(
    s: InProcess,
) -> None:
    done = [start(s, "hello_cities") for _ in range(3)]
    waiting = start(s, "approval")
    for instance_id in done:
        s.wait_status(instance_id, "Completed")
    missing = s.http.delete(f"{MGMT}/instances")
    assert missing.status_code == 400
    assert missing.json()["error"] == "Please provide value for 'createdTimeFrom'"
    assert len(s.ids()) == 4  # the bad request deleted nothing
    response = s.http.delete(f"{MGMT}/instances?createdTimeFrom=2000-01-01T00:00:00Z")
    assert response.status_code == 200 and response.json() == {"instancesDeleted": 3}
    assert s.ids() == [waiting]
    again = s.http.delete(
        f"{MGMT}/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed"
    )
    assert again.status_code == 404 and again.json()["instancesDeleted"] == 0


# --- list -------------------------------------------------------------------------------
def test_list_filters_and_pages_with_continuation_token(s: InProcess) -> None:
    done = [start(s, "hello_cities", ["X"], f"page-{i}") for i in range(7)]
    running = [start(s, "approval", None, f"wait-{i}") for i in range(2)]
    for instance_id in done:
        s.wait_status(instance_id, "Completed")
    for instance_id in running:
        s.wait_status(instance_id, "Running")

    seen: list[str] = []
    headers: dict[str, str] = {}
    pages = 0
    while True:
        response = s.http.get(f"{MGMT}/instances?instanceIdPrefix=page-&top=3", headers=headers)
        assert response.status_code == 200
        assert "x-ms-continuation-token" in response.headers  # always present
        seen += [row["instanceId"] for row in response.json()]
        pages += 1
        token = response.headers["x-ms-continuation-token"]
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert sorted(seen) == sorted(done) and len(seen) == 7 and pages == 3

    by_status = s.http.get(f"{MGMT}/instances?runtimeStatus=Running,Pending").json()
    assert sorted(r["instanceId"] for r in by_status) == running
    repeated = s.http.get(f"{MGMT}/instances?runtimeStatus=Running&runtimeStatus=Completed")
    assert len(repeated.json()) == 9
    future = s.http.get(f"{MGMT}/instances?createdTimeFrom=2999-01-01T00:00:00Z")
    assert future.json() == [] and future.headers["x-ms-continuation-token"] == ""
    past = s.http.get(f"{MGMT}/instances?createdTimeTo=2000-01-01T00:00:00Z").json()
    assert past == []
    rows = s.http.get(f"{MGMT}/instances?instanceIdPrefix=page-0").json()
    assert rows[0]["input"] == ["X"] and "historyEvents" not in rows[0]
    assert s.http.get(f"{MGMT}/instances?instanceIdPrefix=page-0&showInput=false").json()[0][
        "input"] is None


# --- start and wait ----------------------------------------------------------------------
def test_management_start_with_instance_id_and_timeout_waits_for_output(s: InProcess) -> None:
    url = f"{MGMT}/orchestrators/hello_cities/my-id?timeout=10&pollingInterval=0.05"
    response = s.http.post(url, json=["Oslo"])
    assert response.status_code == 200 and response.json() == ["Hello Oslo!"]
    timed_out = s.http.post(f"{MGMT}/orchestrators/approval?timeout=0.2&pollingInterval=0.05")
    assert timed_out.status_code == 202 and set(timed_out.json()) == CHECK_STATUS_KEYS
    running = timed_out.json()["id"]
    conflict = s.http.post(f"{MGMT}/orchestrators/approval/{running}")
    assert conflict.status_code == 409 and running in conflict.json()["error"]


def test_wait_endpoint_both_ways(s: InProcess) -> None:
    done = s.http.post("/api/orchestrators/hello_cities/wait", json=["Kyiv"])
    assert done.status_code == 200 and done.json() == ["Hello Kyiv!"]
    with_id = s.http.post("/api/orchestrators/hello_cities/given-id/wait?timeout=5")
    assert with_id.status_code == 200
    assert s.http.get(f"{MGMT}/instances/given-id").json()["runtimeStatus"] == "Completed"
    pending = s.http.post("/api/orchestrators/approval/wait?timeout=0.3&retryInterval=0.1")
    assert pending.status_code == 202
    assert set(pending.json()) == CHECK_STATUS_KEYS
    assert pending.headers["Retry-After"] == "10"


def test_wait_endpoint_reports_failure_with_500_and_status(s: InProcess, tmp_path: Path) -> None:
    response = s.http.post(
        "/api/orchestrators/fragile/wait?timeout=10&retryInterval=0.05",
        json=str(tmp_path / "never"),
    )
    assert response.status_code == 500 and response.json()["runtimeStatus"] == "Failed"


def test_status_with_history(s: InProcess) -> None:
    instance_id = start(s, "hello_cities", ["Bern"])
    s.wait_status(instance_id, "Completed")
    plain = s.http.get(f"{MGMT}/instances/{instance_id}").json()
    assert "historyEvents" not in plain
    url = f"{MGMT}/instances/{instance_id}?showHistory=true"
    events = s.http.get(url).json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    completed = next(e for e in events if e["EventType"] == "TaskCompleted")
    assert completed["FunctionName"] == "say_hello" and "Result" not in completed
    with_output = s.http.get(url + "&showHistoryOutput=true").json()["historyEvents"]
    assert next(e for e in with_output if e["EventType"] == "TaskCompleted")["Result"] == (
        "Hello Bern!"
    )


# --- bad input: 400 with a JSON error, nothing created -----------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "words"),
    [
        ("POST", "/api/orchestrators/no_such_thing", {}, "no orchestrator named"),
        ("POST", f"{MGMT}/orchestrators/no_such_thing", {}, "no orchestrator named"),
        ("POST", "/api/orchestrators/hello_cities/@entity", {}, "must not start with '@'"),
        ("POST", "/api/orchestrators/hello_cities/" + "x" * 101, {}, "limit is 100"),
        ("POST", f"{MGMT}/orchestrators/hello_cities/%01", {}, "control characters"),
        ("POST", "/api/orchestrators/hello_cities", {"content": b"[1,"}, "not valid JSON"),
        ("POST", f"{MGMT}/orchestrators/hello_cities", {"content": b"{'a': 1}"}, "not valid JSON"),
        ("POST", "/api/orchestrators/hello_cities/wait?timeout=1&retryInterval=2", {},
         "retryInterval"),
        ("POST", "/api/orchestrators/hello_cities/wait?timeout=soon", {}, "'timeout'"),
        ("POST", f"{MGMT}/orchestrators/hello_cities?timeout=-1", {}, "'timeout'"),
        ("POST", f"{MGMT}/orchestrators/hello_cities?taskHub=other", {}, "task hub"),
        ("GET", f"{MGMT}/instances/@x", {}, "must not start with '@'"),
        ("GET", f"{MGMT}/instances/abc?showHistory=maybe", {}, "'showHistory'"),
        ("GET", f"{MGMT}/instances?top=0", {}, "'top'"),
        ("GET", f"{MGMT}/instances?top=many", {}, "'top'"),
        ("GET", f"{MGMT}/instances?createdTimeFrom=yesterday", {}, "ISO 8601"),
        ("GET", f"{MGMT}/instances?runtimeStatus=Sleeping", {}, "unknown runtime status"),
        ("GET", f"{MGMT}/instances", {"headers": {"x-ms-continuation-token": "garbage"}},
         "continuation token"),
        ("DELETE", f"{MGMT}/instances?createdTimeFrom=2020-13-45", {}, "ISO 8601"),
        ("POST", f"{MGMT}/instances/x/raiseEvent/%20", {"json": 1}, "event name"),
    ],
)
def test_bad_requests_answer_400_naming_the_problem_and_create_nothing(
    s: InProcess, method: str, path: str, kwargs: dict[str, Any], words: str
) -> None:
    response = s.http.request(method, path, **kwargs)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert s.ids() == []


def test_unknown_paths_and_methods_answer_json_errors(s: InProcess) -> None:
    nowhere = s.http.get(f"{MGMT}/nowhere")
    assert nowhere.status_code == 404 and "error" in nowhere.json()
    wrong_method = s.http.get("/api/orchestrators/hello_cities")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert s.ids() == []


# --- auth -------------------------------------------------------------------------------
def _concrete(route: Route) -> str:
    path = route.path_format
    for name in route.param_convertors:
        path = path.replace("{" + name + "}", "hello_cities" if name == "functionName" else "x")
    return path


def test_no_management_or_starter_route_answers_without_the_key(s: InProcess) -> None:
    checked = 0
    for route in s.asgi.routes:
        assert isinstance(route, Route)
        anonymous = route.path == "/health"
        # The dashboard is a browser UI with its own login: without the key it shows the
        # login page (401), redirects to it, or serves static assets; never data.
        dashboard = route.path.startswith("/dashboard")
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            path = _concrete(route)
            attempts: list[dict[str, Any]] = [
                {}, {"params": {"code": "wrong"}}, {"headers": {"x-functions-key": KEY + "x"}},
            ]
            for extra in attempts:
                response = s.anon.request(method, path, **extra)
                if anonymous:
                    assert response.status_code == 200
                elif dashboard:
                    assert response.status_code in (307, 401, 404), (method, path)
                else:
                    assert response.status_code == 401, (method, path, response.status_code)
                    assert "API key" in response.json()["error"]
                checked += 1
    assert checked >= 3 * 20
    assert s.ids() == []  # nothing got through


def test_key_is_accepted_as_code_parameter_or_header(s: InProcess) -> None:
    assert s.anon.get(f"{MGMT}/instances", params={"code": KEY}).status_code == 200
    assert s.anon.get(f"{MGMT}/instances", headers={"x-functions-key": KEY}).status_code == 200


def test_anonymous_starters_open_only_the_starter(tmp_path: Path) -> None:
    with in_process(tmp_path, anonymous_starters=True) as served:
        response = served.anon.post("/api/orchestrators/hello_cities/wait")
        assert response.status_code == 200
        assert served.anon.get(f"{MGMT}/instances").status_code == 401
        assert served.anon.post(f"{MGMT}/orchestrators/hello_cities").status_code == 401


def test_api_key_comes_from_env_else_is_generated_once_and_stored(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        assert resolve_api_key(app.store, {"PERDURE_API_KEY": "from-env"}) == ("from-env", False)
        key, generated = resolve_api_key(app.store, {})
        assert generated and len(key) >= 40
        assert resolve_api_key(app.store, {}) == (key, False)
        assert app.store.get_setting("api_key") == key
    finally:
        app.close()


# --- user routes and OpenAPI -------------------------------------------------------------
def test_user_routes_get_an_http_aware_client(s: InProcess) -> None:
    response = s.http.post("/orders", json={"cities": ["Quito"]})
    assert response.status_code == 202 and set(response.json()) == CHECK_STATUS_KEYS
    assert response.json()["statusQueryGetUri"].startswith("http://testserver/")
    assert s.wait_status(response.json()["id"], "Completed")["output"] == ["Hello Quito!"]
    waited = s.http.post("/orders/wait")
    assert waited.status_code == 200 and waited.json() == ["Hello Oslo!"]
    assert s.anon.post("/orders", json={}).status_code == 401  # function-level auth
    health = s.anon.get("/health")
    assert health.status_code == 200 and health.json()["ok"] is True


def test_route_decorator_rejects_reserved_paths(tmp_path: Path) -> None:
    app = perdure.App(store=f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValidationError, match="must start with '/'"):
        app.route("orders")
    app.route("/runtime/webhooks/durabletask/mine")(lambda request, client: None)
    try:
        with pytest.raises(ValidationError, match="must not be under"):
            create_asgi_app(app, api_key=KEY)
    finally:
        app.close()


def test_openapi_document_covers_every_route(s: InProcess) -> None:
    assert s.anon.get(f"{MGMT}/openapi.json").status_code == 401
    doc = s.http.get(f"{MGMT}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for route in s.asgi.routes:
        assert isinstance(route, Route)
        if route.path.startswith("/dashboard"):
            continue  # HTML pages, not an API
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in doc["paths"][route.path], (method, route.path)
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_sync_http_client_unusable_key_is_rejected(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        with pytest.raises(ValidationError):
            create_asgi_app(app, api_key="")
        with asgi_client(create_asgi_app(app, api_key=KEY)) as http:
            assert http.get(f"{MGMT}/instances", params={"code": ""}).status_code == 401
    finally:
        app.close()
