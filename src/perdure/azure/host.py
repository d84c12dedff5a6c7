"""Wire a loaded Functions app into a perdure App, and serve its HTTP functions.

:func:`create_functions_app` registers orchestrators, activities and entities with a
perdure App (so ``perdure serve``'s worker runs them); :class:`FunctionsHost` then wraps
the management API with the app's HTTP functions and starts the loopback listener the
SDK's durable client talks to.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.routing import Router
from starlette.types import ASGIApp

from perdure.azure.entities import entity_bridge
from perdure.azure.http_bridge import FunctionLoop, HttpFunction, OutBinding, describe
from perdure.azure.loader import (
    LoadedApp,
    StubFactory,
    UnsupportedAppError,
    load_functions_app,
)
from perdure.azure.rpc import RpcListener
from perdure.http.client import BASE_PATH, DurableHttpClient

if TYPE_CHECKING:
    from perdure.app import App

log = logging.getLogger("perdure.azure")

# The SDK's payload decoder nags, once, that callers should pass ``expected_type``; perdure
# decodes the SDK's own wire payloads (its entity handler and client do the same), where no
# user type is known, so the advice does not apply.
warnings.filterwarnings(
    "ignore", message="azure.functions df_loads was called without expected_type",
    category=DeprecationWarning,
)


def parse_stubs(values: list[str] | tuple[str, ...]) -> dict[str, StubFactory | None]:
    """``--stub-binding TYPE`` (built-in stub) or ``TYPE=MODULE:factory``."""
    stubs: dict[str, StubFactory | None] = {}
    for value in values:
        kind, _, target = value.partition("=")
        if not kind.strip():
            raise UnsupportedAppError(f"--stub-binding {value!r}: name a binding type")
        factory: StubFactory | None = None
        if target:
            module_name, _, attr = target.partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), attr or "stub")
            except (ImportError, AttributeError) as exc:
                raise UnsupportedAppError(f"--stub-binding {value!r}: {exc}") from None
        stubs[kind.strip()] = factory
    return stubs


def _stub_for(stubs: Mapping[str, StubFactory | None]) -> Callable[[Mapping[str, Any]], Any]:
    def make(binding: Mapping[str, Any]) -> Any:
        factory = stubs.get(str(binding.get("type")))
        if factory is not None:
            return factory(dict(binding))
        if binding.get("direction") == "out":
            return _LoggedOut(binding)
        return None

    return make


class _LoggedOut(OutBinding):
    """The built-in stub of an output binding: what the function sets is logged, then dropped."""

    def set(self, val: Any) -> None:
        super().set(val)
        log.info("stubbed %s output %r set to %r (dropped)", self.binding.get("type"),
                 self.binding.get("name"), val)


def _activity(fn: Callable[..., Any], input_name: str, extras: Callable[[], dict[str, Any]],
              name: str) -> Callable[..., Any]:
    # The worker calls an activity with keyword arguments: the trigger's input plus any
    # (stubbed) bindings. perdure calls activities with the input alone.
    if inspect.iscoroutinefunction(fn):
        async def run_async(value: Any) -> Any:
            return await fn(**{input_name: value, **extras()})

        run_async.__name__ = name
        return run_async

    def run(value: Any) -> Any:
        return fn(**{input_name: value, **extras()})

    run.__name__ = name
    return run


class FunctionsHost:
    """The Functions app's HTTP side: routes, the functions loop and the RPC listener."""

    def __init__(self, loaded: LoadedApp, app: App, stubs: Mapping[str, StubFactory | None],
                 http_functions: list[HttpFunction] | None = None) -> None:
        self.loaded = loaded
        self.app = app
        self.stub = _stub_for(stubs)
        self.loop = FunctionLoop()
        self.rpc: RpcListener | None = None
        self._binding = ""
        self.http_functions = [
            HttpFunction(spec, client_binding=lambda: self._binding, stub=self.stub,
                         loop=self.loop)
            for spec in loaded.functions if spec.kind == "httpTrigger"
        ]

    def client_binding(self, client: DurableHttpClient, api_key: str) -> str:
        """The durable client binding's JSON, as the Functions host builds it.

        ``managementUrls`` are perdure's public, keyed URLs with the placeholder
        ``INSTANCEID`` (the SDK swaps in the instance ID and the request's origin);
        ``rpcBaseUrl`` is the loopback listener every other client method calls.
        """
        assert self.rpc is not None
        base = client.base_url
        starter = f"{base}{BASE_PATH}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps({
            "taskHubName": self.app.hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{starter}?code={api_key}",
                "createAndWaitOnNewInstancePostUri":
                    f"{starter}?timeout={{timeoutInSeconds}}&pollingInterval="
                    f"{{intervalInSeconds}}&code={api_key}",
            },
            "managementUrls": client.create_http_management_payload("INSTANCEID"),
            "baseUrl": f"{base}{BASE_PATH}",
            "requiredQueryStringParameters": f"code={api_key}",
            "rpcBaseUrl": self.rpc.base_url,
        })

    def wrap(self, asgi: ASGIApp, *, api_key: str, public_base: str) -> ASGIApp:
        """Serve the app's HTTP functions in front of ``asgi`` (perdure's API) and start
        the functions loop and the loopback listener."""
        client = DurableHttpClient(self.app.sync_client(), base_url=public_base,
                                   api_key=api_key, hub=self.app.hub)
        self.rpc = RpcListener(client, dict(self.app.registry.orchestrators))
        self.rpc.start()
        self.loop.start()
        self._binding = self.client_binding(client, api_key)
        prefix = self.loaded.route_prefix
        routes = [r for fn in self.http_functions for r in fn.routes(prefix, api_key)]
        # The app's own routes come first: an app that defines /api/orchestrators/... (as
        # the samples do) replaces perdure's ready-made starter there.
        router = Router(routes=routes, default=asgi)
        router.redirect_slashes = False
        return router

    def banner(self) -> list[str]:
        counts = {"orchestrationTrigger": 0, "activityTrigger": 0, "entityTrigger": 0}
        for spec in self.loaded.functions:
            if spec.kind in counts:
                counts[spec.kind] += 1
        lines = [
            f"perdure: Azure Functions app {self.loaded.root} ({self.loaded.model} model): "
            f"{counts['orchestrationTrigger']} orchestrator(s), {counts['activityTrigger']} "
            f"activit(y/ies), {counts['entityTrigger']} entit(y/ies), "
            f"{len(self.http_functions)} HTTP function(s)"
        ]
        lines += [f"perdure:   {line}" for line in describe(self.http_functions,
                                                           self.loaded.route_prefix)]
        return lines

    def close(self) -> None:
        self.loop.stop()
        if self.rpc is not None:
            self.rpc.stop()


def register(loaded: LoadedApp, app: App, stubs: Mapping[str, StubFactory | None]) -> None:
    """Register the app's orchestrators, activities and entities with ``app``."""
    stub = _stub_for(stubs)
    for spec in loaded.functions:
        name = spec.registered_name
        if spec.kind == "orchestrationTrigger":
            generator = getattr(spec.entry, "orchestrator_function", None)
            if generator is None:
                raise UnsupportedAppError(
                    f"orchestrator {spec.name!r}: its entry point must be "
                    "df.Orchestrator.create(fn) (perdure runs fn on its own engine)"
                )
            app.registry.add_orchestrator(generator, name)
        elif spec.kind == "activityTrigger":
            extra = [b for b in spec.bindings if b.get("name") != "$return"]

            def extras(extra: list[dict[str, Any]] = extra) -> dict[str, Any]:
                return {str(b["name"]): stub(b) for b in extra}

            app.registry.add_activity(
                _activity(spec.entry, str(spec.trigger["name"]), extras, name), name
            )
        elif spec.kind == "entityTrigger":
            if getattr(spec.entry, "entity_function", None) is None:
                raise UnsupportedAppError(
                    f"entity {spec.name!r}: its entry point must be df.Entity.create(fn)"
                )
            app.registry.add_entity(entity_bridge(spec.entry, name), name)
        else:
            continue
        if spec.handle is not None:
            # v2 code passes the decorated object itself: call_activity(say_hello). perdure
            # resolves a callable by its registered name, so tell the object its name.
            try:
                spec.handle.__perdure_name__ = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass


def create_functions_app(
    directory: str | Path,
    *,
    stubs: Mapping[str, StubFactory | None] | None = None,
    store: str | None = None,
    hub: str | None = None,
) -> tuple[App, FunctionsHost]:
    """Load the Functions app in ``directory`` into a new perdure App.

    The store comes from ``store``, else ``$PERDURE_STORE``, else ``./perdure.db``; the
    task hub from ``hub``, else ``$PERDURE_HUB``, else host.json's
    ``extensions.durableTask.hubName``, else "default".

    >>> app, host = create_functions_app("path/to/app")     # doctest: +SKIP
    """
    import os

    from perdure.app import App

    stubs = dict(stubs or {})
    loaded = load_functions_app(directory, stubs)
    hub_name = hub or os.environ.get("PERDURE_HUB") or loaded.hub_name
    app = App(store, hub_name)
    register(loaded, app, stubs)
    return app, FunctionsHost(loaded, app, stubs)
