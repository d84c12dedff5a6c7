"""Security: the API key never reaches ``perdure serve``'s output (start-up, access logs,
errors, shutdown; text and JSON logs), and SQL injection attempts in instance IDs, event
names and list filters are inert on both stores.

(That no management route answers without the key is test_http_api.py's
``test_no_management_or_starter_route_answers_without_the_key``.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import perdure
from perdure import OrchestrationRuntimeStatus as S
from perdure.store.base import InstanceQuery
from tests.contract.conftest import postgres_url
from tests.e2e.http_support import MGMT, key_from_output, start_server


# --- the key never appears in logs ---------------------------------------------------
def _exercise(base: str, key: str) -> None:
    """Requests that put the key (or near misses of it) in URLs, headers and bodies."""
    header = {"x-functions-key": key}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"{MGMT}/instances?code={key}", {}),
        ("GET", f"{MGMT}/instances?top=1&code={key}&showInput=true", {}),
        ("GET", f"{MGMT}/instances", {"headers": header}),
        ("GET", f"{MGMT}/instances?code={key}x", {}),  # a wrong key that contains the key
        ("GET", f"{MGMT}/instances?code=x{key}", {}),
        ("POST", f"/api/orchestrators/hello_cities?code={key}", {"json": ["Lima"]}),
        ("POST", f"/api/orchestrators/nope?code={key}", {}),  # 400
        ("GET", f"{MGMT}/instances/missing?code={key}", {}),  # 404
        ("GET", f"{MGMT}/nowhere?code={key}", {}),  # unknown route
        ("GET", f"/dashboard?code={key}", {"follow_redirects": False}),
        ("GET", f"/metrics?code={key}", {}),
        ("GET", f"{MGMT}/openapi.json?code={key}", {}),
    ]
    for method, path, kwargs in calls:
        response = httpx.request(method, base + path, timeout=10, **kwargs)
        assert response.status_code < 500, (path, response.status_code)
        assert key not in response.text or path.endswith("hello_cities?code=" + key), path


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_key_never_appears_in_serve_output(tmp_path: Path, log_format: str) -> None:
    # First start: the key is generated and printed once, deliberately (nobody knows it yet).
    first = start_server(tmp_path, "--log-level", "debug", "--log-format", log_format,
                         name="first")
    try:
        key = key_from_output(first.output())
        _exercise(first.base, key)
    finally:
        assert first.stop() == 0
    assert first.output().count(key) == 1, "printed once on generation, never logged"
    assert "GET /runtime/webhooks/durabletask/instances" in first.output()  # access logs on

    # Later starts with the stored key, and a key from the environment: never printed.
    second = start_server(tmp_path, "--log-level", "debug", "--log-format", log_format,
                          name="second")
    try:
        _exercise(second.base, key)
    finally:
        assert second.stop() == 0
    assert key not in second.output()

    env_key = "env-" + uuid.uuid4().hex
    third = start_server(tmp_path, "--log-level", "debug", "--log-format", log_format,
                         env={"PERDURE_API_KEY": env_key}, name="third")
    try:
        _exercise(third.base, env_key)
    finally:
        assert third.stop() == 0
    assert env_key not in third.output() and key not in third.output()


# --- SQL injection --------------------------------------------------------------------
INJECTIONS = [
    "x'; DROP TABLE instances; --",
    "x'); DELETE FROM history; --",
    "x\"; DROP TABLE perdure.instances; --",
    "' OR '1'='1",
    "' OR 1=1 --",
    "%",
    "_",
    "x%' OR instance_id LIKE '%",
    "$1",
    "%s",
    "Robert'); DROP TABLE tasks;--",
    "1; SELECT pg_sleep(5); --",
    "é'||(SELECT 'x')||'",
]


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[perdure.App]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inject.db'}"
    else:
        url = postgres_url()
    app = perdure.App(store=url, hub="inj" + uuid.uuid4().hex[:12])

    @app.activity
    def echo(value: Any) -> Any:
        return value

    @app.orchestrator
    def waits_for(context):  # type: ignore[no-untyped-def]
        data = yield context.wait_for_external_event(context.get_input())
        return (yield context.call_activity("echo", data))

    try:
        with app.running():
            yield app
    finally:
        app.close()


def test_sql_injection_in_ids_event_names_and_filters_is_inert(app: perdure.App) -> None:
    client = app.sync_client()
    bystander = client.start_new("waits_for", "bystander", "ordinary")
    for text in INJECTIONS:
        assert client.start_new("waits_for", text, text) == text  # the ID is the text itself
    for text in INJECTIONS:
        client.raise_event(text, text, {"n": text})  # the event name is the text too
    for text in INJECTIONS:
        status = client.wait_for_completion(text, timeout=30, poll_interval=0.05)
        assert status.runtime_status is S.Completed and status.output == {"n": text}
        assert status.instance_id == text and status.name == "waits_for"

    # Filters: each is matched literally (no wildcard, no quote escape).
    everything = {s.instance_id for s in client.get_status_all()}
    assert everything == set(INJECTIONS) | {bystander}
    for text in INJECTIONS:
        page, _ = app.store.query_instances(InstanceQuery(instance_id_prefix=text))
        assert {r.instance_id for r in page} == {i for i in INJECTIONS if i.startswith(text)}
        page, _ = app.store.query_instances(InstanceQuery(name=text))
        assert page == []
    for bad_token in ["' OR 1=1 --", "eyJ4Ijoi' OR 1=1"]:
        with pytest.raises(perdure.ValidationError, match="continuation token"):
            app.store.query_instances(InstanceQuery(continuation_token=bad_token))
    with pytest.raises(perdure.ValidationError):
        client.get_status_by(runtime_status=["Running' OR '1'='1"])

    # The bystander was untouched and every table still works.
    assert client.get_status(bystander).runtime_status is S.Running
    client.raise_event(bystander, "ordinary", 1)
    assert client.wait_for_completion(bystander, timeout=30, poll_interval=0.05).output == 1
    assert sum(app.store.count_by_status().values()) == len(INJECTIONS) + 1
    assert client.purge_instance_history("' OR '1'='1").instances_deleted == 1
    assert sum(app.store.count_by_status().values()) == len(INJECTIONS)


def test_sql_injection_in_http_filters_is_inert(tmp_path: Path) -> None:
    from tests.e2e.http_support import in_process

    with in_process(tmp_path) as s:
        iid = s.http.post(f"{MGMT}/orchestrators/approval/legit").json()["id"]
        s.wait_status(iid, "Running")
        for text in INJECTIONS:
            listed = s.http.get(f"{MGMT}/instances", params={"instanceIdPrefix": text})
            assert listed.status_code == 200 and listed.json() == [], text
            status = s.http.get(f"{MGMT}/instances", params={"runtimeStatus": text})
            assert status.status_code == 400 and "runtime status" in status.json()["error"]
            event = s.http.post(
                f"{MGMT}/instances/{iid}/raiseEvent/{quote(text, safe='')}",
                json=1,
            )
            assert event.status_code in (202, 400), (text, event.status_code)
        assert s.ids() == ["legit"]
        assert s.http.get(f"{MGMT}/instances/legit").json()["runtimeStatus"] == "Running"
