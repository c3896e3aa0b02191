"""WorkerUtils.history_stats: input checks, bucket choice and the result's shape.

Buckets are aligned to multiples of their size since the Unix epoch, so two
calls a few seconds apart (the admin's live refresh) share their bucket edges
and a chart does not jitter. The database counts; this module fills in the
empty buckets and turns the statement's JSON arrays into gw.types Structs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ..errors import ConfigurationError
from ..types import (
    BacklogSample,
    DurationPercentiles,
    HistoryBucket,
    HistoryStats,
    TaskThroughput,
)

__all__ = (
    "MAX_BUCKETS",
    "MAX_TASK_SERIES",
    "MIN_BUCKET",
    "StatsWindow",
    "build_stats",
    "choose_bucket",
    "stats_params",
    "stats_window",
)

MIN_BUCKET = 1.0
"""Seconds: the smallest bucket (history times are the workers' clocks anyway)."""
MAX_BUCKETS = 1000
"""The most buckets one call may ask for (an explicit bucket over a long range)."""
MAX_POINTS = 120
"""An automatic bucket gives at most this many buckets (60 to 120 for most ranges)."""
MAX_TASK_SERIES = 20
"""Per-task series returned: the busiest tasks; the rest is bucket total minus these."""

# Bucket sizes a person reads easily, smallest first (seconds).
NICE_BUCKETS: tuple[int, ...] = (
    1, 2, 5, 10, 15, 30,
    60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60,
    3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400,
)  # fmt: skip
DAY = 86400

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def choose_bucket(span: float) -> float:
    """The smallest easy-to-read bucket (seconds) that splits ``span`` seconds
    into at most 120 buckets: 10 s for 15 minutes, 30 s for an hour, 15 minutes
    for a day, 2 hours for a week; whole days past that."""
    for size in NICE_BUCKETS:
        if span <= size * MAX_POINTS:
            return float(size)
    return float(math.ceil(span / (DAY * MAX_POINTS)) * DAY)


@dataclass(frozen=True)
class StatsWindow:
    """The range of a history_stats call, widened to whole aligned buckets."""

    start: datetime
    end: datetime
    bucket_us: int
    count: int

    @property
    def bucket(self) -> float:
        """The bucket size in seconds."""
        return self.bucket_us / 1_000_000

    def bucket_start(self, index: int) -> datetime:
        return self.start + index * self.bucket_us * _US


def _secs(seconds: float) -> str:
    """Seconds for a message: "90", "1.5", "31536000" (never an exponent)."""
    return f"{seconds:.0f}" if seconds == int(seconds) else f"{seconds:.3f}".rstrip("0")


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{name} must be an aware datetime (with a time zone), got {value.isoformat()}"
        )
    return value


def _bucket_seconds(bucket: object) -> float:
    seconds = bucket.total_seconds() if isinstance(bucket, timedelta) else bucket
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or seconds < MIN_BUCKET
    ):
        raise ConfigurationError(
            f"bucket must be a number of seconds >= {MIN_BUCKET:g} or a timedelta, got {bucket!r}"
        )
    return float(seconds)


def stats_window(since: object, until: object, bucket: object, *, now: datetime) -> StatsWindow:
    """Check the range and bucket and align them (``until`` None: ``now``)."""
    start_at = _aware("since", since)
    end_at = now if until is None else _aware("until", until)
    if end_at <= start_at:
        raise ConfigurationError(
            f"until ({end_at.isoformat()}) must be after since ({start_at.isoformat()})"
        )
    span = (end_at - start_at).total_seconds()
    seconds = choose_bucket(span) if bucket is None else _bucket_seconds(bucket)
    size = round(seconds * 1_000_000)
    first = (start_at - _EPOCH) // _US // size
    last = -(-((end_at - _EPOCH) // _US) // size)  # ceiling division
    count = last - first
    if count > MAX_BUCKETS:
        least = math.ceil(span / MAX_BUCKETS)
        raise ConfigurationError(
            f"bucket of {_secs(seconds)} s over {_secs(span)} s of history gives "
            f"{count} buckets; "
            f"at most {MAX_BUCKETS} are allowed: use a bucket of at least {least} s, "
            "a shorter range, or no bucket (one is chosen for the range)"
        )
    try:
        start = _EPOCH + first * size * _US
        end = _EPOCH + last * size * _US
    except OverflowError:
        raise ConfigurationError(
            f"since {start_at.isoformat()} and until {end_at.isoformat()}, widened to whole "
            f"buckets of {_secs(seconds)} s, fall outside the years 1 to 9999: use a smaller "
            "bucket or a range inside those years"
        ) from None
    return StatsWindow(start=start, end=end, bucket_us=size, count=count)


def _filter(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be text, got {value!r}")
    if "\x00" in value:
        raise ConfigurationError(f"{name} must not contain NUL (\\u0000) characters")
    return value


def stats_params(window: StatsWindow, task: object, queue: object) -> dict[str, Any]:
    """Parameters of ``Queries.history_stats`` (filters checked)."""
    return {
        "start": window.start,
        "end": window.end,
        "bucket": window.bucket,
        "task": _filter("task", task),
        "queue": _filter("queue", queue),
        "top": MAX_TASK_SERIES,
    }


def _percentiles(values: list[float | None] | None) -> DurationPercentiles | None:
    if not values or any(v is None for v in values):
        return None
    p50, p90, p99 = values
    return DurationPercentiles(p50=float(p50), p90=float(p90), p99=float(p99))  # type: ignore[arg-type]


def build_stats(window: StatsWindow, row: Any) -> HistoryStats:
    """The HistoryStats for the statement's one row, every bucket present."""
    per_bucket, per_task, task_count, backlog = row
    n = window.count

    def index(b: int) -> int:
        # Float division may put a row right below an edge one bucket off.
        return min(max(int(b), 0), n - 1)

    found: dict[int, list[Any]] = {}
    for b, completed, failed, other, runs, waits in per_bucket:
        slot = found.setdefault(index(b), [0, 0, 0, None, None])
        slot[0] += completed
        slot[1] += failed
        slot[2] += other
        slot[3] = slot[3] or _percentiles(runs)
        slot[4] = slot[4] or _percentiles(waits)
    buckets = []
    for i in range(n):
        counts = found.get(i)
        if counts is None:
            buckets.append(HistoryBucket(start=window.bucket_start(i)))
        else:
            buckets.append(
                HistoryBucket(
                    start=window.bucket_start(i),
                    completed=counts[0],
                    failed=counts[1],
                    other=counts[2],
                    duration=counts[3],
                    queue_wait=counts[4],
                )
            )

    series: dict[str, tuple[list[int], list[int], list[int]]] = {}
    for task, b, completed, failed, other in per_task:
        lists = series.setdefault(task, ([0] * n, [0] * n, [0] * n))
        i = index(b)
        lists[0][i] += completed
        lists[1][i] += failed
        lists[2][i] += other
    tasks = [
        TaskThroughput(
            task_identifier=task,
            total=sum(done) + sum(failed) + sum(other),
            completed=done,
            failed=failed,
            other=other,
        )
        for task, (done, failed, other) in series.items()  # the statement's order
    ]

    samples = [
        BacklogSample(
            sampled_at=msgspec.convert(at, datetime),
            ready=ready,
            scheduled=scheduled,
            running=running,
            failed=failed,
        )
        for at, ready, scheduled, running, failed in backlog
    ]
    return HistoryStats(
        since=window.start,
        until=window.end,
        bucket=window.bucket,
        buckets=buckets,
        tasks=tasks,
        task_count=int(task_count),
        backlog=samples,
    )
