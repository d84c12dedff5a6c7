"""RetryOptions and the back-off arithmetic (first * coefficient^(n-1), capped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from perdure.errors import ValidationError


@dataclass(frozen=True)
class RetryOptions:
    """How a failed activity or sub-orchestration is retried.

    Names follow the azure-functions-durable SDK, plus the .NET options it lacks.

    Args:
        first_retry_interval_in_milliseconds: delay before the first retry (> 0).
        max_number_of_attempts: total attempts, the first one included (>= 1).
        backoff_coefficient: each further delay is multiplied by this (>= 1, default 1).
        max_retry_interval_in_milliseconds: cap on a single delay (default: none).
        retry_timeout_in_milliseconds: no retry is scheduled for a failure that comes
            this much orchestration time or more after the first attempt started
            (default: none), as in .NET's RetryOptions.RetryTimeout.
        handle: optional predicate on the error; return False to fail without retrying.

    >>> opts = RetryOptions(1000, 3, backoff_coefficient=2.0)
    >>> [opts.delay_for(n).total_seconds() for n in (1, 2)]
    [1.0, 2.0]
    """

    first_retry_interval_in_milliseconds: int
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval_in_milliseconds: int | None = None
    retry_timeout_in_milliseconds: int | None = None
    handle: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if not self.first_retry_interval_in_milliseconds > 0:
            raise ValidationError("first_retry_interval_in_milliseconds must be greater than 0")
        if self.max_number_of_attempts < 1:
            raise ValidationError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1:
            raise ValidationError("backoff_coefficient must be at least 1")
        if (
            self.max_retry_interval_in_milliseconds is not None
            and self.max_retry_interval_in_milliseconds <= 0
        ):
            raise ValidationError("max_retry_interval_in_milliseconds must be greater than 0")
        timeout = self.retry_timeout_in_milliseconds
        if timeout is not None and timeout <= 0:
            raise ValidationError("retry_timeout_in_milliseconds must be greater than 0")

    def delay_for(self, retry_number: int) -> timedelta:
        """Delay before retry ``retry_number`` (1 = the first retry)."""
        ms = self.first_retry_interval_in_milliseconds * self.backoff_coefficient ** (
            retry_number - 1
        )
        if self.max_retry_interval_in_milliseconds is not None:
            ms = min(ms, self.max_retry_interval_in_milliseconds)
        return timedelta(milliseconds=ms)
