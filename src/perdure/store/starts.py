"""Starts of concurrent ``create_instance`` callers, committed together (both stores).

Each store writes a batch of starts with its own ``_create_many``, as if they came one
after another; this module holds what the two share: the batch's types, its group
commit, and the caller's side of it.
"""

from __future__ import annotations

from collections.abc import Callable

from perdure.errors import InstanceAlreadyExistsError
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.store.base import NewInstance
from perdure.store.group import GroupCommit

StartRequest = tuple[NewInstance, frozenset[Status]]
# A start's outcome: its start message's ID, None if it replaced an instance, or the
# error refusing it (which fails only its own caller, not the batch).
Created = int | None | InstanceAlreadyExistsError


def group_starts(
    write: Callable[[list[StartRequest]], list[Created]],
    alone_if: Callable[[Exception], bool],
) -> GroupCommit[StartRequest, Created]:
    """The group commit of ``write``; a batch that failed as a whole runs again one by
    one where ``alone_if`` allows it (see :class:`GroupCommit`)."""
    return GroupCommit(write, alone=lambda request: write([request])[0], alone_if=alone_if)


def submit_start(
    group: GroupCommit[StartRequest, Created], new: NewInstance, dedupe: frozenset[Status]
) -> int | None:
    """Commit one start through ``group``: its start message's ID, or None if it
    replaced an instance; raises the error that refused it."""
    created = group.submit((new, dedupe))
    if isinstance(created, InstanceAlreadyExistsError):
        raise created
    return created
