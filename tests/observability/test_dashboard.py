"""The dashboard in-process: auth by key then cookie, CSRF, escaping, list filters and
paging, the instance page (failure, timeline, parent/child links) and every action."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import perdure
from perdure.http import create_asgi_app
from perdure.model.status import TERMINAL_STATUSES
from tests.e2e.http_support import asgi_client
from tests.observability import dash_app

KEY = "dash-key-0123456789"
HTTPS = "https://testserver"  # cookies are Secure; httpx sends them back only over https


@dataclass
class Served:
    app: perdure.App
    http: httpx.Client  # logged in (cookie)
    anon: httpx.Client

    @property
    def client(self) -> perdure.SyncClient:
        return self.app.sync_client()

    def wait(self, instance_id: str, *want: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.client.get_status(instance_id)
            if status is not None and status.runtime_status.value in want:
                return
            assert time.monotonic() < deadline, f"{instance_id} is {status}"
            time.sleep(0.02)

    def csrf(self, instance_id: str) -> str:
        page = self.http.get(f"/dashboard/instances/{instance_id}").text
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert found, page
        return found.group(1)

    def post(self, instance_id: str, action: str, **form: str) -> httpx.Response:
        form.setdefault("csrf", self.csrf(instance_id))
        return self.http.post(f"/dashboard/instances/{instance_id}/{action}", data=form)


def make_app(tmp_path: Path) -> perdure.App:
    app = perdure.App(store=f"sqlite:///{tmp_path / 'dash.db'}")
    app.registry = dash_app.app.registry
    return app


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Served]:
    app = make_app(tmp_path)
    asgi = create_asgi_app(app, api_key=KEY)
    try:
        with app.running(), asgi_client(asgi) as http, asgi_client(asgi) as anon:
            http.base_url = anon.base_url = httpx.URL(HTTPS)
            login = http.get("/dashboard?code=" + KEY, follow_redirects=True)
            assert login.status_code == 200, login.text
            yield Served(app, http, anon)
    finally:
        app.close()


# --- auth -------------------------------------------------------------------------------
def test_key_in_url_becomes_a_strict_httponly_cookie_and_leaves_the_url(s: Served) -> None:
    first = s.anon.get("/dashboard/?code=" + KEY + "&order=oldest")
    assert first.status_code == 303
    assert first.headers["location"] == "/dashboard/?order=oldest"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    assert "Path=/dashboard" in cookie
    assert KEY not in cookie  # a derived token, useless against the management API
    token = cookie.split(";")[0].split("=", 1)[1]
    mgmt = s.anon.get("/runtime/webhooks/durabletask/instances",
                      headers={"x-functions-key": token})
    assert mgmt.status_code == 401


def test_without_key_or_cookie_every_page_is_refused(s: Served) -> None:
    instance_id = s.client.start_new("approval", client_input={"note": "x"})
    for path in ("/dashboard/", f"/dashboard/instances/{instance_id}"):
        response = s.anon.get(path)
        assert response.status_code == 401
        assert instance_id not in response.text
    assert s.anon.get("/dashboard/?code=wrong").status_code == 401
    refused = s.anon.post(f"/dashboard/instances/{instance_id}/terminate", data={"csrf": "x"})
    assert refused.status_code == 401
    # The header works too (scripts), without any cookie.
    assert s.anon.get("/dashboard/", headers={"x-functions-key": KEY}).status_code == 200


def test_actions_need_the_csrf_token_and_a_same_origin(s: Served) -> None:
    instance_id = s.client.start_new("approval", client_input={})
    s.wait(instance_id, "Running")
    no_token = s.http.post(f"/dashboard/instances/{instance_id}/terminate", data={})
    assert no_token.status_code == 403
    forged = s.post(instance_id, "terminate", csrf="0" * 64)
    assert forged.status_code == 403
    token = s.csrf(instance_id)
    cross = s.http.post(f"/dashboard/instances/{instance_id}/terminate",
                        data={"csrf": token}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    assert s.client.get_status(instance_id).runtime_status.value == "Running"  # type: ignore[union-attr]


def test_pages_send_a_strict_content_security_policy(s: Served) -> None:
    page = s.http.get("/dashboard/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script at all
    assert s.http.get("/dashboard/static/dashboard.js").status_code == 200
    assert s.http.get("/dashboard/static/../app.py").status_code == 404


# --- escaping ---------------------------------------------------------------------------
def test_user_data_with_html_and_script_is_shown_as_text(s: Served) -> None:
    evil = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
    instance_id = s.client.start_new(
        "approval", "evil<b>id", {"note": evil, "who": "<i>bob</i>"}
    )
    s.wait(instance_id, "Running")
    deadline = time.monotonic() + 5
    while s.client.get_status(instance_id).custom_status is None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for path in ("/dashboard/", f"/dashboard/instances/{instance_id}"):
        html = s.http.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "evil<b>id" not in html
        assert "&lt;script&gt;alert(" in html
        assert "evil&lt;b&gt;id" in html
    page = s.http.get(f"/dashboard/instances/{instance_id}").text
    assert "&lt;i&gt;bob&lt;/i&gt;" in page  # the input


# --- list -------------------------------------------------------------------------------
def test_list_filters_sorts_pages_and_counts(s: Served) -> None:
    ids = [s.client.start_new("kid", f"batch-{i:02d}", f"k{i}") for i in range(7)]
    waiting = s.client.start_new("approval", "wait-1", {})
    for i in ids:
        s.wait(i, "Completed")
    s.wait(waiting, "Running")

    def listed(**params: Any) -> list[str]:
        html = s.http.get("/dashboard/", params=params).text
        return re.findall(r'class="iid" href="[^"]+">([^<]+)</a>', html)

    assert listed(prefix="batch-", order="oldest", size="25") == ids
    assert listed(prefix="batch-", order="newest") == ids[::-1]
    assert listed(status="Running") == ["wait-1"]
    assert listed(name="approval") == ["wait-1"]
    assert listed(status=["Running", "Completed"], prefix="wait") == ["wait-1"]
    assert listed(**{"from": "2000-01-01T00:00", "to": "2000-01-02T00:00"}) == []
    assert set(listed(**{"from": "2000-01-01T00:00"})) == {*ids, "wait-1"}

    # Keyset paging: follow "Next page" links; every instance once, in order.
    seen: list[str] = []
    url: str | None = "/dashboard/?prefix=batch-&order=oldest&size=25"
    pages = 0
    while url:
        html = s.http.get(url.replace("&amp;", "&")).text
        seen += re.findall(r'class="iid" href="[^"]+">([^<]+)</a>', html)
        found = re.search(r'rel="next" href="([^"]+)"', html)
        url = found.group(1) if found else None
        pages += 1
    assert seen == ids and pages == 1
    html = s.http.get("/dashboard/").text
    assert re.search(r'data-status="Completed">Completed <b>7</b>', html)
    assert re.search(r'data-status="Running">Running <b>1</b>', html)


def test_paging_across_pages_and_a_bad_token(s: Served) -> None:
    ids = [s.client.start_new("kid", f"p-{i:03d}", "x") for i in range(30)]
    seen: list[str] = []
    url: str | None = "/dashboard/?prefix=p-&order=oldest&size=25"
    while url:
        html = s.http.get(url.replace("&amp;", "&")).text
        seen += re.findall(r'class="iid" href="[^"]+">([^<]+)</a>', html)
        found = re.search(r'rel="next" href="([^"]+)"', html)
        url = found.group(1) if found else None
    assert seen == ids
    # A stale or hand-edited token falls back to the first page instead of an error page.
    html = s.http.get("/dashboard/?prefix=p-&order=oldest&size=25&after=garbage").text
    assert re.findall(r'class="iid" href="[^"]+">([^<]+)</a>', html) == ids[:25]


# --- instance page ----------------------------------------------------------------------
def test_failed_instance_shows_error_and_traceback(s: Served) -> None:
    instance_id = s.client.start_new("doomed")
    s.wait(instance_id, "Failed")
    html = s.http.get(f"/dashboard/instances/{instance_id}").text
    assert 'id="status" class="badge st-Failed"' in html
    assert "ValueError" in html and "the &lt;b&gt;widget&lt;/b&gt; broke" in html
    assert 'class="traceback"' in html and "Traceback (most recent call last)" in html
    assert "/rewind" in html and "/purge" in html and "/terminate" not in html


def test_timeline_and_links_between_parent_and_child(s: Served) -> None:
    parent = s.client.start_new("family", "fam-1")
    s.wait(parent, "Completed")
    html = s.http.get(f"/dashboard/instances/{parent}").text
    svg = html[html.index('<svg id="timeline"'):html.index("</svg>")]
    for kind in ("k-orchestration", "k-activity", "k-timer", "k-suborchestration"):
        assert f'class="row {kind}' in svg, kind
    child = s.client.get_status_all()
    child_id = next(c.instance_id for c in child if c.parent_instance_id == parent)
    assert f'href="/dashboard/instances/{child_id.replace(":", "%3A")}"' in html
    child_html = s.http.get(f"/dashboard/instances/{child_id}").text
    assert 'class="parent" href="/dashboard/instances/fam-1"' in child_html
    # Event waits show up too.
    waiting = s.client.start_new("approval", "tl-wait", {})
    s.wait(waiting, "Running")
    s.client.raise_event(waiting, "Approval", True)
    s.wait(waiting, "Completed")
    assert 'class="row k-event' in s.http.get("/dashboard/instances/tl-wait").text


def test_unknown_instance_is_404(s: Served) -> None:
    assert s.http.get("/dashboard/instances/nope").status_code == 404


# --- actions ----------------------------------------------------------------------------
def test_raise_event_from_the_dashboard(s: Served) -> None:
    instance_id = s.client.start_new("approval", "raise-1", {"who": "ann"})
    s.wait(instance_id, "Running")
    bad = s.post(instance_id, "raise", event="Approval", data="{not json")
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    done = s.post(instance_id, "raise", event="Approval", data='{"by": "boss"}')
    assert done.status_code == 303 and "msg=" in done.headers["location"]
    s.wait(instance_id, "Completed")
    assert s.client.get_status(instance_id).output == {  # type: ignore[union-attr]
        "approved": {"by": "boss"}, "greeting": "hello ann"
    }


def test_suspend_resume_terminate_restart_purge(s: Served) -> None:
    instance_id = s.client.start_new("approval", "life-1", {})
    s.wait(instance_id, "Running")
    assert s.post(instance_id, "suspend").status_code == 303
    s.wait(instance_id, "Suspended")
    assert "/resume" in s.http.get(f"/dashboard/instances/{instance_id}").text
    s.post(instance_id, "resume")
    s.wait(instance_id, "Running")
    s.post(instance_id, "terminate", reason="<done>")
    s.wait(instance_id, "Terminated")
    restarted = s.post(instance_id, "restart")
    new_id = restarted.headers["location"].split("/instances/")[1].split("?")[0]
    assert new_id != instance_id
    s.wait(new_id, "Running")
    purged = s.post(instance_id, "purge")
    assert purged.headers["location"].startswith("/dashboard/?msg=")
    assert s.client.get_status(instance_id) is None
    # Rewind of a failed instance.
    failed = s.client.start_new("doomed", "rew-1")
    s.wait(failed, "Failed")
    s.post(failed, "rewind")
    s.wait(failed, "Failed", "Running")
    # Acting on a finished instance explains itself instead of failing.
    s.post(new_id, "terminate")
    s.wait(new_id, *[st.value for st in TERMINAL_STATUSES])
    again = s.post(new_id, "suspend")
    assert again.status_code == 303 and "error=" in again.headers["location"]
    assert "cannot suspend" in s.http.get(again.headers["location"]).text


# --- metrics ----------------------------------------------------------------------------
def test_metrics_need_the_key(s: Served) -> None:
    assert s.anon.get("/metrics").status_code == 401
    assert s.anon.get("/metrics", headers={"x-functions-key": KEY}).status_code == 200
