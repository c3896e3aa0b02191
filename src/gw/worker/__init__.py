"""gw.worker: the job-running runtime."""

from __future__ import annotations

from ._config import (
    History as History,
    LocalQueueConfig as LocalQueueConfig,
    RecoveryConfig as RecoveryConfig,
    RefetchDelayConfig as RefetchDelayConfig,
    ShutdownConfig as ShutdownConfig,
)
from ._worker import Worker as Worker
from .context import Extensions as Extensions, JobContext as JobContext

__all__ = (
    "Extensions",
    "History",
    "JobContext",
    "LocalQueueConfig",
    "RecoveryConfig",
    "RefetchDelayConfig",
    "ShutdownConfig",
    "Worker",
)
