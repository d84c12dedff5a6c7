"""DurableOrchestrationContext: what an orchestrator function receives.

Method and parameter names follow the azure-functions-durable SDK. Every call
that needs the runtime records an action through the replay engine; nothing
here performs I/O or reads a clock.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from perdure.errors import ValidationError
from perdure.model import codec
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
from perdure.model.entity_id import EntityId
from perdure.model.ids import validate_instance_id, validate_name
from perdure.orchestration.durable_http import (
    DEFAULT_POLL_INTERVAL,
    HTTP_ACTIVITY,
    HttpPollingTask,
)
from perdure.orchestration.retry import RetryOptions
from perdure.orchestration.tasks import (
    CompletableTask,
    CriticalSection,
    LockTask,
    RetryableTask,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)

if TYPE_CHECKING:
    from perdure.orchestration.executor import OrchestrationRuntime

_UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")
_PACKAGE_DIR = __file__.rsplit("/", 2)[0]


def _call_site() -> str:
    """file:line of the first frame outside perdure's orchestration package."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def function_name(name: str | Callable[..., Any]) -> str:
    """Accept a registered name or the decorated function itself."""
    if callable(name):
        registered = getattr(name, "__perdure_name__", None) or getattr(name, "__name__", None)
        if not registered:
            raise ValidationError(f"cannot tell the function name of {name!r}")
        return str(registered)
    return validate_name("function", name)


class ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose lines are emitted once, not again on every replay."""

    def __init__(self, logger: logging.Logger, context: DurableOrchestrationContext) -> None:
        super().__init__(logger, {})
        self._context = context

    def isEnabledFor(self, level: int) -> bool:
        return not self._context.is_replaying and self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("instance_id", self._context.instance_id)
        kwargs["extra"] = extra
        return f"[{self._context.instance_id}] {msg}", kwargs


class DurableOrchestrationContext:
    """The orchestrator's handle on the durable runtime.

    Example::

        @app.orchestrator
        def hello(context):
            name = context.get_input()
            greeting = yield context.call_activity("say_hello", name)
            return greeting
    """

    def __init__(self, runtime: OrchestrationRuntime, instance_id: str) -> None:
        self._runtime = runtime
        self._instance_id = instance_id
        self._parent_instance_id: str | None = None
        self._name = ""
        self._input_text: str | None = None
        self._input_decoded = False
        self._input_value: Any = None
        self._execution_id = ""
        self._uuid_counter = 0
        self._logger: ReplaySafeLogger | None = None
        self.current_utc_datetime: datetime = datetime.min.replace(tzinfo=None)
        self.is_replaying = False
        self.will_continue_as_new = False

    # identity and input -------------------------------------------------------
    @property
    def instance_id(self) -> str:
        """This instance's ID."""
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        """The parent's instance ID when running as a sub-orchestration, else None."""
        return self._parent_instance_id

    @property
    def name(self) -> str:
        """The orchestrator's registered name."""
        return self._name

    @property
    def execution_id(self) -> str:
        """The ID of this generation (changes on continue-as-new)."""
        return self._execution_id

    def get_input(self, expected_type: type | None = None) -> Any:
        """The instance's input, decoded (dataclasses and datetimes come back as such).

        ``expected_type`` may be a class with ``from_json`` or a dataclass to build
        from a dict input.
        """
        if not self._input_decoded:
            self._input_value = codec.decode(self._input_text)
            self._input_decoded = True
        value = self._input_value
        if expected_type is not None and not isinstance(value, expected_type):
            from_json = getattr(expected_type, "from_json", None)
            if callable(from_json):
                return from_json(value)
            if isinstance(value, dict):
                return expected_type(**value)
        return value

    @property
    def logger(self) -> ReplaySafeLogger:
        """A replay-safe logger ("perdure.orchestrator"): each line is logged once."""
        if self._logger is None:
            self._logger = ReplaySafeLogger(logging.getLogger("perdure.orchestrator"), self)
        return self._logger

    # activities and sub-orchestrations ---------------------------------------
    def call_activity(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        *,
        retry_options: RetryOptions | None = None,
    ) -> Task:
        """Schedule an activity; ``yield`` the task for its result.

        >>> result = yield context.call_activity("say_hello", "Tokyo")  # doctest: +SKIP
        """
        fname = function_name(name)
        text = codec.encode(input_, f"input of call_activity({fname!r})")
        site = _call_site()

        def attempt() -> Task:
            task_id = self._runtime.next_task_id()
            task = CompletableTask(task_id, f"activity {fname!r}", fname)
            self._runtime.add_action(ScheduleTask(task_id, site, fname, text), task)
            return task

        return self._with_retry(attempt, retry_options, site)

    def call_activity_with_retry(
        self, name: str | Callable[..., Any], retry_options: RetryOptions, input_: Any = None
    ) -> Task:
        """``call_activity`` that retries failures as ``retry_options`` say."""
        return self.call_activity(name, input_, retry_options=retry_options)

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        *,
        retry_options: RetryOptions | None = None,
    ) -> Task:
        """Start a child orchestration and wait for its output.

        >>> total = yield context.call_sub_orchestrator("process_order", order)  # doctest: +SKIP
        """
        fname = function_name(name)
        text = codec.encode(input_, f"input of call_sub_orchestrator({fname!r})")
        if instance_id is not None:
            validate_instance_id(instance_id)
        site = _call_site()

        def attempt() -> Task:
            task_id = self._runtime.next_task_id()
            child_id = instance_id or self._child_instance_id(task_id)
            task = CompletableTask(task_id, f"sub-orchestration {fname!r}", fname)
            self._runtime.add_action(
                CreateSubOrchestration(task_id, site, fname, child_id, text), task
            )
            return task

        return self._with_retry(attempt, retry_options, site)

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
    ) -> Task:
        """``call_sub_orchestrator`` that retries failures as ``retry_options`` say."""
        return self.call_sub_orchestrator(name, input_, instance_id, retry_options=retry_options)

    def _child_instance_id(self, task_id: int) -> str:
        child = f"{self._instance_id}:{self._execution_id[:8]}:{task_id:04x}"
        if len(child) > 100:
            child = uuid.uuid5(_UUID_NAMESPACE, child).hex
        return child

    def _with_retry(
        self, attempt: Callable[[], Task], options: RetryOptions | None, site: str
    ) -> Task:
        if options is None:
            return attempt()
        if not isinstance(options, RetryOptions):
            options = _coerce_retry_options(options)
        opts = options
        # As in .NET's RetryInterceptor and durabletask's RetryableTask, the retry
        # timeout counts from the first attempt's start, on orchestration time.
        first_attempt_at = self.current_utc_datetime

        def schedule_delay(attempt_number: int, failed: Task) -> Task | None:
            error = failed.exception
            assert error is not None
            now = self.current_utc_datetime
            if attempt_number >= opts.max_number_of_attempts:
                return None
            if opts.handle is not None and not opts.handle(error):
                return None
            if opts.retry_timeout_in_milliseconds is not None and now >= first_attempt_at + (
                timedelta(milliseconds=opts.retry_timeout_in_milliseconds)
            ):
                return None
            delay = opts.delay_for(attempt_number)
            retry_of = failed.task_id if isinstance(failed, CompletableTask) else -1
            return self._timer(now + delay, site, retry_of=retry_of)

        return RetryableTask(attempt, schedule_delay)

    # timers and events -------------------------------------------------------
    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer firing at ``fire_at`` (UTC) or after a ``timedelta``.

        >>> deadline = context.current_utc_datetime + timedelta(hours=72)  # doctest: +SKIP
        >>> yield context.create_timer(deadline)  # doctest: +SKIP
        """
        if isinstance(fire_at, timedelta):
            fire_at = self.current_utc_datetime + fire_at
        elif not isinstance(fire_at, datetime):
            raise ValidationError(
                f"create_timer expects a datetime or timedelta, got {type(fire_at).__name__}"
            )
        elif fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=self.current_utc_datetime.tzinfo)
        return self._timer(fire_at, _call_site())

    def _timer(self, fire_at: datetime, site: str, *, retry_of: int = -1) -> TimerTask:
        task_id = self._runtime.next_task_id()
        task = TimerTask(task_id, fire_at)
        self._runtime.add_action(CreateTimer(task_id, site, fire_at, retry_of), task)
        return task

    def wait_for_external_event(self, name: str) -> Task:
        """A task completed by the next event ``name`` raised to this instance.

        Events that arrived earlier are buffered first-in first-out per name.
        """
        validate_name("event", name)
        return self._runtime.wait_for_event(name)

    def send_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        """Raise an event on another instance (one-way; dropped if it does not exist)."""
        validate_instance_id(instance_id)
        validate_name("event", event_name)
        text = codec.encode(event_data, f"data of send_event({event_name!r})")
        task_id = self._runtime.next_task_id()
        self._runtime.add_action(
            SendEvent(task_id, _call_site(), instance_id, event_name, text), None
        )

    # durable HTTP --------------------------------------------------------------
    def call_http(
        self,
        method: str,
        uri: str,
        content: Any = None,
        headers: dict[str, str] | None = None,
        *,
        asynchronous_patterns: bool = True,
        poll_interval: timedelta | None = None,
    ) -> Task:
        """Make an HTTP request durably (a built-in activity, recorded in the history).

        While the response is 202 Accepted with a ``Location`` header, it polls that
        location with GET on durable timers (``Retry-After`` seconds, else
        ``poll_interval``, default 30 s) unless ``asynchronous_patterns`` is False.
        ``yield`` the task for a :class:`DurableHttpResponse`.

        >>> response = yield context.call_http("GET", "https://example.com/api")  # doctest: +SKIP
        >>> response.status_code                                                 # doctest: +SKIP
        200
        """
        if not isinstance(method, str) or not method.isalpha():
            raise ValidationError(f"HTTP method must be a word like 'GET', got {method!r}")
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
            raise ValidationError(f"call_http needs an http(s) URI, got {uri!r}")
        if content is not None and not isinstance(content, str):
            content = codec.encode(content, "content of call_http")
        site = _call_site()

        def request(m: str, u: str, body: str | None, hdrs: dict[str, str] | None) -> Task:
            payload = {"method": m.upper(), "uri": u, "content": body, "headers": hdrs or {}}
            text = codec.encode(payload, f"request of call_http({u!r})")
            task_id = self._runtime.next_task_id()
            task = CompletableTask(task_id, f"http {m.upper()} {u}", f"{m.upper()} {u}")
            self._runtime.add_action(ScheduleTask(task_id, site, HTTP_ACTIVITY, text), task)
            return task

        return HttpPollingTask(
            request,
            lambda when: self._timer(when, site),
            lambda: self.current_utc_datetime,
            request(method, uri, content, headers),
            uri,
            asynchronous_patterns,
            poll_interval or DEFAULT_POLL_INTERVAL,
        )

    # entities ----------------------------------------------------------------
    def call_entity(
        self, entity_id: EntityId | Any, operation_name: str, operation_input: Any = None
    ) -> Task:
        """Run an entity operation and wait for its result (its error raises here).

        >>> value = yield context.call_entity(EntityId("counter", "a"), "get")  # doctest: +SKIP
        """
        target = EntityId.coerce(entity_id).instance_id
        validate_name("operation", operation_name)
        section = self._runtime.critical_section
        if section is not None and section.is_held and target not in section.targets:
            raise ValidationError(
                f"inside a critical section only locked entities may be called; {target} "
                f"is not one of {section.targets}"
            )
        text = codec.encode(
            operation_input, f"input of call_entity({target!r}, {operation_name!r})"
        )
        task_id = self._runtime.next_task_id()
        task = CompletableTask(
            task_id, f"entity {target} {operation_name!r}", f"{target} {operation_name}"
        )
        self._runtime.add_action(
            CallEntity(task_id, _call_site(), target, operation_name, text), task
        )
        return task

    def signal_entity(
        self, entity_id: EntityId | Any, operation_name: str, operation_input: Any = None
    ) -> None:
        """Send a one-way operation to an entity."""
        target = EntityId.coerce(entity_id).instance_id
        validate_name("operation", operation_name)
        section = self._runtime.critical_section
        if section is not None and section.is_held and target in section.targets:
            raise ValidationError(
                f"inside a critical section, locked entity {target} may be called, not signalled"
            )
        text = codec.encode(
            operation_input, f"input of signal_entity({target!r}, {operation_name!r})"
        )
        task_id = self._runtime.next_task_id()
        self._runtime.add_action(
            SignalEntity(task_id, _call_site(), target, operation_name, text), None
        )

    def lock(self, entity_ids: Sequence[EntityId | Any]) -> Task:
        """Lock entities for a critical section; ``yield`` it for a CriticalSection.

        Locks are taken in one global order, so critical sections never deadlock, and
        are released by ``release()``, the end of a ``with`` block, or the end of the
        orchestration.

        >>> with (yield context.lock([EntityId("account", "a")])):  # doctest: +SKIP
        ...     yield context.call_entity(EntityId("account", "a"), "add", 5)
        """
        targets = sorted({EntityId.coerce(e).instance_id for e in entity_ids})
        if not targets:
            raise ValidationError("lock needs at least one entity")
        current = self._runtime.critical_section
        if current is not None and current.is_held:
            raise ValidationError("critical sections cannot be nested; release the lock first")
        site = _call_site()
        section = CriticalSection(targets, lambda s: self._release_section(s, site))
        task_id = self._runtime.next_task_id()
        task = LockTask(task_id, section)
        self._runtime.critical_section = section
        self._runtime.add_action(LockEntities(task_id, site, targets), task)
        return task

    def _release_section(self, section: CriticalSection, site: str) -> None:
        task_id = self._runtime.next_task_id()
        self._runtime.add_action(UnlockEntities(task_id, site, section.targets), None)

    # composition -------------------------------------------------------------
    def task_all(self, activities: Sequence[Task]) -> Task:
        """Completes with every task's result, in order (fan-in); fails on the first failure."""
        return WhenAllTask(_check_tasks(activities, "task_all"))

    def task_any(self, activities: Sequence[Task]) -> Task:
        """Completes with the first task to finish; ``yield`` returns that Task object."""
        return WhenAnyTask(_check_tasks(activities, "task_any"))

    # determinism helpers -----------------------------------------------------
    def new_uuid(self) -> str:
        """A replay-safe UUID string (name-based, from instance, time and a counter)."""
        return str(self.new_guid())

    def new_guid(self) -> uuid.UUID:
        """A replay-safe ``uuid.UUID``."""
        name = f"{self._instance_id}_{self.current_utc_datetime.isoformat()}_{self._uuid_counter}"
        self._uuid_counter += 1
        return uuid.uuid5(_UUID_NAMESPACE, name)

    def set_custom_status(self, status: Any) -> None:
        """Publish a small JSON value in the instance's status (saved at the next checkpoint)."""
        self._runtime.custom_status = codec.encode(status, "custom status")

    def continue_as_new(self, input_: Any = None, save_events: bool = True) -> None:
        """Restart this instance with new input and an empty history once the function returns.

        Events raised but not yet consumed are carried over to the new generation
        unless ``save_events`` is False.
        """
        self._runtime.continue_as_new(
            codec.encode(input_, "input of continue_as_new"), save_events
        )
        self.will_continue_as_new = True


def _check_tasks(tasks: Sequence[Task], what: str) -> list[Task]:
    items = list(tasks)
    for t in items:
        if not isinstance(t, Task):
            raise ValidationError(f"{what} expects tasks, got {type(t).__name__}: {t!r}")
    return items


def _coerce_retry_options(options: Any) -> RetryOptions:
    """Accept the azure-functions-durable SDK's RetryOptions object too."""
    try:
        return RetryOptions(
            first_retry_interval_in_milliseconds=options.first_retry_interval_in_milliseconds,
            max_number_of_attempts=options.max_number_of_attempts,
        )
    except AttributeError:
        raise ValidationError(
            f"retry_options must be perdure.RetryOptions, got {type(options).__name__}"
        ) from None
