"""Crashed-worker recovery: list heartbeating workers and sweep stale ones.

Follows the Rust port (contract §8.2): one transaction, guarded by
``pg_try_advisory_xact_lock(0x47575253, 0x53574550)`` so that only one sweeper
works at a time; dead lockers are workers whose heartbeat is older than the
threshold (jobs flagged ``infrastructure_resilient`` buy their worker
``threshold x multiplier``) plus lockers with no heartbeat row at all whose
lock is older than the threshold. Their jobs are unlocked, the interrupted
attempt is given back and ``run_at`` is pushed by ``recovery_delay``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.rows import dict_row

from ..types import ActiveWorker, SweepResult

if TYPE_CHECKING:
    from ..db.pool import Pool
    from ..db.queries import Queries

__all__ = ("INFRASTRUCTURE_RESILIENT_FLAG", "list_active_workers", "sweep_stale_workers")

INFRASTRUCTURE_RESILIENT_FLAG = "infrastructure_resilient"


async def _workers_table_exists(conn: Any, queries: Queries) -> bool:
    cur = await conn.execute(
        queries.workers_table_exists, {"name": f"{queries.quoted_schema}._private_workers"}
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def list_active_workers(
    pool: Pool, queries: Queries, threshold: float | None = None
) -> list[ActiveWorker]:
    """Workers with a heartbeat row (newer than ``threshold`` seconds, if given)."""
    async with pool.connection() as conn:
        if not await _workers_table_exists(conn, queries):
            return []
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(queries.active_workers, {"threshold": threshold})
        rows = await cur.fetchall()
    return [msgspec.convert(r, ActiveWorker) for r in rows]


async def sweep_stale_workers(
    pool: Pool,
    queries: Queries,
    *,
    sweep_threshold: float = 300.0,
    recovery_delay: float = 30.0,
    dry_run: bool = False,
    resilient_flags: tuple[str, ...] = (INFRASTRUCTURE_RESILIENT_FLAG,),
    resilient_multiplier: int = 3,
) -> SweepResult | None:
    """Recover the jobs of dead workers; None when another sweeper holds the lock."""
    async with pool.connection() as conn, conn.transaction(force_rollback=dry_run):
        cur = await conn.execute(queries.sweep_lock)
        row = await cur.fetchone()
        if not row or not row[0]:
            return None
        dead: list[str] = []
        if await _workers_table_exists(conn, queries):
            cur = await conn.execute(queries.stale_workers, {"threshold": sweep_threshold})
            stale = [r[0] for r in await cur.fetchall()]
            if stale and resilient_flags:
                cur = await conn.execute(
                    queries.resilient_holders,
                    {
                        "worker_ids": stale,
                        "flags": list(resilient_flags),
                        "threshold": sweep_threshold * resilient_multiplier,
                    },
                )
                spared = {r[0] for r in await cur.fetchall()}
                stale = [w for w in stale if w not in spared]
            cur = await conn.execute(queries.orphan_locked_workers, {"threshold": sweep_threshold})
            dead = sorted(set(stale) | {r[0] for r in await cur.fetchall()})
        if not dead:
            return SweepResult(dry_run=dry_run, worker_ids=[], job_ids=[])
        cur = await conn.execute(queries.jobs_locked_by, {"worker_ids": dead})
        job_ids = [r[0] for r in await cur.fetchall()]
        if dry_run:
            return SweepResult(dry_run=True, worker_ids=dead, job_ids=job_ids)
        cur = await conn.execute(
            queries.recover_dead_worker_jobs, {"worker_ids": dead, "delay": recovery_delay}
        )
        row = await cur.fetchone()
        recovered = int(row[0]) if row else 0
        await conn.execute(queries.delete_stale_workers, {"worker_ids": dead})
    return SweepResult(dry_run=False, worker_ids=dead, job_ids=job_ids, recovered_jobs=recovered)
