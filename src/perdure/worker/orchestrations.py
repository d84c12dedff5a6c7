"""Orchestration dispatch: fetch leased instances, run an episode for each, commit as a batch."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from perdure.entities.executor import EntityRecord, run_entity_batch
from perdure.errors import ValidationError
from perdure.model import codec
from perdure.model import events as ev
from perdure.model.actions import (
    CallEntity,
    CreateSubOrchestration,
    CreateTimer,
    LockEntities,
    ScheduleTask,
    SendEvent,
    SignalEntity,
    UnlockEntities,
)
from perdure.model.entity_id import EntityId, is_entity_instance
from perdure.model.status import TERMINAL_STATUSES
from perdure.model.status import OrchestrationRuntimeStatus as Status
from perdure.observability import steps, tracing
from perdure.orchestration.executor import EpisodeResult, OrchestrationRuntime
from perdure.orchestration.rewind import rewind_history
from perdure.store.base import (
    MESSAGES_PER_FETCH,
    ActivityResult,
    ActivityTask,
    ActivityWorkItem,
    Checkpoint,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    Store,
    SubOrchestrationStart,
    check_message_limit,
)
from perdure.worker.cache import RuntimeCache
from perdure.worker.clock import Clock

log = logging.getLogger("perdure.worker")


def _missing(name: str) -> Callable[[Any], Any]:
    def orchestrator(context: Any) -> Any:
        raise ValidationError(f"orchestrator {name!r} is not registered in this app")

    return orchestrator


@dataclass
class _Commit:
    """One round's checkpoints on their way to the store, and what settling them needs."""

    checkpoints: list[Checkpoint]
    live: dict[str, list[ActivityResult]]
    fetched: set[str]
    claimed: set[str]
    runtimes: dict[str, tuple[str, OrchestrationRuntime]]
    spans: tracing.PendingSpans
    now: Any
    executions: dict[str, str] = field(default_factory=dict)  # instance -> execution
    more: bool = False  # an instance of the round has messages left for a later fetch
    lost: set[str] = field(default_factory=set)  # set once the commit is settled
    future: Future[tuple[list[str], list[ActivityWorkItem]]] | None = None


class OrchestrationDispatcher:
    """One round (``tick``) = fetch a batch, replay each instance, group-commit."""

    def __init__(
        self,
        store: Store,
        orchestrators: dict[str, Callable[..., Any]],
        clock: Clock,
        owner: str,
        *,
        batch_size: int = 100,
        lease_seconds: float = 30.0,
        cache: RuntimeCache | None = None,
        entities: dict[str, Callable[..., Any]] | None = None,
        message_limit: int = MESSAGES_PER_FETCH,
    ) -> None:
        check_message_limit(message_limit)
        self.message_limit = message_limit  # messages per instance per fetch
        self.entities = entities if entities is not None else {}
        self.store = store
        self.orchestrators = orchestrators
        self.clock = clock
        self.owner = owner
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.cache = cache if cache is not None else RuntimeCache()
        self.episodes = 0
        self.fetched_full = False  # the last round's fetch left work waiting (see tick)
        # Instances created by clients of this process, offered by the store after their
        # commit (see offer_start): the next round starts them without a fetch.
        self._starts: deque[OrchestrationWorkItem] = deque()
        # tick(overlap=True): the commit running beside the next round, results for its
        # instances held until it is settled, and the thread that commits.
        self._inflight: _Commit | None = None
        self._deferred: list[ActivityResult] = []
        self._executor: ThreadPoolExecutor | None = None
        self._committer: int | None = None  # that thread's ident
        # Called after a commit that added activity tasks / messages visible now.
        self.on_new_tasks: Callable[[], None] = lambda: None
        self.on_new_messages: Callable[[], None] = lambda: None
        self.on_new_timers: Callable[[], None] = lambda: None  # messages visible later
        # How many activity tasks this process can start once a commit that frees
        # ``freed`` slots (its finished tasks) has landed; up to that many are leased to it
        # in the commit and handed to ``on_tasks_taken``.
        self.task_slots: Callable[[int], int] = lambda freed: 0
        self.on_tasks_taken: Callable[[list[ActivityWorkItem]], None] = lambda items: None
        # Finished activities of this process: the round commits their results in its
        # fetch transaction, so a result costs no commit of its own and reaches its
        # orchestration in the same round. ``on_results_committed`` or, if that
        # transaction failed, ``on_results_failed`` gets them back.
        self.take_results: Callable[[], list[ActivityResult]] = lambda: []
        self.on_results_committed: Callable[[list[ActivityResult]], None] = lambda r: None
        self.on_results_failed: Callable[[list[ActivityResult]], None] = lambda r: None

    def offer_start(self, item: OrchestrationWorkItem) -> bool:
        """Take an instance a client of this process has just created, to start it in the
        next round without fetching it: the round's checkpoint claims it (the fence
        accepts it only if nobody leased it and it is still unstarted). False if its
        orchestrator is not registered here or enough starts already wait; the instance
        is then fetched as usual. A start taken here and never run (a stop, a crash, a
        refused claim) is still in the inbox for any worker."""
        if item.instance.name not in self.orchestrators or len(self._starts) >= self.batch_size:
            return False
        self._starts.append(item)
        return True

    @property
    def starts_waiting(self) -> bool:
        return bool(self._starts)

    def _take_starts(self) -> list[OrchestrationWorkItem]:
        out: list[OrchestrationWorkItem] = []
        while self._starts and len(out) < self.batch_size:
            out.append(self._starts.popleft())
        return out

    def tick(self, fetch: bool = True, overlap: bool = False) -> int:
        """Process one batch; return how many instances (and activity results) it handled.

        With ``overlap`` the round's commit runs on a thread of its own while the caller
        goes on to the next round (which commits only after it, and leaves that commit's
        instances to the round after); :meth:`flush` waits for it. Python runs the next
        episodes while the database works (SQLite releases the GIL while it writes).

        Results of this worker's activities whose orchestration is live in the cache skip
        the inbox: the next episode runs on them at once and its checkpoint claims the
        instance and deletes their tasks, one transaction per step instead of two.
        Instances created in this process (``offer_start``) are claimed the same way.
        The store is asked for work when ``fetch`` (something may be waiting there) or
        when some results need the usual path."""
        # A fetch may run beside the commit in flight. Should it lease an instance that
        # commit claims, one of the two loses its fence and nothing is written twice:
        # the claim, or (had the commit landed first) nothing, the fetch seeing it.
        live, results = self._split_live(self._deferred + self.take_results())
        now = self.clock.now()
        starts = self._take_starts()
        items: list[OrchestrationWorkItem] = []
        if fetch or results:
            try:
                _, items = self.store.complete_and_fetch(
                    self.owner, results, now, self.batch_size, self.lease_seconds,
                    self.message_limit,
                )
            except Exception:
                self.on_results_failed(results + [r for rs in live.values() for r in rs])
                raise
            if results:
                self.on_results_committed(results)
            # A full batch, or an instance with messages beyond those handed out (a
            # fetch caps them per instance): more is waiting, fetch again at once.
            more = any(i.more for i in items)
            self.fetched_full = len(items) >= self.batch_size or more
            items = self._drop_claimed(items)
        else:
            more = self.fetched_full = False
        fetched = {item.instance.instance_id for item in items}
        # A start that a fetch leased (this round) or an earlier round ran is not ours
        # to claim: the fetched item holds the same message.
        starts = [
            s for s in starts
            if s.instance.instance_id not in fetched
            and self.cache.live(s.instance.instance_id, s.instance.execution_id) is None
        ]
        if not items and not live and not starts:
            return len(results)
        checkpoints: list[Checkpoint] = []
        runtimes: dict[str, tuple[str, OrchestrationRuntime]] = {}
        histories = self._load_replays(items)
        work: list[tuple[str, Callable[[], tuple[Checkpoint, OrchestrationRuntime | None]]]]
        work = [
            (i.instance.instance_id, partial(self._process, i, now, histories,
                                              live.get(i.instance.instance_id)))
            for i in items
        ]
        work += [
            (iid, partial(self._claim, iid, rs, now)) for iid, rs in live.items()
            if iid not in fetched
        ]
        work += [(s.instance.instance_id, partial(self._start, s, now)) for s in starts]
        claimed = (live.keys() - fetched) | {s.instance.instance_id for s in starts}
        for instance_id, episode in work:
            started = time.perf_counter()
            try:
                cp, runtime = episode()
            except Exception:  # an engine bug must not stop the loop; lease expiry retries it
                log.exception("episode of %s failed", instance_id)
                self.cache.discard(instance_id)
                self.store.release_instances(self.owner, [instance_id])
                if instance_id in live:
                    self.on_results_failed(live.pop(instance_id))
                if instance_id in claimed:
                    self.on_new_messages()  # its messages wait in the inbox: fetch them
                continue
            checkpoints.append(cp)
            if runtime is not None:
                runtimes[cp.instance_id] = (cp.execution_id, runtime)
            steps.episode_done(cp, time.perf_counter() - started)
        spans = tracing.pending_spans(self.store, checkpoints)
        handled = len(work) + len(results) + sum(len(rs) for rs in live.values())
        commit = _Commit(checkpoints, live, fetched, claimed, runtimes, spans, now)
        commit.more = more
        try:
            self.flush()  # the previous round's commit: at most one runs beside a round
        except Exception:
            self._commit_failed(commit)  # this round is not committed either
            raise
        # A round of one instance commits in this thread: a chain or a lone orchestration
        # (W4) has no other episode to run meanwhile and would only pay the hand-off.
        if overlap and len(checkpoints) > 1:
            commit.executions = {cp.instance_id: cp.execution_id for cp in checkpoints}
            take = self._take(checkpoints)
            commit.future = self._pool().submit(
                self._committed, self.store.commit_and_take_tasks, self.owner, checkpoints,
                now, take, self.lease_seconds,
            )
            self._inflight = commit
            return handled
        try:
            lost_ids, taken = self.store.commit_and_take_tasks(
                self.owner, checkpoints, now, self._take(checkpoints), self.lease_seconds
            )
        except Exception:
            self._commit_failed(commit)
            raise
        self._after_commit(commit, set(lost_ids), taken)
        return handled

    def _drop_claimed(self, items: list[OrchestrationWorkItem]) -> list[OrchestrationWorkItem]:
        """Drop fetched items that the commit in flight has made stale.

        The fetch may lease an instance that commit claims (a start offered by a client,
        whose message is still in the inbox). The claim then lands, the fence accepting
        its own owner's lease, and an episode of the fetched item would only be refused.
        So the commit is settled first: where its checkpoint landed and the item was
        read from before it, the item is dropped (the checkpoint cleared the lease), and
        a later fetch takes any message the checkpoint did not consume."""
        commit = self._inflight
        # Only claims: an instance the commit holds a lease on is no candidate for a fetch
        # until that commit has cleared the lease, so a fetched item of it is fresh.
        if commit is None or not any(i.instance.instance_id in commit.claimed for i in items):
            return items
        try:
            self.flush()
        except Exception:
            self._release([i.instance.instance_id for i in items])  # fetched, never run
            raise
        # A claim always appends events, so an item at the claim's starting length was
        # read before the claim landed.
        written = {
            cp.instance_id: cp
            for cp in commit.checkpoints
            if cp.claim and cp.history and cp.instance_id not in commit.lost
        }
        kept: list[OrchestrationWorkItem] = []
        for item in items:
            cp = written.get(item.instance.instance_id)
            if (
                cp is not None
                and item.instance.execution_id == cp.execution_id
                and item.instance.history_length == cp.history_length
            ):
                if {m.id for m in item.messages} - set(cp.consumed):
                    self.on_new_messages()
                continue
            kept.append(item)
        return kept

    def _take(self, checkpoints: list[Checkpoint]) -> int:
        # The slots free now and those this commit frees (the tasks whose results it
        # consumes are this worker's): a store fills them with the tasks the commit adds
        # and, where it can, with tasks already queued.
        scheduled = sum(len(cp.tasks) for cp in checkpoints)
        finished = sum(len(cp.finished_tasks) for cp in checkpoints)
        if not scheduled and not finished:
            return 0
        return self.task_slots(finished)

    def _committed(self, commit: Callable[..., Any], *args: Any) -> Any:
        self._committer = threading.get_ident()
        return commit(*args)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="perdure-commit")
        return self._executor

    @property
    def committing(self) -> bool:
        """Whether the calling thread is this dispatcher's checkpoint committer."""
        return threading.get_ident() == self._committer

    @property
    def pending(self) -> bool:
        """A commit is in flight, or results wait for the round after it."""
        return self._inflight is not None or bool(self._deferred)

    def holds(self, instance_id: str, execution_id: str) -> bool:
        """Whether the next rounds run this execution without a fetch: it is live in the
        cache, or its checkpoint is being committed (it is live again after that)."""
        commit = self._inflight
        if commit is not None and instance_id in commit.executions:
            return commit.executions[instance_id] == execution_id
        return self.cache.live(instance_id, execution_id) is not None

    def flush(self) -> None:
        """Wait for the commit in flight (``tick(overlap=True)``) and settle it."""
        commit, self._inflight = self._inflight, None
        if commit is None:
            return
        assert commit.future is not None
        try:
            lost_ids, taken = commit.future.result()
        except Exception:
            self._commit_failed(commit)
            raise
        self._after_commit(commit, set(lost_ids), taken)

    def close(self) -> None:
        """Settle the commit in flight and give back results waiting for a round."""
        try:
            self.flush()
        finally:
            deferred, self._deferred = self._deferred, []
            if deferred:
                self.on_results_failed(deferred)
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _commit_failed(self, commit: _Commit) -> None:
        self.on_results_failed([r for rs in commit.live.values() for r in rs])
        for cp in commit.checkpoints:
            self.cache.discard(cp.instance_id)
        self._release([cp.instance_id for cp in commit.checkpoints])

    def _release(self, instance_ids: list[str]) -> None:
        try:  # best effort: let the work be fetched again now, not after the lease expires
            self.store.release_instances(self.owner, instance_ids)
        except Exception:
            log.debug("could not release %d lease(s)", len(instance_ids), exc_info=True)

    def _after_commit(
        self, commit: _Commit, lost: set[str], taken: list[ActivityWorkItem]
    ) -> None:
        now = commit.now
        commit.lost = lost
        self._settle_live(commit.live, lost, commit.fetched)
        commit.spans.emit(lost)
        for instance_id, (execution_id, runtime) in commit.runtimes.items():
            if instance_id in lost:
                self.cache.discard(instance_id)
            else:
                self.cache.put(instance_id, execution_id, runtime)
        lost_leases = lost - commit.claimed
        if lost_leases:
            log.warning(
                "lease lost for %d instance(s); their work was not committed", len(lost_leases)
            )
        committed = [cp for cp in commit.checkpoints if cp.instance_id not in lost]
        if taken:
            self.on_tasks_taken(taken)
        if sum(len(cp.tasks) for cp in committed) > len(taken):
            self.on_new_tasks()
        # Messages an instance of this round was not handed can be fetched once its lease
        # is released here: a fetch while this commit ran (PostgreSQL's run beside it)
        # passed the instance over as still leased.
        if commit.more or any(
            cp.sub_orchestrations
            or any(m.visible_at is None or m.visible_at <= now for m in cp.messages)
            for cp in committed
        ):
            self.on_new_messages()
        if any(m.visible_at is not None and m.visible_at > now for cp in committed
               for m in cp.messages):
            self.on_new_timers()
        self.episodes += len(commit.checkpoints)

    def _start(
        self, item: OrchestrationWorkItem, now: Any
    ) -> tuple[Checkpoint, OrchestrationRuntime | None]:
        """The first episode of an instance created in this process, without a lease: its
        checkpoint claims the instance if nobody has started it meanwhile."""
        cp, runtime = self._process(item, now)
        cp.claim = True
        return cp, runtime

    def _split_live(
        self, results: list[ActivityResult]
    ) -> tuple[dict[str, list[ActivityResult]], list[ActivityResult]]:
        """Results for orchestrations live in this worker's cache (by instance), and the
        rest, which go through the inbox. Those for instances of the commit in flight are
        neither: they become ``_deferred``, for the round after it."""
        live: dict[str, list[ActivityResult]] = {}
        rest: list[ActivityResult] = []
        self._deferred = []
        busy = self._inflight.executions if self._inflight is not None else {}
        for r in results:
            if r.item.instance_id in busy:
                self._deferred.append(r)  # for the round after that commit
            elif self.cache.live(r.item.instance_id, r.item.execution_id) is not None:
                live.setdefault(r.item.instance_id, []).append(r)
            else:
                rest.append(r)
        return live, rest

    def _settle_live(
        self, live: dict[str, list[ActivityResult]], lost: set[str], fetched: set[str]
    ) -> None:
        """After the commit: the results whose checkpoint landed are reported; those of a
        lost one (the instance moved on elsewhere, a task was taken over) go back, to take
        the inbox next time (the lost instance is no longer cached). A fetched instance
        whose checkpoint failed only on such a task is still ours: its lease is given back.
        ``live`` holds only instances whose episode produced a checkpoint."""
        done = [r for iid, rs in live.items() if iid not in lost for r in rs]
        again = [r for iid, rs in live.items() if iid in lost for r in rs]
        if done:
            self.on_results_committed(done)
        if again:
            self.on_results_failed(again)
        held = sorted(lost & fetched & live.keys())
        if held:
            try:
                self.store.release_instances(self.owner, held)
            except Exception:
                log.debug("could not release leases after a refused claim", exc_info=True)

    def _load_replays(
        self, items: list[OrchestrationWorkItem]
    ) -> dict[str, list[ev.HistoryEvent]]:
        """Histories of the instances this round must replay (not live in the cache), read
        together: after a restart or a cache overflow (a timer storm on more instances
        than the cache holds, say) one query serves the whole round."""
        wanted = [
            (inst.instance_id, inst.execution_id)
            for inst in (item.instance for item in items)
            if inst.history_length
            and inst.status not in TERMINAL_STATUSES
            and not is_entity_instance(inst.instance_id)
            and not self.cache.holds(inst.instance_id, inst.execution_id, inst.history_length)
        ]
        if len(wanted) < 2:
            return {}  # a lone replay reads its history in _process
        try:
            return self.store.load_histories(wanted)
        except Exception:  # each replay then reads its own
            log.warning("could not read %d histories at once", len(wanted), exc_info=True)
            return {}

    def _process(
        self,
        item: OrchestrationWorkItem,
        now: Any,
        histories: dict[str, list[ev.HistoryEvent]] | None = None,
        extra: list[ActivityResult] | None = None,
    ) -> tuple[Checkpoint, OrchestrationRuntime | None]:
        cp, runtime = self._episode(item, now, histories, extra or [])
        if extra:
            cp.finished_tasks = [r.item.id for r in extra]
        return cp, runtime

    def _claim(
        self, instance_id: str, extra: list[ActivityResult], now: Any
    ) -> tuple[Checkpoint, OrchestrationRuntime | None]:
        """An episode on a live runtime, fed this worker's own results: no fetch, no lease
        beforehand; the checkpoint's fence claims the instance if it is still where the
        runtime left it and nobody holds it."""
        execution_id, runtime = self.cache.take(instance_id)
        length = runtime.history_length
        result = runtime.run_episode([r.event for r in extra], now)
        cp = self._checkpoint(instance_id, execution_id, length, [], result, Status.Running)
        cp.claim = True
        cp.finished_tasks = [r.item.id for r in extra]
        return cp, runtime

    def _episode(
        self,
        item: OrchestrationWorkItem,
        now: Any,
        histories: dict[str, list[ev.HistoryEvent]] | None,
        extra: list[ActivityResult],
    ) -> tuple[Checkpoint, OrchestrationRuntime | None]:
        inst = item.instance
        consumed = [m.id for m in item.messages]
        events = [m.event for m in item.messages if m.execution_id in (None, inst.execution_id)]
        events += [r.event for r in extra if r.item.execution_id == inst.execution_id]
        keep = Checkpoint(
            instance_id=inst.instance_id,
            execution_id=inst.execution_id,
            history_length=inst.history_length,
            consumed=consumed,
            history=[],
            status=inst.status,
            output=inst.output,
            failure=inst.failure,
            custom_status=inst.custom_status,
        )
        rewind = next((e for e in events if isinstance(e, ev.ExecutionRewound)), None)
        if inst.status in TERMINAL_STATUSES:
            if inst.status is Status.Failed and rewind is not None:
                return self._rewind(item, rewind, now)
            # Messages to a finished instance are dropped: nothing can consume them.
            self.cache.discard(inst.instance_id)
            return keep, None
        if not events:
            return keep, None
        if is_entity_instance(inst.instance_id):
            return self._entity_batch(keep, events, now), None
        fn = self.orchestrators.get(inst.name) or _missing(inst.name)
        runtime = self.cache.get(inst.instance_id, inst.execution_id, inst.history_length)
        if runtime is None:
            runtime = OrchestrationRuntime(inst.instance_id, fn)
            if inst.history_length:
                history = (histories or {}).get(inst.instance_id)
                if history is None:
                    history = self.store.load_history(inst.instance_id, inst.execution_id)
                runtime.replay(history)
        result = runtime.run_episode(events, now)
        return self._checkpoint(
            inst.instance_id, inst.execution_id, inst.history_length, consumed, result, inst.status
        ), runtime

    def _entity_batch(
        self, keep: Checkpoint, events: list[ev.HistoryEvent], now: Any
    ) -> Checkpoint:
        entity_id = EntityId.from_instance_id(keep.instance_id)
        record = EntityRecord.from_json(keep.custom_status, keep.output)
        result = run_entity_batch(self.entities.get(entity_id.name), entity_id, record, events, now)
        keep.status = Status.Running
        keep.custom_status = result.record.to_json()
        keep.output = result.record.state
        keep.messages = [Message(m.instance_id, m.event, m.execution_id) for m in result.messages]
        return keep

    def _rewind(
        self, item: OrchestrationWorkItem, event: ev.ExecutionRewound, now: Any
    ) -> tuple[Checkpoint, OrchestrationRuntime | None]:
        inst = item.instance
        self.cache.discard(inst.instance_id)
        history = rewind_history(self.store.load_history(inst.instance_id, inst.execution_id))
        fn = self.orchestrators.get(inst.name) or _missing(inst.name)
        runtime = OrchestrationRuntime(inst.instance_id, fn)
        runtime.replay(history)
        result = runtime.run_episode([event], now)
        result.history = history + result.history
        result.replace_history = True
        cp = self._checkpoint(
            inst.instance_id,
            inst.execution_id,
            inst.history_length,
            [m.id for m in item.messages],
            result,
            Status.Running,
        )
        return cp, runtime

    def _checkpoint(
        self,
        instance_id: str,
        execution_id: str,
        history_length: int,
        consumed: list[int],
        result: EpisodeResult,
        previous: Status,
    ) -> Checkpoint:
        cp = Checkpoint(
            instance_id=instance_id,
            execution_id=execution_id,
            history_length=history_length,
            consumed=consumed,
            history=result.history,
            status=result.status or previous,
            output=result.output,
            failure=result.failure,
            custom_status=result.custom_status,
            replace_history=result.replace_history,
        )
        stamp = result.history[0].timestamp
        if result.release_locks:
            cp.messages.extend(_unlocks(instance_id, result.release_locks, stamp))
        for action in result.actions:
            if isinstance(action, ScheduleTask):
                cp.tasks.append(
                    ActivityTask(
                        instance_id, execution_id, action.task_id, action.name, action.input
                    )
                )
            elif isinstance(action, CreateTimer):
                fired = ev.TimerFired(
                    timestamp=action.fire_at, timer_id=action.task_id, fire_at=action.fire_at
                )
                cp.messages.append(Message(instance_id, fired, execution_id, action.fire_at))
            elif isinstance(action, CreateSubOrchestration):
                start = ev.ExecutionStarted(
                    timestamp=result.history[0].timestamp,
                    name=action.name,
                    execution_id=uuid.uuid4().hex,
                    input=action.input,
                    parent_instance_id=instance_id,
                    parent_execution_id=execution_id,
                    parent_task_id=action.task_id,
                    trace_context=tracing.sub_orchestration_context(
                        result.started, instance_id, execution_id, action.task_id
                    ),
                )
                conflict = ev.SubOrchestrationInstanceFailed(
                    timestamp=start.timestamp,
                    task_scheduled_id=action.task_id,
                    failure=ev.FailureDetails(
                        "InstanceAlreadyExistsError",
                        f"sub-orchestration instance {action.instance_id!r} is already running",
                    ),
                )
                cp.sub_orchestrations.append(
                    SubOrchestrationStart(
                        NewInstance(start, action.instance_id, start.timestamp),
                        Message(instance_id, conflict, execution_id),
                    )
                )
            elif isinstance(action, (CallEntity, SignalEntity)):
                request = ev.EntityRequest(
                    timestamp=stamp,
                    operation=action.operation,
                    input=action.input,
                    parent_instance_id=instance_id,
                    parent_execution_id=execution_id,
                    task_id=action.task_id if isinstance(action, CallEntity) else -1,
                )
                cp.messages.append(Message(action.target, request))
            elif isinstance(action, LockEntities):
                request = ev.EntityRequest(
                    timestamp=stamp,
                    parent_instance_id=instance_id,
                    parent_execution_id=execution_id,
                    task_id=action.task_id,
                    lock_set=action.targets,
                )
                cp.messages.append(Message(action.targets[0], request))
            elif isinstance(action, UnlockEntities):
                cp.messages.extend(_unlocks(instance_id, action.targets, stamp))
            elif isinstance(action, SendEvent):
                raised = ev.EventRaised(
                    timestamp=result.history[0].timestamp, name=action.name, input=action.input
                )
                cp.messages.append(Message(action.instance_id, raised))
        if result.status is Status.ContinuedAsNew:
            self._continue_as_new(cp, result)
        elif (
            result.status in TERMINAL_STATUSES
            and previous not in TERMINAL_STATUSES
            and result.started is not None
            and result.started.parent_instance_id
        ):
            cp.messages.append(_parent_notice(result, result.started))
        return cp

    def _continue_as_new(self, cp: Checkpoint, result: EpisodeResult) -> None:
        started = result.started
        assert started is not None
        new = ev.ExecutionStarted(
            timestamp=result.history[0].timestamp,
            name=started.name,
            execution_id=uuid.uuid4().hex,
            input=result.continue_as_new,
            parent_instance_id=started.parent_instance_id,
            parent_execution_id=started.parent_execution_id,
            parent_task_id=started.parent_task_id,
            trace_context=started.trace_context,  # every generation stays in the same trace
        )
        cp.new_execution = new
        cp.tasks.clear()
        cp.messages += [Message(cp.instance_id, new, new.execution_id)] + [
            Message(cp.instance_id, e) for e in result.carryover_events
        ]
        cp.output = None


def _unlocks(owner: str, targets: list[str], stamp: Any) -> list[Message]:
    return [Message(t, ev.EntityUnlock(timestamp=stamp, owner=owner)) for t in targets]


def _parent_notice(result: EpisodeResult, parent: ev.ExecutionStarted) -> Message:
    assert parent.parent_instance_id is not None
    stamp = result.history[0].timestamp
    event: ev.HistoryEvent
    if result.status is Status.Completed:
        event = ev.SubOrchestrationInstanceCompleted(
            timestamp=stamp, task_scheduled_id=parent.parent_task_id, result=result.output
        )
    else:
        failure = result.failure or ev.FailureDetails(
            "Terminated", f"sub-orchestration was terminated: {codec.decode(result.output)}"
        )
        event = ev.SubOrchestrationInstanceFailed(
            timestamp=stamp, task_scheduled_id=parent.parent_task_id, failure=failure
        )
    return Message(parent.parent_instance_id, event, parent.parent_execution_id)
