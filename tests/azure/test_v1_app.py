"""The v1-model app (apps/v1app: function.json folders, df.Orchestrator.create /
df.Entity.create, relative imports of shared code, a twilioSms binding that must be stubbed)
served by a real ``perdure serve --functions-app`` and driven over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.azure.support import APPS, KEY, MGMT, functions_server, run_cli, wait_done

pytest.importorskip("azure.durable_functions")


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("v1")
    with functions_server(tmp, "v1app", "--stub-binding", "twilioSms") as client:
        yield client


def start(http: httpx.Client, name: str, instance_id: str, body: str | None = None) -> str:
    response = http.post(f"/api/orchestrators/{name}/{instance_id}", content=body)
    assert response.status_code == 202, response.text
    assert response.json()["id"] == instance_id
    # host.json names the task hub
    assert "taskHub=v1hub" in response.json()["statusQueryGetUri"]
    return str(response.json()["statusQueryGetUri"])


def status(http: httpx.Client, instance_id: str) -> dict[str, Any]:
    # an HTTP function answering through an http Out binding (func.Out[HttpResponse])
    response = http.get(f"/api/status/{instance_id}", params={"code": KEY})
    assert response.status_code in (200, 404), response.text
    body: dict[str, Any] = response.json() or {}
    return body


def test_chaining_with_custom_status(http: httpx.Client) -> None:
    url = start(http, "Chain", "chain-1")
    assert wait_done(http, url)["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert status(http, "chain-1") == {
        "runtimeStatus": "Completed", "customStatus": {"done": 3},
        "output": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
    }


def test_sub_orchestrations_and_fan_out(http: httpx.Client) -> None:
    url = start(http, "Parent", "parent-1")
    assert wait_done(http, url)["output"] == {
        "chain": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], "fan_out": 3}


def _wait_running(http: httpx.Client, instance_id: str) -> None:
    deadline = time.monotonic() + 20
    while status(http, instance_id).get("runtimeStatus") != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_human_interaction_with_a_stubbed_sms_binding(http: httpx.Client) -> None:
    url = start(http, "Approval", "phone-1", '"+15550100"')
    _wait_running(http, "phone-1")
    time.sleep(0.2)  # the stubbed SendSms activity has answered; the wait has begun
    wrong = http.post("/api/status/phone-1", params={"code": KEY, "event":
                      "SmsChallengeResponse"}, json=1)
    assert wrong.status_code == 202
    right = http.post("/api/status/phone-1", params={"code": KEY, "event":
                      "SmsChallengeResponse"}, json=1234)
    assert right.status_code == 202
    assert wait_done(http, url)["output"] is True
    # ... and the orchestration signalled the counter entity (the SDK's entity handler)
    deadline = time.monotonic() + 20
    while True:
        response = http.get(f"{MGMT}/entities/Counter/approvals", params={"code": KEY})
        if response.status_code == 200:
            assert response.json() == 1
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_human_interaction_times_out(http: httpx.Client) -> None:
    url = start(http, "Approval", "phone-2", '"+15550101"')
    assert wait_done(http, url)["output"] is False  # the 2-second timer won


def test_counter_entity_over_the_management_api(http: httpx.Client) -> None:
    entity = f"{MGMT}/entities/Counter/c1"
    for body in ("5", "2"):
        response = http.post(entity, params={"op": "add", "code": KEY}, content=body,
                             headers={"content-type": "application/json"})
        assert response.status_code == 202
    # a failing operation: the SDK reports the error; perdure rolls its state back
    http.post(entity, params={"op": "fail", "code": KEY})
    deadline = time.monotonic() + 20
    while http.get(entity, params={"code": KEY}).json() != 7:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_unstubbed_binding_is_refused_with_a_list(tmp_path: Any) -> None:
    result = run_cli(APPS / "v1app", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "function 'SendSms': out binding 'twilioSms' (parameter 'message')" in result.stderr
    assert "--stub-binding" in result.stderr
