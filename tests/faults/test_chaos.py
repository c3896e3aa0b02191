"""Chaos: drains that survive PostgreSQL restarts, killed connections and a
killed worker, with every run counted.

Worker processes (:mod:`tests.faults.worker_proc`) run against a private
PostgreSQL the tests start, restart and stop themselves
(:mod:`tests.faults.private_pg`), never the shared server. Handlers record
each completed run in a side table with a token per (worker, job, attempt),
so a job that ran twice is counted, not assumed away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import gw
import gw.sync
import gw.testing
from tests.helpers import poll_until

from .private_pg import PrivatePostgres, find_bin_dir
from .worker_proc import RUNS_TABLE

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries (initdb, pg_ctl)"),
]

REPO = Path(__file__).resolve().parents[2]
LOOPS = ["asyncio", "trio"]
APP_NAME = "gw_fault_worker"


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        with gw.sync.WorkerUtils(server.url) as utils:
            utils.migrate()
            utils.connection.execute(RUNS_TABLE)
        yield server
    finally:
        server.close()


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def db(private_pg: PrivatePostgres) -> str:
    """The private server, emptied of jobs, runs and worker rows."""
    sql(
        private_pg.url,
        "truncate graphile_worker._private_jobs, graphile_worker._private_job_queues,"
        " graphile_worker._private_workers, fault_runs, fault_started",
    )
    return private_pg.url


def add_jobs(url: str, count: int, work: float) -> None:
    with gw.sync.WorkerUtils(url) as utils:
        for start in range(0, count, 5000):
            utils.add_raw_jobs(
                [
                    gw.RawJobSpec(identifier="fault_job", payload={"n": n, "work": work})
                    for n in range(start, min(count, start + 5000))
                ]
            )


class Workers:
    """Worker processes, started ready and stopped gracefully."""

    def __init__(self, url: str, loop: str) -> None:
        self.url = url  # the test's own connections
        self.worker_url = make_conninfo(url, application_name=APP_NAME)
        self.loop = loop
        self.procs: list[subprocess.Popen[str]] = []
        self.errors: dict[int, str] = {}

    def start(self, role: str = "worker") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker_proc", self.worker_url, self.loop, role],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the worker fetches, or exits
        assert line.strip() == "READY", proc.stderr.read() if proc.stderr else line
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                _, err = proc.communicate(timeout=60)  # waits, and closes the pipes
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
                proc.kill()
                proc.communicate()
                raise
            self.errors[proc.pid] = err

    def check_clean_exits(self) -> None:
        for proc in self.procs:
            if proc.returncode != -signal.SIGKILL:
                assert proc.returncode == 0, self.errors.get(proc.pid, "")[-3000:]


@pytest.fixture(params=LOOPS)
def workers(request: pytest.FixtureRequest, db: str) -> Iterator[Workers]:
    group = Workers(db, request.param)
    try:
        yield group
    finally:
        group.stop()


def count(url: str, query: str) -> int:
    """A count, or -1 while the server is unreachable (it is being restarted)."""
    try:
        return int(sql(url, query)[0][0])
    except psycopg.OperationalError:
        return -1


RUNS = "select count(distinct job) from fault_runs"
LEFT = "select count(*) from graphile_worker._private_jobs"


def accounting(url: str, total: int) -> dict[str, int]:
    runs = Counter(job for (job,) in sql(url, "select job from fault_runs"))
    return {
        "jobs": total,
        "ran": len(runs),
        "lost": total - len(runs),
        "ran twice": sum(1 for n in runs.values() if n > 1),
        "left in table": count(url, LEFT),
        "left locked": count(
            url,
            "select (select count(*) from graphile_worker._private_jobs"
            " where locked_by is not null) + (select count(*)"
            " from graphile_worker._private_job_queues where locked_by is not null)",
        ),
    }


def expect_every_job_once(url: str, total: int) -> None:
    result = accounting(url, total)
    print(f"accounting: {result}")  # the closing note's figures
    assert result == {
        "jobs": total,
        "ran": total,
        "lost": 0,
        "ran twice": 0,
        "left in table": 0,
        "left locked": 0,
    }


def test_postgres_restarted_twice_during_a_drain(
    private_pg: PrivatePostgres, workers: Workers
) -> None:
    total = 5000
    add_jobs(workers.url, total, work=0.02)
    workers.start()
    workers.start()
    for threshold in (total // 3, 2 * total // 3):
        poll_until(lambda t=threshold: count(workers.url, RUNS) >= t, what=f"{threshold} runs")
        private_pg.restart()
    poll_until(lambda: count(workers.url, LEFT) == 0, what="the drain", timeout=120)
    workers.stop()
    workers.check_clean_exits()
    expect_every_job_once(workers.url, total)


def test_worker_connections_terminated_again_and_again(workers: Workers) -> None:
    total = 5000
    add_jobs(workers.url, total, work=0.02)
    workers.start()
    workers.start()
    terminations = 0

    def terminate_then_check() -> bool:
        # Each check first drops every connection the workers hold.
        nonlocal terminations
        killed = sql(
            workers.url,
            "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity"
            " where application_name = %s",
            (APP_NAME,),
        )
        terminations += int(killed[0][0])
        return count(workers.url, LEFT) == 0

    poll_until(terminate_then_check, what="the drain", timeout=120, interval=0.1)
    print(f"connections terminated: {terminations}")
    assert terminations > 20
    workers.stop()
    workers.check_clean_exits()
    expect_every_job_once(workers.url, total)


def test_a_killed_worker_is_recovered_and_each_job_runs_once(workers: Workers) -> None:
    total = 300
    add_jobs(workers.url, total, work=0.0)
    victim = workers.start("victim")
    # The victim holds a full batch: 8 jobs running (hung) and the rest of its
    # local queue fetched but not started.
    started = "select count(*) from fault_started"
    poll_until(lambda: count(workers.url, started) == 8, what="8 jobs running in the victim")
    locked = "select count(*) from graphile_worker._private_jobs where locked_by is not null"
    assert count(workers.url, locked) > 8
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    workers.start("sweeper")
    poll_until(lambda: count(workers.url, LEFT) == 0, what="recovery and the drain", timeout=60)
    workers.stop()
    workers.check_clean_exits()
    expect_every_job_once(workers.url, total)
    # The sweeper deleted the victim's heartbeat row; its own went with its exit.
    assert count(workers.url, "select count(*) from graphile_worker._private_workers") == 0


# --------------------------------------------------------------------------- failing jobs


def kind_of(n: int) -> str:
    if n % 10 == 0:
        return "raise"  # 10 %: fails every attempt
    if n % 33 == 1:
        return "hang"  # 3 %: times out every attempt
    if n % 10 == 5:
        return "flaky"  # fails its first attempt only
    return "ok"


@pytest.mark.parametrize("anyio_backend", LOOPS)
async def test_raising_and_timing_out_jobs_end_completed_or_failed_three_times(
    db_url: str, anyio_backend: str
) -> None:
    import anyio

    total = 5000
    completions: Counter[int] = Counter()

    @gw.task("mixed", timeout=0.2)
    async def mixed(payload: dict[str, int], ctx: gw.JobContext) -> None:
        n = payload["n"]
        kind = kind_of(n)
        if kind == "raise" or (kind == "flaky" and ctx.attempt == 1):
            raise RuntimeError(f"job {n} failed on attempt {ctx.attempt}")
        if kind == "hang":
            await anyio.sleep_forever()
        completions[n] += 1

    async with gw.WorkerUtils.connect(db_url, migrate=False) as utils:
        await utils.add_raw_jobs(
            [
                gw.RawJobSpec(identifier="mixed", payload={"n": n}, spec=gw.JobSpec(max_attempts=3))
                for n in range(total)
            ]
        )
        worker = gw.Worker(
            [mixed],
            database_url=db_url,
            concurrency=20,
            local_queue=gw.LocalQueueConfig(size=200),
            poll_interval=0.1,
            shutdown=gw.ShutdownConfig(listen_os_signals=False),
        )
        unsettled = (
            "select count(*) from graphile_worker._private_jobs"
            " where attempts < max_attempts or locked_by is not null"
        )
        async with gw.testing.running(worker):
            # Two retries wait out Graphile's backoff: e^1 + e^2 seconds, about 10 s.
            await gw.testing.wait_for(lambda: _count(utils, unsettled, 0), timeout=90, interval=0.2)
        rows = {
            int(r["n"]): r
            for r in await utils.pool.fetch(
                "select payload->>'n' as n, attempts, locked_by, last_error"
                " from graphile_worker._private_jobs"
            )
        }
    failing = {n for n in range(total) if kind_of(n) in ("raise", "hang")}
    assert set(rows) == failing
    for n, row in rows.items():
        assert (row["attempts"], row["locked_by"]) == (3, None), n
        hung = kind_of(n) == "hang"
        assert row["last_error"] == (
            "timed out after 0.2 s" if hung else f"job {n} failed on attempt 3"
        )
    assert set(completions) == set(range(total)) - failing
    assert max(completions.values()) == 1  # none completed twice
    print(f"mixed: {total} jobs, {len(completions)} completed once, {len(failing)} failed 3 times")


async def _count(utils: gw.WorkerUtils, query: str, expected: int) -> bool:
    rows = await utils.pool.fetch(query)
    return bool(rows[0]["count"] == expected)
