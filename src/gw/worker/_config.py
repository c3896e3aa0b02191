"""Worker configuration groups (frozen; durations in seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..core._requests import duration
from ..errors import ConfigurationError

__all__ = (
    "History",
    "LocalQueueConfig",
    "RecoveryConfig",
    "RefetchDelayConfig",
    "ShutdownConfig",
    "duration",
)


@dataclass(frozen=True)
class RefetchDelayConfig:
    """After a fetch returns fewer than ``threshold`` jobs, wait ``duration``
    before fetching again (unless ``max_abort_threshold`` notifications arrive)."""

    duration: float = 0.1
    threshold: int = 0
    max_abort_threshold: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", duration("refetch_delay.duration", self.duration))
        if self.threshold < 0:
            raise ConfigurationError("refetch_delay.threshold must be >= 0")
        if self.max_abort_threshold is not None and self.max_abort_threshold < 1:
            raise ConfigurationError("refetch_delay.max_abort_threshold must be >= 1")


@dataclass(frozen=True)
class LocalQueueConfig:
    """Batch-fetch up to ``size`` jobs ahead of the executors.

    Jobs not started within ``ttl`` are handed back to the database.
    """

    size: int = 100
    ttl: float = 300.0
    refetch_delay: RefetchDelayConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigurationError(f"local_queue.size must be an integer >= 1, got {self.size!r}")
        object.__setattr__(self, "ttl", duration("local_queue.ttl", self.ttl, allow_zero=False))


@dataclass(frozen=True)
class ShutdownConfig:
    """Graceful shutdown behaviour.

    Shutdown takes at most ``grace_period + cleanup_timeout`` seconds, also
    when the database stops answering: running jobs get the grace period,
    then the cleanup steps (hand back unstarted jobs, release interrupted
    ones, write pending outcomes, deregister, WorkerShutdown hooks) share
    ``cleanup_timeout``. A second SIGINT/SIGTERM (or ``shutdown(graceful=False)``)
    ends the grace period at once and cuts what is left of cleanup to 1 s.
    """

    listen_os_signals: bool = True
    """Handle SIGINT/SIGTERM (first: graceful; second: immediate)."""
    grace_period: float = 5.0
    """How long running jobs may take to finish after shutdown starts."""
    interrupted_job_retry_delay: float = 30.0
    """Jobs still running after the grace period are released to run again after this."""
    cleanup_timeout: float = 10.0
    """Time all cleanup steps together may take after the grace period."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grace_period", duration("grace_period", self.grace_period))
        object.__setattr__(
            self, "cleanup_timeout", duration("cleanup_timeout", self.cleanup_timeout)
        )
        object.__setattr__(
            self,
            "interrupted_job_retry_delay",
            duration("interrupted_job_retry_delay", self.interrupted_job_retry_delay),
        )


@dataclass(frozen=True)
class RecoveryConfig:
    """Dead-worker recovery (opt-in): heartbeats plus a sweeper.

    The worker writes a heartbeat row (id = the id it writes into
    ``locked_by``) every ``heartbeat_interval`` and removes it on a clean exit.
    Every ``sweep_interval`` it recovers the jobs of workers whose heartbeat
    is older than ``sweep_threshold`` (``x resilient_sweep_threshold_multiplier``
    while they hold a job flagged with one of ``resilient_job_flags``) and of
    lockers that never registered; recovered jobs wait ``recovery_delay``.
    ``sweep=False`` only heartbeats (so that other sweepers leave this
    worker's jobs alone) without sweeping.
    """

    enabled: bool = True
    heartbeat_interval: float = 30.0
    sweep_interval: float = 60.0
    sweep_threshold: float = 300.0
    recovery_delay: float = 30.0
    resilient_sweep_threshold_multiplier: int = 3
    resilient_job_flags: tuple[str, ...] = field(default=("infrastructure_resilient",))
    sweep: bool = True

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "sweep_interval", "sweep_threshold"):
            object.__setattr__(self, name, duration(name, getattr(self, name), allow_zero=False))
        object.__setattr__(self, "recovery_delay", duration("recovery_delay", self.recovery_delay))
        multiplier = self.resilient_sweep_threshold_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
            raise ConfigurationError(
                f"resilient_sweep_threshold_multiplier must be an integer >= 1, got {multiplier!r}"
            )
        flags: object = self.resilient_job_flags
        if (
            isinstance(flags, str)
            or not isinstance(flags, (list, tuple))
            or not all(isinstance(f, str) and f for f in flags)
        ):
            raise ConfigurationError(
                f"resilient_job_flags must be a list of non-empty strings, got {flags!r}"
            )
        object.__setattr__(self, "resilient_job_flags", tuple(flags))
        if self.heartbeat_interval >= self.sweep_threshold:
            # A live worker would look dead between two of its own heartbeats.
            raise ConfigurationError(
                f"heartbeat_interval ({self.heartbeat_interval:g} s) must be shorter than "
                f"sweep_threshold ({self.sweep_threshold:g} s)"
            )


_MAX_KEEP = timedelta(days=36500)
"""Longer would overflow the prune cutoff (a datetime) on some clocks."""


@dataclass(frozen=True)
class History:
    """Record every finished attempt in gw's history table (opt-in).

    Each attempt that ends (completed, failed, permanently failed, cancelled,
    skipped, rescheduled by ``RetryAfter``, interrupted by shutdown) becomes a row of
    ``_private_gw_history`` written in the same statement as the job's
    completion or failure: job id, task, queue, attempt, worker, ``run_at``,
    start and finish times, outcome, error and, with ``results``, what the
    handler returned (JSON, at most ``max_result_bytes``; ``payloads`` keeps
    the job's payload too). Rows older than ``keep`` are deleted by the
    workers every ``prune_interval`` (one at a time across the fleet).

    Every ``sample_interval`` one worker of the fleet also records how many
    jobs are ready, scheduled, running and permanently failed (the admin's
    backlog chart; one count over the jobs table per interval for the whole
    fleet); None turns sampling off.
    """

    keep: float | timedelta = timedelta(days=7)
    results: bool = True
    payloads: bool = False
    max_result_bytes: int = 65536
    prune_interval: float | timedelta = 600.0
    sample_interval: float | timedelta | None = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", duration("History keep", self.keep, allow_zero=False))
        if self.keep_seconds > _MAX_KEEP.total_seconds():
            raise ConfigurationError(
                f"History keep must be at most {_MAX_KEEP.days} days, got {self.keep_seconds:g} s"
            )
        object.__setattr__(
            self,
            "prune_interval",
            duration("History prune_interval", self.prune_interval, allow_zero=False),
        )
        if self.sample_interval is not None:
            object.__setattr__(
                self,
                "sample_interval",
                duration("History sample_interval", self.sample_interval, allow_zero=False),
            )
        size = self.max_result_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ConfigurationError(
                f"History max_result_bytes must be an integer >= 2, got {size!r}"
            )

    @property
    def keep_seconds(self) -> float:
        assert isinstance(self.keep, float)
        return self.keep

    @property
    def prune_seconds(self) -> float:
        assert isinstance(self.prune_interval, float)
        return self.prune_interval

    @property
    def sample_seconds(self) -> float | None:
        assert self.sample_interval is None or isinstance(self.sample_interval, float)
        return self.sample_interval
