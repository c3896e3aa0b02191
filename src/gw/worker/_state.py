"""What the worker's parts share: its state, and helpers for logging jobs.

The worker is one class assembled from focused parts (``_fetching``,
``_executing``, ``_background``); this base declares the attributes they
all read and write, so each part type-checks on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from collections import deque

    from ..core import hooks as h
    from ..core.tasks import Task
    from ..db.pool import PinnedConnection, Pool
    from ..db.queries import Queries
    from ..runtime import Clock, Event, Notify, ParkingLot
    from ..types import Job
    from ._batcher import Batcher
    from ._config import LocalQueueConfig, ShutdownConfig
    from ._execute import ExecEnv, Outcome

__all__ = ("Mode", "WorkerState", "decode_json", "job_extra", "notification_count")

decode_json = msgspec.json.Decoder().decode

Mode = Literal["starting", "polling", "waiting", "ttl_expired", "released"]
"""Local queue modes, named as in Node's LocalQueue."""

Entry = tuple["Job", str]
"""A fetched job and its payload's JSON text."""


class WorkerState:
    """Attributes shared by the worker's parts (set in ``Worker.__init__``)."""

    # configuration
    worker_id: str
    queries: Queries
    concurrency: int
    poll_interval: float
    use_local_time: bool
    local_queue: LocalQueueConfig | None
    shutdown_config: ShutdownConfig
    reset_locked_interval: tuple[float, float] | None
    clock: Clock
    hooks: h.HookRegistry
    _forbidden_flags: Any
    _shutdown_trigger: Any

    # connections and helpers built at start
    _pool: Pool | None
    _fetch_conn: PinnedConnection
    _batcher: Batcher | None
    _env: ExecEnv | None
    _task_by_id: dict[int, Task[..., Any]]
    _task_ids_literal: str
    _queue_names: dict[int, str]

    # the local queue and the executors
    _ready: deque[Entry]
    _queue_waiting: dict[int, deque[Entry]]
    _queue_active: set[int]
    _parked: ParkingLot
    _waking: int
    _running: int
    _idle: Notify
    _fetch_notify: Notify
    _maybe_more: bool
    _notifications: int
    _buffer_since: float | None
    _lq_mode: Mode
    _interrupted: list[Job]
    jobs_processed: int

    # lifecycle
    _stopping: bool
    _once: bool
    _shutdown_requested: Event

    if TYPE_CHECKING:

        def shutdown(self, reason: str = "requested", *, graceful: bool = True) -> None: ...
        async def _return_unclaimed(self, reason: str = "shutdown") -> None: ...
        def _wake_executor(self) -> None: ...
        def _waiting_count(self) -> int: ...
        def _end_queue_turn(self, job: Job) -> bool: ...
        async def _record(self, job: Job, outcome: Outcome, elapsed: float) -> None: ...


def notification_count(payload: str) -> int:
    """How many new jobs a ``jobs:insert`` payload announces (1 when it does not say)."""
    if not payload:
        return 1
    try:
        data = decode_json(payload)
    except msgspec.DecodeError:
        return 1
    if isinstance(data, dict):
        count = data.get("count", 1)
        return int(count) if isinstance(count, (int, float)) else 1
    return 1


def job_extra(job: Job, elapsed: float | None = None) -> dict[str, Any]:
    """Structured ``extra=`` fields for a job's log records."""
    extra: dict[str, Any] = {
        "job_id": job.id,
        "task_identifier": job.task_identifier,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
    }
    if elapsed is not None:
        extra["duration"] = elapsed
    return extra
