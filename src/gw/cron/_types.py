"""Value types for cron: the parsed timer, a schedulable cron item, fill helpers.

These are plain frozen msgspec Structs. ``__post_init__`` re-checks the
invariants the parser and the builder already enforce, so a hand-built item
cannot smuggle values that PostgreSQL would reject minutes later at tick time.
"""

from __future__ import annotations

import calendar
import re
from datetime import timedelta
from typing import Any, Final, Literal, final

import msgspec

from gw.errors import ConfigurationError

__all__ = (
    "DAY_OF_MONTH",
    "DAY_OF_WEEK",
    "FIELDS",
    "HOUR",
    "JOB_KEY_MODES",
    "MAX_JOB_KEY_LENGTH",
    "MAX_QUEUE_NAME_LENGTH",
    "MAX_TASK_IDENTIFIER_LENGTH",
    "MINUTE",
    "MONTH",
    "SMALLINT_MAX",
    "SMALLINT_MIN",
    "CronItem",
    "CronTimer",
    "CrontabFill",
    "FieldSpec",
    "JobKeyMode",
    "check_int",
    "month_days",
    "parse_time_phrase",
)

JobKeyMode = Literal["replace", "preserve_run_at"]
JOB_KEY_MODES: Final = ("replace", "preserve_run_at")

# Limits imposed by the Graphile schema (smallint columns, length checks).
SMALLINT_MIN: Final = -32768
SMALLINT_MAX: Final = 32767
MAX_TASK_IDENTIFIER_LENGTH: Final = 128
MAX_QUEUE_NAME_LENGTH: Final = 128
MAX_JOB_KEY_LENGTH: Final = 512


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Name and inclusive value range of one of the five time fields."""

    name: str
    low: int
    high: int

    @property
    def full(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))


MINUTE: Final = FieldSpec(name="minute", low=0, high=59)
HOUR: Final = FieldSpec(name="hour", low=0, high=23)
DAY_OF_MONTH: Final = FieldSpec(name="day-of-month", low=1, high=31)
MONTH: Final = FieldSpec(name="month", low=1, high=12)
# Stored range is 0-6 (Sunday = 0); the parser also accepts 7 for Sunday.
DAY_OF_WEEK: Final = FieldSpec(name="day-of-week", low=0, high=6)
FIELDS: Final = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)

# Longest each month can be; February counts its leap-year length.
_MONTH_MAX_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def check_int(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else raise ConfigurationError."""
    # bool is an int subclass, but hour=True is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _format_field(values: tuple[int, ...], spec: FieldSpec) -> str:
    """Render allowed values as the shortest usual crontab spelling."""
    if values == spec.full:
        return "*"
    if len(values) > 1 and values[0] == spec.low:
        step = values[1] - values[0]
        if values == tuple(range(spec.low, spec.high + 1, step)):
            return f"*/{step}"
    parts: list[str] = []
    run_start = prev = values[0]
    for value in (*values[1:], None):
        if value is not None and value == prev + 1:
            prev = value
            continue
        if prev - run_start >= 2:
            parts.append(f"{run_start}-{prev}")
        else:
            parts.extend(str(v) for v in range(run_start, prev + 1))
        if value is not None:
            run_start = prev = value
    return ",".join(parts)


class CronTimer(msgspec.Struct, frozen=True, kw_only=True):
    """The five time fields of a cron schedule, as sorted tuples of allowed values.

    ``dows`` uses 0-6 with Sunday = 0 (a crontab ``7`` is stored as ``0``).
    Build one with :func:`gw.cron.parse_timer` or the :class:`gw.cron.Cron`
    builder; direct construction must pass sorted, duplicate-free tuples.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    dows: tuple[int, ...]

    def __post_init__(self) -> None:
        for spec, values in zip(FIELDS, self._fields(), strict=True):
            if not values:
                raise ConfigurationError(f"{spec.name} must allow at least one value")
            if list(values) != sorted(set(values)):
                raise ConfigurationError(f"{spec.name} values must be sorted and unique")
            for value in values:
                check_int(f"{spec.name} value", value, spec.low, spec.high)
        if self.dom_restricted and not self.dow_restricted:
            # Only the day of month decides the day, so some (month, day)
            # pair must exist in the calendar or the item would never run.
            if not any(d <= _MONTH_MAX_DAYS[m - 1] for m in self.months for d in self.days):
                raise ConfigurationError(
                    f"schedule '{self.expression}' never runs: no month in it has "
                    f"day {'/'.join(map(str, self.days))}"
                )

    def _fields(self) -> tuple[tuple[int, ...], ...]:
        return (self.minutes, self.hours, self.days, self.months, self.dows)

    @property
    def dom_restricted(self) -> bool:
        """True when the day-of-month field is not the full 1-31 set."""
        # Graphile decides "restricted" by the value set, not by whether the
        # field was spelled '*': '1-31' counts as unrestricted too.
        return len(self.days) != 31

    @property
    def dow_restricted(self) -> bool:
        """True when the day-of-week field is not the full 0-6 set."""
        return len(self.dows) != 7

    @property
    def expression(self) -> str:
        """A canonical five-field crontab spelling of this timer."""
        return " ".join(
            _format_field(values, spec) for spec, values in zip(FIELDS, self._fields(), strict=True)
        )


class CronItem(msgspec.Struct, frozen=True, kw_only=True):
    """One schedulable cron entry: which task to enqueue, when, and with what job options.

    ``identifier`` names the item in ``_private_known_crontabs`` (defaults to
    the task identifier in the crontab and the builder). ``fill`` is the
    backfill period (zero = never backfill). ``job_key_mode`` None means the
    database default (``replace``). ``payload`` is the JSON object given on the
    line; the runner adds ``_cron`` to it per tick.
    """

    identifier: str
    task: str
    timer: CronTimer
    fill: timedelta = timedelta(0)
    max_attempts: int | None = None
    queue: str | None = None
    priority: int | None = None
    job_key: str | None = None
    job_key_mode: JobKeyMode | None = None
    payload: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.identifier:
            raise ConfigurationError("identifier must not be empty")
        _check_text("task identifier", self.task, MAX_TASK_IDENTIFIER_LENGTH)
        if self.fill < timedelta(0):
            raise ConfigurationError(f"fill must not be negative, got {self.fill}")
        if self.max_attempts is not None:
            check_int("max_attempts", self.max_attempts, 1, SMALLINT_MAX)
        if self.priority is not None:
            check_int("priority", self.priority, SMALLINT_MIN, SMALLINT_MAX)
        if self.queue is not None:
            _check_text("queue name", self.queue, MAX_QUEUE_NAME_LENGTH)
        if self.job_key is not None:
            _check_text("job key", self.job_key, MAX_JOB_KEY_LENGTH)
        if self.job_key_mode is not None and self.job_key_mode not in JOB_KEY_MODES:
            raise ConfigurationError(
                f"job_key_mode must be 'replace' or 'preserve_run_at', got {self.job_key_mode!r}"
            )
        if self.payload is not None and not isinstance(self.payload, dict):
            raise ConfigurationError(
                f"payload must be a dict or None, got {type(self.payload).__name__}"
            )


def _check_text(name: str, value: object, max_length: int) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, got {type(value).__name__}")
    if not 1 <= len(value) <= max_length:
        raise ConfigurationError(
            f"{name} must be 1 to {max_length} characters long, got {len(value)}"
        )


_PHRASE_PART: Final = re.compile(r"([0-9]+)([smhdw])")
_PHRASE_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Far beyond any sensible backfill, and keeps timedelta() from overflowing.
_MAX_FILL_SECONDS: Final = 100 * 366 * 86400


def parse_time_phrase(phrase: str) -> timedelta:
    """Parse a time phrase such as ``4w3d2h1m30s``; raise ValueError saying why not."""
    if not phrase:
        raise ValueError("it is empty")
    pos = 0
    seconds = 0
    while pos < len(phrase):
        match = _PHRASE_PART.match(phrase, pos)
        if match is None:
            raise ValueError(f"did not understand {phrase[pos:]!r}")
        digits = match.group(1).lstrip("0")
        # Cap before int() so absurd digit strings cannot overflow timedelta.
        if len(digits) > 12:
            raise ValueError("it is longer than 100 years")
        seconds += int(digits or "0") * _PHRASE_UNITS[match.group(2)]
        if seconds > _MAX_FILL_SECONDS:
            raise ValueError("it is longer than 100 years")
        pos = match.end()
    return timedelta(seconds=seconds)


@final
class CrontabFill:
    """Backfill periods, mirroring RS ``CrontabFill``; every helper returns a ``timedelta``."""

    def __init__(self) -> None:
        raise TypeError("CrontabFill is a namespace; use CrontabFill.hours(1) and friends")

    @staticmethod
    def seconds(n: int) -> timedelta:
        return timedelta(seconds=check_int("fill seconds", n, 0, _MAX_FILL_SECONDS))

    @staticmethod
    def minutes(n: int) -> timedelta:
        return timedelta(minutes=check_int("fill minutes", n, 0, _MAX_FILL_SECONDS // 60))

    @staticmethod
    def hours(n: int) -> timedelta:
        return timedelta(hours=check_int("fill hours", n, 0, _MAX_FILL_SECONDS // 3600))

    @staticmethod
    def days(n: int) -> timedelta:
        return timedelta(days=check_int("fill days", n, 0, _MAX_FILL_SECONDS // 86400))

    @staticmethod
    def weeks(n: int) -> timedelta:
        return timedelta(weeks=check_int("fill weeks", n, 0, _MAX_FILL_SECONDS // 604800))

    @staticmethod
    def parse(phrase: str) -> timedelta:
        """Parse a crontab time phrase such as ``4w3d2h1m30s``."""
        try:
            return parse_time_phrase(phrase)
        except ValueError as exc:
            raise ConfigurationError(
                f"fill {phrase!r} is not a time phrase like '4w3d2h1m30s': {exc}"
            ) from None


def month_days(year: int, month: int) -> int:
    """Number of days in ``month`` of ``year``."""
    return calendar.monthrange(year, month)[1]
