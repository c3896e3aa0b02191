"""Request and response bodies of the admin JSON API (docs/admin-api.md).

Requests are decoded with msgspec straight into these Structs, so their type
annotations and ``Meta`` constraints *are* the validation rules, and the same
types generate the OpenAPI document. Request Structs forbid unknown fields so
that a typo is an error instead of a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from ..core._requests import MAX_CANCEL_REASON
from ..types import (
    MAX_IDENTIFIER_LENGTH,
    MAX_JOB_KEY_LENGTH,
    MAX_QUEUE_NAME_LENGTH,
    SMALLINT_MAX,
    SMALLINT_MIN,
    BacklogSample,
    CancelOutcome,
    HistoryBucket,
    HistoryOutcome,
    TaskThroughput,
)

__all__ = (
    "ActionResponse",
    "ActiveWorkerSummary",
    "AddJobRequest",
    "AddedJobResponse",
    "CancelCounts",
    "CancelJobResult",
    "CancelJobsRequest",
    "CancelJobsResponse",
    "CleanupRequest",
    "CleanupResponse",
    "CleanupResult",
    "ErrorDetail",
    "ErrorResponse",
    "ForceUnlockRequest",
    "ForceUnlockResponse",
    "ForceUnlockResult",
    "HistoryItem",
    "HistoryListQuery",
    "HistoryListResponse",
    "HistoryStatsQuery",
    "HistoryStatsResponse",
    "JobActionRequest",
    "JobCounts",
    "JobListQuery",
    "JobListResponse",
    "JobResponse",
    "LimitSummary",
    "LimitsResponse",
    "ListedJob",
    "LockedWorkerSummary",
    "MaintenanceRequest",
    "MigrateRequest",
    "MigrateResponse",
    "MigrateResult",
    "OverviewResponse",
    "QueueSummary",
    "RemoveByKeyRequest",
    "RemovedJobResponse",
    "SessionAuth",
    "SessionResponse",
    "SweepRequest",
    "SweepResponse",
    "SweepResult",
)

MAX_LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 50
BIGINT_MAX = 2**63 - 1
# Generous caps that keep every value inside what PostgreSQL accepts.
MAX_OFFSET = 2**62
MAX_IDS = 10_000
MAX_TEXT = 10_000
MAX_FILTER_LENGTH = 1_000
MAX_FLAGS = 100
MAX_WORKER_ID_LENGTH = 1_000
MAX_SECONDS = 10 * 365 * 24 * 3600.0
# GET /api/history/stats: a range or bucket is a count and a unit ("15m", "7d").
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_PATTERN = r"^[0-9]{1,6}[smhdw]$"
BUCKET_PATTERN = r"^([0-9]{1,6}[smhdw]|[0-9]{1,9}(\.[0-9]{1,6})?)$"
MAX_RANGE_DAYS = 3660

JobStateName = Literal["ready", "scheduled", "locked", "failed"]
JobStateFilter = Literal["all", "ready", "scheduled", "locked", "failed"]
JobKeyModeName = Literal[
    "replace", "preserve-run-at", "unsafe-dedupe", "preserve_run_at", "unsafe_dedupe"
]
CleanupTaskName = Literal["delete-permanently-failed-jobs", "gc-task-identifiers", "gc-job-queues"]
JobActionName = Literal["complete", "fail", "run-now", "reschedule"]
LimitKind = Literal["task", "queue", "other"]

JobId = Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="A job id.")]
AwareDatetime = Annotated[
    datetime, Meta(tz=True, description="ISO 8601 date and time with an offset.")
]
Priority = Annotated[
    int, Meta(ge=SMALLINT_MIN, le=SMALLINT_MAX, description="Lower numbers run first.")
]
MaxAttempts = Annotated[int, Meta(ge=1, le=SMALLINT_MAX)]
Attempts = Annotated[int, Meta(ge=0, le=SMALLINT_MAX)]
JobKey = Annotated[str, Meta(min_length=1, max_length=MAX_JOB_KEY_LENGTH)]


# --------------------------------------------------------------------------- errors


class ErrorDetail(Struct, omit_defaults=True):
    """What went wrong; ``field`` names the offending field of a validation error."""

    code: Literal[
        "validation",
        "unauthorized",
        "csrf",
        "read_only",
        "host",
        "origin",
        "not_found",
        "method_not_allowed",
        "conflict",
        "payload_too_large",
        "database",
        "internal",
    ]
    message: str
    field: str | None = None


class ErrorResponse(Struct):
    """Every non-2xx answer of the API."""

    error: ErrorDetail


# --------------------------------------------------------------------------- session


class SessionAuth(Struct):
    """The public part of the auth configuration (never the secret)."""

    mode: Literal["basic", "bearer", "header", "none"]
    username: str | None
    header_name: str | None


class SessionResponse(Struct):
    """``GET /api/session``."""

    schema: str
    read_only: bool
    version: str
    csrf_header: str
    csrf_token: str
    auth: SessionAuth


# --------------------------------------------------------------------------- overview


class JobCounts(Struct):
    """Job counts by state."""

    total: int
    ready: int
    scheduled: int
    locked: int
    failed: int


class QueueSummary(Struct):
    """A named queue."""

    queue_name: str
    job_count: int
    locked_at: datetime | None
    locked_by: str | None


class LockedWorkerSummary(Struct):
    """A locker id holding jobs or queues now."""

    worker_id: str
    locked_jobs: int
    locked_queues: int
    oldest_locked_at: datetime | None


class ActiveWorkerSummary(Struct):
    """A worker registered for recovery, with its last heartbeat."""

    worker_id: str
    last_heartbeat_at: datetime
    started_at: datetime
    metadata: Any = None


class OverviewResponse(Struct):
    """``GET /api/overview``."""

    counts: JobCounts
    queues: list[QueueSummary]
    locked_workers: list[LockedWorkerSummary]
    active_workers: list[ActiveWorkerSummary]
    tasks: list[str]
    now: datetime


# --------------------------------------------------------------------------- jobs


class ListedJob(Struct):
    """A job as the admin API shows it."""

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
    flags: list[str]
    is_available: bool
    state: JobStateName


class JobListQuery(Struct, forbid_unknown_fields=False):
    """Query parameters of ``GET /api/jobs`` (limit above 500 is capped to 500)."""

    state: JobStateFilter = "all"
    identifier: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    queue: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    search: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    limit: Annotated[int, Meta(ge=1)] = DEFAULT_LIST_LIMIT
    offset: Annotated[int, Meta(ge=0, le=MAX_OFFSET)] = 0


class JobListResponse(Struct):
    """``GET /api/jobs``."""

    jobs: list[ListedJob]
    limit: int
    offset: int
    has_more: bool


class JobResponse(Struct):
    """One job: ``GET /api/jobs/{id}`` and ``POST /api/jobs`` (201)."""

    job: ListedJob


class AddedJobResponse(Struct, omit_defaults=True):
    """``POST /api/jobs`` (201): the new job, and a warning when no worker has
    registered its task identifier (a likely typo; the job was added)."""

    job: ListedJob
    warning: str | None = None


class RemovedJobResponse(Struct):
    """``POST /api/jobs/remove-by-key``: the removed job, or null when no job had the key."""

    job: ListedJob | None


class AddJobRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /api/jobs``: only ``identifier`` is required."""

    identifier: Annotated[str, Meta(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)]
    payload: Any = None
    queue: Annotated[str, Meta(min_length=1, max_length=MAX_QUEUE_NAME_LENGTH)] | None = None
    run_at: AwareDatetime | None = None
    max_attempts: MaxAttempts | None = None
    key: JobKey | None = None
    job_key_mode: JobKeyModeName | None = None
    priority: Priority | None = None
    flags: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)]],
            Meta(max_length=MAX_FLAGS),
        ]
        | None
    ) = None


class JobActionRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /api/jobs/action``.

    ``reason`` only goes with ``fail``; ``run_at``, ``priority``, ``attempts``
    and ``max_attempts`` only with ``reschedule`` (which needs at least one).
    """

    action: JobActionName
    ids: Annotated[list[JobId], Meta(min_length=1, max_length=MAX_IDS)]
    run_at: AwareDatetime | None = None
    priority: Priority | None = None
    attempts: Attempts | None = None
    max_attempts: MaxAttempts | None = None
    reason: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None


class ActionResponse(Struct):
    """What a job action changed (locked or missing jobs are not listed)."""

    action: JobActionName
    count: int
    jobs: list[ListedJob]


class RemoveByKeyRequest(Struct, forbid_unknown_fields=True):
    """``POST /api/jobs/remove-by-key``."""

    key: JobKey


# --------------------------------------------------------------------------- cancelling


class CancelJobsRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /api/jobs/cancel``: cancel waiting jobs and jobs gw workers run.

    A blank or missing ``reason`` is stored as "no reason given".
    """

    ids: Annotated[list[JobId], Meta(min_length=1, max_length=MAX_IDS)]
    reason: Annotated[str, Meta(max_length=MAX_CANCEL_REASON)] | None = None


class CancelJobResult(Struct):
    """What cancelling did to one job.

    ``cancelled``: it was waiting and has failed for good ("cancelled: <reason>");
    ``cancelling``: the gw worker ``worker_id`` runs it and was asked to stop it
    (within about a second); ``not_cancellable``: ``worker_id`` is not a gw
    worker (Node, Rust), nothing changed; ``finished``: it had already failed
    for good, nothing changed; ``not_found``: no such job.
    """

    job_id: int
    outcome: CancelOutcome
    worker_id: str | None


class CancelCounts(Struct):
    """How many jobs had each outcome."""

    cancelled: int
    cancelling: int
    not_cancellable: int
    finished: int
    not_found: int


class CancelJobsResponse(Struct):
    """``POST /api/jobs/cancel``: one result per distinct id, in the order asked.

    ``count`` is the number of jobs cancelled or being cancelled.
    """

    action: Literal["cancel"]
    count: int
    counts: CancelCounts
    results: list[CancelJobResult]


# --------------------------------------------------------------------------- limits


class LimitSummary(Struct):
    """A fleet-wide limit as gw workers configured it, and its use right now.

    ``rate`` is jobs per second (null: no rate limit) and ``burst`` how many may
    start back to back; ``tokens`` is how many may start right now (null
    without a rate limit); ``running`` counts the key's jobs that gw workers
    hold now, against ``max_concurrency`` (null: no concurrency limit).
    """

    key: str
    kind: LimitKind
    name: str
    rate: float | None
    burst: float | None
    max_concurrency: int | None
    tokens: float | None
    running: int
    updated_at: datetime


class LimitsResponse(Struct):
    """``GET /api/limits``: every configured limit, sorted by key."""

    limits: list[LimitSummary]
    now: datetime


# --------------------------------------------------------------------------- history


class HistoryListQuery(Struct, forbid_unknown_fields=False):
    """Query parameters of ``GET /api/history`` (limit above 500 is capped to 500).

    ``before_id`` pages: pass the previous answer's ``next_before_id``.
    """

    task: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    queue: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    outcome: HistoryOutcome | None = None
    job_id: JobId | None = None
    since: AwareDatetime | None = None
    before_id: Annotated[int, Meta(ge=1, le=BIGINT_MAX)] | None = None
    limit: Annotated[int, Meta(ge=1)] = DEFAULT_LIST_LIMIT


class HistoryItem(Struct):
    """One finished attempt as gw workers with ``gw.History`` recorded it.

    ``duration`` is the run time in seconds; ``queue_wait`` the seconds from
    ``run_at`` to the start (null without ``run_at``). ``result`` is what the
    handler returned (when results are kept), ``payload`` the job's payload
    (when payloads are kept).
    """

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
    error: str | None
    result: Any
    payload: Any
    duration: float
    queue_wait: float | None


class HistoryListResponse(Struct):
    """``GET /api/history``: newest recorded first.

    ``next_before_id`` (null on the last page) is the ``before_id`` of the next page.
    """

    entries: list[HistoryItem]
    limit: int
    has_more: bool
    next_before_id: int | None


class HistoryStatsQuery(Struct, forbid_unknown_fields=False):
    """Query parameters of ``GET /api/history/stats``.

    The range is ``range`` (default 1h) ending at ``until`` (default now), or
    ``since`` to ``until``; not both ``range`` and ``since``. ``bucket`` is
    seconds or a duration like ``range``; by default one that gives 60 to 120
    buckets. ``task`` and ``queue`` narrow the attempts (not the backlog).
    """

    range: (
        Annotated[str, Meta(pattern=DURATION_PATTERN, examples=["15m", "1h", "24h", "7d"])] | None
    ) = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    bucket: Annotated[str, Meta(pattern=BUCKET_PATTERN, examples=["60", "5m"])] | None = None
    task: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None
    queue: Annotated[str, Meta(max_length=MAX_FILTER_LENGTH)] | None = None


class HistoryStatsResponse(Struct):
    """``GET /api/history/stats``: see ``gw.types.HistoryStats``.

    ``since``/``until`` are the range widened to whole buckets of ``bucket``
    seconds. ``tasks`` are the 20 busiest tasks, most attempts first (each list
    aligned with ``buckets``); the other tasks' attempts are the bucket totals
    minus these. ``backlog`` has the latest sample of each bucket.
    """

    since: datetime
    until: datetime
    bucket: float
    buckets: list[HistoryBucket]
    tasks: list[TaskThroughput]
    task_count: int
    backlog: list[BacklogSample]
    now: datetime


# --------------------------------------------------------------------------- maintenance


class MigrateRequest(Struct, tag="migrate", tag_field="action", forbid_unknown_fields=True):
    """Install or upgrade the schema."""


class CleanupRequest(Struct, tag="cleanup", tag_field="action", forbid_unknown_fields=True):
    """Run cleanup tasks (all of them when ``cleanup_tasks`` is omitted)."""

    cleanup_tasks: Annotated[list[CleanupTaskName], Meta(min_length=1)] | None = None


class ForceUnlockRequest(
    Struct, tag="force-unlock", tag_field="action", forbid_unknown_fields=True
):
    """Release everything these workers hold (at least one id)."""

    worker_ids: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=MAX_WORKER_ID_LENGTH)]],
        Meta(min_length=1, max_length=MAX_IDS),
    ]


class SweepRequest(
    Struct, tag="sweep-stale-workers", tag_field="action", forbid_unknown_fields=True
):
    """Recover the jobs of workers whose heartbeat is older than the threshold."""

    dry_run: bool = False
    sweep_threshold_secs: Annotated[float, Meta(gt=0, le=MAX_SECONDS)] | None = None
    recovery_delay_secs: Annotated[float, Meta(ge=0, le=MAX_SECONDS)] | None = None


MaintenanceRequest = MigrateRequest | CleanupRequest | ForceUnlockRequest | SweepRequest


class MigrateResult(Struct):
    migrated: bool
    applied: list[int]


class CleanupResult(Struct):
    tasks: list[CleanupTaskName]


class ForceUnlockResult(Struct):
    worker_ids: list[str]


class SweepResult(Struct):
    dry_run: bool
    worker_ids: list[str]
    job_ids: list[int]
    recovered_jobs: int


class MigrateResponse(Struct):
    action: Literal["migrate"]
    result: MigrateResult


class CleanupResponse(Struct):
    action: Literal["cleanup"]
    result: CleanupResult


class ForceUnlockResponse(Struct):
    action: Literal["force-unlock"]
    result: ForceUnlockResult


class SweepResponse(Struct):
    action: Literal["sweep-stale-workers"]
    result: SweepResult


def encode(value: Any) -> bytes:
    """JSON-encode a response body."""
    return _encoder.encode(value)


_encoder = msgspec.json.Encoder()
