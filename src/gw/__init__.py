"""gw: Graphile Worker for Python, a PostgreSQL job queue for trio and asyncio.

Layers, each importing only from those above it: ``gw.errors``/``gw.types``;
``gw.runtime`` (anyio building blocks, the only place that knows the event
loop); ``gw.db`` (psycopg on anyio, migrations, named queries); ``gw.core``
(WorkerUtils, tasks, hooks); ``gw.worker`` and ``gw.cron``; and the leaves
``gw.cli``, ``gw.admin``, ``gw.plugins`` and ``gw.testing``. This module
re-exports the public surface lazily (PEP 562): ``import gw`` loads only the
error classes, and each name imports its module on first use, so a tasks
module that only needs ``@gw.task`` or a CLI call pays for nothing else.
Nothing here loads trio, Quart or hypercorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from ._public import publish as _publish
from .errors import (
    ConfigurationError as ConfigurationError,
    ConnectionFailed as ConnectionFailed,
    ConnectionLost as ConnectionLost,
    CrontabError as CrontabError,
    DatabaseError as DatabaseError,
    GwError as GwError,
    GwInternalError as GwInternalError,
    HookError as HookError,
    InvalidJobSpec as InvalidJobSpec,
    JobScheduleSkipped as JobScheduleSkipped,
    MigrationError as MigrationError,
    PayloadError as PayloadError,
    PoolTimeout as PoolTimeout,
    ResultTimeout as ResultTimeout,
    ResultUnavailable as ResultUnavailable,
    SchemaTooNew as SchemaTooNew,
    TaskNotFound as TaskNotFound,
    UnknownTaskWarning as UnknownTaskWarning,
)

if TYPE_CHECKING:
    from .core.hooks import (
        AfterJobRun as AfterJobRun,
        BeforeJobRun as BeforeJobRun,
        BeforeJobSchedule as BeforeJobSchedule,
        Continue as Continue,
        CronJobScheduled as CronJobScheduled,
        CronTick as CronTick,
        Fail as Fail,
        HookRegistry as HookRegistry,
        HookResult as HookResult,
        JobCancelled as JobCancelled,
        JobComplete as JobComplete,
        JobFail as JobFail,
        JobFetch as JobFetch,
        JobInterrupted as JobInterrupted,
        JobPermanentlyFail as JobPermanentlyFail,
        JobRecovery as JobRecovery,
        JobStart as JobStart,
        LocalQueueGetJobsComplete as LocalQueueGetJobsComplete,
        LocalQueueInit as LocalQueueInit,
        LocalQueueRefetchDelayAbort as LocalQueueRefetchDelayAbort,
        LocalQueueRefetchDelayExpired as LocalQueueRefetchDelayExpired,
        LocalQueueRefetchDelayStart as LocalQueueRefetchDelayStart,
        LocalQueueReturnJobs as LocalQueueReturnJobs,
        LocalQueueSetMode as LocalQueueSetMode,
        Plugin as Plugin,
        Reschedule as Reschedule,
        Rewrite as Rewrite,
        Skip as Skip,
        WorkerInit as WorkerInit,
        WorkerRecovered as WorkerRecovered,
        WorkerShutdown as WorkerShutdown,
        WorkerStart as WorkerStart,
    )
    from .core.limits import RateLimit as RateLimit
    from .core.retry import (
        Exponential as Exponential,
        PermanentFailure as PermanentFailure,
        Retry as Retry,
        RetryAfter as RetryAfter,
    )
    from .core.tasks import (
        BatchItemFailed as BatchItemFailed,
        Task as Task,
        TaskRegistry as TaskRegistry,
        batch_task as batch_task,
        task as task,
    )
    from .core.tracing import Tracing as Tracing
    from .core.utils import WorkerUtils as WorkerUtils
    from .cron import Cron as Cron, CrontabFill as CrontabFill, parse_crontab as parse_crontab
    from .runtime import Clock as Clock, FakeClock as FakeClock, SystemClock as SystemClock
    from .types import (
        ActiveWorker as ActiveWorker,
        CancelResult as CancelResult,
        CleanupTask as CleanupTask,
        Job as Job,
        JobKeyMode as JobKeyMode,
        JobSpec as JobSpec,
        RawJobSpec as RawJobSpec,
        SweepResult as SweepResult,
    )
    from .worker import (
        Extensions as Extensions,
        History as History,
        JobContext as JobContext,
        LocalQueueConfig as LocalQueueConfig,
        RecoveryConfig as RecoveryConfig,
        RefetchDelayConfig as RefetchDelayConfig,
        ShutdownConfig as ShutdownConfig,
        Worker as Worker,
    )
    from .worker._processes import run_processes as run_processes

__all__ = (
    "ActiveWorker",
    "AfterJobRun",
    "BatchItemFailed",
    "BeforeJobRun",
    "BeforeJobSchedule",
    "CancelResult",
    "CleanupTask",
    "Clock",
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectionLost",
    "Continue",
    "Cron",
    "CronJobScheduled",
    "CronTick",
    "CrontabError",
    "CrontabFill",
    "DatabaseError",
    "Exponential",
    "Extensions",
    "Fail",
    "FakeClock",
    "GwError",
    "GwInternalError",
    "History",
    "HookError",
    "HookRegistry",
    "HookResult",
    "InvalidJobSpec",
    "Job",
    "JobCancelled",
    "JobComplete",
    "JobContext",
    "JobFail",
    "JobFetch",
    "JobInterrupted",
    "JobKeyMode",
    "JobPermanentlyFail",
    "JobRecovery",
    "JobScheduleSkipped",
    "JobSpec",
    "JobStart",
    "LocalQueueConfig",
    "LocalQueueGetJobsComplete",
    "LocalQueueInit",
    "LocalQueueRefetchDelayAbort",
    "LocalQueueRefetchDelayExpired",
    "LocalQueueRefetchDelayStart",
    "LocalQueueReturnJobs",
    "LocalQueueSetMode",
    "MigrationError",
    "PayloadError",
    "PermanentFailure",
    "Plugin",
    "PoolTimeout",
    "RateLimit",
    "RawJobSpec",
    "RecoveryConfig",
    "RefetchDelayConfig",
    "Reschedule",
    "ResultTimeout",
    "ResultUnavailable",
    "Retry",
    "RetryAfter",
    "Rewrite",
    "SchemaTooNew",
    "ShutdownConfig",
    "Skip",
    "SweepResult",
    "SystemClock",
    "Task",
    "TaskNotFound",
    "TaskRegistry",
    "Tracing",
    "UnknownTaskWarning",
    "Worker",
    "WorkerInit",
    "WorkerRecovered",
    "WorkerShutdown",
    "WorkerStart",
    "WorkerUtils",
    "batch_task",
    "parse_crontab",
    "run_processes",
    "task",
)

# Where each public name lives; imported on first use (see __getattr__).
_HOMES: dict[str, tuple[str, ...]] = {
    ".core.hooks": (
        "AfterJobRun",
        "BeforeJobRun",
        "BeforeJobSchedule",
        "Continue",
        "CronJobScheduled",
        "CronTick",
        "Fail",
        "HookRegistry",
        "HookResult",
        "JobCancelled",
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
    ),
    ".core.limits": ("RateLimit",),
    ".core.retry": (
        "Exponential",
        "PermanentFailure",
        "Retry",
        "RetryAfter",
    ),
    ".core.tasks": (
        "BatchItemFailed",
        "Task",
        "TaskRegistry",
        "batch_task",
        "task",
    ),
    ".core.tracing": ("Tracing",),
    ".core.utils": ("WorkerUtils",),
    ".cron": (
        "Cron",
        "CrontabFill",
        "parse_crontab",
    ),
    ".runtime": (
        "Clock",
        "FakeClock",
        "SystemClock",
    ),
    ".types": (
        "ActiveWorker",
        "CancelResult",
        "CleanupTask",
        "Job",
        "JobKeyMode",
        "JobSpec",
        "RawJobSpec",
        "SweepResult",
    ),
    ".worker._processes": ("run_processes",),
    ".worker": (
        "Extensions",
        "History",
        "JobContext",
        "LocalQueueConfig",
        "RecoveryConfig",
        "RefetchDelayConfig",
        "ShutdownConfig",
        "Worker",
    ),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}

_publish(globals(), [name for name in __all__ if name not in _LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gw' has no attribute {name!r}")
    namespace = {name: getattr(importlib.import_module(module, __name__), name)}
    _publish(namespace, (name,))
    globals()[name] = namespace[name]
    return namespace[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
