"""gw's data types: jobs, job specs and the results of management operations.

All are frozen msgspec Structs, so they are cheap to build, compare by value
and encode straight to JSON (the CLI's ``--json`` and the admin API use them).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

import msgspec

from .errors import InvalidJobSpec

__all__ = (
    "ActiveWorker",
    "BacklogSample",
    "CancelOutcome",
    "CancelResult",
    "CleanupTask",
    "DurationPercentiles",
    "HistoryBucket",
    "HistoryEntry",
    "HistoryOutcome",
    "HistoryStats",
    "Job",
    "JobKeyMode",
    "JobPage",
    "JobSpec",
    "JobState",
    "JobStats",
    "LimitUsage",
    "LockedWorker",
    "QueueInfo",
    "RawJobSpec",
    "SweepResult",
    "TaskThroughput",
)

JobKeyMode = Literal["replace", "preserve_run_at", "unsafe_dedupe"]
"""What adding a job whose ``job_key`` already exists does (see the Graphile docs)."""

JobState = Literal["all", "ready", "scheduled", "locked", "failed"]
"""Job filters: ``ready`` (runnable now), ``scheduled`` (run_at in the future),
``locked`` (held by a worker), ``failed`` (attempts exhausted)."""

JOB_KEY_MODES: tuple[str, ...] = ("replace", "preserve_run_at", "unsafe_dedupe")
JOB_STATES: tuple[str, ...] = ("all", "ready", "scheduled", "locked", "failed")

SMALLINT_MIN, SMALLINT_MAX = -32768, 32767
MAX_IDENTIFIER_LENGTH = 128
MAX_QUEUE_NAME_LENGTH = 128
MAX_JOB_KEY_LENGTH = 512


class CleanupTask(enum.StrEnum):
    """Maintenance tasks for :meth:`gw.WorkerUtils.cleanup`."""

    DELETE_PERMAFAILED_JOBS = "delete-permanently-failed-jobs"
    """Delete unlocked jobs whose attempts reached max_attempts."""
    GC_TASK_IDENTIFIERS = "gc-task-identifiers"
    """Delete task identifiers no job refers to (keeping those workers know)."""
    GC_JOB_QUEUES = "gc-job-queues"
    """Delete unlocked queue rows no job refers to."""


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Optional settings for a new job; every field defaults to Graphile's default.

    ``run_at`` must be timezone-aware. ``job_key_mode`` needs a ``job_key``.
    """

    queue_name: str | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    priority: int | None = None
    flags: tuple[str, ...] | None = None
    job_key: str | None = None
    job_key_mode: JobKeyMode | None = None

    def validate(self) -> None:
        """Raise :class:`~gw.errors.InvalidJobSpec` naming the first bad field."""
        if self.queue_name is not None:
            if not isinstance(self.queue_name, str) or not self.queue_name:
                raise InvalidJobSpec("queue_name must be a non-empty string (or None for no queue)")
            if len(self.queue_name) > MAX_QUEUE_NAME_LENGTH:
                raise InvalidJobSpec(
                    f"queue_name is {len(self.queue_name)} characters long; "
                    f"the limit is {MAX_QUEUE_NAME_LENGTH}"
                )
        if self.run_at is not None:
            if not isinstance(self.run_at, datetime):
                raise InvalidJobSpec("run_at must be a datetime")
            if self.run_at.tzinfo is None or self.run_at.utcoffset() is None:
                raise InvalidJobSpec(
                    f"run_at {self.run_at.isoformat()} has no timezone; pass an aware datetime "
                    "such as datetime.now(UTC) or datetime(..., tzinfo=UTC)"
                )
        if self.max_attempts is not None:
            _check_int("max_attempts", self.max_attempts, 1, SMALLINT_MAX)
        if self.priority is not None:
            _check_int("priority", self.priority, SMALLINT_MIN, SMALLINT_MAX)
        if self.flags is not None:
            flags: object = self.flags
            if isinstance(flags, str) or not all(isinstance(f, str) and f for f in self.flags):
                raise InvalidJobSpec("flags must be a sequence of non-empty strings")
        if self.job_key is not None:
            if not isinstance(self.job_key, str):
                raise InvalidJobSpec("job_key must be a string")
            if len(self.job_key) > MAX_JOB_KEY_LENGTH:
                raise InvalidJobSpec(
                    f"job_key is {len(self.job_key)} characters long; "
                    f"the limit is {MAX_JOB_KEY_LENGTH}"
                )
        if self.job_key_mode is not None:
            if self.job_key_mode not in JOB_KEY_MODES:
                raise InvalidJobSpec(
                    f"unknown job_key_mode {self.job_key_mode!r}; expected one of "
                    "'replace', 'preserve_run_at' or 'unsafe_dedupe'"
                )
            if not self.job_key:
                raise InvalidJobSpec(
                    f"job_key_mode={self.job_key_mode!r} needs a job_key; set job_key too"
                )


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJobSpec(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidJobSpec(f"{name} must be between {low} and {high}, got {value}")


def check_identifier(identifier: object) -> str:
    """Validate a task identifier; return it."""
    if not isinstance(identifier, str) or not identifier:
        raise InvalidJobSpec(f"task identifier must be a non-empty string, got {identifier!r}")
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise InvalidJobSpec(
            f"task identifier is {len(identifier)} characters long; "
            f"the limit is {MAX_IDENTIFIER_LENGTH}"
        )
    return identifier


class RawJobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One job for :meth:`gw.WorkerUtils.add_raw_jobs`: identifier, JSON payload, spec."""

    identifier: str
    payload: Any = None
    spec: JobSpec = JobSpec()


class Job(msgspec.Struct, frozen=True, gc=False):
    """A job row as stored (``_private_jobs``) plus its task identifier and queue name.

    ``payload`` is the decoded JSON value. A payload PostgreSQL accepted but
    Python cannot represent (nested too deep, a number beyond float range, an
    unpaired surrogate escape) reads as ``msgspec.Raw`` holding its JSON text;
    a worker fails such a job with the reason instead of running it.
    """

    id: int
    task_identifier: str
    queue_name: str | None
    payload: Any
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    key: str | None
    locked_at: datetime | None
    locked_by: str | None
    revision: int
    flags: dict[str, bool] | None
    is_available: bool
    task_id: int
    job_queue_id: int | None

    @property
    def flag_names(self) -> list[str]:
        """The job's flags as a sorted list."""
        return sorted(self.flags) if self.flags else []

    def state(self, now: datetime) -> Literal["ready", "scheduled", "locked", "failed"]:
        """Which admin state the job is in at ``now``."""
        if self.locked_at is not None:
            return "locked"
        if self.attempts >= self.max_attempts:
            return "failed"
        return "ready" if self.run_at <= now else "scheduled"


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of :meth:`gw.WorkerUtils.list_jobs`."""

    jobs: list[Job]
    limit: int
    offset: int
    has_more: bool


class JobStats(msgspec.Struct, frozen=True, kw_only=True):
    """Job counts by state."""

    total: int
    ready: int
    scheduled: int
    locked: int
    failed: int


class QueueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A named queue: how many jobs it holds and who has it locked."""

    queue_name: str
    job_count: int
    locked_at: datetime | None
    locked_by: str | None


class LockedWorker(msgspec.Struct, frozen=True, kw_only=True):
    """A locker id (worker or Node pool) currently holding jobs or queues."""

    worker_id: str
    locked_jobs: int
    locked_queues: int
    oldest_locked_at: datetime | None


class ActiveWorker(msgspec.Struct, frozen=True, kw_only=True):
    """A worker registered for recovery, with its last heartbeat."""

    worker_id: str
    last_heartbeat_at: datetime
    started_at: datetime
    metadata: Any = None


CancelOutcome = Literal["cancelled", "cancelling", "not_cancellable", "finished", "not_found"]


class CancelResult(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`WorkerUtils.cancel_jobs` did to one job.

    ``outcome``: ``cancelled`` (it was waiting: failed for good now),
    ``cancelling`` (a gw worker is running it and was asked to stop it),
    ``not_cancellable`` (a worker that is not gw holds it: nothing changed),
    ``finished`` (already failed for good: nothing changed) or ``not_found``
    (no such job: completed, removed, or never existed).
    """

    job_id: int
    outcome: CancelOutcome
    worker_id: str | None = None
    """Who holds the job (for ``cancelling`` and ``not_cancellable``)."""


class LimitUsage(msgspec.Struct, frozen=True, kw_only=True):
    """A fleet-wide limit as gw workers configured it, and how much of it is in use."""

    key: str
    """``task:<identifier>`` or ``queue:<queue name>``."""
    rate: float | None
    """Jobs per second (None: no rate limit)."""
    burst: float | None
    max_concurrency: int | None
    tokens: float | None
    """Starts allowed right now (the token bucket; None without a rate limit)."""
    running: int
    """Jobs of the key that gw workers hold now (counted for max_concurrency)."""
    updated_at: datetime


HistoryOutcome = Literal[
    "completed",
    "failed",
    "permanently_failed",
    "cancelled",
    "skipped",
    "rescheduled",
    "interrupted",
]


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One finished attempt recorded by a worker run with ``gw.History``."""

    id: int
    job_id: int
    task_identifier: str
    queue_name: str | None
    attempt: int
    max_attempts: int
    worker_id: str
    run_at: datetime | None
    started_at: datetime
    finished_at: datetime
    outcome: HistoryOutcome
    error: str | None = None
    result: Any = None
    """What the handler returned (JSON), for completed attempts with results kept."""
    payload: Any = None

    @property
    def duration(self) -> float:
        """Seconds the attempt ran."""
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def queue_wait(self) -> float | None:
        """Seconds from run_at to the start (None without run_at)."""
        return None if self.run_at is None else (self.started_at - self.run_at).total_seconds()


# --------------------------------------------------------------------------- history stats
# What WorkerUtils.history_stats returns (the admin's charts).


class DurationPercentiles(msgspec.Struct, frozen=True, kw_only=True):
    """The 50th, 90th and 99th percentiles of some durations, in seconds."""

    p50: float
    p90: float
    p99: float


class HistoryBucket(msgspec.Struct, frozen=True, kw_only=True):
    """The attempts that finished in ``[start, start + bucket)``.

    ``failed`` counts failed and permanently failed attempts; ``other`` the
    cancelled, skipped, rescheduled and interrupted ones. ``duration`` is the
    run time (finished - started) and ``queue_wait`` the wait from ``run_at``
    to the start; both are None when no attempt finished in the bucket.
    """

    start: datetime
    completed: int = 0
    failed: int = 0
    other: int = 0
    duration: DurationPercentiles | None = None
    queue_wait: DurationPercentiles | None = None


class TaskThroughput(msgspec.Struct, frozen=True, kw_only=True):
    """One task's finished attempts per bucket (lists aligned with ``HistoryStats.buckets``)."""

    task_identifier: str
    total: int
    completed: list[int]
    failed: list[int]
    other: list[int]


class BacklogSample(msgspec.Struct, frozen=True, kw_only=True):
    """The queue's shape at one moment, as gw workers with ``gw.History`` sample it."""

    sampled_at: datetime
    ready: int
    scheduled: int
    running: int
    failed: int


class HistoryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Recorded history over ``[since, until)`` in buckets of ``bucket`` seconds.

    ``since`` and ``until`` are the requested range widened to whole buckets
    (aligned to multiples of ``bucket`` since the Unix epoch, so the buckets of
    two calls line up). ``tasks`` holds the busiest tasks (at most 20, most
    attempts first; ``task_count`` says how many tasks there were): the other
    tasks' attempts are the bucket totals minus these. ``backlog`` has the
    latest sample of each bucket.
    """

    since: datetime
    until: datetime
    bucket: float
    buckets: list[HistoryBucket]
    tasks: list[TaskThroughput]
    task_count: int
    backlog: list[BacklogSample]


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a stale-worker sweep recovered (or would recover, on a dry run)."""

    dry_run: bool
    worker_ids: list[str]
    """Dead lockers: stale heartbeat rows and lockers that never registered."""
    job_ids: list[int]
    """Jobs recovered (or, on a dry run, that would be), skipped ones excluded."""
    recovered_jobs: int = 0
    skipped_job_ids: list[int] = []
    """Jobs a JobRecovery hook left locked (asked again on the next sweep)."""
