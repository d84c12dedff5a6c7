"""The dashboard in a real browser: Debian's chromium driven headless by Playwright,
against a real ``perdure serve`` (JSON logs on). Clicks list → instance → raise event →
status changes, saves screenshots under test-output/, and checks the log never shows
the API key even though the browser sent it in a URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.http_support import free_port

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "browser-key-5f1c2a9e7d"
EVIL = "<script>window.pwned = 1; alert('pwned')</script>"


class Live:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        env = {**os.environ, "PERDURE_STORE": f"sqlite:///{tmp_path / 'browser.db'}",
               "PERDURE_API_KEY": KEY, "PERDURE_LOG_FORMAT": "json"}
        with open(self.log, "w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "perdure.cli", "serve",
                 "tests.observability.dash_app:app", "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
            )
        self.http = httpx.Client(base_url=self.base, headers={"x-functions-key": KEY})
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                self.http.get("/metrics", timeout=1)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def start(self, name: str, body: object) -> str:
        response = self.http.post(f"/api/orchestrators/{name}", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, instance_id: str) -> dict[str, object]:
        body: dict[str, object] = self.http.get(
            f"/runtime/webhooks/durabletask/instances/{instance_id}"
        ).json()
        return body

    def stop(self) -> str:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=40)
        return self.log.read_text()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    server = Live(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(live: Live) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    SHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def test_list_instance_raise_event_and_status_changes(live: Live, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    dialogs: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    live.start("kid", "warm-up")
    instance_id = live.start("approval", {"note": EVIL, "who": "<b>ann</b>"})
    deadline = time.monotonic() + 10
    while live.status(instance_id).get("customStatus") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    page.goto(f"{live.base}/dashboard?code={KEY}")
    assert KEY not in page.url  # traded for the cookie
    cookie = next(c for c in page.context.cookies() if c["name"] == "perdure_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]
    expect(page.locator("h1")).to_have_text("Instances")
    expect(page.locator("a.iid", has_text=instance_id)).to_be_visible()
    page.screenshot(path=str(SHOTS / "dashboard-list.png"), full_page=True)

    page.click(f"a.iid:has-text('{instance_id}')")
    expect(page.locator("#instance-id")).to_have_text(instance_id)
    expect(page.locator("#status")).to_have_text("Running")
    # The script in the input and custom status is text on the page, and never ran.
    expect(page.locator("#custom-status")).to_contain_text(EVIL)
    expect(page.locator("#input")).to_contain_text("<b>ann</b>")
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=str(SHOTS / "dashboard-instance-running.png"), full_page=True)

    # Dismissing the confirmation does nothing.
    page.once("dialog", lambda d: d.dismiss())
    page.remove_listener("dialog", on_dialog)
    page.click("button[value=suspend]")
    assert live.status(instance_id)["runtimeStatus"] == "Running"
    page.on("dialog", on_dialog)

    page.fill("form.raise input[name=event]", "Approval")
    page.fill("form.raise textarea[name=data]", '{"by": "the boss"}')
    page.click("form.raise button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("raised event 'Approval'")
    assert dialogs == ["Raise this event?"]
    deadline = time.monotonic() + 10
    while page.locator("#status").inner_text() != "Completed":
        assert time.monotonic() < deadline, page.locator("#status").inner_text()
        time.sleep(0.1)
        page.reload()
    expect(page.locator("#output")).to_contain_text('"by": "the boss"')
    expect(page.locator("#timeline .k-event")).to_have_count(1)
    expect(page.locator("#timeline .k-activity")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "dashboard-instance-completed.png"), full_page=True)

    # Back on the list the counts have moved.
    page.click("a.brand")
    expect(page.locator("a.count[data-status=Completed] b")).to_have_text("2")
    expect(page.locator("a.count[data-status=Running] b")).to_have_text("0")

    metrics = live.http.get("/metrics").text
    assert 'perdure_instances{hub="default",status="Completed"} 2' in metrics
    assert 'perdure_activities_total{activity="greet"} 2' in metrics

    output = live.stop()
    assert KEY not in output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    episodes = [r for r in records if r.get("event_type") == "episode"]
    assert episodes and all(
        {"instance_id", "execution_id", "duration_ms"} <= set(r) for r in episodes
    )
    assert any(r.get("event_type") == "TaskCompleted" and r["instance_id"] == instance_id
               for r in records)
    # The browser's ?code= request was logged by uvicorn, redacted.
    assert any("code=***" in r["message"] for r in records if r["logger"] == "uvicorn.access")


def test_failed_instance_page_in_the_browser(live: Live, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    parent = live.start("family", None)
    doomed = live.start("doomed", None)
    deadline = time.monotonic() + 10
    while live.status(doomed)["runtimeStatus"] != "Failed" or \
            live.status(parent)["runtimeStatus"] != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page.goto(f"{live.base}/dashboard/instances/{doomed}?code={KEY}")
    expect(page.locator("#status")).to_have_text("Failed")
    expect(page.locator(".failure")).to_contain_text("ValueError: the <b>widget</b> broke")
    expect(page.locator("pre.traceback")).to_contain_text("Traceback (most recent call last)")
    page.screenshot(path=str(SHOTS / "dashboard-instance-failed.png"), full_page=True)
    page.goto(f"{live.base}/dashboard/instances/{parent}")
    page.screenshot(path=str(SHOTS / "dashboard-timeline.png"), full_page=True)
    page.click("#timeline .k-suborchestration a")
    expect(page.locator("h1")).to_contain_text("kid")
    page.click("a.parent")
    expect(page.locator("#instance-id")).to_have_text(parent)
