"""Cancel and fleet-wide limits across worker processes (tests/worker/control_app.py).

The workers run in child processes on either loop; the test drives them
through the database only, as a separate application would.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

import gw
import gw.sync
from tests.helpers import poll_until
from tests.worker.control_app import TABLES

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["asyncio", "trio"]
LEFT = (
    "select count(*) from graphile_worker._private_jobs j join graphile_worker._private_tasks t"
    " on t.id = j.task_id where t.identifier = '{task}'"
)


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def add(url: str, task: str, payload: Any = None, count: int = 1, run_at: str = "now()") -> int:
    rows = sql(
        url,
        f"select (graphile_worker.add_job(%s, %s::json, run_at => {run_at})).id"
        " from generate_series(1, %s)",
        (task, msgspec.json.encode(payload if payload is not None else {}).decode(), count),
    )
    return int(rows[-1][0])


def start(url: str, backend: str, concurrency: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker.control_app", url, backend, str(concurrency)],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(procs: list[subprocess.Popen[str]]) -> str:
    out = []
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        text, _ = proc.communicate(timeout=60)
        out.append(text)
    return "\n".join(out)


def workers_up(url: str, count: int) -> None:
    poll_until(
        lambda: sql(url, "select count(*) from graphile_worker._private_workers")[0][0] >= count,
        what=f"{count} workers to register",
    )


def count(url: str, query: str, params: Any = None) -> int:
    return int(sql(url, query, params)[0][0])


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_max_overlap_counts_intervals_open_together() -> None:
    t = [datetime(2026, 1, 1, 0, 0, s) for s in range(6)]
    assert max_overlap([(t[0], t[2]), (t[1], t[3]), (t[2], t[4])]) == 2
    assert max_overlap([(t[0], t[5]), (t[1], t[2]), (t[1], t[3])]) == 3
    assert max_overlap([]) == 0


# --------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_reaches_jobs_running_in_another_process(db_url: str, backend: str) -> None:
    sql(db_url, TABLES)
    procs = [start(db_url, backend, 3)]
    try:
        workers_up(db_url, 1)
        running = {
            "async": add(db_url, "sleeper"),
            "sync": add(db_url, "sync_sleeper"),
            "batch": add(db_url, "batch_sleeper", [{"to": "a"}, {"to": "b"}]),
        }
        poll_until(lambda: count(db_url, "select count(*) from runs") == 3, what="3 jobs running")
        waiting = add(db_url, "quick")  # no slot is free for it
        later = add(db_url, "quick", run_at="now() + interval '1 hour'")
        ((worker_id,),) = sql(db_url, "select distinct worker_id from runs")

        with gw.sync.WorkerUtils(db_url) as utils:
            assert utils.cancel_jobs([later], "not needed") == [
                gw.CancelResult(job_id=later, outcome="cancelled")
            ]
            for kind, job_id in running.items():
                began = time.monotonic()
                (result,) = utils.cancel_jobs([job_id], f"stop {kind}")
                assert result == gw.CancelResult(
                    job_id=job_id, outcome="cancelling", worker_id=worker_id
                )
                poll_until(
                    lambda job_id=job_id, kind=kind: (
                        sql(
                            db_url,
                            "select last_error, locked_by, attempts = max_attempts"
                            " from graphile_worker._private_jobs where id = %s",
                            (job_id,),
                        )
                        == [(f"cancelled: stop {kind}", None, True)]
                    ),
                    what=f"the {kind} job recorded as cancelled",
                    interval=0.01,
                )
                assert time.monotonic() - began < 1.0, f"{kind} took too long"

        # Each cancelled job's JobCancelled hook ran in the worker process, and
        # the freed slots ran the job that was waiting for one.
        poll_until(
            lambda: count(db_url, "select count(*) from cancelled") == 3, what="3 hook calls"
        )
        assert sorted(sql(db_url, "select job_id, reason from cancelled")) == sorted(
            (job_id, f"stop {kind}") for kind, job_id in running.items()
        )
        poll_until(
            lambda: count(db_url, "select count(*) from runs where job_id = %s", (waiting,)) == 1,
            what="the waiting job to get a freed slot",
        )
        # Cancelled jobs stay failed; the batch job's payload is intact.
        ((payload,),) = sql(
            db_url,
            "select payload from graphile_worker._private_jobs where id = %s",
            (running["batch"],),
        )
        assert payload == [{"to": "a"}, {"to": "b"}]
        assert (
            count(db_url, "select count(*) from graphile_worker._private_gw_cancel_requests") == 0
        )
    finally:
        output = stop(procs)
    assert "Traceback" not in output, output
    assert output.count("cancelled: stop") == 3, output


# --------------------------------------------------------------------------- rate limit

RATE, BURST = 20.0, 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rate_limit_holds_across_three_processes(db_url: str, backend: str) -> None:
    sql(db_url, TABLES)
    procs = [start(db_url, backend, 10) for _ in range(3)]
    try:
        workers_up(db_url, 3)
        free_left = LEFT.format(task="free")

        # The unlimited task alone, for comparison.
        began = time.monotonic()
        add(db_url, "free", count=3000)
        poll_until(lambda: count(db_url, free_left) == 0, what="3000 free jobs", interval=0.01)
        alone = time.monotonic() - began

        # The same beside 400 jobs of a task limited to 20/s (burst 5).
        add(db_url, "limited", count=400)
        began = time.monotonic()
        add(db_url, "free", count=3000)
        poll_until(lambda: count(db_url, free_left) == 0, what="3000 free jobs", interval=0.01)
        beside = time.monotonic() - began

        def span() -> float:
            return float(
                sql(
                    db_url,
                    "select coalesce(extract(epoch from max(started_at) - min(started_at)), 0)"
                    " from runs where task = 'limited'",
                )[0][0]
            )

        poll_until(lambda: span() >= 10.0, what="10 s of rate-limited starts", timeout=60)
        starts = [
            row[0].timestamp()
            for row in sql(db_url, "select started_at from runs where task = 'limited' order by 1")
        ]
        pids = sql(db_url, "select count(distinct pid) from runs where task = 'limited'")[0][0]
    finally:
        stop(procs)

    first = starts[0]
    window = [s for s in starts if s - first <= 10.0]
    # In any interval of length T at most BURST + RATE * T jobs start; one more
    # is allowed for the moments between a job's lock and its start.
    worst, i, j = max(
        ((j - i + 1) - (BURST + RATE * (starts[j] - starts[i])), i, j)
        for i in range(len(window))
        for j in range(i, len(window))
    )
    assert worst <= 1.0, (
        f"{j - i + 1} jobs started within {starts[j] - starts[i]:.3f} s: "
        f"{worst:.2f} more than the documented burst; gaps "
        f"{[round(b - a, 3) for a, b in itertools.pairwise(starts[i : j + 1])]}"
    )
    assert len(window) >= 0.9 * (BURST + RATE * 10), f"only {len(window)} starts in 10 s"
    assert pids == 3  # the limit was shared: every process ran some of them
    # The unlimited task was not held back by the limited one.
    assert beside <= 2 * alone + 1.0, f"free jobs: {beside:.2f} s beside vs {alone:.2f} s alone"


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_concurrency_holds_across_processes_and_a_kill(db_url: str, backend: str) -> None:
    sql(db_url, TABLES)
    procs = [start(db_url, backend, 10) for _ in range(3)]
    capped_left = LEFT.format(task="capped")
    try:
        workers_up(db_url, 3)
        add(db_url, "capped", count=30)
        poll_until(lambda: count(db_url, capped_left) == 0, what="30 capped jobs")

        # Three jobs hold every slot; the process running one of them is killed.
        add(db_url, "capped", {"hold": True}, count=3)
        poll_until(
            lambda: count(db_url, "select count(*) from runs where ended_at is null") == 3,
            what="3 holding jobs",
        )
        ((victim,),) = sql(db_url, "select pid from runs where ended_at is null limit 1")
        os.kill(victim, signal.SIGKILL)
        ((killed_at,),) = sql(db_url, "select clock_timestamp()")
        killed = [p for p in procs if p.pid == victim]
        killed[0].wait(timeout=30)
        lost = count(
            db_url, "select count(*) from runs where pid = %s and ended_at is null", (victim,)
        )
        add(db_url, "capped", count=20)
        # Recovery gives the dead worker's jobs (and their slots) back: they
        # run again in the survivors, beside the new jobs, three at a time.
        poll_until(
            lambda: (
                count(
                    db_url,
                    "select count(*) from runs where ended_at is null and pid <> %s",
                    (victim,),
                )
                == 3
                and count(db_url, "select count(*) from runs where task = 'capped'")
                >= 33 + 20 + lost
            ),
            what="the killed jobs to run again after recovery",
            timeout=60,
        )
        sql(db_url, "insert into release values (1)")
        poll_until(lambda: count(db_url, capped_left) == 0, what="every capped job")
        intervals = [
            (s, e if e is not None else killed_at)
            for s, e in sql(db_url, "select started_at, ended_at from runs where task = 'capped'")
        ]
    finally:
        stop(procs)
    assert len(intervals) == 30 + 3 + 20 + lost
    assert max_overlap(intervals) == 3
