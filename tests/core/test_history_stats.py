"""WorkerUtils.history_stats (the admin's charts) and list_history paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

import gw
from gw.core._history_stats import MAX_POINTS, choose_bucket, stats_window
from gw.types import BacklogSample, DurationPercentiles, HistoryBucket
from tests.history_rows import Attempt, insert_backlog, insert_history

if TYPE_CHECKING:
    from gw.core.utils import WorkerUtils

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


# --------------------------------------------------------------------------- bucket choice


@pytest.mark.parametrize(
    ("span", "bucket", "points"),
    [
        (timedelta(minutes=5), 5, 60),
        (timedelta(minutes=15), 10, 90),
        (timedelta(hours=1), 30, 120),
        (timedelta(hours=6), 300, 72),
        (timedelta(hours=24), 900, 96),
        (timedelta(days=7), 7200, 84),
        (timedelta(days=30), 21600, 120),
        (timedelta(days=365), 4 * 86400, 92),
    ],
)
def test_the_automatic_bucket_gives_a_chart_60_to_120_points(
    span: timedelta, bucket: int, points: int
) -> None:
    assert choose_bucket(span.total_seconds()) == bucket
    window = stats_window(T0 - span, T0, None, now=T0)
    assert window.bucket == bucket
    assert window.count == points


@pytest.mark.parametrize("seconds", [0.001, 1, 59, 61, 3599, 7 * 86400 + 1, 10**9])
def test_the_automatic_bucket_never_gives_more_than_120_points(seconds: float) -> None:
    window = stats_window(T0 - timedelta(seconds=seconds), T0, None, now=T0)
    assert 1 <= window.count <= MAX_POINTS + 1  # +1: an unaligned range spans one more
    assert window.bucket >= 1


def test_buckets_are_aligned_so_refreshes_share_their_edges() -> None:
    since = datetime(2026, 6, 1, 12, 0, 7, 250_000, tzinfo=UTC)
    window = stats_window(since, since + timedelta(hours=1), None, now=T0)
    assert window.bucket == 30
    assert window.start == datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 6, 1, 13, 0, 30, tzinfo=UTC)
    assert window.count == 121
    later = stats_window(
        since + timedelta(seconds=10), since + timedelta(hours=1, seconds=10), 30, now=T0
    )
    assert later.start == window.start
    # Other time zones name the same instants.
    tz = timezone_plus(5, 30)
    shifted = stats_window(since.astimezone(tz), since.astimezone(tz) + MINUTE, 60, now=T0)
    assert (shifted.start, shifted.count) == (T0, 2)


def timezone_plus(hours: int, minutes: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours, minutes=minutes))


def test_until_defaults_to_now() -> None:
    window = stats_window(T0 - timedelta(minutes=10), None, 60, now=T0)
    assert (window.start, window.end, window.count) == (T0 - timedelta(minutes=10), T0, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "yesterday"}, "since must be a datetime, got 'yesterday'"),
        (
            {"since": datetime(2026, 6, 1)},
            "since must be an aware datetime (with a time zone), got 2026-06-01T00:00:00",
        ),
        ({"until": datetime(2026, 6, 2)}, "until must be an aware datetime (with a time zone)"),
        (
            {"until": T0 - timedelta(hours=2)},
            "until (2026-06-01T10:00:00+00:00) must be after since (2026-06-01T11:00:00+00:00)",
        ),
        ({"until": T0 - timedelta(hours=1)}, "until (2026-06-01T11:00:00+00:00) must be after"),
        ({"bucket": 0}, "bucket must be a number of seconds >= 1 or a timedelta, got 0"),
        ({"bucket": 0.5}, "bucket must be a number of seconds >= 1 or a timedelta, got 0.5"),
        ({"bucket": -60}, "bucket must be a number of seconds >= 1"),
        ({"bucket": True}, "bucket must be a number of seconds >= 1 or a timedelta, got True"),
        ({"bucket": float("nan")}, "bucket must be a number of seconds >= 1"),
        ({"bucket": "5m"}, "bucket must be a number of seconds >= 1 or a timedelta, got '5m'"),
        ({"bucket": timedelta(0)}, "bucket must be a number of seconds >= 1 or a timedelta"),
        (
            {"bucket": 1, "until": T0 + timedelta(hours=1)},
            "bucket of 1 s over 7200 s of history gives 7200 buckets; at most 1000 are "
            "allowed: use a bucket of at least 8 s",
        ),
        (
            {"since": datetime(1, 1, 1, 0, 0, 30, tzinfo=UTC), "bucket": 86400 * 3650},
            "since 0001-01-01T00:00:30+00:00 and until 2026-06-01T12:00:00+00:00, widened "
            "to whole buckets of 315360000 s, fall outside the years 1 to 9999",
        ),
        ({"task": 7}, "task must be text, got 7"),
        ({"queue": b"q"}, "queue must be text, got b'q'"),
        ({"task": "a\x00b"}, "task must not contain NUL (\\u0000) characters"),
    ],
)
async def test_bad_stats_arguments_say_what_is_wrong(
    utils: WorkerUtils, kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"since": T0 - timedelta(hours=1), "until": T0, **kwargs}
    with pytest.raises(gw.ConfigurationError) as info:
        await utils.history_stats(**arguments)
    assert str(info.value).startswith(message), str(info.value)


# --------------------------------------------------------------------------- the numbers


async def test_an_empty_history_has_every_bucket_at_zero(utils: WorkerUtils) -> None:
    stats = await utils.history_stats(since=T0, until=T0 + 5 * MINUTE, bucket=60)
    assert (stats.since, stats.until, stats.bucket) == (T0, T0 + 5 * MINUTE, 60.0)
    assert stats.buckets == [HistoryBucket(start=T0 + n * MINUTE) for n in range(5)]
    assert (stats.tasks, stats.task_count, stats.backlog) == ([], 0, [])


async def test_counts_and_percentiles_per_bucket(utils: WorkerUtils) -> None:
    at = T0 + timedelta(seconds=30)  # inside the first minute
    attempts = [
        Attempt("send_email", at, duration=float(n), wait=float(10 * n)) for n in range(1, 11)
    ]
    attempts += [
        Attempt("send_email", at + MINUTE, "failed", duration=2.0, wait=None, error="smtp"),
        Attempt("resize", at + MINUTE, "permanently_failed", duration=4.0, wait=1.0),
        Attempt("resize", at + MINUTE, "cancelled"),
        Attempt("resize", at + MINUTE, "skipped"),
        Attempt("resize", at + MINUTE, "rescheduled"),
        Attempt("resize", at + MINUTE, "interrupted"),
        # Outside the range: before since, at until.
        Attempt("send_email", T0 - timedelta(microseconds=1)),
        Attempt("send_email", T0 + 3 * MINUTE),
    ]
    await insert_history(utils, attempts)

    stats = await utils.history_stats(since=T0, until=T0 + 3 * MINUTE, bucket=MINUTE)
    first, second, third = stats.buckets
    assert (first.completed, first.failed, first.other) == (10, 0, 0)
    assert first.duration == DurationPercentiles(
        p50=5.5, p90=pytest.approx(9.1), p99=pytest.approx(9.91)
    )
    assert first.queue_wait == DurationPercentiles(
        p50=55.0, p90=pytest.approx(91.0), p99=pytest.approx(99.1)
    )
    assert (second.completed, second.failed, second.other) == (0, 2, 4)
    assert second.duration is not None
    assert second.duration.p50 == 1.0  # 2, 4 and four attempts of 1 s
    assert second.queue_wait is not None
    assert second.queue_wait.p50 == pytest.approx(0.5)  # the one without run_at left out
    assert third == HistoryBucket(start=T0 + 2 * MINUTE)

    assert stats.task_count == 2
    email, resize = stats.tasks
    assert (email.task_identifier, email.total) == ("send_email", 11)
    assert (email.completed, email.failed, email.other) == ([10, 0, 0], [0, 1, 0], [0, 0, 0])
    assert (resize.task_identifier, resize.total) == ("resize", 5)
    assert (resize.completed, resize.failed, resize.other) == ([0, 0, 0], [0, 1, 0], [0, 4, 0])


async def test_a_negative_queue_wait_counts_as_zero(utils: WorkerUtils) -> None:
    # A worker clock ahead of the database's: started before run_at.
    await insert_history(utils, [Attempt("x", T0 + timedelta(seconds=5), wait=-3.0)])
    stats = await utils.history_stats(since=T0, until=T0 + MINUTE, bucket=60)
    assert stats.buckets[0].queue_wait == DurationPercentiles(p50=0.0, p90=0.0, p99=0.0)


async def test_task_and_queue_filters(utils: WorkerUtils) -> None:
    at = T0 + timedelta(seconds=1)
    await insert_history(
        utils,
        [
            Attempt("send_email", at, queue="mail"),
            Attempt("send_email", at, queue="bulk"),
            Attempt("resize", at, "failed", queue="mail"),
        ],
    )
    counts = {}
    for name, filters in {
        "all": {},
        "task": {"task": "send_email"},
        "queue": {"queue": "mail"},
        "both": {"task": "resize", "queue": "mail"},
        "none": {"task": "resize", "queue": "bulk"},
    }.items():
        stats = await utils.history_stats(since=T0, until=T0 + MINUTE, **filters)
        counts[name] = (
            sum(b.completed for b in stats.buckets),
            sum(b.failed for b in stats.buckets),
            [t.task_identifier for t in stats.tasks],
        )
    assert counts == {
        "all": (2, 1, ["send_email", "resize"]),
        "task": (2, 0, ["send_email"]),
        "queue": (1, 1, ["resize", "send_email"]),  # equal totals: by name
        "both": (0, 1, ["resize"]),
        "none": (0, 0, []),
    }


async def test_only_the_busiest_20_tasks_have_series(utils: WorkerUtils) -> None:
    attempts = [
        Attempt(f"task_{n:02}", T0 + timedelta(seconds=n), job_id=n)
        for n in range(25)
        for _ in range(n + 1)  # task_24 is the busiest
    ]
    await insert_history(utils, attempts)
    stats = await utils.history_stats(since=T0, until=T0 + MINUTE, bucket=60)
    assert stats.task_count == 25
    assert [t.task_identifier for t in stats.tasks] == [f"task_{n:02}" for n in range(24, 4, -1)]
    assert [t.total for t in stats.tasks][:3] == [25, 24, 23]
    # The rest: the bucket total minus the series.
    rest = stats.buckets[0].completed - sum(t.completed[0] for t in stats.tasks)
    assert rest == 1 + 2 + 3 + 4 + 5


async def test_backlog_keeps_the_latest_sample_of_each_bucket(utils: WorkerUtils) -> None:
    await insert_backlog(
        utils,
        [
            (T0 - timedelta(seconds=1), 99, 99, 99, 99),  # before the range
            (T0, 1, 2, 3, 4),
            (T0 + timedelta(seconds=30), 5, 6, 7, 8),
            (T0 + timedelta(seconds=90), 9, 10, 11, 12),
            (T0 + 2 * MINUTE, 99, 99, 99, 99),  # at until
        ],
    )
    stats = await utils.history_stats(since=T0, until=T0 + 2 * MINUTE, bucket=60)
    assert stats.backlog == [
        BacklogSample(
            sampled_at=T0 + timedelta(seconds=30), ready=5, scheduled=6, running=7, failed=8
        ),
        BacklogSample(
            sampled_at=T0 + timedelta(seconds=90), ready=9, scheduled=10, running=11, failed=12
        ),
    ]
    fine = await utils.history_stats(since=T0, until=T0 + 2 * MINUTE, bucket=10)
    assert [s.ready for s in fine.backlog] == [1, 5, 9]
    # Filters narrow the attempts, not the fleet-wide backlog.
    narrowed = await utils.history_stats(since=T0, until=T0 + 2 * MINUTE, task="nothing")
    assert len(narrowed.backlog) == 3


async def test_the_default_until_is_the_utils_clock(db_url: str) -> None:
    clock = gw.FakeClock(T0 + timedelta(seconds=150))
    async with gw.WorkerUtils.connect(db_url, migrate=False) as base:
        utils = gw.WorkerUtils(base.pool, clock=clock)
        await insert_history(utils, [Attempt("x", T0 + timedelta(seconds=140))])
        stats = await utils.history_stats(since=T0)
    assert (stats.bucket, stats.until) == (2.0, T0 + timedelta(seconds=150))
    assert sum(b.completed for b in stats.buckets) == 1
    assert stats.buckets[70].completed == 1


async def test_without_the_history_table_the_error_says_migrate(utils: WorkerUtils) -> None:
    await utils.pool.execute("drop table graphile_worker._private_gw_history")
    with pytest.raises(gw.DatabaseError, match="run `gw migrate`"):
        await utils.history_stats(since=T0)


# --------------------------------------------------------------------------- list_history paging


async def test_list_history_pages_with_before_id(utils: WorkerUtils) -> None:
    # Recorded in this order; the finish times (worker clocks) disagree.
    ids = await insert_history(
        utils,
        [
            Attempt("a", T0 + timedelta(seconds=s), job_id=n + 1)
            for n, s in enumerate([5, 1, 4, 2, 3])
        ],
    )
    first = await utils.list_history(limit=2)
    assert [e.id for e in first] == ids[::-1][:2]
    second = await utils.list_history(limit=2, before_id=first[-1].id)
    third = await utils.list_history(limit=2, before_id=second[-1].id)
    assert [e.id for e in first + second + third] == ids[::-1]
    assert await utils.list_history(before_id=ids[0]) == []
    # Filters still apply on later pages.
    assert [e.job_id for e in await utils.list_history(task="a", job_id=2, before_id=ids[-1])] == [
        2
    ]


@pytest.mark.parametrize("before_id", [0, -3, True, "7", 2**63])
async def test_a_bad_before_id_says_what_is_wrong(utils: WorkerUtils, before_id: Any) -> None:
    with pytest.raises(gw.ConfigurationError) as info:
        await utils.list_history(before_id=before_id)
    assert str(info.value) == (
        f"before_id must be a positive 64-bit integer (a history entry's id), got {before_id!r}"
    )
