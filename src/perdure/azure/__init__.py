"""Run Azure Durable Functions Python apps, unmodified, on perdure.

``perdure serve --functions-app DIR`` loads an app written for Azure Functions with the
``azure-functions-durable`` 1.x SDK (the v2 model's ``function_app.py`` with ``df.DFApp``
or blueprints, or the v1 model's ``function.json`` folders) and serves it:

- orchestrators run as the user's own generator on perdure's context (perdure's replay
  engine, determinism checks and cache apply; the SDK's replay engine is not used);
- activities are perdure activities called with the trigger's keyword argument;
- entities run through the SDK's own entity handler, one operation at a time;
- HTTP functions get real ``azure.functions.HttpRequest`` objects, and their durable
  client binding is the SDK's own ``DurableOrchestrationClient`` talking to a
  loopback-only, keyless listener of perdure's management API (see :mod:`.rpc`).

Needs ``pip install 'perdure[azure]'``.
"""

from perdure.azure.loader import FunctionSpec, LoadedApp, UnsupportedAppError, load_functions_app

__all__ = ["FunctionSpec", "LoadedApp", "UnsupportedAppError", "load_functions_app"]
