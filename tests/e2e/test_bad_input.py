"""A table of bad inputs and the clear error each gets, over the client AND over HTTP.

Every refused call changes nothing (no instance appears, no state moves). Payloads up to
``MAX_PAYLOAD_BYTES`` (8 MiB encoded) work end to end; one byte more is refused at the
call that carried it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import perdure
from perdure import EntityId
from perdure import OrchestrationRuntimeStatus as S
from perdure.model.codec import MAX_PAYLOAD_BYTES
from perdure.testing import DurableTestEnvironment
from tests.e2e.http_support import MGMT, InProcess, in_process

# Instance IDs breaking each rule, with the words the error must contain.
BAD_IDS: list[tuple[Any, str]] = [
    ("", "must not be empty"),
    ("x" * 101, "101 characters long; the limit is 100"),
    ("@entity", "must not start with '@'"),
    ("a/b", "must not contain '/'"),
    ("a\\b", "must not contain '\\\\'"),
    ("a#b", "must not contain '#'"),
    ("a?b", "must not contain '?'"),
    ("a\x00b", "control characters (found U+0000)"),
    ("tab\there", "control characters (found U+0009)"),
    ("del\x7f", "control characters (found U+007F)"),
    ("c1\x85", "control characters (found U+0085)"),
    (42, "must be a string, not int"),
]

# A JSON string whose encoding is exactly ``n`` bytes ('"' + 'x' * (n - 2) + '"').
def _string_of_encoded_size(n: int) -> str:
    return "x" * (n - 2)


def make_app() -> perdure.App:
    app = perdure.App()

    @app.activity
    def echo(value: Any) -> Any:
        return value

    @app.activity
    def make_set(_: Any) -> Any:
        return {1, 2}  # not serializable: fails this call only

    @app.activity
    def make_huge(_: Any) -> Any:
        return _string_of_encoded_size(MAX_PAYLOAD_BYTES + 1)

    @app.entity
    def counter(ctx: perdure.EntityContext) -> None:
        ctx.set_state(ctx.get_state(lambda: 0) + (ctx.get_input() or 0))

    @app.orchestrator
    def echo_it(context):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("echo", context.get_input()))

    @app.orchestrator
    def waits(context):  # type: ignore[no-untyped-def]
        return (yield context.wait_for_external_event("go"))

    @app.orchestrator
    def calls(context):  # type: ignore[no-untyped-def]
        kind = context.get_input()
        try:
            if kind == "activity":
                yield context.call_activity("no_such_activity", 1)
            elif kind == "entity":
                yield context.call_entity(EntityId("no_such_entity", "k"), "add", 1)
            elif kind == "sub":
                yield context.call_sub_orchestrator("no_such_orchestrator", 1)
            elif kind == "set":
                yield context.call_activity("make_set", None)
            elif kind == "huge":
                yield context.call_activity("make_huge", None)
            elif kind == "bad_input":
                yield context.call_activity("echo", object())
        except perdure.PerdureError as error:
            return f"{type(error).__name__}: {error}"
        return "no error"

    @app.orchestrator
    def unhandled(context):  # type: ignore[no-untyped-def]
        return (yield context.call_activity("no_such_activity", 1))

    return app


@pytest.fixture
def env() -> Iterator[DurableTestEnvironment]:
    with DurableTestEnvironment(make_app()) as env:
        yield env


def _snapshot(env: DurableTestEnvironment) -> list[tuple[str, str, Any]]:
    return sorted(
        (s.instance_id, s.runtime_status.value, s.output) for s in env.client.get_status_all()
    )


# --- the client ---------------------------------------------------------------------
@pytest.mark.parametrize(("bad_id", "words"), BAD_IDS, ids=[repr(i)[:12] for i, _ in BAD_IDS])
def test_each_instance_id_rule_is_enforced_by_every_client_call(
    env: DurableTestEnvironment, bad_id: Any, words: str
) -> None:
    c = env.client
    calls: list[Callable[[], Any]] = [
        lambda: c.start_new("echo_it", bad_id, 1),
        lambda: c.raise_event(bad_id, "go", 1),
        lambda: c.terminate(bad_id),
        lambda: c.suspend(bad_id),
        lambda: c.resume(bad_id),
        lambda: c.rewind(bad_id),
    ]
    for call in calls:
        with pytest.raises(perdure.ValidationError) as info:
            call()
        assert words in str(info.value)
    assert _snapshot(env) == []


class Unencodable:
    pass


CLIENT_TABLE: list[tuple[str, Callable[[perdure.SyncClient, str], Any], type[Exception], str]] = [
    ("unknown orchestrator", lambda c, i: c.start_new("no_such_orchestrator", "n1"),
     perdure.ValidationError, "'no_such_orchestrator' is not registered"),
    ("set as input", lambda c, i: c.start_new("echo_it", "n2", {1, 2}),
     perdure.SerializationError, "input of orchestration 'echo_it'"),
    ("object as input", lambda c, i: c.start_new("echo_it", "n3", Unencodable()),
     perdure.SerializationError, "Unencodable"),
    ("NaN as input", lambda c, i: c.start_new("echo_it", "n4", float("nan")),
     perdure.SerializationError, "input of orchestration"),
    ("tuple dict key", lambda c, i: c.start_new("echo_it", "n5", {(1, 2): 3}),
     perdure.SerializationError, "dict key"),
    ("oversized input", lambda c, i: c.start_new(
        "echo_it", "n6", _string_of_encoded_size(MAX_PAYLOAD_BYTES + 1)),
     perdure.SerializationError, f"{MAX_PAYLOAD_BYTES:,}"),
    ("event: set data", lambda c, i: c.raise_event(i, "go", {1}),
     perdure.SerializationError, "data of event 'go'"),
    ("event: oversized data", lambda c, i: c.raise_event(
        i, "go", _string_of_encoded_size(MAX_PAYLOAD_BYTES + 1)),
     perdure.SerializationError, "data of event 'go'"),
    ("event: empty name", lambda c, i: c.raise_event(i, "", 1),
     perdure.ValidationError, "event name"),
    ("event on unknown instance", lambda c, i: c.raise_event("nobody", "go", 1),
     perdure.InstanceNotFoundError, "no instance with ID 'nobody'"),
    ("terminate unknown", lambda c, i: c.terminate("nobody"),
     perdure.InstanceNotFoundError, "'nobody'"),
    ("rewind a running instance", lambda c, i: c.rewind(i, "why not"),
     perdure.InstanceStateError, "cannot rewind instance 'waiting': it is Running"),
    ("resume unknown", lambda c, i: c.resume("nobody"),
     perdure.InstanceNotFoundError, "'nobody'"),
    ("restart unknown", lambda c, i: c.restart("nobody"),
     perdure.InstanceNotFoundError, "'nobody'"),
    ("start over a running ID", lambda c, i: c.start_new("waits", i),
     perdure.InstanceAlreadyExistsError, "already exists and is Running"),
    ("signal: set input", lambda c, i: c.signal_entity(EntityId("counter", "k"), "add", {1}),
     perdure.SerializationError, "signal_entity"),
    ("signal: empty operation", lambda c, i: c.signal_entity(EntityId("counter", "k"), ""),
     perdure.ValidationError, "operation name"),
    ("entity name with @", lambda c, i: c.signal_entity(EntityId("a@b", "k"), "add"),
     perdure.ValidationError, "entity name"),
]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [row[1:] for row in CLIENT_TABLE],
    ids=[row[0] for row in CLIENT_TABLE],
)
def test_client_bad_input_table(
    env: DurableTestEnvironment,
    call: Callable[[perdure.SyncClient, str], Any],
    error: type[Exception],
    words: str,
) -> None:
    env.client.start_new("waits", "waiting")
    env.run_until_idle()
    before = _snapshot(env)
    with pytest.raises(error) as info:
        call(env.client, "waiting")
    assert words in str(info.value)
    env.run_until_idle()
    assert _snapshot(env) == before  # nothing changed, the waiting instance still waits
    assert env.client.read_entity_state(EntityId("counter", "k")).entity_exists is False


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("activity", "activity 'no_such_activity' is not registered"),
        ("entity", "entity 'no_such_entity' is not registered"),
        ("sub", "orchestrator 'no_such_orchestrator' is not registered"),
        ("set", "make_set"),
        ("huge", f"{MAX_PAYLOAD_BYTES:,}"),
        ("bad_input", "echo"),
    ],
)
def test_bad_calls_inside_an_orchestration_fail_only_that_call(
    env: DurableTestEnvironment, kind: str, words: str
) -> None:
    status = env.wait_for_completion(env.client.start_new("calls", client_input=kind))
    assert status.runtime_status is S.Completed  # the orchestrator caught the error
    assert status.output.startswith(("TaskFailedError", "SerializationError")), status.output
    assert words in status.output


def test_an_unhandled_unknown_activity_fails_the_instance_naming_it(
    env: DurableTestEnvironment,
) -> None:
    status = env.wait_for_completion(env.client.start_new("unhandled"))
    assert status.runtime_status is S.Failed
    assert "'no_such_activity' is not registered" in json.dumps(status.output)


def test_event_on_a_completed_instance_and_terminating_twice(env: DurableTestEnvironment) -> None:
    c = env.client
    done = env.wait_for_completion(c.start_new("echo_it", "done", 1))
    assert done.output == 1
    with pytest.raises(perdure.InstanceFinishedError, match="it is Completed"):
        c.raise_event("done", "go", 1)
    c.start_new("waits", "stop-me")
    env.run_until_idle()
    c.terminate("stop-me", "first")
    c.terminate("stop-me", "queued before the first one ran")  # still Running: accepted
    env.run_until_idle()
    with pytest.raises(perdure.InstanceFinishedError, match="it is Terminated"):
        c.terminate("stop-me", "again")
    status = c.get_status("stop-me", show_history=True)
    assert status.runtime_status is S.Terminated and status.output == "first"
    assert [e["EventType"] for e in status.history].count("ExecutionTerminated") == 1
    with pytest.raises(perdure.InstanceStateError, match="it is Terminated"):
        c.rewind("stop-me")


def test_payloads_just_under_the_limit_work_end_to_end(env: DurableTestEnvironment) -> None:
    big = _string_of_encoded_size(MAX_PAYLOAD_BYTES)  # exactly at the limit
    instance_id = env.client.start_new("echo_it", client_input=big)
    assert env.wait_for_completion(instance_id).output == big
    waiting = env.client.start_new("waits")
    env.run_until_idle()
    env.client.raise_event(waiting, "go", big)
    assert env.wait_for_completion(waiting).output == big


# --- over HTTP ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("bad-http")) as served:
        yield served


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


HTTP_IDS = [(i, w) for i, w in BAD_IDS if isinstance(i, str) and i and "/" not in i]


@pytest.mark.parametrize(("bad_id", "words"), HTTP_IDS, ids=[repr(i)[:12] for i, _ in HTTP_IDS])
def test_each_instance_id_rule_over_http(s: InProcess, bad_id: str, words: str) -> None:
    before = s.ids()
    quoted = _quote(bad_id)
    for method, path, kwargs in [
        ("POST", f"{MGMT}/orchestrators/hello_cities/{quoted}", {}),
        ("POST", f"/api/orchestrators/hello_cities/{quoted}", {}),
        ("GET", f"{MGMT}/instances/{quoted}", {}),
        ("POST", f"{MGMT}/instances/{quoted}/raiseEvent/go", {"json": 1}),
        ("POST", f"{MGMT}/instances/{quoted}/terminate", {}),
        ("POST", f"{MGMT}/instances/{quoted}/rewind", {}),
        ("DELETE", f"{MGMT}/instances/{quoted}", {}),
    ]:
        response = s.http.request(method, path, **kwargs)
        assert response.status_code == 400, (method, path, response.status_code, response.text)
        assert words in response.json()["error"], (method, path, response.text)
    assert s.ids() == before


def test_a_slash_in_an_instance_id_never_reaches_an_instance(s: InProcess) -> None:
    before = s.ids()
    response = s.http.post(f"{MGMT}/instances/{_quote('a/b')}/terminate")
    assert response.status_code in (400, 404) and "error" in response.json()
    assert s.ids() == before


def test_http_bad_input_table(s: InProcess) -> None:
    waiting = s.http.post(f"{MGMT}/orchestrators/approval/http-waiting").json()["id"]
    s.wait_status(waiting, "Running")
    done = s.http.post(f"{MGMT}/orchestrators/hello_cities/http-done", json=["Oslo"]).json()["id"]
    s.wait_status(done, "Completed")
    headers = {"content-type": "application/json"}
    over = json.dumps(_string_of_encoded_size(MAX_PAYLOAD_BYTES + 1))
    table: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", f"{MGMT}/orchestrators/no_such_orchestrator", {}, 400,
         "no orchestrator named 'no_such_orchestrator'"),
        ("POST", "/api/orchestrators/no_such_orchestrator", {}, 400,
         "no orchestrator named 'no_such_orchestrator'"),
        ("POST", f"{MGMT}/orchestrators/hello_cities/m1",
         {"content": b"{not json", "headers": headers}, 400, "not valid JSON"),
        ("POST", f"{MGMT}/orchestrators/hello_cities/m2",
         {"content": b"[NaN]", "headers": headers}, 400, "not valid JSON"),
        ("POST", f"{MGMT}/orchestrators/hello_cities/m3",
         {"content": b"\xff\xfe", "headers": headers}, 400, "not valid JSON"),
        ("POST", f"{MGMT}/orchestrators/hello_cities/m4",
         {"content": over.encode(), "headers": headers}, 400, f"{MAX_PAYLOAD_BYTES:,}"),
        ("POST", f"{MGMT}/instances/{waiting}/raiseEvent/Approval",
         {"content": b"{oops", "headers": headers}, 400, "not valid JSON"),
        ("POST", f"{MGMT}/instances/{waiting}/raiseEvent/Approval",
         {"content": over.encode(), "headers": headers}, 400, f"{MAX_PAYLOAD_BYTES:,}"),
        ("POST", f"{MGMT}/instances/{waiting}/raiseEvent/Approval",
         {"content": b"true"}, 400, "Content-Type must be application/json"),
        ("POST", f"{MGMT}/instances/nobody/raiseEvent/Approval", {"json": True}, 404,
         "no instance with ID 'nobody'"),
        ("POST", f"{MGMT}/instances/{done}/raiseEvent/Approval", {"json": True}, 410,
         "it is Completed"),
        ("POST", f"{MGMT}/instances/{waiting}/rewind", {}, 409,
         "cannot rewind instance 'http-waiting': it is Running"),
        ("POST", f"{MGMT}/instances/nobody/terminate", {}, 404, "'nobody'"),
        ("POST", f"{MGMT}/orchestrators/approval/http-waiting", {}, 409,
         "already exists and is Running"),
        ("POST", f"{MGMT}/entities/a@b/k?op=add", {"json": 1}, 400, "entity name"),
    ]
    before = s.ids()
    for method, path, kwargs, code, words in table:
        response = s.http.request(method, path, **kwargs)
        assert response.status_code == code, (path, response.status_code, response.text[:300])
        assert words in response.json()["error"], (path, response.text[:300])
    assert s.ids() == before
    assert s.wait_status(waiting, "Running")["runtimeStatus"] == "Running"


def test_terminating_twice_over_http(s: InProcess) -> None:
    iid = s.http.post(f"{MGMT}/orchestrators/approval/http-term").json()["id"]
    s.wait_status(iid, "Running")
    assert s.http.post(f"{MGMT}/instances/{iid}/terminate?reason=first").status_code == 202
    s.wait_status(iid, "Terminated")
    again = s.http.post(f"{MGMT}/instances/{iid}/terminate?reason=again")
    assert again.status_code == 410 and "it is Terminated" in again.json()["error"]
    assert s.http.get(f"{MGMT}/instances/{iid}").json()["output"] == "first"


def test_a_payload_just_under_the_limit_works_over_http(s: InProcess) -> None:
    # approval returns {"approved": data}: leave room for that wrapper in its output.
    big = _string_of_encoded_size(MAX_PAYLOAD_BYTES - 64)
    iid = s.http.post(f"{MGMT}/orchestrators/approval/http-big").json()["id"]
    s.wait_status(iid, "Running")
    raised = s.http.post(f"{MGMT}/instances/{iid}/raiseEvent/Approval", json=big)
    assert raised.status_code == 202, raised.text[:300]
    body = s.wait_status(iid, "Completed")
    assert body["output"] == {"approved": big}
