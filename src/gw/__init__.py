"""gw: Graphile Worker for Python, a PostgreSQL job queue for trio and asyncio.

Layers, each importing only from those above it: ``gw.errors``/``gw.types``;
``gw.runtime`` (anyio building blocks, the only place that knows the event
loop); ``gw.db`` (psycopg on anyio, migrations, named queries); ``gw.core``
(WorkerUtils, tasks, hooks); ``gw.worker`` and ``gw.cron``; and the leaves
``gw.cli``, ``gw.admin``, ``gw.plugins`` and ``gw.testing``. This module
re-exports the public surface; importing it loads neither trio nor Quart nor
hypercorn.
"""

from __future__ import annotations

__version__ = "0.1.0"

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
from .core.tasks import (
    BatchItemFailed as BatchItemFailed,
    Task as Task,
    TaskRegistry as TaskRegistry,
    batch_task as batch_task,
    task as task,
)
from .core.utils import WorkerUtils as WorkerUtils
from .cron import Cron as Cron, CrontabFill as CrontabFill, parse_crontab as parse_crontab
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
    SchemaTooNew as SchemaTooNew,
    TaskNotFound as TaskNotFound,
)
from .runtime import Clock as Clock, FakeClock as FakeClock, SystemClock as SystemClock
from .types import (
    ActiveWorker as ActiveWorker,
    CleanupTask as CleanupTask,
    Job as Job,
    JobKeyMode as JobKeyMode,
    JobSpec as JobSpec,
    RawJobSpec as RawJobSpec,
    SweepResult as SweepResult,
)
from .worker import (
    Extensions as Extensions,
    JobContext as JobContext,
    LocalQueueConfig as LocalQueueConfig,
    RecoveryConfig as RecoveryConfig,
    RefetchDelayConfig as RefetchDelayConfig,
    ShutdownConfig as ShutdownConfig,
    Worker as Worker,
)

__all__ = (
    "ActiveWorker",
    "AfterJobRun",
    "BatchItemFailed",
    "BeforeJobRun",
    "BeforeJobSchedule",
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
    "Extensions",
    "Fail",
    "FakeClock",
    "GwError",
    "GwInternalError",
    "HookError",
    "HookRegistry",
    "HookResult",
    "InvalidJobSpec",
    "Job",
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
    "Plugin",
    "PoolTimeout",
    "RawJobSpec",
    "RecoveryConfig",
    "RefetchDelayConfig",
    "Reschedule",
    "Rewrite",
    "SchemaTooNew",
    "ShutdownConfig",
    "Skip",
    "SweepResult",
    "SystemClock",
    "Task",
    "TaskNotFound",
    "TaskRegistry",
    "Worker",
    "WorkerInit",
    "WorkerRecovered",
    "WorkerShutdown",
    "WorkerStart",
    "WorkerUtils",
    "batch_task",
    "parse_crontab",
    "task",
)

from ._public import publish as _publish

_publish(globals(), __all__)
