"""Retry policies: when a failed job runs again, and which errors end it at once.

Pure logic (no I/O, no event loop): the worker asks :meth:`Retry.decide`
what a failed attempt means and writes the answer in its fail statement.
Graphile's own backoff (``exp(min(attempts, 10))`` seconds) stays the
default and is computed by the database exactly as Node and Rust do.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeAlias

from ..errors import ConfigurationError, PayloadError

__all__ = (
    "Exponential",
    "PermanentFailure",
    "Retry",
    "RetryAfter",
    "Verdict",
)

logger = logging.getLogger("gw.worker")

MAX_DELAY = 10 * 365 * 86400.0
"""The longest delay a policy may ask for (ten years); longer asks are capped."""


class PermanentFailure(Exception):  # a verdict, named like the exception users raise
    """Raise in a handler to fail its job for good: no further attempts.

    The job keeps its row (``attempts = max_attempts``, ``last_error`` = the
    reason) until someone reschedules or deletes it.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RetryAfter(Exception):
    """Raise in a handler to run its job again after ``delay`` (seconds or a timedelta).

    Meant for "not yet" (a rate-limited API, a resource still being built):
    the attempt does not count against ``max_attempts``, the log line is at
    INFO level and no failure hook fires. ``last_error`` records the reason.
    """

    def __init__(self, delay: float | timedelta, reason: str = "") -> None:
        seconds = _seconds("RetryAfter delay", delay)
        super().__init__(reason or f"retry after {seconds:g} s")
        self.delay = seconds
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential backoff: ``initial * base ** (attempt - 1)`` seconds, at most ``cap``.

    ``jitter`` (0 to 1) takes up to that fraction off each delay at random,
    so that jobs which failed together do not all come back at once.
    """

    initial: float = 1.0
    base: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("initial", "base", "cap", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"Exponential {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"Exponential {name} must be 0 or more, got {value!r}")
        if self.base < 1:
            raise ConfigurationError(f"Exponential base must be 1 or more, got {self.base!r}")
        if self.jitter > 1:
            raise ConfigurationError(
                f"Exponential jitter is a fraction from 0 to 1, got {self.jitter!r}"
            )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first)."""
        exponent = max(0, attempt - 1)
        try:
            delay = min(self.cap, self.initial * self.base**exponent)
        except OverflowError:
            delay = self.cap
        if self.jitter:
            delay *= 1.0 - self.jitter * rand()
        return delay


BackoffFn: TypeAlias = Callable[[int, BaseException], "float | timedelta | None"]
Backoff: TypeAlias = "float | timedelta | Exponential | BackoffFn | None"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a failed attempt means.

    ``retry``: run again after ``delay`` seconds (None: Graphile's backoff,
    computed by the database); ``final``: never again; ``snooze``: run again
    after ``delay`` without counting the attempt (:class:`RetryAfter`).
    """

    kind: Literal["retry", "final", "snooze"]
    delay: float | None = None


GRAPHILE = Verdict("retry")
FINAL = Verdict("final")


ExceptionTypes: TypeAlias = "type[BaseException] | tuple[type[BaseException], ...]"


@dataclass(frozen=True, slots=True)
class Retry:
    """How a task's failed jobs are retried.

    ``backoff``: None for Graphile's exponential backoff (the default), a
    fixed delay (seconds or a timedelta), an :class:`Exponential`, or a
    callable ``(attempt, error) -> seconds | timedelta | None`` where None
    means "stop retrying". ``retry_on``: if given, only these exception types
    are retried and any other error is final. ``give_up_on``: exception types
    that are always final. :class:`PermanentFailure` is always final and a
    payload that does not fit the task's type (:class:`~gw.PayloadError`) is
    final unless ``retry_on`` names it. ``max_attempts`` stays a job field
    (set it per task with ``@gw.task(max_attempts=...)``).
    """

    backoff: Backoff = None
    retry_on: ExceptionTypes | None = None
    give_up_on: ExceptionTypes = ()
    _retry_on: tuple[type[BaseException], ...] | None = field(init=False, repr=False, compare=False)
    _give_up_on: tuple[type[BaseException], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        backoff = self.backoff
        if isinstance(backoff, bool) or not (
            backoff is None
            or isinstance(backoff, (int, float, timedelta, Exponential))
            or callable(backoff)
        ):
            raise ConfigurationError(
                "Retry backoff must be None (Graphile's), seconds, a timedelta, "
                f"gw.Exponential(...) or a callable (attempt, error) -> seconds; got {backoff!r}"
            )
        if isinstance(backoff, (int, float, timedelta)):
            object.__setattr__(self, "backoff", _seconds("Retry backoff", backoff))
        object.__setattr__(
            self,
            "_retry_on",
            None if self.retry_on is None else _exception_types("retry_on", self.retry_on),
        )
        object.__setattr__(self, "_give_up_on", _exception_types("give_up_on", self.give_up_on))

    def decide(self, attempt: int, max_attempts: int, error: BaseException | None) -> Verdict:
        """The verdict for failed attempt ``attempt`` of ``max_attempts``.

        ``error`` is what the handler raised (None for failures without an
        exception, such as a hook's Fail). Never raises: a backoff callable
        that fails or returns nonsense is logged and Graphile's backoff used.
        """
        if isinstance(error, RetryAfter):
            return Verdict("snooze", min(error.delay, MAX_DELAY))
        if error is not None and self._is_final(error):
            return FINAL
        if attempt >= max_attempts:
            return FINAL
        backoff = self.backoff
        if backoff is None:
            return GRAPHILE
        if isinstance(backoff, float):
            return Verdict("retry", backoff)
        if isinstance(backoff, Exponential):
            return Verdict("retry", backoff.delay(attempt))
        assert callable(backoff)
        return _call_backoff(backoff, attempt, error)

    def _is_final(self, error: BaseException) -> bool:
        if isinstance(error, PermanentFailure) or isinstance(error, self._give_up_on):
            return True
        if self._retry_on is not None:
            return not isinstance(error, self._retry_on)
        return isinstance(error, PayloadError)


def _call_backoff(backoff: BackoffFn, attempt: int, error: BaseException | None) -> Verdict:
    name = getattr(backoff, "__qualname__", repr(backoff))
    try:
        value = backoff(attempt, error if error is not None else Exception("failed"))
    except Exception:
        logger.exception("retry backoff %s raised; using Graphile's backoff for this job", name)
        return GRAPHILE
    if value is None:
        return FINAL
    try:
        seconds = _seconds("backoff", value)
    except ConfigurationError as ex:
        logger.error("retry backoff %s: %s; using Graphile's backoff for this job", name, ex)
        return GRAPHILE
    return Verdict("retry", min(seconds, MAX_DELAY))


def _seconds(what: str, value: object) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{what} must be seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{what} must be 0 or more seconds, got {value!r}")
    return seconds


def _exception_types(name: str, value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(
                f"Retry {name} must be an exception class or a tuple of them, got {item!r}"
            )
    return types


DEFAULT_RETRY = Retry()
