"""Drain benchmark: how fast does one worker empty a queue of no-op jobs?

For each profile and backend: queue N no-op jobs (add_jobs, then VACUUM
ANALYZE so every run starts from the same table state), start one worker
with concurrency 10 in a fresh process, and time until no unfinished job is
left. Prints jobs/s, CPU time per job and peak RSS of the worker process.

Profiles:
  default  Worker() defaults (adaptive batched completion, fetch per free slot)
  fast     local queue of 500, complete/fail batch delay 0
  +history either profile with gw.History() (results kept), e.g. fast+history

    python bench/drain.py [--database-url URL] [--jobs 20000] [--profiles default,fast]
                          [--baseline DIR]

``--baseline DIR`` also drains with the gw of another source tree (a git
worktree of an older commit), alternating run by run, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import anyio
import psycopg
from _db import child_env, database  # bench/ (this script's folder) is on sys.path

SCHEMA = "graphile_worker"


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's, kept across exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_options(profile: str) -> dict[str, object]:
    """The Worker options of a profile (see the module docstring)."""
    import gw

    options: dict[str, object] = {"concurrency": 10, "listen": True}
    profile, history, _ = profile.partition("+history")
    if history:
        options["history"] = gw.History()
    if profile == "fast":
        options.update(
            local_queue=gw.LocalQueueConfig(size=500),
            complete_job_batch_delay=0,
            fail_job_batch_delay=0,
        )
    return options


def child(url: str, backend: str, profile: str, jobs: int, window: int | None = None) -> None:
    """Run in a fresh process: drain the queue, print a JSON result line.

    With ``window``, stop timing once that many completions are written
    (the rest of the queue stays: a backlog measurement, bench/backlog.py).
    """
    import gw
    from gw.db.connection import connect

    @gw.task("bench_noop")
    async def noop(payload: object) -> None:
        return None

    async def main() -> dict[str, float]:
        worker = gw.Worker(
            [noop],
            database_url=url,
            reset_locked_interval=None,
            shutdown=gw.ShutdownConfig(listen_os_signals=False),
            **worker_options(profile),  # type: ignore[arg-type]
        )
        async with (
            await connect(url) as conn,
            anyio.create_task_group() as tg,
        ):
            await tg.start(worker.run)
            start = time.perf_counter()
            cpu0 = time.process_time()
            if window is not None:
                # Completions written (deleted rows), counted in-process.
                while worker.stats().get("completed", 0) < window:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            else:
                # Cheap in-process wait first, then confirm on the table itself.
                while worker.jobs_processed < jobs:  # noqa: ASYNC110 - a cheap in-process poll
                    await anyio.sleep(0.01)
                while True:
                    cur = await conn.execute(f"select exists (select from {SCHEMA}._private_jobs)")
                    row = await cur.fetchone()
                    if row and not row[0]:
                        break
                    await anyio.sleep(0.001)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            fetches = worker.stats().get("fetches", 0)
            worker.shutdown("bench done")
        done = jobs if window is None else window
        return {
            "elapsed": elapsed,
            "cpu": cpu,
            "rss_mb": peak_rss_mb(),
            "jobs": done,
            "fetches": fetches,
        }

    result = anyio.run(main, backend=backend)
    print(json.dumps(result))


def prepare(url: str, jobs: int) -> None:
    import gw

    async def fill() -> None:
        async with gw.WorkerUtils.connect(url) as utils:
            async with utils.pool.connection() as conn:
                await conn.execute(f"delete from {SCHEMA}._private_jobs")
                await conn.execute(f"vacuum analyze {SCHEMA}._private_jobs")
            specs = [gw.RawJobSpec(identifier="bench_noop", payload={"i": i}) for i in range(jobs)]
            for start in range(0, jobs, 20000):
                await utils.add_raw_jobs(specs[start : start + 20000])
            async with utils.pool.connection() as conn:
                await conn.execute(f"vacuum analyze {SCHEMA}._private_jobs")

    anyio.run(fill)


def sql_baseline(url: str, jobs: int) -> float:
    """The same drain done by bare SQL on one connection: the ceiling for a worker."""
    prepare(url, jobs)
    return sql_drain(url)


def sql_drain(url: str, window: int | None = None) -> float:
    """Fetch 500 + delete on one connection until the queue (or ``window`` jobs) is done."""
    from gw.db.queries import int_array, queries_for

    q = queries_for(SCHEMA)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(q.task_ids, {"identifiers": ["bench_noop"]}).fetchone()
        assert row is not None
        params = {"task_ids": int_array([row[0]]), "limit": 500, "worker_id": "bench_sql"}
        fetch = q.get_jobs(local_time=False, with_flags=False)
        start = time.perf_counter()
        done = 0
        while window is None or done < window:
            ids = [r[0] for r in conn.execute(fetch, params, prepare=True).fetchall()]
            if not ids:
                break
            conn.execute(
                q.complete_jobs,
                {"ids": int_array(ids), "keep": "{}", "worker_id": "bench_sql"},
                prepare=True,
            )
            done += len(ids)
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--profiles", default="default,fast")
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--window", type=int, help=argparse.SUPPRESS)  # bench/backlog.py
    parser.add_argument("--child", nargs=3, metavar=("URL", "BACKEND", "PROFILE"))
    parser.add_argument(
        "--baseline", metavar="DIR", help="also drain with the gw of this source tree, alternately"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.jobs, args.window)
        return

    with database(args.database_url) as url:
        print(
            f"SQL alone (fetch 500 + delete, no worker): {sql_baseline(url, args.jobs):.0f} jobs/s"
        )
        print(
            f"{'profile':14} {'backend':8} {'jobs/s':>9} {'cpu us/job':>11} {'peak RSS MB':>12}"
            f" {'jobs/fetch':>11}"
        )
        backends = args.backends.split(",")
        for profile in args.profiles.split(","):
            # Backends alternate run by run, so that a slow minute of the
            # machine falls on both alike; trio/asyncio is the median of the
            # ratios of runs side by side.
            runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
            base: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
            for _ in range(args.repeat):
                for backend in backends:
                    prepare(url, args.jobs)
                    runs[backend].append(run_child(url, backend, profile, args.jobs))
                    if args.baseline:
                        prepare(url, args.jobs)
                        base[backend].append(
                            run_child(url, backend, profile, args.jobs, args.baseline)
                        )
            for backend in backends:
                ordered = sorted(runs[backend], key=lambda r: r["elapsed"])
                result = ordered[len(ordered) // 2]
                rate = result["jobs"] / result["elapsed"]
                cpu_us = result["cpu"] / result["jobs"] * 1e6
                rss = max(r["rss_mb"] for r in ordered)
                per_fetch = result["jobs"] / max(1, result["fetches"])
                versus = ""
                if base[backend]:
                    ordered = sorted(base[backend], key=lambda r: r["elapsed"])
                    then = ordered[len(ordered) // 2]
                    versus = f"   baseline {then['jobs'] / then['elapsed']:.0f} jobs/s"
                    versus += f", x{rate / (then['jobs'] / then['elapsed']):.2f}"
                print(
                    f"{profile:14} {backend:8} {rate:9.0f} {cpu_us:11.1f} {rss:12.1f}"
                    f" {per_fetch:11.0f}{versus}"
                )
            if {"trio", "asyncio"} <= set(backends):
                ratios = sorted(
                    a["elapsed"] / t["elapsed"]
                    for t, a in zip(runs["trio"], runs["asyncio"], strict=True)
                )
                print(
                    f"{profile:14} trio/asyncio {ratios[len(ratios) // 2]:.2f}"
                    f" (runs side by side: {min(ratios):.2f} .. {max(ratios):.2f})"
                )


def run_child(
    url: str, backend: str, profile: str, jobs: int, tree: str | None = None
) -> dict[str, float]:
    """One drain in a fresh worker process (``tree``: with the gw of that source tree)."""
    out = subprocess.run(
        [sys.executable, __file__, "--jobs", str(jobs), "--child", url, backend, profile],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(tree),
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
