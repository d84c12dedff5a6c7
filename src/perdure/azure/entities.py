"""Entities run through the SDK's own entity handler (``df.Entity.create(fn)``), so the user
function gets the SDK's real ``DurableEntityContext`` and behaves exactly as on Azure.

perdure's entity executor calls the bridge once per operation with its EntityContext; the
bridge hands the SDK handler a one-operation batch in the Functions host's JSON protocol
and applies the answer (state, existence, result or error) back to perdure's context.

Deliberate difference from Azure: a failed operation's state changes are rolled back
(perdure commits each operation's state only if it succeeded); on Azure the SDK keeps
whatever the function had set before it raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from perdure.entities.context import EntityContext


class EntityOperationFailed(Exception):
    """An entity operation raised; the message is the SDK's (``str(exception)``)."""


def _sdk_codec() -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    from azure.durable_functions.models.utils.df_serialization import (
        df_dumps,
        df_loads,
    )

    return df_dumps, df_loads


def entity_bridge(handle: Callable[[str], str], name: str) -> Callable[[EntityContext], None]:
    """A perdure entity function that runs each operation through the SDK ``handle``."""
    df_dumps, df_loads = _sdk_codec()

    def run(ctx: EntityContext) -> None:
        exists = not ctx.is_newly_constructed
        state = ctx.get_state() if exists else None
        value = ctx.get_input()
        # The host sends the operation input as JSON text *of* the SDK's JSON text
        # (DurableEntityContext.get_input runs json.loads, then df_loads), and the state
        # as the SDK's JSON text.
        request = {
            "self": {"name": ctx.entity_name, "key": ctx.entity_key},
            "exists": exists,
            "state": json.dumps(state) if exists else None,
            "batch": [
                {
                    "name": ctx.operation_name,
                    "input": json.dumps(None if value is None else df_dumps(value)),
                }
            ],
        }
        answer = json.loads(handle(json.dumps(request)))
        outcome = answer["results"][0]
        if outcome.get("isError"):
            raise EntityOperationFailed(str(df_loads(outcome["result"])))
        if answer.get("entityExists"):
            # Stored as the plain JSON the SDK wrote (its {"__class__": ...} envelope for
            # custom classes included), so the next operation gets the same text back.
            text = answer.get("entityState")
            ctx.set_state(None if text is None else json.loads(text))
        else:
            ctx.destruct_on_exit()
        result_text = outcome.get("result")
        ctx.set_result(None if result_text is None else df_loads(result_text))

    run.__name__ = name
    return run
