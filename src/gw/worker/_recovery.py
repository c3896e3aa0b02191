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
import psycopg

from ..core import hooks as h, recovery
from ..errors import GwError
from ..runtime import CancelScope, SystemClock, move_on_after

if TYPE_CHECKING:
    from ..types import Job, SweepResult
    from ._config import RecoveryConfig
    from ._worker import Worker

__all__ = ("WorkerRecovery",)

logger = logging.getLogger("gw.recovery")

# Deregistering must not hold a stopping worker up for long.
_DEREGISTER_TIMEOUT = 5.0


class WorkerRecovery:
    """Heartbeats (and, unless ``config.sweep`` is off, sweeps) for one worker."""

    def __init__(self, worker: Worker, config: RecoveryConfig, *, quiet: bool = False) -> None:
        self.worker = worker
        self.config = config
        # quiet: the default heartbeat-only mode, which the user did not ask for,
        # so a schema without the workers table is not worth a warning. It
        # beats on real time: staleness is judged by the database's now(),
        # and a test's fake clock should not gain a sleeper it never asked for.
        self._quiet = quiet
        self._clock = SystemClock() if quiet else worker.clock
        self.registered = False
        self._metadata = msgspec.json.encode(
            {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "gw_version": _version(),
                "schema": worker.schema,
                "tasks": list(worker.tasks.identifiers),
            }
        ).decode()

    @property
    def _pool(self) -> Any:
        pool = self.worker._pool
        assert pool is not None
        return pool

    async def start(self, tg: Any) -> None:
        """Register the heartbeat row, then keep it fresh (and sweep) in ``tg``."""
        queries = self.worker.queries
        try:
            async with self._pool.connection() as conn:
                exists = await recovery.workers_table_exists(conn, queries)
        except (psycopg.Error, GwError) as ex:
            logger.warning("recovery: cannot check for the workers table (%s); retrying", ex)
            exists = True  # the heartbeat loop reports and retries
        if not exists:
            if self._quiet:
                logger.debug(
                    "no workers table: worker %s does not heartbeat", self.worker.worker_id
                )
                return
            logger.warning(
                "recovery is enabled but %s._private_workers does not exist; run the "
                "migrations (`gw migrate`) to use it. Recovery is off for worker %s",
                queries.quoted_schema,
                self.worker.worker_id,
            )
            return
        # Registered before the worker fetches anything: its first lock must
        # already be covered by a heartbeat row.
        await self._heartbeat()
        tg.start_soon(self._heartbeat_loop)
        if self.config.sweep:
            tg.start_soon(self._sweep_loop)

    async def stop(self) -> None:
        """Remove the heartbeat row (clean shutdown); never raises."""
        if not self.registered:
            return
        with CancelScope(shield=True), move_on_after(_DEREGISTER_TIMEOUT):
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        self.worker.queries.worker_deregister,
                        {"worker_id": self.worker.worker_id},
                    )
                self.registered = False
            except (psycopg.Error, GwError) as ex:
                logger.warning(
                    "could not remove the heartbeat row of worker %s: %s; a sweeper will "
                    "drop it once it is stale",
                    self.worker.worker_id,
                    ex,
                )

    async def _heartbeat(self) -> bool:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    self.worker.queries.worker_heartbeat,
                    # Metadata every time: it restores the row in full if a
                    # sweeper deleted it while this worker was unreachable.
                    {"worker_id": self.worker.worker_id, "metadata": self._metadata},
                )
        except (psycopg.Error, GwError) as ex:
            logger.warning("heartbeat of worker %s failed: %s", self.worker.worker_id, ex)
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
        clock = self.worker.clock
        while True:
            await self.sweep()
            await clock.sleep(self.config.sweep_interval)

    async def sweep(self) -> SweepResult | None:
        """One sweep with this worker's settings and JobRecovery hooks."""
        worker = self.worker
        config = self.config
        decide = self._decide if worker.hooks.has(h.JobRecovery) else None
        try:
            result = await recovery.sweep_stale_workers(
                self._pool,
                worker.queries,
                sweep_threshold=config.sweep_threshold,
                recovery_delay=config.recovery_delay,
                resilient_flags=config.resilient_job_flags,
                resilient_multiplier=config.resilient_sweep_threshold_multiplier,
                decide=decide,
            )
        except (psycopg.Error, GwError) as ex:
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
            extra={"worker_id": worker.worker_id, "dead_worker_ids": result.worker_ids},
        )
        if result.job_ids:
            # Recovered jobs may be runnable here right away.
            worker._maybe_more = True
            worker._fetch_notify.notify()
        await worker.hooks.emit(
            h.WorkerRecovered(worker.worker_id, tuple(result.worker_ids), tuple(result.job_ids))
        )
        return result

    async def _decide(self, job: Job, dead_worker_id: str) -> h.HookResult:
        return await self.worker.hooks.intercept(
            h.JobRecovery(self.worker.worker_id, job, dead_worker_id)
        )


def _version() -> str:
    from .. import __version__

    return __version__
