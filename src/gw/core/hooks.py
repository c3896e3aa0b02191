"""Lifecycle hooks: events a worker emits and the registry that dispatches them.

Two kinds, as in the Rust port. **Observers** (most events) are told that
something happened; their return value is ignored and an exception they raise
is logged with the event's name and otherwise survived. **Interceptors**
(:class:`BeforeJobRun`, :class:`AfterJobRun`, :class:`BeforeJobSchedule`,
:class:`JobRecovery`) decide something: the first handler that returns a
non-``Continue`` result wins. Handlers may be sync or async.

Register with ``worker.on(JobStart, handler)`` or bundle several in a
:class:`Plugin` and pass ``plugins=[...]``.

Order: ``WorkerInit`` → ``WorkerStart`` → (per job) ``JobFetch`` →
``BeforeJobRun`` → ``JobStart`` → ``AfterJobRun`` → ``JobComplete`` |
``JobFail`` | ``JobPermanentlyFail`` (``JobInterrupted`` instead when shutdown
cancels a running job) → ``WorkerShutdown``. A job that BeforeJobRun skips
or fails gets neither JobStart nor AfterJobRun. With a local queue:
``LocalQueueInit`` once the fetcher starts, then ``LocalQueueSetMode``
(starting → polling → waiting ... → ttl_expired / released) around the
fetches, ``LocalQueueGetJobsComplete`` after each fetch (after its
JobFetch events) and ``LocalQueueReturnJobs`` when unstarted jobs are handed
back. ``WorkerRecovered`` follows each sweep that recovered something;
``JobRecovery`` is asked per job inside that sweep.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import msgspec

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from datetime import datetime

    from ..types import Job, JobSpec

__all__ = (
    "EVENTS",
    "AfterJobRun",
    "BeforeJobRun",
    "BeforeJobSchedule",
    "Continue",
    "CronJobScheduled",
    "CronTick",
    "Event",
    "Fail",
    "HookRegistry",
    "HookResult",
    "JobComplete",
    "JobFail",
    "JobFetch",
    "JobInterrupted",
    "JobPermanentlyFail",
    "JobRecovery",
    "JobStart",
    "LocalQueueGetJobsComplete",
    "LocalQueueInit",
    "LocalQueueRefetchDelayAbort",
    "LocalQueueRefetchDelayExpired",
    "LocalQueueRefetchDelayStart",
    "LocalQueueReturnJobs",
    "LocalQueueSetMode",
    "Plugin",
    "Reschedule",
    "Rewrite",
    "Skip",
    "WorkerInit",
    "WorkerRecovered",
    "WorkerShutdown",
    "WorkerStart",
)

logger = logging.getLogger("gw.hooks")


# ---------------------------------------------------------------------------- results


class Continue(msgspec.Struct, frozen=True):
    """Go on as if no hook were installed."""


class Skip(msgspec.Struct, frozen=True):
    """BeforeJobRun: do not run the job (it is completed without running).
    AfterJobRun: count the run as a success whatever it returned.
    BeforeJobSchedule: do not schedule it. JobRecovery: leave the job locked."""


class Fail(msgspec.Struct, frozen=True):
    """Fail the job (BeforeJobRun/AfterJobRun) or the scheduling (BeforeJobSchedule)."""

    message: str


class Rewrite(msgspec.Struct, frozen=True):
    """BeforeJobSchedule: schedule this identifier/payload/spec instead (None keeps).

    ``replace_payload=False`` keeps the original payload even when ``payload`` is given.
    """

    identifier: str | None = None
    payload: Any = None
    spec: JobSpec | None = None
    replace_payload: bool = True


class Reschedule(msgspec.Struct, frozen=True):
    """JobRecovery: unlock the job with this run_at and attempts."""

    run_at: datetime
    attempts: int | None = None


HookResult = Continue | Skip | Fail | Rewrite | Reschedule
CONTINUE = Continue()


# ---------------------------------------------------------------------------- events


class Event(msgspec.Struct, frozen=True):
    """Base class of every hook event."""

    interceptor: ClassVar[bool] = False


class WorkerInit(Event, frozen=True):
    """The worker is configured and about to connect."""

    worker_id: str
    tasks: tuple[str, ...]
    concurrency: int


class WorkerStart(Event, frozen=True):
    """The worker is connected, migrated and about to fetch jobs."""

    worker_id: str


class WorkerShutdown(Event, frozen=True):
    """The worker is stopping; ``reason`` says why (signal, trigger, error, run_once)."""

    worker_id: str
    reason: str


class WorkerRecovered(Event, frozen=True):
    """A sweep recovered the jobs of stale workers."""

    worker_id: str
    recovered_worker_ids: tuple[str, ...]
    job_ids: tuple[int, ...]


class JobFetch(Event, frozen=True):
    """A job was fetched (locked) by this worker."""

    worker_id: str
    job: Job


class JobStart(Event, frozen=True):
    """A job's handler is about to run (after BeforeJobRun said Continue)."""

    worker_id: str
    job: Job


class BeforeJobRun(Event, frozen=True):
    """Interceptor: Continue, Skip (complete without running) or Fail(message)."""

    interceptor: ClassVar[bool] = True
    worker_id: str
    job: Job
    payload: Any


class AfterJobRun(Event, frozen=True):
    """Interceptor after the handler returned: Continue, Fail(message) to fail the
    job, or Skip to count it as a success (``error`` is what the handler raised)."""

    interceptor: ClassVar[bool] = True
    worker_id: str
    job: Job
    error: BaseException | None
    duration: float


class JobComplete(Event, frozen=True):
    """A job succeeded (its row is being deleted)."""

    worker_id: str
    job: Job
    duration: float


class JobFail(Event, frozen=True):
    """A job failed and will be retried."""

    worker_id: str
    job: Job
    error: str
    duration: float


class JobPermanentlyFail(Event, frozen=True):
    """A job failed its last attempt; it stays in the table, not retried."""

    worker_id: str
    job: Job
    error: str
    duration: float = 0.0


class JobCancelled(Event, frozen=True):
    """A job this worker held was cancelled on request (``cancel_jobs``): it is
    failed for good with ``last_error = "cancelled: <reason>"``, never retried."""

    worker_id: str
    job: Job
    reason: str
    duration: float = 0.0


class JobInterrupted(Event, frozen=True):
    """A running job was interrupted by shutdown and released for a later retry."""

    worker_id: str
    job: Job


class JobRecovery(Event, frozen=True):
    """Interceptor during a stale-worker sweep: Continue (default recovery),
    Reschedule(run_at, attempts), Fail(message) (normal failure) or Skip."""

    interceptor: ClassVar[bool] = True
    worker_id: str
    job: Job
    stale_worker_id: str


class CronTick(Event, frozen=True):
    """The cron runner reached a minute."""

    worker_id: str
    timestamp: datetime
    backfill: bool


class CronJobScheduled(Event, frozen=True):
    """The cron runner scheduled a job for an item."""

    worker_id: str
    identifier: str
    task: str
    timestamp: datetime
    backfilled: bool


class BeforeJobSchedule(Event, frozen=True):
    """Interceptor before a job is added: Continue, Skip, Fail(message) or Rewrite(...).

    A rewrite of a batch job must keep the payload a non-empty JSON array.
    """

    interceptor: ClassVar[bool] = True
    identifier: str
    payload: Any
    spec: JobSpec


class LocalQueueInit(Event, frozen=True):
    """The fetcher of a worker with a local queue started."""

    worker_id: str
    size: int


class LocalQueueSetMode(Event, frozen=True):
    """The local queue changed mode: starting, polling (fetching), waiting (for
    a notification, the poll timer or free slots), ttl_expired, released."""

    worker_id: str
    old_mode: str
    new_mode: str


class LocalQueueGetJobsComplete(Event, frozen=True):
    """A fetch into the local queue returned ``jobs_count`` jobs (> 0)."""

    worker_id: str
    jobs_count: int


class LocalQueueReturnJobs(Event, frozen=True):
    """Unstarted jobs were handed back (TTL expired or shutdown)."""

    worker_id: str
    jobs_count: int


class LocalQueueRefetchDelayStart(Event, frozen=True):
    """A fetch returned fewer jobs than the threshold: the next one waits."""

    worker_id: str
    duration: float
    threshold: int
    abort_threshold: int


class LocalQueueRefetchDelayAbort(Event, frozen=True):
    """Enough new-job notifications arrived to end the refetch delay early."""

    worker_id: str
    count: int
    abort_threshold: int


class LocalQueueRefetchDelayExpired(Event, frozen=True):
    """The refetch delay ran its full duration."""

    worker_id: str


EVENTS: tuple[type[Event], ...] = (
    WorkerInit,
    WorkerStart,
    WorkerShutdown,
    WorkerRecovered,
    JobFetch,
    BeforeJobRun,
    JobStart,
    AfterJobRun,
    JobComplete,
    JobFail,
    JobPermanentlyFail,
    JobInterrupted,
    JobRecovery,
    CronTick,
    CronJobScheduled,
    BeforeJobSchedule,
    LocalQueueInit,
    LocalQueueSetMode,
    LocalQueueGetJobsComplete,
    LocalQueueReturnJobs,
    LocalQueueRefetchDelayStart,
    LocalQueueRefetchDelayAbort,
    LocalQueueRefetchDelayExpired,
)
"""Every event class, in lifecycle order."""

# ---------------------------------------------------------------------------- registry

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Any]


class Plugin(Protocol):
    """Something that registers several hooks at once."""

    def register(self, hooks: HookRegistry) -> None: ...


class HookRegistry:
    """Handlers by event type, called in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)

    def on(self, event: type[E], handler: Callable[[E], Awaitable[Any] | Any]) -> None:
        """Call ``handler(event)`` whenever ``event`` happens."""
        if not (isinstance(event, type) and issubclass(event, Event)) or event is Event:
            raise ConfigurationError(f"{event!r} is not a gw hook event class")
        if not callable(handler):
            raise ConfigurationError(f"hook handler for {event.__name__} is not callable")
        self._handlers[event].append(handler)

    def add_plugin(self, plugin: Plugin) -> None:
        plugin.register(self)

    def has(self, event: type[Event]) -> bool:
        return bool(self._handlers.get(event))

    async def emit(self, event: Event) -> None:
        """Tell observers; a failing observer is logged and skipped."""
        for handler in self._handlers.get(type(event), ()):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception(
                    "hook for %s raised; ignoring it",
                    type(event).__name__,
                    extra={"event": type(event).__name__},
                )

    async def intercept(self, event: Event) -> HookResult:
        """Ask interceptors; the first non-Continue answer wins.

        A raising interceptor is logged and counts as Continue, except that
        the caller decides (via the returned value) nothing else.
        """
        for handler in self._handlers.get(type(event), ()):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                logger.exception(
                    "interceptor for %s raised; treating it as Continue",
                    type(event).__name__,
                    extra={"event": type(event).__name__},
                )
                continue
            if result is None or isinstance(result, Continue):
                continue
            if not isinstance(result, (Skip, Fail, Rewrite, Reschedule)):
                logger.error(
                    "interceptor for %s returned %r, which is not a hook result; ignoring it",
                    type(event).__name__,
                    result,
                )
                continue
            return result
        return CONTINUE
