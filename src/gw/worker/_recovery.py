"""The worker's side of dead-worker recovery: heartbeat and sweep loops.

The heartbeat row's id is the worker's ``worker_id``, the value it writes
into ``locked_by``: a sweeper (gw's or Rust's) judges a lock by that row, so
any other id would make this worker's jobs look orphaned.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import msgspec

from ..core import hooks as h, recovery
from ..errors import DatabaseError
from ..runtime import SystemClock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..db.pool import Pool
    from ..db.queries import Queries
    from ..runtime import Clock
    from ..types import Job, SweepResult
    from ._config import RecoveryConfig
    from ._fetching import WorkSignal

__all__ = ("WorkerRecovery",)

logger = logging.getLogger("gw.recovery")


class WorkerRecovery:
    """Heartbeats (and, unless ``config.sweep`` is off, sweeps) for one worker."""

    def __init__(
        self,
        config: RecoveryConfig,
        *,
        pool: Pool,
        queries: Queries,
        worker_id: str,
        tasks: Sequence[str],
        hooks: h.HookRegistry,
        clock: Clock,
        work: WorkSignal,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self._pool = pool
        self._queries = queries
        self.worker_id = worker_id
        self._hooks = hooks
        self._work = work
        self._sweep_clock = clock
        # quiet: the default heartbeat-only mode, which the user did not ask for,
        # so a schema without the workers table is not worth a warning. It
        # beats on real time: staleness is judged by the database's now(),
        # and a test's fake clock should not gain a sleeper it never asked for.
        self._quiet = quiet
        self._clock = SystemClock() if quiet else clock
        self.registered = False
        self._metadata = msgspec.json.encode(
            {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "gw_version": _version(),
                "schema": queries.schema,
                "tasks": list(tasks),
            }
        ).decode()

    async def start(self, tg: Any) -> None:
        """Register the heartbeat row, then keep it fresh (and sweep) in ``tg``."""
        queries = self._queries
        try:
            exists = await recovery.workers_table_exists_in(self._pool, queries)
        except DatabaseError as ex:
            logger.warning("recovery: cannot check for the workers table (%s); retrying", ex)
            exists = True  # the heartbeat loop reports and retries
        if not exists:
            if self._quiet:
                logger.debug("no workers table: worker %s does not heartbeat", self.worker_id)
                return
            logger.warning(
                "recovery is enabled but %s._private_workers does not exist; run the "
                "migrations (`gw migrate`) to use it. Recovery is off for worker %s",
                queries.quoted_schema,
                self.worker_id,
            )
            return
        # Registered before the worker fetches anything: its first lock must
        # already be covered by a heartbeat row.
        await self._heartbeat()
        tg.start_soon(self._heartbeat_loop)
        if self.config.sweep:
            tg.start_soon(self._sweep_loop)

    async def stop(self) -> None:
        """Remove the heartbeat row (clean shutdown; the caller bounds how long)."""
        if not self.registered:
            return
        try:
            await recovery.deregister_worker(self._pool, self._queries, self.worker_id)
            self.registered = False
        except DatabaseError as ex:
            logger.warning(
                "could not remove the heartbeat row of worker %s: %s; a sweeper will "
                "drop it once it is stale",
                self.worker_id,
                ex,
            )

    async def _heartbeat(self) -> bool:
        try:
            # Metadata every time: it restores the row in full if a sweeper
            # deleted it while this worker was unreachable.
            await recovery.heartbeat(self._pool, self._queries, self.worker_id, self._metadata)
        except DatabaseError as ex:
            logger.warning("heartbeat of worker %s failed: %s", self.worker_id, ex)
            return False
        self.registered = True
        return True

    async def _heartbeat_loop(self) -> None:
        clock = self._clock
        while True:
            await clock.sleep(self.config.heartbeat_interval)
            await self._heartbeat()

    async def _sweep_loop(self) -> None:
        # Sweep at once: a worker restarted after a crash recovers its
        # predecessor's jobs without waiting a whole interval.
        clock = self._sweep_clock
        while True:
            await self.sweep()
            await clock.sleep(self.config.sweep_interval)

    async def sweep(self) -> SweepResult | None:
        """One sweep with this worker's settings and JobRecovery hooks."""
        config = self.config
        decide = self._decide if self._hooks.has(h.JobRecovery) else None
        try:
            result = await recovery.sweep_stale_workers(
                self._pool,
                self._queries,
                sweep_threshold=config.sweep_threshold,
                recovery_delay=config.recovery_delay,
                resilient_flags=config.resilient_job_flags,
                resilient_multiplier=config.resilient_sweep_threshold_multiplier,
                decide=decide,
            )
        except DatabaseError as ex:
            logger.warning("stale-worker sweep failed: %s; trying again next interval", ex)
            return None
        if result is None or not (result.worker_ids or result.job_ids):
            return result
        logger.warning(
            "recovered %d job(s) of %d dead worker(s): %s%s",
            len(result.job_ids),
            len(result.worker_ids),
            ", ".join(result.worker_ids),
            f" ({len(result.skipped_job_ids)} left locked by a hook)"
            if result.skipped_job_ids
            else "",
            extra={"worker_id": self.worker_id, "dead_worker_ids": result.worker_ids},
        )
        if result.job_ids:
            # Recovered jobs may be runnable here right away.
            self._work.jobs_may_be_available()
        await self._hooks.emit(
            h.WorkerRecovered(self.worker_id, tuple(result.worker_ids), tuple(result.job_ids))
        )
        return result

    async def _decide(self, job: Job, dead_worker_id: str) -> h.HookResult:
        return await self._hooks.intercept(h.JobRecovery(self.worker_id, job, dead_worker_id))


def _version() -> str:
    from .. import __version__

    return __version__
