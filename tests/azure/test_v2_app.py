"""The v2-model app (apps/v2app: DFApp, a blueprint, durable client functions) served by a
real ``perdure serve --functions-app`` and driven over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.azure.support import KEY, MGMT, functions_server, wait_done

pytest.importorskip("azure.durable_functions")


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with functions_server(tmp_path_factory.mktemp("v2"), "v2app") as client:
        yield client


def start(http: httpx.Client, name: str, body: str | None = None) -> dict[str, Any]:
    response = http.post(f"/api/orchestrators/{name}", content=body)
    assert response.status_code == 202, response.text
    payload: dict[str, Any] = response.json()
    assert response.headers["location"] == payload["statusQueryGetUri"]
    return payload


def test_starter_returns_the_check_status_response(http: httpx.Client) -> None:
    payload = start(http, "chain", '"Tokyo"')
    assert set(payload) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                            "purgeHistoryDeleteUri", "rewindPostUri"}
    # The SDK put the instance ID and this request's origin into perdure's keyed URLs.
    assert payload["statusQueryGetUri"].startswith(
        f"{http.base_url}{MGMT}/instances/{payload['id']}?")
    assert f"code={KEY}" in payload["statusQueryGetUri"]
    status = wait_done(http, payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    # call_activity(say_hello) with the decorated function, then a blueprint activity by name
    assert status["output"] == ["Hello Tokyo", "HELLO TOKYO"]
    assert status["customStatus"] == {"step": 2}


def test_fan_out_fan_in(http: httpx.Client) -> None:
    cities = [f"city{i}" for i in range(12)]
    payload = start(http, "fan_out", httpx.Request("POST", "/", json=cities).content.decode())
    status = wait_done(http, payload["statusQueryGetUri"])
    assert status["output"] == {"count": 12, "results": [f"Hello {c}" for c in cities]}


def test_sub_orchestrations_and_wait_for_completion(http: httpx.Client) -> None:
    # wait_for_completion_or_create_check_status_response: 200 with the output
    response = http.post("/api/run/parent/parent-1", params={"code": KEY})
    assert response.status_code == 200, response.text
    assert response.json() == ["Hello Tokyo", "HELLO TOKYO", "Hello Lima", "HELLO LIMA"]
    child = http.get("/api/manage/parent-1-child/status").json()
    assert child["runtimeStatus"] == "Completed" and child["input"] == "Lima"


def test_non_generator_orchestrator(http: httpx.Client) -> None:
    response = http.post("/api/run/plain/plain-1", params={"code": KEY}, json={"a": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["input"] == {"a": 1} and body["id"] == "plain-1" and body["utc"] == 0
    assert len(body["guid"]) == 36


def test_function_auth_level_needs_the_key(http: httpx.Client) -> None:
    assert http.post("/api/run/chain").status_code == 401
    assert http.post("/api/run/chain", headers={"x-functions-key": KEY},
                     content='"Oslo"').status_code == 200


def test_human_interaction_approved_by_event(http: httpx.Client) -> None:
    payload = start(http, "approval", "60")
    instance_id = payload["id"]
    deadline = time.monotonic() + 20
    while http.get(f"/api/manage/{instance_id}/status").json()["customStatus"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # raise_event through the SDK client (its doubly encoded body decoded by perdure)
    assert http.post(f"/api/manage/{instance_id}/raise", params={"event": "Approval"},
                     json="alice").status_code == 200
    status = wait_done(http, payload["statusQueryGetUri"])
    assert status["output"] == "approved by alice"
    assert status["customStatus"] == "approved"


def test_human_interaction_escalates_on_the_timer(http: httpx.Client) -> None:
    payload = start(http, "approval", "1")
    status = wait_done(http, payload["statusQueryGetUri"])
    assert status["output"] == "escalated" and status["customStatus"] == "escalated"


def test_counter_entity_and_custom_payload_class(http: httpx.Client) -> None:
    response = http.post("/api/run/counting/count-1", params={"code": KEY}, content='"k1"')
    assert response.status_code == 200, response.text
    # signal 5, call add 2, call get; to_json/from_json class from an activity; retry
    assert response.json() == {"value": 7, "greeting": "count is 7", "retry": 2}
    assert http.get("/api/manage/k1/read").json() == {"exists": True, "state": 7}
    assert http.post("/api/manage/k1/signal", json=3).status_code == 200
    deadline = time.monotonic() + 20
    while http.get("/api/manage/k1/read").json()["state"] != 10:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert http.get("/api/manage/never/read").json() == {"exists": False, "state": None}
    # perdure's public entity route sees the state the SDK wrote
    assert http.get(f"{MGMT}/entities/counter/k1", params={"code": KEY}).json() == 10


def test_sdk_client_status_terminate_list_and_purge(http: httpx.Client) -> None:
    assert http.get("/api/manage/no-such-instance/status").json() is None
    payload = start(http, "approval", "600")
    instance_id = payload["id"]
    assert instance_id in http.get("/api/manage/-/all").json()
    assert http.post(f"/api/manage/{instance_id}/terminate").status_code == 200
    status = wait_done(http, payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Terminated"
    assert http.get(f"/api/manage/{instance_id}/purge").json() == 1
    assert http.get(payload["statusQueryGetUri"]).status_code == 404


def test_sdk_client_suspend_resume_restart_and_filters(http: httpx.Client) -> None:
    instance_id = start(http, "approval", "600")["id"]

    def runtime_status() -> str:
        return str(http.get(f"/api/manage/{instance_id}/status").json()["runtimeStatus"])

    def until(want: str) -> None:
        deadline = time.monotonic() + 20
        while runtime_status() != want:
            assert time.monotonic() < deadline, f"not {want}"
            time.sleep(0.05)

    until("Running")
    http.post(f"/api/manage/{instance_id}/suspend")
    until("Suspended")
    http.post(f"/api/manage/{instance_id}/resume")
    until("Running")
    assert instance_id in http.get("/api/manage/-/running").json()
    http.post(f"/api/manage/{instance_id}/terminate")
    until("Terminated")
    new_id = http.post(f"/api/manage/{instance_id}/restart").json()
    assert isinstance(new_id, str) and new_id != instance_id
    assert http.get(f"/api/manage/{new_id}/status").json()["input"] == 600
    assert http.get("/api/manage/-/purge_terminated").json() >= 1
    assert http.get(f"/api/manage/{instance_id}/status").json() is None
    http.post(f"/api/manage/{new_id}/terminate")


def test_plain_http_function_from_a_blueprint(http: httpx.Client) -> None:
    response = http.get("/api/hello/ana", params={"x": "!"})
    assert response.status_code == 200 and response.text == "hello ana !"
    assert response.headers["content-type"].startswith("text/plain")


def test_the_loopback_listener_is_not_on_the_public_port(http: httpx.Client) -> None:
    # The SDK's RPC routes live on another socket, under a random path; the public port
    # has no keyless /durabletask/ routes.
    assert http.get("/durabletask/instances/").status_code == 404
    assert http.get(f"{MGMT}/instances").status_code == 401
