"""Add-jobs benchmark: how fast does WorkerUtils put jobs into the queue?

Modes, each run on asyncio and on trio in a fresh process against a freshly
emptied and VACUUMed jobs table, repeated ``--runs`` times (the median is
reported, with the range):

  bulk      one add_raw_jobs() call with N jobs (default 20,000)
  single    add_job() one by one, each awaited before the next (default 2,000)
  single10  the same 2,000 add_job() calls from 10 concurrent tasks (pool of 10)
  million   1,000,000 jobs through add_raw_jobs() in calls of N (run once); prints
            the peak RSS after the first call and at the end (memory stays flat)

First the bare SQL: the statement gw sends for a bulk add of N, its JSON built
beforehand, run and read by plain psycopg (no gw code), so the bulk figures
read as a ratio to what the database itself does ("vs SQL").

A scratch database is created on the server (the URL's database is only used
to create and drop it).

    python bench/add_jobs.py [--database-url URL] [--bulk 20000] [--single 2000]
                             [--runs 3] [--modes bulk,single,single10,million]
                             [--backends asyncio,trio] [--baseline DIR]

``--baseline DIR`` also runs every row with the gw of another source tree (a
git worktree of an older commit: ``git worktree add /tmp/old <commit>``),
alternating run by run with this tree, and prints the ratio: "x base".
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
from _db import child_env  # bench/ (this script's folder) is on sys.path
from psycopg import sql
from psycopg.conninfo import make_conninfo

SCHEMA = "graphile_worker"
MODES = ("bulk", "single", "single10", "million")
MILLION = 1_000_000


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(url: str, backend: str, mode: str, count: int) -> None:
    """Run in a fresh process: add the jobs, print one JSON line with the timing."""
    import anyio

    from gw.core.utils import WorkerUtils, open_pool
    from gw.types import RawJobSpec

    result: dict[str, float] = {}

    async def main() -> None:
        concurrency = 10 if mode == "single10" else 1
        async with open_pool(url, max_size=concurrency) as pool:
            utils = WorkerUtils(pool, SCHEMA)
            # Open the pool's connections before the clock starts.
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(pool.execute, "select 1")
            if mode == "bulk":
                jobs = [RawJobSpec(identifier="bench_bulk", payload={"i": i}) for i in range(count)]
                start = time.perf_counter()
                added = await utils.add_raw_jobs(jobs)
                result["seconds"] = time.perf_counter() - start
                assert len(added) == count
                return
            if mode == "million":
                start = time.perf_counter()
                for first in range(0, MILLION, count):
                    batch = [
                        RawJobSpec(identifier="bench_bulk", payload={"i": i})
                        for i in range(first, min(first + count, MILLION))
                    ]
                    await utils.add_raw_jobs(batch)
                    if first == 0:
                        result["rss_first_mb"] = peak_rss_mb()
                result["seconds"] = time.perf_counter() - start
                result["rss_mb"] = peak_rss_mb()
                return

            numbers = iter(range(count))

            async def adder() -> None:
                for i in numbers:
                    await utils.add_job("bench_single", {"i": i})

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(adder)
            result["seconds"] = time.perf_counter() - start

    anyio.run(main, backend=backend)
    print(json.dumps(result))


def bare_sql(url: str, count: int) -> float:
    """The statement gw sends for a bulk add, with all ``count`` jobs in one and
    its parameters built beforehand, run by plain psycopg: seconds."""
    import msgspec

    from gw.db.queries import queries_for

    add_jobs = queries_for(SCHEMA).add_jobs
    params = {
        "payloads": msgspec.json.encode([{"i": i} for i in range(count)]).decode(),
        "kinds": '[{"identifier": "bench_bulk"}]',
        "kind_of": "[]",
        "preserve_run_at": False,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select 1")
        start = time.perf_counter()
        cur = conn.cursor(binary=True)
        rows = cur.execute(add_jobs, params).fetchall()
        elapsed = time.perf_counter() - start
    assert len(rows) == count
    return elapsed


def reset(url: str) -> None:
    """Empty the schema's tables and VACUUM so every run starts alike."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("_private_jobs", "_private_job_queues", "_private_tasks"):
            conn.execute(
                sql.SQL("truncate {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table))
            )
        conn.execute(sql.SQL("vacuum analyze {}._private_jobs").format(sql.Identifier(SCHEMA)))
        conn.execute("checkpoint")


def run_child(
    url: str, backend: str, mode: str, count: int, tree: str | None = None
) -> dict[str, float]:
    """One child run; ``tree``: import gw from that source tree instead."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, backend, url, str(count)],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(tree),
    )
    if proc.returncode != 0:
        sys.exit(f"benchmark child failed ({mode}, {backend}):\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--bulk", type=int, default=20_000, help="jobs per add_raw_jobs call")
    parser.add_argument("--single", type=int, default=2_000, help="jobs added one by one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--baseline", metavar="DIR", help="also run the gw of this source tree, alternately"
    )
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
        rates = []
        for _ in range(args.runs):
            reset(url)
            rates.append(args.bulk / bare_sql(url, args.bulk))
        ceiling = statistics.median(rates)
        print(
            f"bare SQL, {args.bulk:,} jobs in one statement (plain psycopg): "
            f"{ceiling:,.0f} jobs/s ({min(rates):,.0f} .. {max(rates):,.0f})"
        )
        base_head = f" {'base/s':>9} {'x base':>7}" if args.baseline else ""
        print(
            f"{'mode':<10} {'backend':<8} {'jobs':>9} {'jobs/s':>9} {'vs SQL':>7}"
            f"{base_head}   range"
        )
        for mode in modes:
            count = args.single if mode.startswith("single") else args.bulk
            total = MILLION if mode == "million" else count
            # Backends (and the baseline) alternate run by run, so that a slow
            # minute of the machine falls on all of them alike.
            rates: dict[str, list[float]] = {b: [] for b in backends}
            base_rates: dict[str, list[float]] = {b: [] for b in backends}
            extra: dict[str, str] = dict.fromkeys(backends, "")
            for _ in range(1 if mode == "million" else args.runs):
                for backend in backends:
                    reset(url)
                    result = run_child(url, backend, mode, count)
                    rates[backend].append(total / result["seconds"])
                    if mode == "million":
                        extra[backend] = (
                            f"   peak RSS {result['rss_first_mb']:.0f} MB after {count:,},"
                            f" {result['rss_mb']:.0f} MB after {total:,}"
                        )
                    if args.baseline:
                        reset(url)
                        base = run_child(url, backend, mode, count, args.baseline)
                        base_rates[backend].append(total / base["seconds"])
            for backend in backends:
                rate = statistics.median(rates[backend])
                ratio = f"{rate / ceiling:.2f}" if mode in ("bulk", "million") else ""
                versus = ""
                if base_rates[backend]:
                    base_rate = statistics.median(base_rates[backend])
                    versus = f" {base_rate:>9,.0f} {rate / base_rate:>7.2f}"
                print(
                    f"{mode:<10} {backend:<8} {total:>9,} {rate:>9,.0f} {ratio:>7}{versus}"
                    f"   {min(rates[backend]):,.0f} .. {max(rates[backend]):,.0f}"
                    f"{extra[backend]}",
                    flush=True,
                )
            if {"trio", "asyncio"} <= set(backends):
                pairs = sorted(t / a for t, a in zip(rates["trio"], rates["asyncio"], strict=True))
                print(
                    f"{mode:<10} trio/asyncio {pairs[len(pairs) // 2]:.2f}"
                    f" (runs side by side: {min(pairs):.2f} .. {max(pairs):.2f})",
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
