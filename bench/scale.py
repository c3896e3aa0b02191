"""Scaling benchmark: one queue drained by 1, 2, 4 and 8 worker processes.

    python bench/scale.py [--database-url URL] [--jobs 50000] [--pgbouncer-url URL]

Each point fills the queue with no-op jobs, starts N ``gw worker`` processes
(both profiles of bench/drain.py) and measures from the first completion to
an empty table. It prints jobs/s, the share of the machine's CPU the
PostgreSQL server used, and how often active server backends were waiting on
a lock (``pg_stat_activity`` sampled every 50 ms), so the curve shows where
PostgreSQL rather than gw is the limit. The bare SQL drain (fetch 500 +
delete on one connection) of the same run is printed first; read the rest as
ratios to it. With ``--pgbouncer-url`` (the same database through PgBouncer
in transaction mode) the 4-process point is repeated through it, with
prepared statements off and LISTEN on the direct URL. The run uses a scratch
database (gw_bench_<pid>), so PgBouncer needs a ``*`` entry that routes any
database name to the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import database
from drain import SCHEMA, prepare, sql_drain

WORKER = """
import sys, anyio, gw
sys.path.insert(0, {bench!r})
from drain import worker_options

@gw.task("bench_noop")
async def noop(payload):
    return None

options = worker_options({profile!r})
worker = gw.Worker(
    [noop], database_url={url!r}, reset_locked_interval=None,
    shutdown=gw.ShutdownConfig(listen_os_signals=False),
    prepared_statements={prepared!r}, listen_database_url={listen_url!r}, **options,
)
anyio.run(worker.run_once)
"""


def server_cpu() -> float:
    """CPU seconds used by PostgreSQL so far: live server processes plus the
    backends that already exited (counted in the postmaster's children times)."""
    total = 0.0
    for p in psutil.process_iter(["name", "ppid"]):
        if p.info["name"] not in ("postgres", "postmaster"):
            continue
        try:
            t = p.cpu_times()
            total += t.user + t.system
            parent = psutil.Process(p.info["ppid"]) if p.info["ppid"] else None
            if parent is None or parent.name() not in ("postgres", "postmaster"):
                total += t.children_user + t.children_system  # the postmaster
        except psutil.Error:
            pass
    return total


def point(
    url: str, jobs: int, processes: int, profile: str, *, pooled: str | None = None
) -> dict[str, float]:
    prepare(url, jobs)
    code = WORKER.format(
        bench=str(Path(__file__).resolve().parent),
        profile=profile,
        url=pooled or url,
        prepared=pooled is None,
        listen_url=url if pooled else None,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        children = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
            for _ in range(processes)
        ]
        samples = waiting = 0
        start = None
        cpu0 = server_cpu()
        wall0 = time.perf_counter()
        while True:
            (left,) = conn.execute(f"select count(*) from {SCHEMA}._private_jobs").fetchone() or (
                0,
            )
            now = time.perf_counter()
            if start is None and left < jobs:
                start, cpu0, wall0 = now, server_cpu(), now
            if left == 0:
                break
            rows = conn.execute(
                "select wait_event_type from pg_stat_activity"
                " where state = 'active' and pid <> pg_backend_pid()"
            ).fetchall()
            samples += len(rows)
            waiting += sum(1 for (kind,) in rows if kind in ("Lock", "LWLock"))
            time.sleep(0.05)
        elapsed = time.perf_counter() - (start or wall0)
        for child in children:
            child.wait(timeout=120)
        cpu = server_cpu() - cpu0  # after the children's backends have exited
    return {
        "jobs_per_s": jobs / elapsed,
        "server_cpu_share": cpu / (elapsed * (os.cpu_count() or 1)),
        "lock_wait_share": waiting / samples if samples else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--processes", default="1,2,4,8")
    parser.add_argument("--pgbouncer-url", default=None)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    with database(args.database_url) as url:
        prepare(url, args.jobs)
        bare = sql_drain(url)
        print(f"{args.jobs} no-op jobs, {os.cpu_count()} CPUs; bare SQL drain {bare:,.0f} jobs/s")
        header = ("profile", "procs", "jobs/s", "x bare", "server CPU", "lock waits")
        print("{:8} {:>5} {:>9} {:>7} {:>10} {:>10}".format(*header))
        points = [(profile, n, None) for profile in ("default", "fast") for n in counts]
        if args.pgbouncer_url:
            dbname = conninfo_to_dict(url)["dbname"]
            pooled = make_conninfo(args.pgbouncer_url, dbname=dbname)
            points += [(profile, 4, pooled) for profile in ("default", "fast")]
        for profile, n, through in points:
            r = point(url, args.jobs, n, profile, pooled=through)
            label = f"{n} pgb" if through else str(n)
            rate = r["jobs_per_s"]
            print(
                f"{profile:8} {label:>5} {rate:9,.0f} {rate / bare:7.2f}"
                f" {r['server_cpu_share']:10.0%} {r['lock_wait_share']:10.0%}"
            )


if __name__ == "__main__":
    main()
