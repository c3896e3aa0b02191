"""Parsing of the values the command line accepts: durations, times, ids, JSON.

Each ``parse_*`` raises ``ValueError`` with a message that reads well after
cyclopts' "Invalid value for --option: " prefix; the ``Annotated`` aliases
plug them into command signatures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from cyclopts import Parameter, Token

from ..types import JOB_KEY_MODES, CleanupTask

__all__ = (
    "AuthMode",
    "CleanupTaskName",
    "Duration",
    "Flag",
    "JobId",
    "JobIds",
    "JobKeyModeName",
    "JsonPayload",
    "QueueLimits",
    "Since",
    "Time",
    "format_duration",
    "parse_cleanup_task",
    "parse_duration",
    "parse_job_id",
    "parse_job_key_mode",
    "parse_payload",
    "parse_queue_limit",
    "parse_since",
    "parse_time",
)

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
# Units in descending order, each at most once: 1d2h3m4s500ms. "m" must not
# swallow the "m" of "ms".
_DURATION = re.compile(
    rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m(?!s))?(?:{_NUMBER}s)?(?:{_NUMBER}ms)?"
)
DURATION_HELP = "e.g. 500ms, 30s, 5m, 2h, 1d or 1h30m; a bare number is seconds"


def parse_duration(text: str) -> float:
    """Seconds from ``500ms``, ``30s``, ``5m``, ``2h``, ``1d``, ``1h30m`` or ``2.5`` (seconds)."""
    value = text.strip().lower()
    if value.startswith("-") and parse_duration_or_none(value[1:]) is not None:
        raise ValueError(f"{text!r} is negative; durations are 0 or more ({DURATION_HELP})")
    if re.fullmatch(_NUMBER, value):
        return float(value)
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"{text!r} is not a duration ({DURATION_HELP})")
    seconds = 0.0
    for number, unit in zip(match.groups(), _UNITS.values(), strict=True):
        if number is not None:
            seconds += float(number) * unit
    return seconds


def parse_duration_or_none(text: str) -> float | None:
    """:func:`parse_duration`, or None for text that is not a duration."""
    try:
        return parse_duration(text)
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """The shortest of our duration spellings for ``seconds`` (for messages)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    out = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            count = int(rest // size)
            out.append(f"{count}{unit}")
            rest -= count * size
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time that names its offset (``Z`` or ``+HH:MM``), or ``+DURATION``
    from now (``+90s``, ``+1h``)."""
    value = text.strip()
    if value.startswith("+"):
        try:
            return datetime.now(UTC) + timedelta(seconds=parse_duration(value[1:]))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time from now; use + and a duration ({DURATION_HELP})"
            ) from None
        except OverflowError:
            raise ValueError(f"{text!r} is too far in the future") from None
    return _aware_time(
        text,
        f"{text!r} is not a time; use ISO 8601 such as 2026-01-02T03:04:05Z, "
        "or + and a duration from now such as +1h",
    )


def _aware_time(text: str, not_a_time: str) -> datetime:
    """``text`` as an ISO 8601 time naming its offset (``not_a_time`` if it is none)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(not_a_time) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{text!r} has no timezone; add Z or +HH:MM")
    return parsed


SINCE_HELP = "a duration ago such as 15m, 2h or 7d, or ISO 8601 with an offset"


def parse_since(text: str) -> datetime:
    """A moment in the past: a duration ago (``15m``, ``2h``, ``7d``) or an ISO 8601
    time that names its offset."""
    value = text.strip()
    seconds = parse_duration_or_none(value)
    if seconds is not None:
        try:
            return datetime.now(UTC) - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} is too far back") from None
    if value.startswith("-") and parse_duration_or_none(value[1:]) is not None:
        raise ValueError(f"{text!r} is negative; say how long ago ({SINCE_HELP})")
    return _aware_time(
        text,
        f"{text!r} is neither a duration nor a time; use {SINCE_HELP}, e.g. 2026-01-02T03:04:05Z",
    )


BIGINT_MAX = 2**63 - 1


def parse_job_id(text: str) -> int:
    """A job id: an integer from 1 to 2**63 - 1 (PostgreSQL's bigint)."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise ValueError(f"{text!r} is not a job id (ids are positive integers)")
    if len(value) > 19 or int(value) > BIGINT_MAX:
        raise ValueError(f"{text!r} is not a job id (ids go up to {BIGINT_MAX})")
    return int(value)


def parse_payload(text: str) -> Any:
    """A JSON value, or ``@FILE`` to read it from a file."""
    source = "not valid JSON"
    data: str | bytes = text
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            data = path.read_bytes()
        except OSError as ex:
            raise ValueError(f"cannot read {path}: {ex.strerror or ex}") from None
        source = f"{path} is not valid JSON"
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as ex:
        raise ValueError(f"{source} ({ex})") from None


def parse_job_key_mode(text: str) -> str:
    """replace, preserve_run_at or unsafe_dedupe (hyphens accepted too)."""
    value = text.strip().lower().replace("-", "_")
    if value not in JOB_KEY_MODES:
        raise ValueError(
            f"unknown job key mode {text!r}; expected replace, preserve_run_at or unsafe_dedupe"
        )
    return value


def parse_cleanup_task(text: str) -> CleanupTask:
    """A cleanup task name (underscores accepted too)."""
    value = text.strip().lower().replace("_", "-")
    try:
        return CleanupTask(value)
    except ValueError:
        names = ", ".join(t.value for t in CleanupTask)
        raise ValueError(f"unknown cleanup task {text!r}; expected one of {names}") from None


QUEUE_LIMIT_HELP = "e.g. emails=20/s, emails=100/1m or emails=20/s,burst=5"
_QUEUE_LIMIT = re.compile(
    r"(?P<name>[^=]+)=(?P<count>[^/]+)/(?P<per>[^,]+)(?:,burst=(?P<burst>.+))?"
)


def parse_queue_limit(text: str) -> tuple[str, Any]:
    """``NAME=COUNT/PERIOD[,burst=N]`` as a queue name and a :class:`gw.RateLimit`."""
    from ..core.limits import RateLimit
    from ..errors import ConfigurationError

    match = _QUEUE_LIMIT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a queue rate limit ({QUEUE_LIMIT_HELP})")
    name = match["name"].strip()
    per_text = match["per"].strip().lower()
    # A bare unit is one of it: 20/s, 100/m.
    try:
        per = parse_duration(f"1{per_text}" if per_text in _UNITS else per_text)
    except ValueError as ex:
        raise ValueError(f"{text!r}: the period {ex}") from None
    try:
        count = float(match["count"])
        burst = float(match["burst"]) if match["burst"] is not None else 1.0
    except ValueError:
        raise ValueError(f"{text!r} is not a queue rate limit ({QUEUE_LIMIT_HELP})") from None
    try:
        return name, RateLimit(count, per=per, burst=burst)
    except ConfigurationError as ex:
        raise ValueError(f"{text!r}: {ex}") from None


def _one(fn: Any) -> Any:
    def convert(type_: Any, tokens: Sequence[Token]) -> Any:
        return fn(tokens[0].value)

    return convert


def _each(fn: Any) -> Any:
    def convert(type_: Any, tokens: Sequence[Token]) -> Any:
        return [fn(t.value) for t in tokens]

    return convert


def _show_duration(value: Any) -> str:
    return format_duration(value) if isinstance(value, (int, float)) else str(value)


Duration = Annotated[
    float,
    Parameter(converter=_one(parse_duration), metavar="DURATION", show_default=_show_duration),
]
Flag = Annotated[bool, Parameter(negative="", show_default=False)]

AuthMode = Literal["basic", "bearer", "header", "none"]
"""How the admin server authenticates (gw admin --auth, gw worker --admin-auth)."""
Time = Annotated[datetime, Parameter(converter=_one(parse_time), metavar="TIME")]
Since = Annotated[datetime, Parameter(converter=_one(parse_since), metavar="WHEN")]
JobId = Annotated[int, Parameter(converter=_one(parse_job_id), metavar="ID")]
JobIds = Annotated[list[int], Parameter(converter=_each(parse_job_id), metavar="ID")]
JsonPayload = Annotated[Any, Parameter(converter=_one(parse_payload), metavar="JSON")]
JobKeyModeName = Annotated[str, Parameter(converter=_one(parse_job_key_mode), metavar="MODE")]
QueueLimits = Annotated[list[str], Parameter(metavar="NAME=RATE", negative="")]
"""Parsed by :func:`parse_queue_limit` in the command (one token per limit)."""
CleanupTaskName = Annotated[
    list[CleanupTask], Parameter(converter=_each(parse_cleanup_task), metavar="TASK")
]
