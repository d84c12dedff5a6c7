"""The Durable Functions entity routes over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import perdure
from perdure.http.asgi import create_asgi_app
from perdure.testing import DurableTestEnvironment

KEY = "entity-test-key"
BASE = "http://test/runtime/webhooks/durabletask"


def make_app() -> perdure.App:
    app = perdure.App()

    @app.entity
    def counter(ctx: perdure.EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        if ctx.operation_name == "add":
            ctx.set_state(value + int(ctx.get_input()))
        elif ctx.operation_name == "label":
            ctx.set_state({"label": ctx.get_input(), "value": value})

    return app


@pytest.fixture
def env() -> Iterator[DurableTestEnvironment]:
    with DurableTestEnvironment(make_app()) as env:
        yield env


def _app_of(env: DurableTestEnvironment) -> perdure.App:
    app = make_app()
    app._store = env.store  # serve the test environment's store and clock
    app._sync_client = env.client
    return app


def call(
    env: DurableTestEnvironment,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    app = create_asgi_app(_app_of(env), api_key=KEY)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            merged = {"x-functions-key": KEY, **(headers or {})}
            return await client.request(method, BASE + path, headers=merged, **kwargs)

    return asyncio.run(go())


def test_signal_read_list_and_delete_entities_over_http(env: DurableTestEnvironment) -> None:
    assert call(env, "GET", "/entities/counter/a").status_code == 404
    for n in (1, 2, 3):
        r = call(env, "POST", "/entities/counter/a?op=add", json=n)
        assert r.status_code == 202
    env.run_until_idle()
    r = call(env, "GET", "/entities/counter/a")
    assert (r.status_code, r.json()) == (200, 6)
    r = call(
        env,
        "POST",
        "/entities/counter/$?op=label",
        content=b"plain text",
        headers={"content-type": "text/plain"},
    )
    assert r.status_code == 202
    env.run_until_idle()
    assert call(env, "GET", "/entities/counter/$").json() == {"label": "plain text", "value": 0}
    r = call(env, "GET", "/entities?fetchState=true")
    assert r.status_code == 200 and r.headers["x-ms-continuation-token"] == ""
    assert sorted(
        (e["entityId"]["key"], e["state"] if isinstance(e["state"], int) else 0) for e in r.json()
    ) == [("", 0), ("a", 6)]
    first = call(env, "GET", "/entities/counter?top=1")
    assert [e["entityId"]["key"] for e in first.json()] == ["a"]  # oldest first
    token = first.headers["x-ms-continuation-token"]
    second = call(env, "GET", "/entities/counter?top=1", headers={"x-ms-continuation-token": token})
    assert [e["entityId"]["key"] for e in second.json()] == [""]
    assert call(env, "DELETE", "/entities/counter/a").status_code == 202
    env.run_until_idle()
    assert call(env, "GET", "/entities/counter/a").status_code == 404


def test_entity_routes_reject_bad_input_and_need_the_key(env: DurableTestEnvironment) -> None:
    r = call(
        env,
        "POST",
        "/entities/counter/a?op=add",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert call(env, "GET", "/entities/bad@name/a").status_code == 400
    app = create_asgi_app(_app_of(env), api_key=KEY)

    async def anonymous() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return (await client.get(BASE + "/entities/counter/a")).status_code

    assert asyncio.run(anonymous()) == 401
    env.run_until_idle()
    assert env.client.list_entities()[0] == []  # nothing was created
