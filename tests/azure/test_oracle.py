"""Oracle: perdure runs the app's generators on its own engine; replaying each recorded
history, episode by episode, through the SDK's own orchestrator handler (the JSON protocol
of the Functions host) must schedule the same actions, with the same inputs and timer times,
and end with the same output and custom status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.durable_functions")
# The SDK's decoder advises passing expected_type (a DeprecationWarning), on Azure too.
pytestmark = pytest.mark.filterwarnings("ignore:azure.functions df_loads:DeprecationWarning")

from perdure.azure.host import FunctionsHost, create_functions_app  # noqa: E402
from perdure.testing import DurableTestEnvironment  # noqa: E402
from tests.azure import oracle  # noqa: E402
from tests.azure.support import APPS  # noqa: E402


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FunctionsHost]]:
    db = tmp_path_factory.mktemp("oracle") / "unused.db"
    app, host = create_functions_app(APPS / "v2app", store=f"sqlite:///{db}")
    yield app, host
    app.close()


CASES = [
    ("chain", "Tokyo", None),
    ("fan_out", ["Oslo", "Rome", "Kyiv", "Lima"], None),
    ("parent", None, None),
    ("approval", 60, "Approval"),   # the event wins
    ("approval", 60, None),         # the timer wins
]


@pytest.mark.parametrize(("name", "input_", "event"), CASES)
def test_sdk_schedules_what_perdure_recorded(
    loaded: tuple[Any, FunctionsHost], tmp_path: Path, name: str, input_: Any, event: str | None
) -> None:
    app, host = loaded
    handles = {spec.registered_name: spec.entry for spec in host.loaded.functions}
    with DurableTestEnvironment(app, path=str(tmp_path / "env.db")) as env:
        instance_id = env.client.start_new(name, None, input_)
        env.run_until_idle()
        if event:
            env.client.raise_event(instance_id, event, "bob")
            env.run_until_idle()
        env.advance(timedelta(minutes=5))
        status = env.client.get_status(instance_id)
        assert status is not None and status.runtime_status.value == "Completed"
        history = env.store.get_history(instance_id)

    prefixes = oracle.episodes(history)
    assert len(prefixes) >= 2
    for prefix in prefixes:
        state = oracle.run_sdk(handles[name], instance_id, prefix)
        sdk = [oracle.describe_sdk(a) for a in oracle.flatten(state["actions"])]
        recorded = [oracle.describe_perdure(e) for e in prefix if isinstance(e, oracle.SCHEDULING)]
        assert sdk == recorded, f"episode {prefixes.index(prefix)} of {name}"
    assert state["isDone"] is True
    assert state["output"] == status.output
    assert state.get("customStatus") == status.custom_status
