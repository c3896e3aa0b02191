"""A gw worker process for the fault tests.

    python -m tests.faults.worker_proc URL BACKEND ROLE

Runs the ``fault_job`` task until SIGTERM. Each run that completes records
itself in ``fault_runs`` (job number, and a token naming the worker, job and
attempt): the insert is retried until it lands and is idempotent, so a run
is counted once however often the database drops the connection under it,
and a job that ran twice shows two tokens. ROLE ``victim`` never finishes a
job (it marks the start in ``fault_started`` and hangs, to be SIGKILLed);
``sweeper`` also recovers the jobs of dead workers; ``worker`` just works.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

import gw

RUNS_TABLE = """
create table if not exists fault_runs (job int not null, run text primary key);
create table if not exists fault_started (job int not null, worker text not null)
"""


async def record(ctx: gw.JobContext, sql: str, params: tuple[Any, ...]) -> None:
    """Run one idempotent statement, retrying through connection losses."""
    while True:
        try:
            async with ctx.utils.pool.connection() as conn:
                await conn.execute(sql, params)
            return
        except gw.GwError:
            await anyio.sleep(0.05)
        except Exception as ex:  # a psycopg error from a dropped connection
            if "psycopg" not in type(ex).__module__:
                raise
            await anyio.sleep(0.05)


def make_task(role: str) -> gw.Task[..., Any]:
    @gw.task("fault_job")
    async def fault_job(payload: dict[str, Any], ctx: gw.JobContext) -> None:
        n = int(payload["n"])
        if role == "victim":
            await record(ctx, "insert into fault_started values (%s, %s)", (n, ctx.worker_id))
            await anyio.sleep_forever()
        await anyio.sleep(float(payload.get("work", 0.0)))
        token = f"{ctx.worker_id}:{ctx.job.id}:{ctx.job.attempts}"
        await record(
            ctx, "insert into fault_runs values (%s, %s) on conflict do nothing", (n, token)
        )

    return fault_job


async def main(url: str, role: str) -> None:
    recovery: gw.RecoveryConfig | None = None
    if role in ("sweeper", "victim"):
        # Quick heartbeats, so that a sweeper tells a live victim from a dead one.
        recovery = gw.RecoveryConfig(
            heartbeat_interval=0.5,
            sweep_interval=0.5,
            sweep_threshold=2,
            recovery_delay=0,
            sweep=role == "sweeper",
        )
    worker = gw.Worker(
        [make_task(role)],
        database_url=url,
        concurrency=8,
        local_queue=gw.LocalQueueConfig(size=50),
        poll_interval=0.2,
        recovery=recovery,
        shutdown=gw.ShutdownConfig(grace_period=5, cleanup_timeout=10),
    )
    await worker.run(task_status=_Ready())


class _Ready:
    """Prints READY once the worker fetches (the parent waits for it)."""

    def started(self, value: Any = None) -> None:
        print("READY", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[3], backend=sys.argv[2])
