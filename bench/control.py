"""Control benchmark: cancel latency, a fleet-wide rate limit and a concurrency cap.

Runs PROCESSES worker processes (concurrency 10 each) on one database and
prints, each figure next to what it is measured against in the same run:

  cancel    time from cancel_jobs() returning to the running job's row being
            written as cancelled (p50 / p95 / max over N jobs), and the same
            for waiting jobs (no worker involved)
  rate      a task limited to RATE/s (burst BURST) beside an unlimited task:
            starts in the first 10 s, the most any window exceeded
            burst + rate*T by, and the unlimited task's drain time beside
            the limited one against alone (a ratio)
  cap       a task with max_concurrency=3 (20 ms jobs): the most running at
            once (from start/end times) and its throughput against 3/0.02 s

    python bench/control.py [--database-url URL] [--backend asyncio|trio] [--processes 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import psycopg
from _db import database  # bench/ (this script's folder) is on sys.path

import gw
import gw.sync
from gw.db.migrate import migrate

SCHEMA = "graphile_worker"
RATE, BURST = 20.0, 5
TABLES = """
drop table if exists bench_runs;
create table bench_runs (
  task text, pid int, started_at timestamptz default clock_timestamp(), ended_at timestamptz
);
"""


@gw.task("sleeper")
async def sleeper(payload: Any) -> None:
    await anyio.sleep_forever()


@gw.task("limited", rate_limit=gw.RateLimit(RATE, burst=BURST))
async def limited(payload: Any, ctx: gw.JobContext) -> None:
    async with ctx.utils.pool.connection() as conn:
        await conn.execute(
            "insert into bench_runs (task, pid) values ('limited', %s)", (os.getpid(),)
        )


@gw.task("free")
async def free(payload: Any) -> None:
    pass


@gw.task("capped", max_concurrency=3)
async def capped(payload: Any, ctx: gw.JobContext) -> None:
    async with ctx.utils.pool.connection() as conn:
        cur = await conn.execute(
            "insert into bench_runs (task, pid) values ('capped', %s) returning ctid",
            (os.getpid(),),
        )
        row = await cur.fetchone()
        await anyio.sleep(0.02)
        assert row is not None
        await conn.execute(
            "update bench_runs set ended_at = clock_timestamp() where ctid = %s", (row[0],)
        )


async def run_worker(url: str) -> None:
    worker = gw.Worker(
        [sleeper, limited, free, capped],
        database_url=url,
        concurrency=10,
        migrate=False,
        recovery=gw.RecoveryConfig(heartbeat_interval=0.5),
    )
    await worker.run()


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def left(url: str, task: str) -> int:
    return int(
        sql(
            url,
            f"select count(*) from {SCHEMA}.jobs"
            " where task_identifier = %s and attempts < max_attempts",
            (task,),
        )[0][0]
    )


def wait(condition: Any, what: str, timeout: float = 120.0, interval: float = 0.002) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - began


def add(url: str, task: str, count: int, run_at: str = "now()") -> list[int]:
    return [
        r[0]
        for r in sql(
            url,
            f"select (graphile_worker.add_job(%s, '{{}}', run_at => {run_at})).id"
            " from generate_series(1, %s)",
            (task, count),
        )
    ]


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return (
        f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {values[-1] * 1000:.1f} ms"
    )


def bench_cancel(url: str, jobs: int) -> None:
    ids = add(url, "sleeper", jobs)
    locked = f"select count(*) from {SCHEMA}._private_jobs where locked_by is not null"
    wait(lambda: sql(url, locked)[0][0] == jobs, "sleepers")
    running: list[float] = []
    with gw.sync.WorkerUtils(url) as utils:
        for job_id in ids:
            (result,) = utils.cancel_jobs([job_id], "bench")
            assert result.outcome == "cancelling", result
            running.append(
                wait(
                    lambda job_id=job_id: sql(
                        url,
                        f"select locked_by is null from {SCHEMA}._private_jobs where id = %s",
                        (job_id,),
                    )[0][0],
                    "a cancellation",
                )
            )
        waiting_ids = add(url, "sleeper", jobs, "now() + interval '1 hour'")
        waiting = []
        for job_id in waiting_ids:
            began = time.monotonic()
            (result,) = utils.cancel_jobs([job_id], "bench")
            waiting.append(time.monotonic() - began)
            assert result.outcome == "cancelled", result
    print(f"cancel   running jobs ({jobs}, other processes): {ms(running)} to the row written")
    print(f"cancel   waiting jobs ({jobs}): {ms(waiting)} for cancel_jobs() itself")


def bench_rate(url: str, free_jobs: int) -> None:
    alone = time.monotonic()
    add(url, "free", free_jobs)
    wait(lambda: left(url, "free") == 0, "free jobs alone", interval=0.01)
    alone = time.monotonic() - alone
    add(url, "limited", int(RATE * 20))
    beside = time.monotonic()
    add(url, "free", free_jobs)
    wait(lambda: left(url, "free") == 0, "free jobs beside", interval=0.01)
    beside = time.monotonic() - beside

    def span() -> float:
        return float(
            sql(
                url,
                "select coalesce(extract(epoch from max(started_at) - min(started_at)), 0)"
                " from bench_runs where task = 'limited'",
            )[0][0]
        )

    wait(lambda: span() >= 10.0, "10 s of limited starts", interval=0.05)
    starts = [
        r[0].timestamp()
        for r in sql(url, "select started_at from bench_runs where task = 'limited' order by 1")
    ]
    window = [s for s in starts if s - starts[0] <= 10.0]
    worst = max(
        (j - i + 1) - (BURST + RATE * (window[j] - window[i]))
        for i, j in itertools.combinations_with_replacement(range(len(window)), 2)
    )
    pids = len({r[0] for r in sql(url, "select pid from bench_runs where task = 'limited'")})
    print(
        f"rate     limit {RATE:g}/s burst {BURST}: {len(window)} starts in the first 10 s "
        f"(bound {BURST + RATE * 10:g}), {len(window) / (BURST + RATE * 10):.2f} of the bound; "
        f"worst window {worst:+.2f} jobs against burst + rate*T; {pids} processes took part"
    )
    print(
        f"rate     {free_jobs} unlimited jobs: {alone:.2f} s alone, {beside:.2f} s beside the "
        f"limited task ({alone / beside:.2f}x the speed alone)"
    )


def bench_cap(url: str, jobs: int) -> None:
    began = time.monotonic()
    add(url, "capped", jobs)
    wait(lambda: left(url, "capped") == 0, "capped jobs", interval=0.01)
    took = time.monotonic() - began
    rows = sql(url, "select started_at, ended_at from bench_runs where task = 'capped'")
    events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    ideal = 3 / 0.02
    print(
        f"cap      max_concurrency=3, {jobs} jobs of 20 ms: at most {peak} running at once; "
        f"{jobs / took:.0f} jobs/s against the ideal {ideal:.0f} ({jobs / took / ideal:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        anyio.run(run_worker, args.worker, backend=args.backend)
        return
    with database(args.database_url) as url:
        anyio.run(migrate, url)
        sql(url, TABLES)
        sql(url, f"truncate {SCHEMA}._private_jobs")
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", url, "--backend", args.backend],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.processes)
        ]
        try:
            wait(
                lambda: (
                    sql(url, f"select count(*) from {SCHEMA}._private_workers")[0][0]
                    >= args.processes
                ),
                "workers",
                interval=0.05,
            )
            print(f"{args.processes} worker processes x concurrency 10, {args.backend}")
            bench_cancel(url, 20)
            bench_rate(url, 5000)
            bench_cap(url, 300)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
