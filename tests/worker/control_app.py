"""A worker process for the cancel and fleet-wide limit tests.

Usage: ``python -m tests.worker.control_app DATABASE_URL asyncio|trio CONCURRENCY``.
Every task notes its runs in the table ``runs`` (start and end times from the
database's clock, the process id), and the JobCancelled hook notes in
``cancelled`` which job it saw, so the tests read what happened in which
process from the database alone.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio

import gw
import gw.sync

TABLES = """
create table if not exists runs (
  id bigserial primary key, job_id bigint, task text, pid int, worker_id text,
  started_at timestamptz default clock_timestamp(), ended_at timestamptz
);
create table if not exists cancelled (job_id bigint, reason text, pid int);
create table if not exists release (id int)
"""


async def started(ctx: gw.JobContext) -> int:
    async with ctx.utils.pool.connection() as conn:
        cur = await conn.execute(
            "insert into runs (job_id, task, pid, worker_id) values (%s, %s, %s, %s) returning id",
            (ctx.job.id, ctx.job.task_identifier, os.getpid(), ctx.worker_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def ended(ctx: gw.JobContext, run_id: int) -> None:
    async with ctx.utils.pool.connection() as conn:
        await conn.execute("update runs set ended_at = clock_timestamp() where id = %s", (run_id,))


async def released(ctx: gw.JobContext) -> bool:
    async with ctx.utils.pool.connection() as conn:
        cur = await conn.execute("select exists(select 1 from release)")
        row = await cur.fetchone()
    return bool(row and row[0])


@gw.task("sleeper")
async def sleeper(payload: Any, ctx: gw.JobContext) -> None:
    await started(ctx)
    await anyio.sleep_forever()


@gw.task("sync_sleeper")
def sync_sleeper(payload: Any, ctx: gw.JobContext) -> None:
    with gw.sync.WorkerUtils(os.environ["DATABASE_URL"]) as utils:
        utils.connection.execute(
            "insert into runs (job_id, task, pid, worker_id) values (%s, %s, %s, %s)",
            (ctx.job.id, ctx.job.task_identifier, os.getpid(), ctx.worker_id),
        )
    deadline = time.monotonic() + 120
    while not ctx.is_cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)


@gw.batch_task("batch_sleeper")
async def batch_sleeper(items: list[Any], ctx: gw.JobContext) -> list[Any]:
    await started(ctx)
    await anyio.sleep_forever()
    return [None] * len(items)


@gw.task("quick")
async def quick(payload: Any, ctx: gw.JobContext) -> None:
    await ended(ctx, await started(ctx))


@gw.task("limited", rate_limit=gw.RateLimit(20, burst=5))
async def limited(payload: Any, ctx: gw.JobContext) -> None:
    await started(ctx)


@gw.task("free")
async def free(payload: Any) -> None:
    pass


@gw.task("capped", max_concurrency=3)
async def capped(payload: Any, ctx: gw.JobContext) -> None:
    run_id = await started(ctx)
    if payload.get("hold"):
        while not await released(ctx):  # noqa: ASYNC110 (another process sets it)
            await anyio.sleep(0.05)
    else:
        await anyio.sleep(0.1)
    await ended(ctx, run_id)


def make_worker(database_url: str, concurrency: int) -> gw.Worker:
    worker = gw.Worker(
        [sleeper, sync_sleeper, batch_sleeper, quick, limited, free, capped],
        database_url=database_url,
        concurrency=concurrency,
        poll_interval=0.5,
        migrate=False,
        recovery=gw.RecoveryConfig(
            heartbeat_interval=0.2, sweep_interval=0.3, sweep_threshold=2.0, recovery_delay=0
        ),
        shutdown=gw.ShutdownConfig(grace_period=0.5),
    )

    async def note_cancelled(event: gw.JobCancelled) -> None:
        async with worker.utils.pool.connection() as conn:
            await conn.execute(
                "insert into cancelled values (%s, %s, %s)",
                (event.job.id, event.reason, os.getpid()),
            )

    worker.on(gw.JobCancelled, note_cancelled)
    return worker


async def main(database_url: str, concurrency: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    await make_worker(database_url, concurrency).run()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[3]), backend=sys.argv[2])
