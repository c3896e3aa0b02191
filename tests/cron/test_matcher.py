"""Matching rules and the next-match search, checked against brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from gw.cron import (
    CronTimer,
    ceil_minute,
    floor_minute,
    iter_matches,
    matches,
    minutes_between,
    next_match,
    parse_crontab,
    parse_timer,
)
from gw.errors import ConfigurationError

try:
    from zoneinfo import ZoneInfo

    ZoneInfo("America/New_York")
    HAVE_TZDATA = True
except Exception:  # no system tz database
    HAVE_TZDATA = False

needs_tzdata = pytest.mark.skipif(not HAVE_TZDATA, reason="no IANA time zone database")
MINUTE = timedelta(minutes=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# -- matches ----------------------------------------------------------------


def test_fields_must_all_match() -> None:
    timer = parse_timer("30 8-10 * 6 *")
    assert matches(timer, utc(2024, 6, 3, 9, 30))
    assert not matches(timer, utc(2024, 6, 3, 9, 31))
    assert not matches(timer, utc(2024, 6, 3, 11, 30))
    assert not matches(timer, utc(2024, 7, 3, 9, 30))


def test_seconds_are_ignored() -> None:
    assert matches(parse_timer("30 8 * * *"), utc(2024, 6, 3, 8, 30, 59, 999999))


def test_accepts_cron_items() -> None:
    item = parse_crontab("0 0 * * * t")[0]
    assert matches(item, utc(2024, 1, 1))
    assert next_match(item, utc(2024, 1, 1)) == utc(2024, 1, 2)


def test_dom_and_dow_restricted_means_either() -> None:
    # Friday the 13th rule: every 13th and every Friday.
    timer = parse_timer("0 0 13 * 5")
    assert matches(timer, utc(2024, 9, 13))  # Friday 13th
    assert matches(timer, utc(2024, 2, 13))  # Tuesday 13th
    assert matches(timer, utc(2024, 2, 16))  # Friday 16th
    assert not matches(timer, utc(2024, 2, 15))  # Thursday 15th


def test_only_dom_restricted() -> None:
    timer = parse_timer("0 0 13 * *")
    assert matches(timer, utc(2024, 2, 13))
    assert not matches(timer, utc(2024, 2, 16))


def test_only_dow_restricted() -> None:
    timer = parse_timer("0 0 * * 5")
    assert matches(timer, utc(2024, 2, 16))
    assert not matches(timer, utc(2024, 2, 13))


def test_full_ranges_count_as_unrestricted() -> None:
    # '1-31' is the full set, so only the day of week decides (no OR).
    timer = parse_timer("0 0 1-31 * 1")
    assert matches(timer, utc(2024, 2, 12))  # Monday
    assert not matches(timer, utc(2024, 2, 13))
    # '0-7' is the full set, so only the day of month decides.
    timer = parse_timer("0 0 13 * 0-7")
    assert matches(timer, utc(2024, 2, 13))
    assert not matches(timer, utc(2024, 2, 12))


@pytest.mark.parametrize("dow", ["0", "7", "0,7", "6-7"])
def test_sunday_is_0_or_7(dow: str) -> None:
    timer = parse_timer(f"0 0 * * {dow}")
    assert matches(timer, utc(2024, 2, 11))  # Sunday
    assert not matches(timer, utc(2024, 2, 12))  # Monday


def test_evaluates_in_the_zone_of_the_datetime() -> None:
    timer = parse_timer("30 8 * * 1")
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2024, 2, 12, 8, 30, tzinfo=plus_two)  # Monday 06:30 UTC
    assert matches(timer, moment)
    assert not matches(timer, moment.astimezone(UTC))
    # Crossing midnight changes the weekday too.
    late = datetime(2024, 2, 12, 0, 30, tzinfo=plus_two)  # Sunday 22:30 UTC
    assert matches(parse_timer("30 0 * * 1"), late)
    assert matches(parse_timer("30 22 * * 0"), late.astimezone(UTC))


def test_naive_datetimes_are_rejected() -> None:
    timer = parse_timer("* * * * *")
    naive = datetime(2024, 1, 1)
    with pytest.raises(ConfigurationError, match="dt must be timezone-aware"):
        matches(timer, naive)
    with pytest.raises(ConfigurationError, match="after must be timezone-aware"):
        next_match(timer, naive)
    with pytest.raises(ConfigurationError, match="end must be timezone-aware"):
        list(minutes_between(utc(2024, 1, 1), naive))
    with pytest.raises(ConfigurationError, match="start must be timezone-aware"):
        list(minutes_between(naive, utc(2024, 1, 1)))
    with pytest.raises(ConfigurationError, match="end must be timezone-aware"):
        list(iter_matches(timer, utc(2024, 1, 1), naive))


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="expected a CronItem or CronTimer, got str"):
        matches("* * * * *", utc(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dt must be a datetime, got date"):
        matches(parse_timer("* * * * *"), utc(2024, 1, 1).date())  # type: ignore[arg-type]


# -- next_match -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 1)),
        ("* * * * *", utc(2024, 1, 1, 0, 0, 30), utc(2024, 1, 1, 0, 1)),
        ("*/15 * * * *", utc(2024, 1, 1, 0, 50), utc(2024, 1, 1, 1, 0)),
        ("0 8 * * *", utc(2024, 1, 1, 8, 0), utc(2024, 1, 2, 8, 0)),
        ("0 8 * * *", utc(2024, 12, 31, 9, 0), utc(2025, 1, 1, 8, 0)),
        ("0 0 31 * *", utc(2024, 1, 31, 1, 0), utc(2024, 3, 31)),
        ("0 0 29 2 *", utc(2024, 3, 1), utc(2028, 2, 29)),
        ("0 0 29 2 *", utc(2096, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
        ("0 0 29 2 1", utc(2024, 3, 1), utc(2025, 2, 3)),  # OR rule: any Monday in February
        ("0 12 * * 0", utc(2024, 2, 12), utc(2024, 2, 18, 12)),
        ("59 23 31 12 *", utc(2024, 1, 1), utc(2024, 12, 31, 23, 59)),
    ],
)
def test_next_match_examples(expression: str, after: datetime, expected: datetime) -> None:
    assert next_match(parse_timer(expression), after) == expected


def test_next_match_inclusive() -> None:
    timer = parse_timer("0 8 * * *")
    at = utc(2024, 1, 1, 8)
    assert next_match(timer, at, inclusive=True) == at
    assert next_match(timer, at + timedelta(seconds=1), inclusive=True) == utc(2024, 1, 2, 8)
    assert next_match(timer, at - MINUTE, inclusive=True) == at


def test_next_match_keeps_fixed_offset_zone() -> None:
    zone = timezone(timedelta(hours=-3, minutes=-30))
    result = next_match(parse_timer("0 8 * * *"), datetime(2024, 1, 1, 9, tzinfo=zone))
    assert result == datetime(2024, 1, 2, 8, tzinfo=zone)
    assert result.tzinfo is zone


def test_next_match_near_the_end_of_time() -> None:
    timer = parse_timer("0 0 1 1 *")
    assert next_match(timer, utc(9998, 6, 1)) == utc(9999, 1, 1)
    with pytest.raises(OverflowError, match="before year 10000"):
        next_match(timer, utc(9999, 6, 1))


def brute_force_next(timer: CronTimer, after: datetime) -> datetime:
    """Reference answer: walk day by day, then minute by minute, using matches()."""
    moment = after.replace(second=0, microsecond=0) + MINUTE
    while True:
        # Whether a day matches doesn't depend on the time of day, so probe
        # one allowed time; skip the whole day if that fails.
        probe = moment.replace(hour=timer.hours[0], minute=timer.minutes[0])
        if matches(timer, probe):
            while moment.day == probe.day:
                if matches(timer, moment):
                    return moment
                moment += MINUTE
        else:
            moment = moment.replace(hour=0, minute=0) + timedelta(days=1)


field_values = {
    "minutes": st.sets(st.integers(0, 59), min_size=1),
    "hours": st.sets(st.integers(0, 23), min_size=1),
    "days": st.sets(st.integers(1, 31), min_size=1),
    "months": st.sets(st.integers(1, 12), min_size=1),
    "dows": st.sets(st.integers(0, 6), min_size=1),
}


@st.composite
def timers(draw: st.DrawFn) -> CronTimer:
    values: dict[str, tuple[int, ...]] = {}
    for name, strategy in field_values.items():
        full = {"minutes": 60, "hours": 24, "days": 31, "months": 12, "dows": 7}[name]
        low = 1 if name in ("days", "months") else 0
        # Mix sparse sets with the full set so both sides of the DOM/DOW rule occur.
        chosen = draw(st.one_of(strategy, st.just(set(range(low, low + full)))))
        values[name] = tuple(sorted(chosen))
    try:
        return CronTimer(**values)
    except ConfigurationError:
        assume(False)
        raise


datetimes = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))


@given(timers(), datetimes)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(parse_timer("0 0 29 2 *"), datetime(2096, 3, 1))
@example(parse_timer("0 0 31 * 1"), datetime(2024, 2, 1))
def test_next_match_equals_brute_force_utc(timer: CronTimer, naive: datetime) -> None:
    after = naive.replace(tzinfo=UTC)
    expected = brute_force_next(timer, after)
    assert next_match(timer, after) == expected
    assert next_match(timer, expected - timedelta(microseconds=1)) == expected
    assert next_match(timer, expected, inclusive=True) == expected


@given(timers(), datetimes, st.integers(-14 * 60, 14 * 60))
@settings(max_examples=100, deadline=None)
def test_next_match_equals_brute_force_fixed_offset(
    timer: CronTimer, naive: datetime, offset_minutes: int
) -> None:
    after = naive.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert next_match(timer, after) == brute_force_next(timer, after)


# -- zones with daylight saving time -----------------------------------------


def instant_scan(timer: CronTimer, after: datetime, limit: timedelta) -> datetime | None:
    """Reference for DST zones: tick a UTC clock each minute, match on local time."""
    zone = after.tzinfo
    tick = floor_minute(after.astimezone(UTC)) + MINUTE
    end = tick + limit
    while tick < end:
        local = tick.astimezone(zone)
        if local.second == 0 and matches(timer, local):
            return local
        tick += MINUTE
    return None


# (zone, a moment near one of its offset changes)
TRANSITIONS = [
    ("America/New_York", datetime(2024, 3, 10, 2)),  # spring forward 1h
    ("America/New_York", datetime(2024, 11, 3, 1)),  # fall back 1h
    ("Europe/London", datetime(2024, 3, 31, 1)),
    ("Europe/London", datetime(2024, 10, 27, 1)),
    ("Australia/Lord_Howe", datetime(2024, 4, 7, 2)),  # back 30 minutes
    ("Australia/Lord_Howe", datetime(2024, 10, 6, 2)),  # forward 30 minutes
    ("America/Sao_Paulo", datetime(2018, 11, 4, 0)),  # midnight skipped
    ("America/Sao_Paulo", datetime(2019, 2, 16, 23)),  # 23:00 repeated
    ("Pacific/Apia", datetime(2011, 12, 29, 23)),  # 30 December 2011 skipped
    ("Asia/Kolkata", datetime(2024, 1, 1)),  # no DST at all
]


@st.composite
def dense_timers(draw: st.DrawFn) -> CronTimer:
    """Timers that fire within a day or so, so a short instant scan can judge them."""
    minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=6))
    hours = draw(st.one_of(st.sets(st.integers(0, 23), min_size=1), st.just(set(range(24)))))
    return CronTimer(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(range(1, 32)),
        months=tuple(range(1, 13)),
        dows=tuple(range(7)),
    )


@needs_tzdata
@given(
    dense_timers(),
    st.sampled_from(TRANSITIONS),
    # Mostly within the changed hours themselves, where the traps are.
    st.one_of(st.integers(-180, 180), st.integers(-36 * 60, 36 * 60)),
    st.integers(0, 59),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_next_match_in_dst_zones_equals_instant_scan(
    timer: CronTimer,
    transition: tuple[str, datetime],
    shift_minutes: int,
    second: int,
    fold: bool,
) -> None:
    name, near = transition
    zone = ZoneInfo(name)
    wall = near + timedelta(minutes=shift_minutes, seconds=second)
    after = wall.replace(tzinfo=zone, fold=int(fold))
    expected = instant_scan(timer, after, timedelta(days=3))
    assert expected is not None  # dense timers fire at least daily
    result = next_match(timer, after)
    # Same-zone comparison ignores fold, so compare the instants as well.
    assert result.astimezone(UTC) == expected.astimezone(UTC)
    assert (result.replace(tzinfo=None), result.fold) == (
        expected.replace(tzinfo=None),
        expected.fold,
    )
    assert result.tzinfo is zone


@needs_tzdata
@pytest.mark.parametrize(("name", "near"), TRANSITIONS)
@pytest.mark.parametrize(
    "expression", ["*/7 * * * *", "10,50 1 * * *", "30 0,1,2,23 * * *", "0 * * * *", "45 2 * * *"]
)
def test_next_match_around_offset_changes_grid(name: str, near: datetime, expression: str) -> None:
    """Every 10 minutes across each change, both folds, against the instant scan."""
    zone = ZoneInfo(name)
    timer = parse_timer(expression)
    for step in range(-12, 13):
        for fold in (0, 1):
            wall = near + timedelta(minutes=10 * step, seconds=5)
            after = wall.replace(tzinfo=zone, fold=fold)
            expected = instant_scan(timer, after, timedelta(days=3))
            assert expected is not None
            result = next_match(timer, after)
            assert result.astimezone(UTC) == expected.astimezone(UTC), (after, fold)
            assert result.fold == expected.fold


@needs_tzdata
def test_repeated_wall_time_fires_twice_and_skipped_never() -> None:
    zone = ZoneInfo("America/New_York")
    timer = parse_timer("30 1 * * *")
    first = next_match(timer, datetime(2024, 11, 3, tzinfo=zone))
    second = next_match(timer, first)
    assert (first.fold, second.fold) == (0, 1)
    # Same-zone subtraction is wall-clock in Python; compare instants.
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert next_match(timer, second) == datetime(2024, 11, 4, 1, 30, tzinfo=zone)
    skipped = parse_timer("30 2 * * *")
    gap = datetime(2024, 3, 10, 2, 30, tzinfo=zone)  # does not exist
    assert next_match(skipped, gap, inclusive=True) == datetime(2024, 3, 11, 2, 30, tzinfo=zone)
    assert next_match(timer, first, inclusive=True).fold == 0
    assert next_match(timer, second, inclusive=True).fold == 1
    assert next_match(skipped, datetime(2024, 3, 10, tzinfo=zone)) == datetime(
        2024, 3, 11, 2, 30, tzinfo=zone
    )


@needs_tzdata
@pytest.mark.parametrize(
    ("zone_name", "after"),
    [
        ("Europe/Paris", datetime(2024, 3, 2)),
        ("America/New_York", datetime(2024, 10, 30)),
        ("Australia/Sydney", datetime(2024, 3, 1)),
    ],
)
def test_rare_timers_in_dst_zones(zone_name: str, after: datetime) -> None:
    zone = ZoneInfo(zone_name)
    timer = parse_timer("15 2 29 2 *")
    result = next_match(timer, after.replace(tzinfo=zone))
    assert result.replace(tzinfo=None) == datetime(2028, 2, 29, 2, 15)


@needs_tzdata
def test_zone_with_seconds_in_its_offset() -> None:
    # Amsterdam used +00:19:32 until 1937; walls then are off the UTC minute grid.
    zone = ZoneInfo("Europe/Amsterdam")
    after = datetime(1930, 6, 1, 12, 0, tzinfo=zone)
    result = next_match(parse_timer("0 13 * * *"), after)
    assert result.replace(tzinfo=None) == datetime(1930, 6, 1, 13, 0)
    assert result.utcoffset() == timedelta(hours=1, minutes=19, seconds=32)


@needs_tzdata
@pytest.mark.parametrize("expression", ["*/7 * * * *", "0 0 * * *", "1 0 * * *", "59 23 * * *"])
def test_offset_change_in_a_zone_with_seconds_in_its_offset(expression: str) -> None:
    # On 1 July 1937 Amsterdam went from +01:19:32 to +01:20, so wall minutes
    # before and after the change sit on different seconds of the UTC clock.
    zone = ZoneInfo("Europe/Amsterdam")
    timer = parse_timer(expression)
    for minutes in range(-30, 31, 3):
        after = datetime(1937, 7, 1, tzinfo=zone) + timedelta(minutes=minutes)
        # Reference: tick a UTC clock every second, match whole local minutes.
        tick = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        while not (tick.astimezone(zone).second == 0 and matches(timer, tick.astimezone(zone))):
            tick += timedelta(seconds=1)
        assert next_match(timer, after).astimezone(UTC) == tick, after


class StepZone(tzinfo):
    """A made-up zone with one offset change at an arbitrary second (PEP 495 folds)."""

    def __init__(self, change: datetime, before: timedelta, after: timedelta) -> None:
        self.change, self.before, self.after = change, before, after  # change: naive UTC

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        naive = dt.replace(tzinfo=None, fold=0)
        early_ok = naive - self.before < self.change
        late_ok = naive - self.after >= self.change
        if early_ok and late_ok:  # repeated wall time
            return self.after if dt.fold else self.before
        if early_ok or late_ok:
            return self.before if early_ok else self.after
        return self.before if dt.fold == 0 else self.after  # skipped wall time

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "STEP"

    def fromutc(self, dt: datetime) -> datetime:
        naive = dt.replace(tzinfo=None)
        if naive < self.change:
            return (naive + self.before).replace(tzinfo=self)
        local = naive + self.after
        repeated = local - self.before < self.change
        return local.replace(tzinfo=self, fold=int(repeated))


offsets = st.integers(-3 * 3600, 3 * 3600).map(lambda s: timedelta(seconds=s))


@given(
    st.sampled_from(["* * * * *", "*/3 * * * *", "0,20,40 * * * *", "7 * * * *"]),
    st.integers(0, 86399),
    offsets,
    offsets,
    st.integers(-3 * 3600, 3 * 3600),
    st.booleans(),
)
@settings(max_examples=150, deadline=None)
@example("* * * * *", 43210, timedelta(0), timedelta(seconds=45), -5, False)
def test_next_match_across_arbitrary_offset_changes(
    expression: str,
    change_second: int,
    before: timedelta,
    after_offset: timedelta,
    start_shift: int,
    fold: bool,
) -> None:
    zone = StepZone(datetime(2024, 5, 1) + timedelta(seconds=change_second), before, after_offset)
    timer = parse_timer(expression)
    start = (zone.change + timedelta(seconds=start_shift)).replace(tzinfo=UTC).astimezone(zone)
    start = start.replace(fold=int(fold)) if fold else start
    # Reference: tick a UTC clock every second, match whole local minutes.
    tick = start.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while not (tick.astimezone(zone).second == 0 and matches(timer, tick.astimezone(zone))):
        tick += timedelta(seconds=1)
    assert next_match(timer, start).astimezone(UTC) == tick


# -- iteration helpers ------------------------------------------------------


def test_iter_matches() -> None:
    timer = parse_timer("*/20 0 * * *")
    found = list(iter_matches(timer, utc(2024, 1, 1, 0, 20), utc(2024, 1, 2, 0, 20)))
    assert found == [
        utc(2024, 1, 1, 0, 20),
        utc(2024, 1, 1, 0, 40),
        utc(2024, 1, 2, 0, 0),
    ]
    assert list(iter_matches(timer, utc(2024, 1, 1, 1), utc(2024, 1, 1, 23))) == []


def test_minutes_between_rounds_start_up_and_excludes_end() -> None:
    start = utc(2024, 1, 1, 10, 0, 30)
    assert list(minutes_between(start, utc(2024, 1, 1, 10, 3))) == [
        utc(2024, 1, 1, 10, 1),
        utc(2024, 1, 1, 10, 2),
    ]
    exact = utc(2024, 1, 1, 10)
    assert list(minutes_between(exact, exact + 2 * MINUTE)) == [exact, exact + MINUTE]
    assert list(minutes_between(exact, exact)) == []


def test_minutes_between_backfill_walk() -> None:
    # Graphile's backfill: from start - fill rounded up, while < start.
    start = utc(2024, 1, 1, 12, 0, 42)
    minutes = list(minutes_between(start - timedelta(hours=1), start))
    assert len(minutes) == 60
    assert minutes[0] == utc(2024, 1, 1, 11, 1)
    assert minutes[-1] == utc(2024, 1, 1, 12, 0)


def test_minutes_between_keeps_start_zone() -> None:
    zone: tzinfo = timezone(timedelta(hours=5, minutes=30))
    start = datetime(2024, 1, 1, 10, 0, 10, tzinfo=zone)
    result = list(minutes_between(start, start + 2 * MINUTE))
    assert [m.tzinfo for m in result] == [zone, zone]
    assert result[0] == datetime(2024, 1, 1, 10, 1, tzinfo=zone)


def test_floor_and_ceil_minute() -> None:
    moment = utc(2024, 1, 1, 10, 5, 7, 3)
    assert floor_minute(moment) == utc(2024, 1, 1, 10, 5)
    assert ceil_minute(moment) == utc(2024, 1, 1, 10, 6)
    whole = utc(2024, 1, 1, 10, 5)
    assert floor_minute(whole) == ceil_minute(whole) == whole
    assert ceil_minute(utc(2024, 12, 31, 23, 59, 1)) == utc(2025, 1, 1)
