"""Crashed-worker recovery: list heartbeating workers and sweep stale ones.

Follows the Rust port (contract §8.2): one transaction, guarded by
``pg_try_advisory_xact_lock(0x47575253, 0x53574550)`` so that only one sweeper
works at a time; dead lockers are workers whose heartbeat is older than the
threshold (jobs flagged ``infrastructure_resilient`` buy their worker
``threshold x multiplier``) plus lockers with no heartbeat row at all whose
lock is older than the threshold. Their jobs are unlocked, the interrupted
attempt is given back and ``run_at`` is pushed by ``recovery_delay``.

A JobRecovery hook (passed in as ``decide``) turns the one set-based
statement into a per-job decision inside the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.rows import dict_row

from ..db._errors import translate
from ..db.queries import INTERRUPTED_JOB_MESSAGE
from ..types import ActiveWorker, Job, SweepResult
from .hooks import CONTINUE, Continue, Fail, HookResult, Reschedule, Skip

if TYPE_CHECKING:
    from ..db.pool import Pool
    from ..db.queries import Queries

__all__ = (
    "INFRASTRUCTURE_RESILIENT_FLAG",
    "RecoveryDecider",
    "deregister_worker",
    "heartbeat",
    "list_active_workers",
    "sweep_stale_workers",
    "workers_table_exists",
    "workers_table_exists_in",
)

logger = logging.getLogger("gw.recovery")

INFRASTRUCTURE_RESILIENT_FLAG = "infrastructure_resilient"

RecoveryDecider = Callable[[Job, str], Awaitable[HookResult]]
"""Asked per job during a sweep: ``(job, dead_locker_id) -> hook result``."""


async def workers_table_exists(conn: Any, queries: Queries) -> bool:
    """Whether the schema has the heartbeat table (gw track / RS migration 20)."""
    cur = await conn.execute(
        queries.workers_table_exists, {"name": f"{queries.quoted_schema}._private_workers"}
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def workers_table_exists_in(pool: Pool, queries: Queries) -> bool:
    """:func:`workers_table_exists` on a pooled connection (DatabaseError on failure)."""
    with translate("looking for the workers table"):
        async with pool.connection() as conn:
            return await workers_table_exists(conn, queries)


async def heartbeat(pool: Pool, queries: Queries, worker_id: str, metadata: str) -> None:
    """Create or refresh ``worker_id``'s heartbeat row."""
    with translate("heartbeat"):
        async with pool.connection() as conn:
            await conn.execute(
                queries.worker_heartbeat, {"worker_id": worker_id, "metadata": metadata}
            )


async def deregister_worker(pool: Pool, queries: Queries, worker_id: str) -> None:
    """Remove ``worker_id``'s heartbeat row (a clean shutdown)."""
    with translate("removing the heartbeat row"):
        async with pool.connection() as conn:
            await conn.execute(queries.worker_deregister, {"worker_id": worker_id})


async def list_active_workers(
    pool: Pool, queries: Queries, threshold: float | None = None
) -> list[ActiveWorker]:
    """Workers with a heartbeat row (newer than ``threshold`` seconds, if given)."""
    with translate("listing active workers"):
        async with pool.connection() as conn:
            if not await workers_table_exists(conn, queries):
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
    decide: RecoveryDecider | None = None,
) -> SweepResult | None:
    """Recover the jobs of dead workers; None when another sweeper holds the lock.

    Without ``decide`` every job gets the default recovery in one statement
    (``recover_dead_worker_jobs``). With it, ``decide(job, dead_locker_id)``
    is asked per job inside the sweep transaction (a JobRecovery hook):
    Continue recovers it as usual, Reschedule sets run_at/attempts, Fail
    fails it through the normal failure path, Skip leaves it locked.
    """
    with translate("sweeping stale workers"):
        async with pool.connection() as conn, conn.transaction(force_rollback=dry_run):
            cur = await conn.execute(queries.sweep_lock)
            row = await cur.fetchone()
            if not row or not row[0]:
                return None
            dead = await _dead_lockers(
                conn, queries, sweep_threshold, resilient_flags, resilient_multiplier
            )
            if not dead:
                return SweepResult(dry_run=dry_run, worker_ids=[], job_ids=[])
            if dry_run:
                cur = await conn.execute(queries.jobs_locked_by, {"worker_ids": dead})
                job_ids = [r[0] for r in await cur.fetchall()]
                return SweepResult(dry_run=True, worker_ids=dead, job_ids=job_ids)
            if decide is None:
                cur = await conn.execute(queries.jobs_locked_by, {"worker_ids": dead})
                job_ids = [r[0] for r in await cur.fetchall()]
                cur = await conn.execute(
                    queries.recover_dead_worker_jobs, {"worker_ids": dead, "delay": recovery_delay}
                )
                row = await cur.fetchone()
                recovered = int(row[0]) if row else 0
                skipped: list[int] = []
            else:
                job_ids, skipped = await _recover_each(conn, queries, dead, recovery_delay, decide)
                recovered = len(job_ids)
            await conn.execute(queries.delete_stale_workers, {"worker_ids": dead})
        return SweepResult(
            dry_run=False,
            worker_ids=dead,
            job_ids=job_ids,
            recovered_jobs=recovered,
            skipped_job_ids=skipped,
        )


async def _dead_lockers(
    conn: Any,
    queries: Queries,
    sweep_threshold: float,
    resilient_flags: tuple[str, ...],
    resilient_multiplier: int,
) -> list[str]:
    if not await workers_table_exists(conn, queries):
        return []
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
    return sorted(set(stale) | {r[0] for r in await cur.fetchall()})


async def _recover_each(
    conn: Any,
    queries: Queries,
    dead: list[str],
    recovery_delay: float,
    decide: RecoveryDecider,
) -> tuple[list[int], list[int]]:
    """Per-job recovery; returns (handled job ids, job ids left locked)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(queries.jobs_for_recovery, {"worker_ids": dead})
    jobs = [msgspec.convert(r, Job) for r in await cur.fetchall()]
    default: list[int] = []
    handled: list[int] = []
    skipped: list[int] = []
    keep_queues: set[int] = set()
    for job in jobs:
        locker = job.locked_by or ""
        decision = _checked(job, await decide(job, locker))
        if isinstance(decision, Skip):
            skipped.append(job.id)
            if job.job_queue_id is not None:
                keep_queues.add(job.job_queue_id)
            continue
        handled.append(job.id)
        if isinstance(decision, Reschedule):
            await conn.execute(
                queries.reschedule_recovered_job,
                {
                    "id": job.id,
                    "worker_id": locker,
                    "run_at": decision.run_at,
                    "attempts": decision.attempts,
                    "message": INTERRUPTED_JOB_MESSAGE,
                },
            )
        elif isinstance(decision, Fail):
            failure = {"id": job.id, "message": decision.message, "payload": None, "keep": False}
            await conn.execute(
                queries.fail_jobs,
                {
                    "failures": msgspec.json.encode([failure]).decode(),
                    "worker_id": locker,
                    "now": None,
                },
            )
        else:
            default.append(job.id)
    if default:
        await conn.execute(
            queries.recover_jobs,
            {
                "ids": default,
                "worker_ids": dead,
                "delay": recovery_delay,
                "message": INTERRUPTED_JOB_MESSAGE,
            },
        )
    await conn.execute(
        queries.unlock_dead_queues, {"worker_ids": dead, "keep": sorted(keep_queues)}
    )
    return handled, skipped


def _checked(job: Job, decision: object) -> Continue | Skip | Fail | Reschedule:
    """A usable JobRecovery answer; anything else is logged and means Continue."""
    if isinstance(decision, (Skip, Fail)):
        return decision
    if isinstance(decision, Reschedule):
        run_at = decision.run_at
        attempts = decision.attempts
        if not isinstance(run_at, datetime) or run_at.utcoffset() is None:
            problem = f"run_at {run_at!r} is not a timezone-aware datetime"
        elif attempts is not None and not (
            isinstance(attempts, int) and not isinstance(attempts, bool) and 0 <= attempts <= 32767
        ):
            problem = f"attempts {attempts!r} is not an integer between 0 and 32767"
        else:
            return decision
        logger.error(
            "JobRecovery hook rescheduled job %s with %s; recovering it the default way",
            job.id,
            problem,
        )
        return CONTINUE
    if not isinstance(decision, Continue):
        logger.error(
            "JobRecovery hook returned %r for job %s; expected Continue, Reschedule, Fail or "
            "Skip, recovering it the default way",
            decision,
            job.id,
        )
    return CONTINUE
