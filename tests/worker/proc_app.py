"""Tasks and a worker factory for the multi-process tests (imported by child processes)."""

from __future__ import annotations

import os
from typing import Any

import anyio

import gw

RAN = "create table if not exists ran (job_id bigint, worker_id text, pid int)"


async def record(ctx: gw.JobContext) -> int:
    """Note this run of the job; return how many times it has started."""
    async with ctx.utils.pool.connection() as conn:
        await conn.execute(
            "insert into ran values (%s, %s, %s)", (ctx.job.id, ctx.worker_id, os.getpid())
        )
        cur = await conn.execute("select count(*) from ran where job_id = %s", (ctx.job.id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@gw.task("quick")
async def quick(payload: Any, ctx: gw.JobContext) -> None:
    await record(ctx)


@gw.task("hold")
async def hold(payload: Any, ctx: gw.JobContext) -> None:
    """Blocks on its first start (the test kills that process); completes on the next."""
    if await record(ctx) == 1:
        await anyio.sleep_forever()


def make_worker() -> gw.Worker:
    return gw.Worker(
        [quick, hold],
        database_url=os.environ["DATABASE_URL"],
        concurrency=2,
        poll_interval=0.2,
        recovery=gw.RecoveryConfig(
            heartbeat_interval=0.2, sweep_interval=0.3, sweep_threshold=2.0, recovery_delay=0
        ),
        shutdown=gw.ShutdownConfig(grace_period=1.0),
    )
