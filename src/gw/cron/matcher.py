"""Does a cron timer fire at a given minute, and when does it fire next?

Port of graphile/worker src/cronMatcher.ts, plus a next-match search.

Matching reads the wall-clock fields of the datetime it is given, so the
caller picks the time zone: the runner passes UTC (Graphile's behaviour).
Seconds are ignored: a timer "matches" a whole minute.

Day rule (classic cron, as in Graphile): when both day-of-month and
day-of-week are restricted (not their full value sets), a day matches if
*either* matches; when only one is restricted, only that one is checked.

``next_match`` never walks minute by minute. In a fixed-offset zone (UTC,
``datetime.timezone``) it searches wall-clock fields directly, skipping whole
months, days and hours that cannot match. In a zone with DST (``zoneinfo``)
it runs the same wall-clock search from the current instant, jumps at most one
day at a time, and re-anchors at offset changes, so that skipped wall times
(spring forward) never match and repeated ones (fall back) match once per
occurrence, in instant order. That is exactly what ticking a UTC clock every
minute and calling ``matches(timer, tick.astimezone(zone))`` would produce.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import MAXYEAR, UTC, date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Final

from gw.cron._types import CronItem, CronTimer, month_days
from gw.errors import ConfigurationError, GwInternalError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = (
    "ceil_minute",
    "floor_minute",
    "iter_matches",
    "matches",
    "minutes_between",
    "next_match",
)

_SECOND: Final = timedelta(seconds=1)
_MINUTE: Final = timedelta(minutes=1)
_DAY: Final = timedelta(days=1)
# A satisfiable timer fires within 8 years (29 February); this is only a guard.
_MAX_SEARCH_YEARS: Final = 400
_MAX_ZONED_STEPS: Final = 400_000


def matches(item_or_timer: CronItem | CronTimer, dt: datetime) -> bool:
    """True if the timer fires in the minute of ``dt`` (wall-clock fields in dt's zone).

    Raises:
        ConfigurationError: if ``dt`` is naive.
    """
    timer = _timer_of(item_or_timer)
    _require_aware(dt, "dt")
    return (
        dt.minute in timer.minutes
        and dt.hour in timer.hours
        and dt.month in timer.months
        and _day_matches(timer, dt.year, dt.month, dt.day)
    )


def next_match(
    item_or_timer: CronItem | CronTimer, after: datetime, *, inclusive: bool = False
) -> datetime:
    """The first whole minute strictly after ``after`` at which the timer fires.

    With ``inclusive=True``, ``after`` itself is returned when it is a whole
    minute that matches. The result has ``after``'s tzinfo.

    Raises:
        ConfigurationError: if ``after`` is naive.
        OverflowError: if the next match would be after year 9999.
    """
    timer = _timer_of(item_or_timer)
    _require_aware(after, "after")
    tz = after.tzinfo
    if inclusive and after.second == 0 and after.microsecond == 0 and matches(timer, after):
        # A wall time skipped by a clock change does not exist, so it cannot fire.
        if isinstance(tz, timezone) or after.astimezone(UTC).astimezone(tz) == after:
            return after
    if isinstance(tz, timezone):
        start = after.replace(tzinfo=None, second=0, microsecond=0) + _MINUTE
        return _next_wall(timer, start).replace(tzinfo=tz)
    return _next_zoned(timer, after)


def iter_matches(
    item_or_timer: CronItem | CronTimer, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Yield every firing minute ``t`` with ``start <= t < end``, in order.

    Useful for backfill: ``iter_matches(item, now - item.fill, now)``.
    """
    _require_aware(end, "end")
    moment = next_match(item_or_timer, start, inclusive=True)
    while moment < end:
        yield moment
        moment = next_match(item_or_timer, moment)


def minutes_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Yield every whole UTC minute ``t`` with ``start <= t < end`` (``start`` rounded up).

    This is Graphile's backfill walk (``start - largest_fill`` rounded up, while
    ``< start``). Results carry ``start``'s tzinfo.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    moment = ceil_minute(start).astimezone(UTC)
    while moment < end:
        yield moment.astimezone(start.tzinfo)
        moment += _MINUTE


def floor_minute(dt: datetime) -> datetime:
    """``dt`` rounded down to a whole minute (computed on the UTC instant)."""
    _require_aware(dt, "dt")
    utc = dt.astimezone(UTC)
    return utc.replace(second=0, microsecond=0).astimezone(dt.tzinfo)


def ceil_minute(dt: datetime) -> datetime:
    """``dt`` rounded up to a whole minute; unchanged if it already is one."""
    floor = floor_minute(dt)
    if floor == dt:
        return dt
    return (floor.astimezone(UTC) + _MINUTE).astimezone(dt.tzinfo)


def _timer_of(item_or_timer: CronItem | CronTimer) -> CronTimer:
    if isinstance(item_or_timer, CronItem):
        return item_or_timer.timer
    if isinstance(item_or_timer, CronTimer):
        return item_or_timer
    raise TypeError(f"expected a CronItem or CronTimer, got {type(item_or_timer).__name__}")


def _require_aware(dt: datetime, name: str) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ConfigurationError(
            f"{name} must be timezone-aware (for example datetime.now(timezone.utc))"
        )


def _day_matches(timer: CronTimer, year: int, month: int, day: int) -> bool:
    dom, dow = timer.dom_restricted, timer.dow_restricted
    if dom and day in timer.days:
        return True
    if dow:
        # date.weekday() has Monday = 0; cron has Sunday = 0.
        return (date(year, month, day).weekday() + 1) % 7 in timer.dows
    return not dom


def _first_at_or_after(values: tuple[int, ...], value: int) -> int | None:
    index = bisect_left(values, value)
    return values[index] if index < len(values) else None


def _next_wall(timer: CronTimer, start: datetime) -> datetime:
    """First naive wall-clock minute >= ``start`` (naive, whole minute) that matches."""
    year, month, day, hour, minute = start.year, start.month, start.day, start.hour, start.minute
    first_hour, first_minute = timer.hours[0], timer.minutes[0]
    last_year = min(year + _MAX_SEARCH_YEARS, MAXYEAR)
    while year <= last_year:
        if month not in timer.months:
            next_month = _first_at_or_after(timer.months, month)
            if next_month is None:
                year, next_month = year + 1, timer.months[0]
            month, day, hour, minute = next_month, 1, first_hour, first_minute
            continue
        if day > month_days(year, month):
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day, hour, minute = 1, first_hour, first_minute
            continue
        if not _day_matches(timer, year, month, day):
            day, hour, minute = day + 1, first_hour, first_minute
            continue
        next_hour = _first_at_or_after(timer.hours, hour)
        if next_hour is None:
            day, hour, minute = day + 1, first_hour, first_minute
            continue
        if next_hour != hour:
            hour, minute = next_hour, first_minute
        next_minute = _first_at_or_after(timer.minutes, minute)
        if next_minute is None:
            hour, minute = hour + 1, first_minute
            continue
        return datetime(year, month, day, hour, next_minute)
    if last_year == MAXYEAR:
        raise OverflowError("the timer does not fire again before year 10000")
    raise GwInternalError(  # pragma: no cover - CronTimer rejects timers that never fire
        f"no match for '{timer.expression}' within {_MAX_SEARCH_YEARS} years"
    )


def _next_zoned(timer: CronTimer, after: datetime) -> datetime:
    """Next matching instant after ``after`` in its (DST-observing) zone.

    Invariant: no instant in (after, instant) has a matching whole-minute wall
    time. Instants are whole UTC seconds (tz offsets are whole seconds).
    """
    tz = after.tzinfo
    assert tz is not None  # checked by the caller
    after_utc = after.astimezone(UTC)
    instant = after_utc.replace(microsecond=0)
    target: datetime | None = None
    for _ in range(_MAX_ZONED_STEPS):
        local = instant.astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        if wall.second or wall.microsecond or instant <= after_utc:
            # Not on a whole wall minute (or not past ``after`` yet).
            instant, target = _next_wall_minute(instant, wall, tz), None
            continue
        if target is None:
            target = _next_wall(timer, wall)
        if target == wall:
            return local
        # Jump assuming the current offset holds; at most a day, so at most
        # one offset change can hide inside the jump.
        landing = instant + min(target - wall, _DAY)
        offset = local.utcoffset()
        if landing.astimezone(tz).utcoffset() == offset:
            # The walls jumped over did not match, so ``target`` still holds.
            instant = landing
        else:
            # Every wall time passed before the change was < target, so none
            # matched. After it, clocks forward would make the landing skip
            # existing wall times and clocks back would repeat ones earlier
            # than ``wall``; either way, rescan from the change itself.
            instant, target = _offset_change(instant, landing, tz), None
    raise GwInternalError(  # pragma: no cover - every step moves forward
        f"no match for '{timer.expression}' found in {after.tzinfo}"
    )


def _next_wall_minute(instant: datetime, wall: datetime, tz: tzinfo) -> datetime:
    """The next instant whose wall time is a whole minute, or the next offset change.

    ``wall`` is the wall time of ``instant``. The result is always later than
    ``instant`` and no whole wall minute is skipped on the way.
    """
    goal = wall.replace(second=0, microsecond=0) + _MINUTE
    landing = instant + (goal - wall)
    if landing.astimezone(tz).utcoffset() == instant.astimezone(tz).utcoffset():
        return landing
    # Wall times before the change are all short of ``goal``; start over
    # from the first instant on the new offset.
    return _offset_change(instant, landing, tz)


def _offset_change(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """First whole-second instant in (low, high] whose offset differs from low's."""
    offset = low.astimezone(tz).utcoffset()
    while high - low > _SECOND:
        middle = low + max((high - low) // 2 // _SECOND * _SECOND, _SECOND)
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high
