"""The value parsers behind the CLI's options (in-process: no subprocess needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gw.cli._params import (
    format_duration,
    parse_cleanup_task,
    parse_duration,
    parse_job_id,
    parse_job_key_mode,
    parse_payload,
    parse_queue_limit,
    parse_time,
)
from gw.types import CleanupTask


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5s", 1.5),
        ("0.25h", 900.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (" 5M ", 300.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5x", "s", "-", "-x", "5 m", "30s5m", "5m5m", "1h-", "ms", "5mss", "1e3s"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration \(e\.g\. 500ms, 30s, 5m, 2h, 1d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5s", "-1", "-.5", "-1h30m", " -2m"])
def test_parse_duration_says_a_negative_duration_is_negative(text: str) -> None:
    with pytest.raises(ValueError, match=r"is negative; durations are 0 or more \(e\.g\."):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (30, "30s"), (300, "5m"), (5400, "1h30m"), (86400, "1d"), (0, "0s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            "2026-01-02T03:04:05+02:00",
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2026-01-02 03:04:05.250-05:30", datetime(2026, 1, 2, 8, 34, 5, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_parse_time_needs_an_offset() -> None:
    with pytest.raises(
        ValueError, match=r"^'2026-01-02T03:04:05' has no timezone; add Z or \+HH:MM$"
    ):
        parse_time("2026-01-02T03:04:05")
    with pytest.raises(ValueError, match="'2026-01-02' has no timezone"):
        parse_time("2026-01-02")
    with pytest.raises(ValueError, match="is not a time; use ISO 8601"):
        parse_time("next tuesday")


def test_parse_time_from_now() -> None:
    before = datetime.now(UTC)
    parsed = parse_time("+1h30m")
    after = datetime.now(UTC)
    assert before + timedelta(minutes=90) <= parsed <= after + timedelta(minutes=90)
    assert parsed.tzinfo is not None
    with pytest.raises(ValueError, match=r"^'\+-5m' is not a time from now"):
        parse_time("+-5m")
    with pytest.raises(ValueError, match=r"^'\+99999999d' is too far in the future$"):
        parse_time("+99999999d")


def test_parse_job_id() -> None:
    assert parse_job_id("42") == 42
    for bad in ("0", "-1", "abc", "1.5", "", "\u0661"):
        with pytest.raises(ValueError, match="is not a job id"):
            parse_job_id(bad)


def test_parse_job_key_mode_accepts_hyphens() -> None:
    assert parse_job_key_mode("preserve-run-at") == "preserve_run_at"
    assert parse_job_key_mode("UNSAFE_DEDUPE") == "unsafe_dedupe"
    with pytest.raises(ValueError, match="unknown job key mode 'keep'"):
        parse_job_key_mode("keep")


def test_parse_cleanup_task_accepts_underscores() -> None:
    assert parse_cleanup_task("gc_job_queues") is CleanupTask.GC_JOB_QUEUES
    with pytest.raises(ValueError, match="unknown cleanup task 'all'"):
        parse_cleanup_task("all")


def test_parse_payload() -> None:
    assert parse_payload('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_payload("null") is None
    with pytest.raises(ValueError, match=r"^not valid JSON \("):
        parse_payload("{'a': 1}")


@pytest.mark.parametrize(
    ("text", "name", "count", "per", "burst"),
    [
        ("emails=20/s", "emails", 20, 1.0, 1),
        ("emails=100/1m", "emails", 100, 60.0, 1),
        ("emails=100/m", "emails", 100, 60.0, 1),
        (" reports=2.5/30s,burst=5 ", "reports", 2.5, 30.0, 5),
        ("a:b=1/h", "a:b", 1, 3600.0, 1),
    ],
)
def test_parse_queue_limit(text: str, name: str, count: float, per: float, burst: float) -> None:
    parsed_name, limit = parse_queue_limit(text)
    assert (parsed_name, limit.count, limit.per, limit.burst) == (name, count, per, burst)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("emails", "'emails' is not a queue rate limit (e.g. emails=20/s"),
        ("emails=20", "'emails=20' is not a queue rate limit"),
        ("emails=x/s", "'emails=x/s' is not a queue rate limit"),
        ("emails=0/s", "'emails=0/s': RateLimit count must be > 0"),
        ("emails=1/0s", "'emails=1/0s': RateLimit per must be a positive number"),
        ("emails=1/fortnight", "'emails=1/fortnight': the period 'fortnight' is not a duration"),
        ("emails=1/s,burst=0", "'emails=1/s,burst=0': RateLimit burst must be at least 1"),
    ],
)
def test_parse_queue_limit_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_queue_limit(text)
    assert str(info.value).startswith(message)
