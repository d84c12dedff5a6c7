"""Enumerate an Azure Functions Python app: the v2 model (``function_app.py`` holding a
``FunctionRegister`` such as ``df.DFApp``) or the v1 model (one folder per function with a
``function.json``). The result is a neutral list of :class:`FunctionSpec`; nothing here
touches perdure's engine.
"""

from __future__ import annotations

import enum
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perdure.errors import ValidationError

log = logging.getLogger("perdure.azure")

#: Triggers perdure serves. Everything else (timer, queue, blob, ...) is refused at load.
SUPPORTED_TRIGGERS = ("httpTrigger", "orchestrationTrigger", "activityTrigger", "entityTrigger")
#: The durable client binding (``orchestrationClient`` is its 1.x-era name).
CLIENT_BINDINGS = ("durableClient", "orchestrationClient")

#: Builds the value passed for a stubbed binding from the binding's description.
StubFactory = Callable[[dict[str, Any]], Any]


class UnsupportedAppError(ValidationError):
    """The app uses something perdure cannot serve; the message lists every problem."""


@dataclass
class FunctionSpec:
    """One function of the app, as the Functions host would see it.

    ``trigger`` and ``bindings`` are function.json-shaped dicts (``type``, ``name``,
    ``direction`` and the binding's own settings). ``entry`` is what the Python worker
    would call; ``handle`` is the module-level object user code may pass to
    ``call_activity`` (the v2 ``FunctionBuilder``), or None.
    """

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    entry: Callable[..., Any]
    handle: object | None = None

    @property
    def kind(self) -> str:
        return str(self.trigger.get("type", ""))

    @property
    def registered_name(self) -> str:
        """The name orchestrations use: the trigger's override, else the function name."""
        override = {
            "orchestrationTrigger": "orchestration",
            "activityTrigger": "activity",
            "entityTrigger": "entityName",
        }.get(self.kind)
        value = self.trigger.get(override) if override else None
        return str(value or self.name)


@dataclass
class LoadedApp:
    root: Path
    model: str  # "v1" or "v2"
    functions: list[FunctionSpec]
    host_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def route_prefix(self) -> str:
        """host.json ``extensions.http.routePrefix`` (default ``api``; may be empty)."""
        http = self.host_settings.get("extensions", {}).get("http", {})
        prefix = http.get("routePrefix", "api") if isinstance(http, dict) else "api"
        return str(prefix if prefix is not None else "api").strip("/")

    @property
    def hub_name(self) -> str | None:
        """host.json ``extensions.durableTask.hubName``, if set."""
        durable = self.host_settings.get("extensions", {}).get("durableTask", {})
        name = durable.get("hubName") if isinstance(durable, dict) else None
        # "%Setting%" names an app setting, which perdure has no store for: use the default.
        return str(name) if name and "%" not in str(name) else None


# --- the SDK version -----------------------------------------------------------------
_REQUIREMENT = re.compile(r"^azure[-_.]functions[-_.]durable(?:\[[^\]]*\])?\s*(?P<spec>[^;#]*)",
                          re.IGNORECASE)
_CLAUSE = re.compile(r"(===|~=|==|>=|>)\s*v?(\d+)")


def check_sdk_version(root: Path) -> None:
    """Refuse an app that needs azure-functions-durable 2.x (a gRPC rewrite perdure does
    not speak), whether the installed SDK is 2.x or the app's requirements.txt asks for it."""
    try:
        installed = importlib.metadata.version("azure-functions-durable")
    except importlib.metadata.PackageNotFoundError:
        raise UnsupportedAppError(
            "perdure --functions-app needs the Durable Functions SDK 1.x: "
            "pip install 'perdure[azure]'"
        ) from None
    if int(installed.split(".")[0]) >= 2:
        raise UnsupportedAppError(
            f"azure-functions-durable {installed} is installed; perdure runs apps written for "
            "the 1.x SDK only (2.x is a different, gRPC-based runtime). Install "
            "'azure-functions-durable>=1.2,<2'."
        )
    requirements = root / "requirements.txt"
    if not requirements.is_file():
        return
    for line in requirements.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _REQUIREMENT.match(line.strip())
        if not match:
            continue
        for _op, major in _CLAUSE.findall(match.group("spec")):
            if int(major) >= 2:  # ==2.x, >=2, ~=2.0, >2: no 1.x release satisfies it
                raise UnsupportedAppError(
                    f"{requirements} asks for {line.strip()!r}: this app targets "
                    "azure-functions-durable 2.x, which perdure does not support. perdure runs "
                    "apps written for the 1.x SDK ('azure-functions-durable>=1.2,<2')."
                )


# --- enumeration ---------------------------------------------------------------------
def _plain(key: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        # BindingDirection.IN -> "in"; AuthLevel.ANONYMOUS -> "anonymous"
        return value.name.lower() if key == "direction" else value.value
    return value


def _normalise(binding: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _plain(k, v) for k, v in binding.items()}
    if isinstance(out.get("authLevel"), str):
        out["authLevel"] = out["authLevel"].lower()
    if isinstance(out.get("direction"), str):
        out["direction"] = out["direction"].lower()
    return out


def _split(
    name: str, bindings: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise UnsupportedAppError(f"function {name!r} has {len(triggers)} triggers; it needs one")
    return triggers[0], [b for b in bindings if b is not triggers[0]]


def _import_v2(root: Path, script: Path) -> types.ModuleType:
    # As the Python worker does: the app root is on sys.path and the script is imported
    # as a top-level module, so ``from shared import x`` works.
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    name = script.stem
    stale = sys.modules.get(name)
    if stale is not None and getattr(stale, "__file__", None) != str(script):
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UnsupportedAppError(
            f"importing {script} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _load_v2(root: Path, script: Path) -> list[FunctionSpec]:
    import azure.functions as func

    module = _import_v2(root, script)
    registers = {
        id(v): v for v in vars(module).values() if isinstance(v, func.FunctionRegister)
    }
    if len(registers) != 1:
        raise UnsupportedAppError(
            f"{script} must define exactly one function app (df.DFApp or func.FunctionApp) "
            f"at module level; found {len(registers)}"
        )
    register = next(iter(registers.values()))
    builders = {id(fb._function): fb for fb in getattr(register, "_function_builders", [])}
    specs = []
    for function in register.get_functions():
        name = str(function.get_function_name())
        raw = function.get_bindings_dict().get("bindings", [])
        trigger, others = _split(name, [_normalise(b) for b in raw])
        specs.append(
            FunctionSpec(name, trigger, others, function.get_user_function(),
                         builders.get(id(function)))
        )
    return specs


def _load_v1(root: Path, folders: list[Path]) -> list[FunctionSpec]:
    # The worker imports each function as a submodule of a package ``__app__`` rooted at the
    # app directory, so ``from ..shared_code import x`` resolves; the root is also on sys.path.
    package = types.ModuleType("__app__")
    package.__path__ = [str(root)]
    sys.modules["__app__"] = package
    for key in [k for k in sys.modules if k.startswith("__app__.")]:
        del sys.modules[key]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    specs = []
    for folder in folders:
        config = json.loads((folder / "function.json").read_text(encoding="utf-8"))
        if config.get("disabled") is True:
            continue
        script = (folder / config.get("scriptFile", "__init__.py")).resolve()
        parts = list(script.relative_to(root.resolve()).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module_name = ".".join(["__app__", *parts])
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UnsupportedAppError(
                f"importing function {folder.name!r} ({script}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        entry_name = config.get("entryPoint", "main")
        entry = getattr(module, entry_name, None)
        if not callable(entry):
            raise UnsupportedAppError(f"{script} has no function {entry_name!r} (entryPoint)")
        bindings = [_normalise(b) for b in config.get("bindings", [])]
        trigger, others = _split(folder.name, bindings)
        specs.append(FunctionSpec(folder.name, trigger, others, entry))
    return specs


def _read_host_json(root: Path) -> dict[str, Any]:
    path = root / "host.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UnsupportedAppError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def check_supported(specs: list[FunctionSpec], stubs: Mapping[str, object]) -> None:
    """Raise UnsupportedAppError listing every trigger and binding perdure cannot serve."""
    problems = []
    for spec in specs:
        if spec.kind not in SUPPORTED_TRIGGERS:
            problems.append(f"function {spec.name!r}: trigger {spec.kind!r}")
        for b in spec.bindings:
            kind = str(b.get("type", ""))
            if kind in CLIENT_BINDINGS or kind in stubs:
                continue
            if kind == "http" and b.get("direction") == "out" and spec.kind == "httpTrigger":
                continue
            problems.append(
                f"function {spec.name!r}: {b.get('direction', '?')} binding {kind!r} "
                f"(parameter {b.get('name')!r})"
            )
    if problems:
        raise UnsupportedAppError(
            "this app uses triggers or bindings perdure cannot serve:\n  - "
            + "\n  - ".join(problems)
            + "\nperdure serves HTTP, orchestration, activity and entity triggers and the "
            "durable client binding. To run the app anyway, stub a binding type with "
            "--stub-binding TYPE (output bindings are logged and dropped, input bindings get "
            "None) or --stub-binding TYPE=MODULE:factory (factory(binding_dict) -> value)."
        )


def load_functions_app(
    directory: str | Path, stubs: Mapping[str, StubFactory | None] | None = None
) -> LoadedApp:
    """Import the app in ``directory`` and describe its functions.

    Raises:
        UnsupportedAppError: a 2.x SDK app, an app with no functions, or triggers and
            bindings perdure cannot serve (all of them listed) and no stub was given.

    >>> loaded = load_functions_app("path/to/app")        # doctest: +SKIP
    >>> [f.name for f in loaded.functions]                 # doctest: +SKIP
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise UnsupportedAppError(f"{root} is not a directory")
    check_sdk_version(root)
    host_settings = _read_host_json(root)
    folders = sorted(p.parent for p in root.glob("*/function.json"))
    script = root / "function_app.py"
    if script.is_file():
        model, specs = "v2", _load_v2(root, script)
    elif folders:
        model, specs = "v1", _load_v1(root, folders)
    else:
        raise UnsupportedAppError(
            f"{root} holds neither function_app.py (v2 model) nor */function.json (v1 model)"
        )
    if not specs:
        raise UnsupportedAppError(f"the app in {root} defines no functions")
    check_supported(specs, stubs or {})
    return LoadedApp(root, model, specs, host_settings)
