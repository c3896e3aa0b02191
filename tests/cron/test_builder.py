"""The typed Cron builder, CrontabFill and the value types' own validation."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import gw.cron
from gw.cron import Cron, CronItem, CrontabFill, CronTimer, matches, parse_crontab, parse_timer
from gw.errors import ConfigurationError, CrontabError


class SendEmail:
    identifier = "send_email"


class Payload(msgspec.Struct):
    to: str
    when: datetime


class Weekday(enum.IntEnum):  # shaped like Python 3.12's calendar.Day (Monday = 0)
    MONDAY = 0
    TUESDAY = 1
    SUNDAY = 6


# -- schedules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "line"),
    [
        (Cron.every_minute("t"), "* * * * * t"),
        (Cron.every_n_minutes("t", 1), "* * * * * t"),
        (Cron.every_n_minutes("t", 5), "*/5 * * * * t"),
        (Cron.every_n_minutes("t", 59), "0,59 * * * * t"),
        (Cron.hourly_at("t", 15), "15 * * * * t"),
        (Cron.daily_at("t", 8, 30), "30 8 * * * t"),
        (Cron.weekly_on("t", 0, 9, 0), "0 9 * * 0 t"),
        (Cron.weekly_on("t", 7, 9, 0), "0 9 * * 7 t"),
        (Cron.weekly_on("t", "monday", 9, 0), "0 9 * * 1 t"),
        (Cron.weekly_on("t", " Sat ", 9, 0), "0 9 * * 6 t"),
        (Cron.weekly_on("t", "SUNDAY", 9, 0), "0 9 * * 0 t"),
        (Cron.weekly_on("t", Weekday.MONDAY, 9, 0), "0 9 * * 1 t"),
        (Cron.weekly_on("t", Weekday.SUNDAY, 9, 0), "0 9 * * 0 t"),
        (Cron.monthly_on("t", 31, 0, 0), "0 0 31 * * t"),
        (Cron.yearly_on("t", 2, 29, 12, 0), "0 12 29 2 * t"),
        (Cron.yearly_on("t", 12, 31, 23, 59), "59 23 31 12 * t"),
        (Cron.from_expression("t", "*/5 8-18 * * 1-5"), "*/5 8-18 * * 1-5 t"),
    ],
)
def test_schedules_equal_crontab_lines(cron: Cron, line: str) -> None:
    assert cron.build() == parse_crontab(line)[0]
    assert cron.expression == parse_timer(line.rsplit(" ", 1)[0]).expression


def test_rs_readme_example() -> None:
    item = Cron.daily_at(SendEmail(), 8, 0).fill(CrontabFill.hours(1)).build()
    assert item == parse_crontab("0 8 * * * send_email ?fill=1h")[0]
    assert matches(item, datetime(2024, 5, 1, 8, 0, tzinfo=UTC))


def test_all_options_equal_crontab_options() -> None:
    built = (
        Cron.weekly_on("send", "mon", 8, 0)
        .id("morning-send")
        .fill(timedelta(weeks=4, days=3, hours=2, minutes=1, seconds=30))
        .max_attempts(3)
        .queue("mail:q")
        .priority(-5)
        .job_key("my key")
        .job_key_mode("preserve_run_at")
        .payload({"a": 1, "b": [True, None]})
        .build()
    )
    parsed = parse_crontab(
        "0 8 * * 1 send ?id=morning-send&fill=4w3d2h1m30s&max=3&queue=mail:q&priority=-5"
        "&jobKey=my+key&jobKeyMode=preserve_run_at {a: 1, b: [true, null]}"
    )[0]
    assert built == parsed


def test_builder_is_immutable() -> None:
    base = Cron.every_minute("t")
    changed = base.queue("q").priority(1)
    assert base.build().queue is None
    assert base.build().priority is None
    assert changed.build().queue == "q"
    with pytest.raises(AttributeError):
        base._queue = "x"  # type: ignore[misc]


def test_later_calls_replace_earlier_ones() -> None:
    item = Cron.every_minute("t").max_attempts(2).max_attempts(9).payload({"a": 1})
    assert item.payload(None).build().payload is None
    assert item.build().max_attempts == 9


def test_payload_struct_and_normalisation() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    item = Cron.every_minute("t").payload(Payload(to="a@b.c", when=when)).build()
    assert item.payload == {"to": "a@b.c", "when": "2024-01-02T03:04:05Z"}
    item = Cron.every_minute("t").payload({"when": when, "n": (1, 2)}).build()
    assert item.payload == {"when": "2024-01-02T03:04:05Z", "n": [1, 2]}
    # Non-string keys become strings, as JSON (and JavaScript) would have it.
    assert Cron.every_minute("t").payload({1: 2}).build().payload == {"1": 2}  # type: ignore[dict-item]


def test_task_objects_and_default_identifier() -> None:
    item = Cron.every_minute(SendEmail()).build()
    assert (item.task, item.identifier) == ("send_email", "send_email")
    assert Cron.every_minute(SendEmail()).id("other").build().identifier == "other"


# -- builder errors ---------------------------------------------------------


class ArrayLike(msgspec.Struct, array_like=True):
    a: int


class NoIdentifier:
    pass


class IntIdentifier:
    identifier = 5


BUILDER_ERRORS: list[tuple[Any, str]] = [
    (lambda: Cron.every_n_minutes("t", 0), "step must be between 1 and 59, got 0"),
    (lambda: Cron.every_n_minutes("t", 60), "step must be between 1 and 59, got 60"),
    (lambda: Cron.hourly_at("t", 60), "minute must be between 0 and 59, got 60"),
    (lambda: Cron.hourly_at("t", -1), "minute must be between 0 and 59, got -1"),
    (lambda: Cron.daily_at("t", 24, 0), "hour must be between 0 and 23, got 24"),
    (lambda: Cron.daily_at("t", 1.5, 0), "hour must be an int, got float"),  # type: ignore[arg-type]
    (lambda: Cron.daily_at("t", True, 0), "hour must be an int, got bool"),
    (
        lambda: Cron.weekly_on("t", 8, 0, 0),
        "weekday (0-7, Sunday = 0 or 7) must be between 0 and 7",
    ),
    (lambda: Cron.weekly_on("t", "funday", 0, 0), "weekday must be a day name like 'monday'"),
    (lambda: Cron.weekly_on("t", None, 0, 0), "weekday (0-7, Sunday = 0 or 7) must be an int"),  # type: ignore[arg-type]
    (lambda: Cron.monthly_on("t", 0, 0, 0), "day must be between 1 and 31, got 0"),
    (lambda: Cron.monthly_on("t", 32, 0, 0), "day must be between 1 and 31, got 32"),
    (lambda: Cron.yearly_on("t", 13, 1, 0, 0), "month must be between 1 and 12, got 13"),
    (lambda: Cron.yearly_on("t", 2, 30, 0, 0), "day (month 2) must be between 1 and 29, got 30"),
    (lambda: Cron.yearly_on("t", 4, 31, 0, 0), "day (month 4) must be between 1 and 30, got 31"),
    (lambda: Cron.from_expression("t", 5), "expression must be a str, got int"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute(5), "task must be a task identifier string or an object"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute(NoIdentifier()), "got NoIdentifier"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute(IntIdentifier()), "got IntIdentifier"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute(""), "task identifier must be 1 to 128 characters long, got 0"),
    (lambda: Cron.every_minute("t" * 129), "task identifier must be 1 to 128 characters long"),
    (lambda: Cron.every_minute("t").id(""), "id must not be empty"),
    (lambda: Cron.every_minute("t").id(1), "id must be a str, got int"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").fill(60), "fill must be a timedelta, got int"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").fill(timedelta(-1)), "fill must not be negative"),
    (lambda: Cron.every_minute("t").max_attempts(0), "max_attempts must be between 1 and 32767"),
    (lambda: Cron.every_minute("t").max_attempts(32768), "between 1 and 32767, got 32768"),
    (lambda: Cron.every_minute("t").priority(-32769), "priority must be between -32768 and 32767"),
    (lambda: Cron.every_minute("t").priority(32768), "priority must be between -32768 and 32767"),
    (lambda: Cron.every_minute("t").queue(""), "queue must be 1 to 128 characters long, got 0"),
    (lambda: Cron.every_minute("t").queue("q" * 129), "queue must be 1 to 128 characters long"),
    (lambda: Cron.every_minute("t").queue(None), "queue must be a str, got NoneType"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").job_key(""), "job_key must be 1 to 512 characters long"),
    (lambda: Cron.every_minute("t").job_key("k" * 513), "job_key must be 1 to 512 characters"),
    (lambda: Cron.every_minute("t").job_key_mode("unsafe_dedupe"), "must be 'replace' or"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").job_key_mode("REPLACE"), "got 'REPLACE'"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").payload([1]), "payload must be a dict or a msgspec.Struct"),  # type: ignore[arg-type]
    (lambda: Cron.every_minute("t").payload(ArrayLike(a=1)), "must encode to a JSON object"),
    (lambda: Cron.every_minute("t").payload({"a": object()}), "is not JSON-serialisable"),
    (lambda: Cron.every_minute("t").payload({"a": [float("nan")]}), "Infinity or NaN"),
    (lambda: Cron.every_minute("t").payload({"a": {"b": float("-inf")}}), "Infinity or NaN"),
]


@pytest.mark.parametrize(("call", "fragment"), BUILDER_ERRORS)
def test_builder_errors_name_field_and_range(call: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()
    assert fragment in str(info.value)


def test_from_expression_errors_are_crontab_errors() -> None:
    with pytest.raises(CrontabError) as info:
        Cron.from_expression("t", "*/5 25 * * *")
    assert (info.value.line, info.value.column) == (1, 5)
    assert "hour value 25 is out of range 0-23" in str(info.value)
    with pytest.raises(CrontabError, match="never runs"):
        Cron.from_expression("t", "0 0 31 2 *")


# -- CrontabFill ------------------------------------------------------------


def test_crontab_fill_helpers() -> None:
    assert CrontabFill.seconds(90) == timedelta(seconds=90)
    assert CrontabFill.minutes(30) == timedelta(minutes=30)
    assert CrontabFill.hours(1) == timedelta(hours=1)
    assert CrontabFill.days(2) == timedelta(days=2)
    assert CrontabFill.weeks(3) == timedelta(weeks=3)
    assert CrontabFill.hours(1) + CrontabFill.minutes(30) == timedelta(minutes=90)
    assert CrontabFill.parse("4w3d2h1m30s") == timedelta(
        weeks=4, days=3, hours=2, minutes=1, seconds=30
    )


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: CrontabFill.hours(-1), "fill hours must be between 0 and"),
        (lambda: CrontabFill.minutes(1.5), "fill minutes must be an int, got float"),  # type: ignore[arg-type]
        (lambda: CrontabFill.weeks(10**6), "fill weeks must be between 0 and 5228"),
        (lambda: CrontabFill.days(10**6), "fill days must be between 0 and 36600"),
        (lambda: CrontabFill.seconds(-1), "fill seconds must be between 0 and"),
        (lambda: CrontabFill.parse("1x"), "fill '1x' is not a time phrase"),
        (lambda: CrontabFill.parse(""), "it is empty"),
    ],
)
def test_crontab_fill_errors(call: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()
    assert fragment in str(info.value)


def test_crontab_fill_is_a_namespace() -> None:
    with pytest.raises(TypeError, match="namespace"):
        CrontabFill()


# -- value types validate themselves ----------------------------------------

FULL = {
    "minutes": tuple(range(60)),
    "hours": tuple(range(24)),
    "days": tuple(range(1, 32)),
    "months": tuple(range(1, 13)),
    "dows": tuple(range(7)),
}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"minutes": ()}, "minute must allow at least one value"),
        ({"hours": (2, 1)}, "hour values must be sorted and unique"),
        ({"days": (1, 1)}, "day-of-month values must be sorted and unique"),
        ({"months": (0,)}, "month value must be between 1 and 12, got 0"),
        ({"dows": (7,)}, "day-of-week value must be between 0 and 6, got 7"),
        ({"days": (30, 31), "months": (2,)}, "never runs"),
    ],
)
def test_timer_validation(changes: dict[str, tuple[int, ...]], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CronTimer(**{**FULL, **changes})
    assert fragment in str(info.value)


def test_timer_day_of_week_rescues_impossible_days() -> None:
    # With day of week restricted too, the OR rule means it still fires.
    timer = CronTimer(**{**FULL, "days": (30,), "months": (2,), "dows": (1,)})
    assert timer.expression == "* * 30 2 1"


TIMER = CronTimer(**FULL)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"identifier": ""}, "identifier must not be empty"),
        ({"task": ""}, "task identifier must be 1 to 128 characters long"),
        ({"task": 5}, "task identifier must be a str"),
        ({"fill": timedelta(seconds=-1)}, "fill must not be negative"),
        ({"max_attempts": 0}, "max_attempts must be between 1 and 32767"),
        ({"priority": 40000}, "priority must be between -32768 and 32767"),
        ({"queue": ""}, "queue name must be 1 to 128 characters long"),
        ({"job_key": "k" * 513}, "job key must be 1 to 512 characters long"),
        ({"job_key_mode": "unsafe_dedupe"}, "job_key_mode must be 'replace' or"),
        ({"payload": [1]}, "payload must be a dict or None, got list"),
    ],
)
def test_item_validation(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CronItem(**{"identifier": "i", "task": "t", "timer": TIMER, **changes})
    assert fragment in str(info.value)


def test_items_round_trip_through_msgspec() -> None:
    item = parse_crontab("*/5 8 * * 1-5 t ?fill=1h&jobKey=k {a: [1]}")[0]
    encoded = msgspec.json.encode(item)
    assert msgspec.json.decode(encoded, type=CronItem) == item


def test_public_names() -> None:
    assert isinstance(gw.cron.__all__, tuple)
    assert sorted(gw.cron.__all__) == sorted(set(gw.cron.__all__))
    for name in gw.cron.__all__:
        assert hasattr(gw.cron, name), name
