"""Typed cron builder, mirroring graphile_worker_rs ``Cron``.

    Cron.daily_at(send_email, 8, 0).fill(CrontabFill.hours(1)).build()

Every method returns a new immutable ``Cron``; ``build()`` produces the same
``CronItem`` a crontab line would. All schedules are read in the zone the
runner evaluates (UTC unless it is configured otherwise). Invalid values raise
``ConfigurationError`` naming the field and its valid range.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from gw.cron._types import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    JOB_KEY_MODES,
    MINUTE,
    MONTH,
    SMALLINT_MAX,
    SMALLINT_MIN,
    CronItem,
    CronTimer,
    JobKeyMode,
    check_int,
)
from gw.cron.parser import parse_timer
from gw.errors import ConfigurationError

if TYPE_CHECKING:
    from typing import Self

__all__ = ("Cron", "HasIdentifier")

_WEEKDAYS: Final = {
    name: number
    for number, names in enumerate(
        (
            ("sunday", "sun"),
            ("monday", "mon"),
            ("tuesday", "tue"),
            ("wednesday", "wed"),
            ("thursday", "thu"),
            ("friday", "fri"),
            ("saturday", "sat"),
        )
    )
    for name in names
}
_LONGEST_MONTH: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MISSING: Final = object()


class HasIdentifier(Protocol):
    """Anything with a task identifier, such as a gw task object."""

    @property
    def identifier(self) -> str: ...


def _timer(
    *,
    minutes: tuple[int, ...] = MINUTE.full,
    hours: tuple[int, ...] = HOUR.full,
    days: tuple[int, ...] = DAY_OF_MONTH.full,
    months: tuple[int, ...] = MONTH.full,
    dows: tuple[int, ...] = DAY_OF_WEEK.full,
) -> CronTimer:
    return CronTimer(minutes=minutes, hours=hours, days=days, months=months, dows=dows)


def _task_identifier(task: str | HasIdentifier) -> str:
    identifier = task if isinstance(task, str) else getattr(task, "identifier", _MISSING)
    if not isinstance(identifier, str):
        raise ConfigurationError(
            "task must be a task identifier string or an object with an 'identifier' "
            f"string attribute, got {type(task).__name__}"
        )
    if not 1 <= len(identifier) <= 128:
        raise ConfigurationError(
            f"task identifier must be 1 to 128 characters long, got {len(identifier)}"
        )
    return identifier


def _weekday(weekday: int | str | enum.Enum) -> int:
    # Enums such as calendar.Day (Monday = 0) go by name, not by value,
    # because cron counts from Sunday.
    if isinstance(weekday, enum.Enum):
        weekday = weekday.name
    if isinstance(weekday, str):
        number = _WEEKDAYS.get(weekday.strip().lower())
        if number is None:
            raise ConfigurationError(
                f"weekday must be a day name like 'monday' or 'mon', got {weekday!r}"
            )
        return number
    # 7 is Sunday too, as in a crontab.
    return check_int("weekday (0-7, Sunday = 0 or 7)", weekday, 0, 7) % 7


def _text(name: str, value: object, max_length: int | None) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, got {type(value).__name__}")
    if max_length is None:
        if not value:
            raise ConfigurationError(f"{name} must not be empty")
        return value
    if not 1 <= len(value) <= max_length:
        raise ConfigurationError(
            f"{name} must be 1 to {max_length} characters long, got {len(value)}"
        )
    return value


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    """An immutable cron schedule under construction; start with a classmethod."""

    _task: str
    _timer: CronTimer
    _id: str | None = None
    _fill: timedelta = timedelta(0)
    _max_attempts: int | None = None
    _queue: str | None = None
    _priority: int | None = None
    _job_key: str | None = None
    _job_key_mode: JobKeyMode | None = None
    _payload: dict[str, Any] | None = None

    # -- schedules ---------------------------------------------------------

    @classmethod
    def every_minute(cls, task: str | HasIdentifier) -> Self:
        """Run at every minute (``* * * * *``)."""
        return cls(_task_identifier(task), _timer())

    @classmethod
    def every_n_minutes(cls, task: str | HasIdentifier, step: int) -> Self:
        """Run at minutes 0, step, 2*step, ... of every hour (``*/step * * * *``)."""
        step = check_int("step", step, 1, 59)
        return cls(_task_identifier(task), _timer(minutes=tuple(range(0, 60, step))))

    @classmethod
    def hourly_at(cls, task: str | HasIdentifier, minute: int) -> Self:
        """Run once an hour at ``minute``."""
        minute = check_int("minute", minute, 0, 59)
        return cls(_task_identifier(task), _timer(minutes=(minute,)))

    @classmethod
    def daily_at(cls, task: str | HasIdentifier, hour: int, minute: int) -> Self:
        """Run once a day at ``hour:minute``."""
        hour, minute = check_int("hour", hour, 0, 23), check_int("minute", minute, 0, 59)
        return cls(_task_identifier(task), _timer(minutes=(minute,), hours=(hour,)))

    @classmethod
    def weekly_on(
        cls, task: str | HasIdentifier, weekday: int | str | enum.Enum, hour: int, minute: int
    ) -> Self:
        """Run once a week; ``weekday`` is 0-6 with Sunday = 0 (7 also means Sunday) or a name."""
        dow = _weekday(weekday)
        hour, minute = check_int("hour", hour, 0, 23), check_int("minute", minute, 0, 59)
        timer = _timer(minutes=(minute,), hours=(hour,), dows=(dow,))
        return cls(_task_identifier(task), timer)

    @classmethod
    def monthly_on(cls, task: str | HasIdentifier, day: int, hour: int, minute: int) -> Self:
        """Run once a month on ``day`` (months shorter than ``day`` are skipped)."""
        day = check_int("day", day, 1, 31)
        hour, minute = check_int("hour", hour, 0, 23), check_int("minute", minute, 0, 59)
        timer = _timer(minutes=(minute,), hours=(hour,), days=(day,))
        return cls(_task_identifier(task), timer)

    @classmethod
    def yearly_on(
        cls, task: str | HasIdentifier, month: int, day: int, hour: int, minute: int
    ) -> Self:
        """Run once a year on ``month``/``day`` (29 February runs in leap years only)."""
        month = check_int("month", month, 1, 12)
        day = check_int(f"day (month {month})", day, 1, _LONGEST_MONTH[month - 1])
        hour, minute = check_int("hour", hour, 0, 23), check_int("minute", minute, 0, 59)
        timer = _timer(minutes=(minute,), hours=(hour,), days=(day,), months=(month,))
        return cls(_task_identifier(task), timer)

    @classmethod
    def from_expression(cls, task: str | HasIdentifier, expression: str) -> Self:
        """Use a five-field crontab expression such as ``"*/5 * * * *"``.

        Raises:
            CrontabError: if the expression is invalid (column = position in it).
        """
        if not isinstance(expression, str):
            raise ConfigurationError(f"expression must be a str, got {type(expression).__name__}")
        return cls(_task_identifier(task), parse_timer(expression))

    # -- options -----------------------------------------------------------

    def id(self, identifier: str) -> Self:
        """Name the item in ``_private_known_crontabs`` (default: the task identifier)."""
        return dataclasses.replace(self, _id=_text("id", identifier, None))

    def fill(self, period: timedelta) -> Self:
        """Backfill missed runs up to ``period`` old at startup (``CrontabFill.hours(1)``)."""
        if not isinstance(period, timedelta):
            raise ConfigurationError(f"fill must be a timedelta, got {type(period).__name__}")
        if period < timedelta(0):
            raise ConfigurationError(f"fill must not be negative, got {period}")
        return dataclasses.replace(self, _fill=period)

    def max_attempts(self, max_attempts: int) -> Self:
        """Job ``max_attempts`` (1-32767)."""
        value = check_int("max_attempts", max_attempts, 1, SMALLINT_MAX)
        return dataclasses.replace(self, _max_attempts=value)

    def queue(self, queue: str) -> Self:
        """Run jobs in the named serial queue."""
        return dataclasses.replace(self, _queue=_text("queue", queue, 128))

    def priority(self, priority: int) -> Self:
        """Job priority (-32768..32767; lower runs first)."""
        value = check_int("priority", priority, SMALLINT_MIN, SMALLINT_MAX)
        return dataclasses.replace(self, _priority=value)

    def job_key(self, job_key: str) -> Self:
        """Job key (1-512 characters)."""
        return dataclasses.replace(self, _job_key=_text("job_key", job_key, 512))

    def job_key_mode(self, mode: JobKeyMode) -> Self:
        """``"replace"`` (database default) or ``"preserve_run_at"``."""
        if mode not in JOB_KEY_MODES:
            raise ConfigurationError(
                f"job_key_mode must be 'replace' or 'preserve_run_at', got {mode!r}"
            )
        return dataclasses.replace(self, _job_key_mode=mode)

    def payload(self, payload: dict[str, Any] | msgspec.Struct | None) -> Self:
        """The job payload: a JSON-compatible dict or a msgspec Struct (None clears it)."""
        if payload is None:
            return dataclasses.replace(self, _payload=None)
        if not isinstance(payload, dict | msgspec.Struct):
            raise ConfigurationError(
                f"payload must be a dict or a msgspec.Struct, got {type(payload).__name__}"
            )
        try:
            # A JSON round trip now gives exactly what the database will store
            # (datetimes -> ISO strings, Structs -> dicts, tuples -> lists) and
            # makes a bad payload fail here rather than at the first tick.
            builtins = msgspec.to_builtins(payload, str_keys=True)
            plain = msgspec.json.decode(msgspec.json.encode(builtins))
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise ConfigurationError(f"payload is not JSON-serialisable: {exc}") from None
        if _has_non_finite(builtins):
            # msgspec would write null; the crontab reader rejects these too.
            raise ConfigurationError("payload contains Infinity or NaN, which JSON cannot store")
        if not isinstance(plain, dict):
            raise ConfigurationError("payload must encode to a JSON object")
        return dataclasses.replace(self, _payload=plain)

    # -- result ------------------------------------------------------------

    @property
    def expression(self) -> str:
        """The schedule as a five-field crontab expression."""
        return self._timer.expression

    def build(self) -> CronItem:
        """The finished, validated ``CronItem``."""
        return CronItem(
            identifier=self._id if self._id is not None else self._task,
            task=self._task,
            timer=self._timer,
            fill=self._fill,
            max_attempts=self._max_attempts,
            queue=self._queue,
            priority=self._priority,
            job_key=self._job_key,
            job_key_mode=self._job_key_mode,
            payload=self._payload,
        )
