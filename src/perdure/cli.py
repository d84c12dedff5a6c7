"""The ``perdure`` command line: manage instances (through the store or a server), and run
``perdure serve`` / ``perdure worker``.

Exit codes: 0 success; 1 the operation failed (e.g. the instance failed, or is in the wrong
state); 2 usage error or bad input; 3 no such instance. Messages go to stderr.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from perdure.errors import (
    InstanceNotFoundError,
    InstanceStateError,
    PerdureError,
    TimeoutError,
    ValidationError,
)
from perdure.model.status import TERMINAL_STATUSES, parse_status

if TYPE_CHECKING:
    import httpx

    from perdure.app import App

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3
BASE_PATH = "/runtime/webhooks/durabletask"


def _console(stderr: bool) -> Console:
    # Made per use, not at import, so the width follows $COLUMNS and the current streams.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class _Streams:
    @property
    def out(self) -> Console:
        return _console(False)

    @property
    def err(self) -> Console:
        return _console(True)


_io = _Streams()


# --- helpers -----------------------------------------------------------------------
def load_app(spec: str) -> App:
    """Import ``MODULE:attr`` (or ``path/to/file.py:attr``; ``attr`` defaults to ``app``).

    >>> app = load_app("myproject.workflows:app")     # doctest: +SKIP
    """
    from perdure.app import App

    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise ValidationError(f"app {spec!r} must look like MODULE:app")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    elif os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like uvicorn: MODULE is looked up from here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(f"cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ValidationError(f"{module_name}:{attr} is not a perdure.App (got {app!r})")
    return app


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from None


def parse_time(text: str | None, what: str) -> _dt.datetime | None:
    if text is None:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{what} must be an ISO 8601 time such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def parse_statuses(values: tuple[str, ...]) -> list[str] | None:
    names = [p.strip() for v in values for p in v.split(",") if p.strip()]
    try:
        return [parse_status(n).value for n in names] or None
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# --- backends: the store directly, or a server over HTTP ---------------------------------
class Backend(Protocol):
    def start(self, name: str, instance_id: str | None, input_: Any) -> str: ...
    def status(self, instance_id: str, history: bool) -> dict[str, Any]: ...
    def list_instances(
        self, statuses: list[str] | None, created_from: _dt.datetime | None,
        created_to: _dt.datetime | None, prefix: str | None, top: int,
    ) -> list[dict[str, Any]]: ...
    def raise_event(self, instance_id: str, event: str, data: Any) -> None: ...
    def control(self, verb: str, instance_id: str, reason: str | None) -> None: ...
    def restart(self, instance_id: str, new_id: bool) -> str: ...
    def purge(self, instance_id: str) -> int: ...
    def purge_by(
        self, created_from: _dt.datetime | None, created_to: _dt.datetime | None,
        statuses: list[str] | None, progress: Callable[[int], None],
    ) -> int: ...


class StoreBackend:
    """Talks to the store directly (SQLite file or PostgreSQL); no server needed."""

    def __init__(self, store_url: str | None, hub: str | None, app_spec: str | None) -> None:
        from perdure.app import App

        self.app = load_app(app_spec) if app_spec else App(store_url, hub)
        if app_spec and (store_url or hub):
            # Explicit flags win over the app's own store, so one app module can be pointed
            # at another database; the registry still checks orchestrator names.
            registry = self.app.registry
            self.app = App(store_url or self.app._store_spec, hub or self.app.hub)
            self.app.registry = registry
        self.client = self.app.sync_client()

    def start(self, name: str, instance_id: str | None, input_: Any) -> str:
        return self.client.start_new(name, instance_id, input_)

    def status(self, instance_id: str, history: bool) -> dict[str, Any]:
        status = self.client.get_status(instance_id, history, history, True)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        return status.to_json()

    def list_instances(
        self, statuses: list[str] | None, created_from: _dt.datetime | None,
        created_to: _dt.datetime | None, prefix: str | None, top: int,
    ) -> list[dict[str, Any]]:
        from perdure.store.base import InstanceQuery

        query = InstanceQuery(
            created_from, created_to,
            frozenset(parse_status(s) for s in statuses) if statuses else None,
            instance_id_prefix=prefix, page_size=min(top, 1000),
        )
        rows: list[dict[str, Any]] = []
        while len(rows) < top:
            page, token = self.client.list_instances(query)
            rows += [s.to_json() for s in page]
            if token is None:
                break
            query.continuation_token = token
        return rows[:top]

    def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        self.client.raise_event(instance_id, event, data)

    def control(self, verb: str, instance_id: str, reason: str | None) -> None:
        getattr(self.client, verb)(instance_id, reason)

    def restart(self, instance_id: str, new_id: bool) -> str:
        return self.client.restart(instance_id, new_id)

    def purge(self, instance_id: str) -> int:
        return self.client.purge_instance_history(instance_id).instances_deleted

    def purge_by(
        self, created_from: _dt.datetime | None, created_to: _dt.datetime | None,
        statuses: list[str] | None, progress: Callable[[int], None],
    ) -> int:
        result = self.client.purge_instance_history_by(
            created_from, created_to, statuses, progress=progress
        )
        return result.instances_deleted

    def close(self) -> None:
        self.app.close()

    def api_key(self) -> str:
        from perdure.http.auth import resolve_api_key

        return resolve_api_key(self.app.store)[0]


class HttpBackend:
    """Talks to ``perdure serve`` (or any Durable Functions host) over the management API."""

    def __init__(self, url: str, key: str | None) -> None:
        import httpx

        if not key:
            raise ValidationError("--url needs the API key: pass --key or set PERDURE_API_KEY")
        self.http = httpx.Client(
            base_url=url.rstrip("/") + BASE_PATH, headers={"x-functions-key": key}, timeout=60
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PerdureError(f"cannot reach {self.http.base_url}: {exc}") from None
        if response.status_code < 300:
            return response
        try:
            message = str(response.json().get("error") or response.text)
        except ValueError:
            message = response.text or response.reason_phrase
        code = response.status_code
        if code == 404 and "/instances/" in path:
            raise InstanceNotFoundError(path.split("/")[2])
        if code in (409, 410):
            raise InstanceStateError("", str(code), message)
        if code in (400, 401, 403, 404, 415):
            raise ValidationError(f"HTTP {code}: {message}")
        raise PerdureError(f"HTTP {code}: {message}")

    @staticmethod
    def _id(instance_id: str) -> str:
        from urllib.parse import quote

        return quote(instance_id, safe="")

    def start(self, name: str, instance_id: str | None, input_: Any) -> str:
        path = f"/orchestrators/{self._id(name)}"
        if instance_id is not None:
            path += "/" + self._id(instance_id)
        response = self._call("POST", path, json=input_)
        return str(response.json()["id"])

    def status(self, instance_id: str, history: bool) -> dict[str, Any]:
        params = {"showHistory": "true", "showHistoryOutput": "true"} if history else {}
        body: dict[str, Any] = self._call(
            "GET", f"/instances/{self._id(instance_id)}", params=params
        ).json()
        return body

    def list_instances(
        self, statuses: list[str] | None, created_from: _dt.datetime | None,
        created_to: _dt.datetime | None, prefix: str | None, top: int,
    ) -> list[dict[str, Any]]:
        params: dict[str, str] = {"top": str(min(top, 1000))}
        if statuses:
            params["runtimeStatus"] = ",".join(statuses)
        if created_from:
            params["createdTimeFrom"] = created_from.isoformat()
        if created_to:
            params["createdTimeTo"] = created_to.isoformat()
        if prefix:
            params["instanceIdPrefix"] = prefix
        rows: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        while len(rows) < top:
            response = self._call("GET", "/instances", params=params, headers=headers)
            rows += response.json()
            token = response.headers.get("x-ms-continuation-token")
            if not token or token == "null":
                break
            headers = {"x-ms-continuation-token": token}
        return rows[:top]

    def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        self._call("POST", f"/instances/{self._id(instance_id)}/raiseEvent/{self._id(event)}",
                   content=json.dumps(data), headers={"Content-Type": "application/json"})

    def control(self, verb: str, instance_id: str, reason: str | None) -> None:
        params = {"reason": reason} if reason is not None else {}
        self._call("POST", f"/instances/{self._id(instance_id)}/{verb}", params=params)

    def restart(self, instance_id: str, new_id: bool) -> str:
        response = self._call("POST", f"/instances/{self._id(instance_id)}/restart",
                              params={"restartWithNewInstanceId": str(new_id).lower()})
        return str(response.json()["id"])

    def purge(self, instance_id: str) -> int:
        try:
            response = self._call("DELETE", f"/instances/{self._id(instance_id)}")
        except InstanceNotFoundError:
            return 0
        return int(response.json()["instancesDeleted"])

    def purge_by(
        self, created_from: _dt.datetime | None, created_to: _dt.datetime | None,
        statuses: list[str] | None, progress: Callable[[int], None],
    ) -> int:
        params = {"createdTimeFrom": (created_from or _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC))
                  .isoformat()}
        if created_to:
            params["createdTimeTo"] = created_to.isoformat()
        if statuses:
            params["runtimeStatus"] = ",".join(statuses)
        response = self.http.request("DELETE", "/instances", params=params)
        if response.status_code == 404:
            return 0
        if response.status_code != 200:
            self._call("DELETE", "/instances", params=params)  # raises with the message
        deleted = int(response.json()["instancesDeleted"])
        progress(deleted)
        return deleted


# --- the command group ---------------------------------------------------------------
class _Group(click.Group):
    """Turns perdure errors into exit codes and one-line messages on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InstanceNotFoundError as exc:
            _fail(str(exc), EXIT_NOT_FOUND)
        except ValidationError as exc:
            _fail(str(exc), EXIT_USAGE)
        except (InstanceStateError, TimeoutError) as exc:
            _fail(str(exc), EXIT_FAILED)
        except PerdureError as exc:
            _fail(str(exc), EXIT_FAILED)


def _fail(message: str, code: int) -> NoReturn:
    _io.err.print(f"[red]error:[/red] {message}", markup=True)
    sys.exit(code)


@click.group(cls=_Group)
@click.option("--store", envvar="PERDURE_STORE", help="Store URL (sqlite:///x.db, postgresql://...)"
              " [env PERDURE_STORE; default sqlite:///perdure.db]")
@click.option("--hub", envvar="PERDURE_HUB",
              help="Task hub name [env PERDURE_HUB; default 'default']")
@click.option("--app", "app_spec", envvar="PERDURE_APP", metavar="MODULE:app",
              help="Use this app's store and orchestrator registry [env PERDURE_APP]")
@click.option("--url", envvar="PERDURE_URL", help="Talk to a server instead "
              "(e.g. http://127.0.0.1:7071) [env PERDURE_URL]")
@click.option("--key", envvar="PERDURE_API_KEY", help="API key for --url [env PERDURE_API_KEY]")
@click.version_option(package_name="perdure")
@click.pass_context
def main(ctx: click.Context, store: str | None, hub: str | None, app_spec: str | None,
         url: str | None, key: str | None) -> None:
    """Durable Functions that run anywhere: manage orchestration instances, serve the HTTP API.

    \b
    perdure start hello_cities --input '"Tokyo"'
    perdure status 3f2a... --history
    perdure serve myapp:app --port 7071
    """
    ctx.obj = {"store": store, "hub": hub, "app": app_spec, "url": url, "key": key}


def backend(ctx: click.Context) -> Backend:
    """The backend the global options select: a server (``--url``) or the store."""
    root = ctx.find_root()
    settings: dict[str, Any] = root.obj
    made: HttpBackend | StoreBackend
    if settings.get("url"):
        made = HttpBackend(settings["url"], settings.get("key"))
    else:
        made = StoreBackend(settings.get("store"), settings.get("hub"), settings.get("app"))
    root.call_on_close(made.close)
    return made


# --- instance commands -----------------------------------------------------------------
@main.command()
@click.argument("name")
@click.option("--input", "input_", metavar="JSON", help="Orchestration input as JSON")
@click.option("--id", "instance_id", help="Instance ID (default: a random GUID)")
@click.pass_context
def start(ctx: click.Context, name: str, input_: str | None, instance_id: str | None) -> None:
    """Start orchestration NAME; print the instance ID."""
    value = parse_json(input_, "--input")
    _io.out.print(backend(ctx).start(name, instance_id, value))


@main.command()
@click.argument("instance_id")
@click.option("--history", is_flag=True, help="Show the history as a table")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status JSON")
@click.pass_context
def status(ctx: click.Context, instance_id: str, history: bool, as_json: bool) -> None:
    """Show an instance's status (and history)."""
    body = backend(ctx).status(instance_id, history)
    if as_json:
        _io.out.print(_dump(body))
        return
    table = Table(show_header=False, box=None)
    for key in ("instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime"):
        table.add_row(f"[bold]{key}[/bold]", str(body.get(key)))
    for key in ("input", "output", "customStatus"):
        if body.get(key) is not None:
            table.add_row(f"[bold]{key}[/bold]", _dump(body[key]))
    _io.out.print(table)
    if history:
        _io.out.print(history_table(body.get("historyEvents") or []))


def history_table(events: list[dict[str, Any]]) -> Table:
    """The history as a readable table (like the seeds' history table)."""
    table = Table(title="History")
    table.add_column("#", justify="right")
    table.add_column("Timestamp", no_wrap=True)
    table.add_column("Event", no_wrap=True)
    table.add_column("Name", no_wrap=True)
    table.add_column("Details", overflow="fold", min_width=20)
    for number, event in enumerate(events, 1):
        name = event.get("FunctionName") or event.get("Name") or ""
        details = []
        for key in ("Input", "Result", "Reason", "OrchestrationStatus", "FireAt", "InstanceId"):
            if event.get(key) is not None:
                details.append(f"{key}={_dump(event[key])}")
        table.add_row(str(number), str(event.get("Timestamp", "")),
                      str(event.get("EventType", "")), str(name), " ".join(details))
    return table


@main.command("list")
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Runtime status (repeat or comma-separate), e.g. Running")
@click.option("--from", "created_from", metavar="TIME", help="Created at or after (ISO 8601)")
@click.option("--to", "created_to", metavar="TIME", help="Created at or before (ISO 8601)")
@click.option("--prefix", help="Instance ID prefix")
@click.option("--top", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="At most this many instances")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines")
@click.pass_context
def list_(ctx: click.Context, statuses: tuple[str, ...], created_from: str | None,
          created_to: str | None, prefix: str | None, top: int, as_json: bool) -> None:
    """List instances, oldest first."""
    rows = backend(ctx).list_instances(
        parse_statuses(statuses), parse_time(created_from, "--from"),
        parse_time(created_to, "--to"), prefix, top,
    )
    if as_json:
        for row in rows:
            _io.out.print(_dump(row))
        return
    table = Table()
    for column in ("Instance ID", "Name", "Status", "Created", "Updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["instanceId"], row["name"], row["runtimeStatus"],
                      row["createdTime"], row["lastUpdatedTime"])
    _io.out.print(table)
    _io.err.print(f"{len(rows)} instance(s)")


@main.command("raise")
@click.argument("instance_id")
@click.argument("event")
@click.option("--data", metavar="JSON", help="Event data as JSON")
@click.pass_context
def raise_(ctx: click.Context, instance_id: str, event: str, data: str | None) -> None:
    """Raise EVENT on an instance."""
    backend(ctx).raise_event(instance_id, event, parse_json(data, "--data"))
    _io.err.print(f"raised {event!r} on {instance_id}")


def _control_command(verb: str, help_text: str) -> None:
    @main.command(verb, help=help_text)
    @click.argument("instance_id")
    @click.option("--reason", help="Recorded in the history")
    @click.pass_context
    def command(ctx: click.Context, instance_id: str, reason: str | None) -> None:
        backend(ctx).control(verb, instance_id, reason)
        _io.err.print(f"{verb}: request accepted for {instance_id}")


_control_command("terminate", "Terminate an instance (at its next step).")
_control_command("suspend", "Suspend an instance; events are kept until it resumes.")
_control_command("resume", "Resume a suspended instance.")
_control_command("rewind", "Rewind a Failed instance: re-run only the failed work.")


@main.command()
@click.argument("instance_id")
@click.option("--same-id", is_flag=True, help="Reuse the instance ID (it must be finished)")
@click.pass_context
def restart(ctx: click.Context, instance_id: str, same_id: bool) -> None:
    """Start an instance's orchestrator again with its original input; print the new ID."""
    _io.out.print(backend(ctx).restart(instance_id, not same_id))


@main.command()
@click.argument("instance_id", required=False)
@click.option("--from", "created_from", metavar="TIME", help="Created at or after (ISO 8601)")
@click.option("--to", "created_to", metavar="TIME", help="Created at or before (ISO 8601)")
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Only these finished statuses (Completed, Failed, Terminated)")
@click.pass_context
def purge(ctx: click.Context, instance_id: str | None, created_from: str | None,
          created_to: str | None, statuses: tuple[str, ...]) -> None:
    """Delete one instance (ID), or finished instances matching --from/--to/--status."""
    if instance_id is not None:
        if created_from or created_to or statuses:
            raise click.UsageError("give an instance ID or filters, not both")
        if backend(ctx).purge(instance_id) == 0:
            raise InstanceNotFoundError(instance_id)
        _io.err.print(f"purged {instance_id}")
        return
    if not (created_from or created_to or statuses):
        raise click.UsageError(
            "give an instance ID or at least one filter (--from, --to, --status); "
            "'--from 1970-01-01' purges every finished instance"
        )
    start_at = parse_time(created_from, "--from")
    end_at = parse_time(created_to, "--to")
    names = parse_statuses(statuses)
    with Progress(SpinnerColumn(), TextColumn("purging"), BarColumn(),
                  TextColumn("{task.completed} deleted"), TimeElapsedColumn(),
                  console=_io.err, transient=False) as bar:
        task = bar.add_task("purge", total=None)
        deleted = backend(ctx).purge_by(
            start_at, end_at, names, lambda done: bar.update(task, completed=done)
        )
        bar.update(task, completed=deleted, total=max(deleted, 1))
    _io.out.print(f"{deleted} instance(s) deleted")


@main.command()
@click.argument("instance_id")
@click.option("--timeout", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds to wait")
@click.pass_context
def wait(ctx: click.Context, instance_id: str, timeout: float) -> None:
    """Wait for an instance to finish; print its output. Exit 1 unless it Completed."""
    b = backend(ctx)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        body = b.status(instance_id, False)
        state = body.get("runtimeStatus", "")
        if parse_status(state) in TERMINAL_STATUSES:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"instance {instance_id!r} is still {state} after {timeout:g}s")
        time.sleep(min(delay, left))
        delay = min(delay * 2, 1.0)
    _io.out.print(_dump(body.get("output")))
    if state != "Completed":
        _fail(f"instance {instance_id!r} is {state}", EXIT_FAILED)


@main.command()
@click.pass_context
def key(ctx: click.Context) -> None:
    """Print the API key of the task hub (creating it if there is none yet)."""
    b = backend(ctx)
    if not isinstance(b, StoreBackend):
        raise ValidationError("'perdure key' reads the store; drop --url")
    _io.out.print(b.api_key())


# --- running ---------------------------------------------------------------------------
@main.command()
@click.argument("app_spec", metavar="MODULE:app", required=False)
@click.option("--functions-app", "functions_app", metavar="DIR", default=None,
              type=click.Path(exists=True, file_okay=False),
              help="Serve an Azure Durable Functions Python app (v1 or v2 model) instead of "
              "MODULE:app; needs perdure[azure]")
@click.option("--stub-binding", "stub_bindings", metavar="TYPE[=MODULE:factory]", multiple=True,
              help="With --functions-app: accept a binding type perdure cannot serve, with a "
              "no-op stub (or the factory's value)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind (the default serves this machine only)")
@click.option("--port", type=click.IntRange(0, 65535), default=7071, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Worker processes: this one plus N-1 children (0: HTTP only)")
@click.option("--concurrency", type=click.IntRange(1), default=None,
              help="Activities each worker process runs at once [default 128]")
@click.option("--anonymous-starters", is_flag=True,
              help="Serve /api/orchestrators/... without the API key")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              envvar="PERDURE_LOG_FORMAT", help="json: one JSON object per line, worker "
              "steps included [env PERDURE_LOG_FORMAT; default text]")
@click.option("--drain-seconds", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM, how long in-flight requests and activities may take")
def serve(app_spec: str | None, functions_app: str | None, stub_bindings: tuple[str, ...],
          host: str, port: int, workers: int, concurrency: int | None,
          anonymous_starters: bool, log_level: str, log_format: str | None,
          drain_seconds: float) -> None:
    """Serve the HTTP API of MODULE:app (or --functions-app DIR) and run its worker(s) until
    SIGTERM."""
    try:
        from perdure.http.server import serve as run_server
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ValidationError(f"perdure serve needs: pip install 'perdure[http]' ({exc})") from None
    functions_host = None
    if functions_app is not None:
        if app_spec is not None:
            raise click.UsageError("give MODULE:app or --functions-app DIR, not both")
        if workers > 1:
            raise click.UsageError("--functions-app runs one worker process (--workers 0 or 1)")
        try:
            from perdure.azure.host import create_functions_app, parse_stubs
        except ImportError as exc:
            raise ValidationError(
                f"--functions-app needs: pip install 'perdure[azure]' ({exc})"
            ) from None
        app, functions_host = create_functions_app(
            functions_app, stubs=parse_stubs(stub_bindings)
        )
    elif app_spec is None:
        raise click.UsageError("give MODULE:app, or --functions-app DIR")
    else:
        app = load_app(app_spec)
    run_server(app, host=host, port=port, workers=workers, app_spec=app_spec,
               concurrency=concurrency, anonymous_starters=anonymous_starters,
               log_level=log_level, log_format=log_format, drain_seconds=drain_seconds,
               echo=lambda line: click.echo(line, err=False), functions_host=functions_host)


@main.command()
@click.argument("app_spec", metavar="MODULE:app")
@click.option("--concurrency", type=click.IntRange(1), default=None,
              help="Activities run at once [default 128]")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              envvar="PERDURE_LOG_FORMAT", help="json: one JSON object per line, worker "
              "steps included [env PERDURE_LOG_FORMAT]")
def worker(app_spec: str, concurrency: int | None, log_format: str | None) -> None:
    """Run a worker for MODULE:app without HTTP (scale out: run several)."""
    if log_format == "json":
        from perdure.observability.logs import configure_logging

        configure_logging("json")
    app = load_app(app_spec)
    if concurrency is not None:
        app.worker_options["max_concurrent_activities"] = concurrency
    _io.err.print(f"perdure worker: task hub {app.hub!r}, pid {os.getpid()}; SIGTERM drains")
    app.run()
    _io.err.print("perdure worker: stopped")


if __name__ == "__main__":
    main()
