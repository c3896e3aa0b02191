"""Tracing benchmark: what does gw.Tracing cost when adding and running jobs?

Each row is measured with tracing off and on, interleaved, on one loop
(``--backend``); the median is printed, with the range:

  single   add_job() one by one, each awaited before the next (default 2,000),
           off and on alternating add by add; the range is per add
  bulk     one add_jobs() call with N jobs (default 20,000), ``--runs`` times
  drain    a worker's run_once() over N ready jobs (default 5,000, concurrency 8),
           ``--runs`` times

"On" uses an SDK TracerProvider with no span processor: spans are created,
timed and sampled, the context is written and read, nothing is exported (an
exporter's cost is the application's choice, not gw's). The jobs for "drain"
are added with tracing on for both rows, so the "off" row also shows that a
worker without tracing pays nothing for contexts it does not read.

A scratch database is created on the server and dropped after.

    python bench/tracing.py [--database-url URL] [--single 2000] [--bulk 20000]
                            [--drain 5000] [--runs 3] [--backend asyncio|trio]
                            [--modes single,bulk,drain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import anyio
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

import gw

SCHEMA = "graphile_worker"


@gw.task("bench_noop")
async def noop(payload: Any) -> None:
    pass


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("_private_jobs", "_private_job_queues", "_private_gw_trace_context"):
            conn.execute(
                sql.SQL("truncate {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table))
            )
        conn.execute(sql.SQL("vacuum analyze {}._private_jobs").format(sql.Identifier(SCHEMA)))


async def single(url: str, count: int, tracing: gw.Tracing) -> dict[bool, list[float]]:
    """Seconds per add_job, off and on alternating add by add (a busy machine's
    drift then hits both alike)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    async with gw.WorkerUtils.connect(url, migrate=False) as off:
        on = gw.WorkerUtils(off.pool, tracing=tracing)
        for n in range(count + 50):
            for traced, utils in ((False, off), (True, on)):
                started = time.perf_counter()
                await utils.add_job(noop, {"n": n})
                if n >= 50:  # after the statements are prepared
                    times[traced].append(time.perf_counter() - started)
    return times


async def bulk(url: str, count: int, traced: bool, tracing: gw.Tracing) -> float:
    jobs = [(noop, {"n": n}) for n in range(count)]
    async with gw.WorkerUtils.connect(url, migrate=False, tracing=tracing if traced else None) as u:
        started = time.perf_counter()
        await u.add_jobs(jobs)
        return time.perf_counter() - started


async def drain(url: str, count: int, traced: bool, tracing: gw.Tracing) -> float:
    async with gw.WorkerUtils.connect(url, migrate=False, tracing=tracing) as adder:
        await adder.add_jobs([(noop, {"n": n}) for n in range(count)])
    worker = gw.Worker(
        [noop],
        database_url=url,
        concurrency=8,
        tracing=tracing if traced else None,
        migrate=False,
        recovery=False,
    )
    started = time.perf_counter()
    done = await worker.run_once()
    elapsed = time.perf_counter() - started
    assert done == count, (done, count)
    return elapsed


def report(mode: str, count: int, seconds: dict[bool, list[float]], per_job: bool) -> None:
    """One row each for off and on: jobs/s (median and range) and what tracing adds."""
    rates = {t: [(1 if per_job else count) / s for s in seconds[t]] for t in (False, True)}
    off = statistics.median(rates[False])
    for traced in (False, True):
        rate = statistics.median(rates[traced])
        low, high = min(rates[traced]), max(rates[traced])
        cost = ""
        if traced:
            cost = f"{(1 / rate - 1 / off) * 1e6:+.1f} us/job ({off / rate - 1:+.0%} time)"
        print(
            f"{mode:<7} {count:>7,} {'on' if traced else 'off':<8} {rate:>9,.0f}   "
            f"{low:,.0f} .. {high:,.0f}   {cost}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--drain", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--modes", default="single,bulk,drain")
    args = parser.parse_args()
    sizes = {"single": args.single, "bulk": args.bulk, "drain": args.drain}
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in sizes:
            parser.error(f"unknown mode {mode!r}; expected some of {', '.join(sizes)}")

    from opentelemetry.sdk.trace import TracerProvider

    from gw.db.migrate import migrate_sync

    tracing = gw.Tracing(TracerProvider())
    dbname = f"gw_bench_tracing_{os.getpid()}"
    url = make_conninfo(args.database_url, dbname=dbname)
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    try:
        migrate_sync(url, SCHEMA)
        print(
            f"tracing benchmark on {args.backend}: median and range; {args.runs} runs of "
            f"bulk and drain; {os.cpu_count()} CPUs"
        )
        print(f"{'mode':<7} {'jobs':>7} {'tracing':<8} {'jobs/s':>9}   range          cost")
        for mode in modes:
            count = sizes[mode]
            reset(url)
            if mode == "single":
                times = anyio.run(single, url, count, tracing, backend=args.backend)
                report(mode, count, times, per_job=True)
                continue
            runs: dict[bool, list[float]] = {False: [], True: []}
            measure = bulk if mode == "bulk" else drain
            for _ in range(args.runs):
                for traced in (False, True):
                    reset(url)
                    runs[traced].append(
                        anyio.run(measure, url, count, traced, tracing, backend=args.backend)
                    )
            report(mode, count, runs, per_job=False)
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(dbname)))


if __name__ == "__main__":
    main()
