"""Backlog benchmark: does a worker slow down when the jobs table is deep?

For each backlog depth (``--sizes``, default 20,000 / 200,000 / 1,000,000
ready jobs) and table shape, one worker (the profiles of bench/drain.py,
concurrency 10, a fresh process per run) completes the first ``--window``
jobs (default 20,000) of the backlog. Printed: jobs/s and CPU per job of the
worker, and the bare-SQL ceiling at the same depth in the same run (one
connection: fetch 500 + delete, the statements gw uses), so results read as
ratios to that ceiling and to the smallest depth.

Shapes:
  plain  only ready jobs
  mixed  as plain, plus 10 % of the depth scheduled a day ahead and 5 %
         permanently failed (attempts = max_attempts): the table real
         deployments have

Rows are inserted by SQL (generate_series), not through gw, so filling a
million takes seconds; after each run the window is topped up and the table
VACUUM ANALYZEd, so every run starts from the same depth.

    python bench/backlog.py [--database-url URL] [--sizes 20000,200000,1000000]
                            [--shapes plain,mixed] [--window 20000]
                            [--profiles default,fast] [--backends asyncio,trio] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import psycopg
from _db import database  # bench/ (this script's folder) is on sys.path
from drain import SCHEMA, sql_drain  # bench/ (this script's folder) is on sys.path
from psycopg import sql

TASK = "bench_noop"


def _insert(conn: psycopg.Connection, count: int, *, offset: int, kind: str) -> None:
    """Insert ``count`` rows of one kind: ready, future or failed."""
    run_at = {
        "ready": "now() - interval '1 hour' + g * interval '1 microsecond'",
        "future": "now() + interval '1 day' + g * interval '1 microsecond'",
        "failed": "now() - interval '2 hours'",
    }[kind]
    attempts = "25" if kind == "failed" else "0"
    last_error = "'failed for good'" if kind == "failed" else "null"
    conn.execute(
        sql.SQL(
            """
            insert into {s}._private_jobs (task_id, payload, run_at, attempts, last_error)
            select (select id from {s}._private_tasks where identifier = %(task)s),
                   json_build_object('i', g), """
            + run_at
            + ", "
            + attempts
            + ", "
            + last_error
            + """
            from generate_series(%(first)s::bigint, %(last)s::bigint) as g
            """
        ).format(s=sql.Identifier(SCHEMA)),
        {"task": TASK, "first": offset + 1, "last": offset + count},
    )


def _vacuum(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("vacuum analyze {}._private_jobs").format(sql.Identifier(SCHEMA)))


def fill(url: str, size: int, shape: str) -> None:
    """Empty the table and queue ``size`` ready jobs (plus the mix for ``mixed``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("truncate {}._private_jobs").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL(
                "insert into {}._private_tasks (identifier) values (%s) on conflict do nothing"
            ).format(sql.Identifier(SCHEMA)),
            (TASK,),
        )
        _insert(conn, size, offset=0, kind="ready")
        if shape == "mixed":
            _insert(conn, size // 10, offset=size, kind="future")
            _insert(conn, size // 20, offset=size + size // 10, kind="failed")
        _vacuum(conn)


def top_up(url: str, size: int) -> None:
    """Bring the ready jobs back to ``size`` after a run took some."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "select count(*) from {}._private_jobs where is_available and run_at <= now()"
            ).format(sql.Identifier(SCHEMA))
        ).fetchone()
        missing = size - (row[0] if row else 0)
        if missing > 0:
            _insert(conn, missing, offset=10 * size, kind="ready")
        _vacuum(conn)


def run_worker(url: str, backend: str, profile: str, size: int, window: int) -> dict[str, float]:
    drain = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drain.py")
    argv = [sys.executable, drain, "--jobs", str(size), "--window", str(window)]
    out = subprocess.run(
        [*argv, "--child", url, backend, profile], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--sizes", default="20000,200000,1000000")
    parser.add_argument("--shapes", default="plain,mixed")
    parser.add_argument("--window", type=int, default=20000, help="jobs completed per run")
    parser.add_argument("--profiles", default="default,fast")
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if min(sizes) < args.window:
        parser.error(f"every size must be at least the window ({args.window})")

    from gw.db.migrate import migrate_sync

    with database(args.database_url) as url:
        migrate_sync(url, SCHEMA)
        print(
            f"backlog benchmark: window {args.window:,} jobs, median of {args.repeat}, "
            f"{os.cpu_count()} CPUs; 'vs SQL' = worker / bare SQL at the same depth, "
            "'vs first' = worker / the same case at the first size"
        )
        print(
            f"{'shape':6} {'queued':>9} {'SQL jobs/s':>10} {'profile':8} {'backend':8}"
            f" {'jobs/s':>8} {'cpu us/job':>10} {'vs SQL':>7} {'vs first':>8}"
        )
        first: dict[tuple[str, str, str], float] = {}
        for shape in args.shapes.split(","):
            for size in sizes:
                fill(url, size, shape)
                ceiling = sql_drain(url, args.window)
                top_up(url, size)
                for profile in args.profiles.split(","):
                    for backend in args.backends.split(","):
                        runs = []
                        for _ in range(args.repeat):
                            runs.append(run_worker(url, backend, profile, size, args.window))
                            top_up(url, size)
                        runs.sort(key=lambda r: r["elapsed"])
                        result = runs[len(runs) // 2]
                        rate = result["jobs"] / result["elapsed"]
                        cpu_us = result["cpu"] / result["jobs"] * 1e6
                        base = first.setdefault((shape, profile, backend), rate)
                        print(
                            f"{shape:6} {size:>9,} {ceiling:>10,.0f} {profile:8} {backend:8}"
                            f" {rate:>8,.0f} {cpu_us:>10.1f} {rate / ceiling:>7.2f}"
                            f" {rate / base:>8.2f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
