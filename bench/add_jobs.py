"""Add-jobs benchmark: how fast does WorkerUtils put jobs into the queue?

Modes, each run on asyncio and on trio in a fresh process against a freshly
emptied and VACUUMed jobs table, repeated ``--runs`` times (the median is
reported, with the range):

  bulk      one add_jobs() call with N jobs (default 20,000)
  single    add_job() one by one, each awaited before the next (default 2,000)
  single10  the same 2,000 add_job() calls from 10 concurrent tasks (pool of 10)

A scratch database is created on the server (the URL's database is only used
to create and drop it).

    python bench/add_jobs.py [--database-url URL] [--bulk 20000] [--single 2000]
                             [--runs 3] [--modes bulk,single,single10]
                             [--backends asyncio,trio]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

SCHEMA = "graphile_worker"
MODES = ("bulk", "single", "single10")


def child(url: str, backend: str, mode: str, count: int) -> None:
    """Run in a fresh process: add the jobs, print one JSON line with the timing."""
    import anyio

    from gw.core.utils import WorkerUtils, open_pool

    async def main() -> float:
        concurrency = 10 if mode == "single10" else 1
        async with open_pool(url, max_size=concurrency) as pool:
            utils = WorkerUtils(pool, SCHEMA)
            # Open the pool's connections before the clock starts.
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(pool.execute, "select 1")
            if mode == "bulk":
                jobs = [("bench_bulk", {"i": i}) for i in range(count)]
                start = time.perf_counter()
                added = await utils.add_jobs(jobs)
                elapsed = time.perf_counter() - start
                assert len(added) == count
                return elapsed

            numbers = iter(range(count))

            async def adder() -> None:
                for i in numbers:
                    await utils.add_job("bench_single", {"i": i})

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(adder)
            return time.perf_counter() - start

    seconds = anyio.run(main, backend=backend)
    print(json.dumps({"seconds": seconds}))


def reset(url: str) -> None:
    """Empty the schema's tables and VACUUM so every run starts alike."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("_private_jobs", "_private_job_queues", "_private_tasks"):
            conn.execute(
                sql.SQL("truncate {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table))
            )
        conn.execute(sql.SQL("vacuum analyze {}._private_jobs").format(sql.Identifier(SCHEMA)))
        conn.execute("checkpoint")


def run_child(url: str, backend: str, mode: str, count: int) -> float:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, backend, url, str(count)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"benchmark child failed ({mode}, {backend}):\n{proc.stderr}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--bulk", type=int, default=20_000, help="jobs in the add_jobs call")
    parser.add_argument("--single", type=int, default=2_000, help="jobs added one by one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; expected some of {', '.join(MODES)}")

    from gw.db.migrate import migrate_sync

    dbname = f"gw_bench_add_jobs_{os.getpid()}"
    url = make_conninfo(args.database_url, dbname=dbname)
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    try:
        migrate_sync(url, SCHEMA)
        print(
            f"add_jobs benchmark: {args.runs} runs per row (median, range), "
            f"{os.cpu_count()} CPUs, database {dbname}"
        )
        print(f"{'mode':<10} {'backend':<8} {'jobs':>7} {'jobs/s':>9}   range (jobs/s)")
        for mode in modes:
            count = args.bulk if mode == "bulk" else args.single
            for backend in backends:
                rates = []
                for _ in range(args.runs):
                    reset(url)
                    rates.append(count / run_child(url, backend, mode, count))
                print(
                    f"{mode:<10} {backend:<8} {count:>7} {statistics.median(rates):>9,.0f}"
                    f"   {min(rates):,.0f} .. {max(rates):,.0f}",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"kept database {dbname}")
        else:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(dbname)
                    )
                )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[4], sys.argv[3], sys.argv[2], int(sys.argv[5]))
    else:
        main()
