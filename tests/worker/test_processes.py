"""Several worker processes under one supervisor (gw worker --processes, gw.run_processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

import gw
from tests.helpers import poll_until
from tests.worker.proc_app import RAN

ROOT = Path(__file__).resolve().parents[2]


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def children(proc: subprocess.Popen[str]) -> list[int]:
    """Live child pids; a child reaped between listing and its status check is gone."""
    alive = []
    for child in psutil.Process(proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def start(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_cli_processes_drain_once_survive_a_kill_and_stop_on_sigterm(db_url: str) -> None:
    sql(db_url, RAN)
    sql(db_url, "select graphile_worker.add_job('quick', '{}') from generate_series(1, 300)")
    proc = start(
        db_url, "-m", "gw", "worker", "--processes", "3", "--tasks", "tests.worker.proc_app",
        "--concurrency", "4", "--poll-interval", "200ms", "--recovery",
        "--heartbeat-interval", "200ms", "--sweep-interval", "300ms", "--sweep-threshold", "2s",
        "--recovery-delay", "0",
    )  # fmt: skip
    try:
        poll_until(lambda: sql(db_url, "select count(*) from ran")[0][0] >= 300, what="300 jobs")
        # Three workers, each with its own id (heartbeat rows) and process.
        poll_until(
            lambda: sql(db_url, "select count(*) from graphile_worker._private_workers")[0][0] == 3,
            what="3 worker heartbeats",
        )
        assert len(children(proc)) == 3

        # SIGKILL the process that runs a job: it is replaced, and a sweeper in
        # another process recovers the job, which then runs to completion.
        (hold,) = sql(db_url, "select id from graphile_worker.add_job('hold', '{}')")[0]
        poll_until(
            lambda: bool(sql(db_url, "select 1 from ran where job_id = %s", (hold,))),
            what="hold to start",
        )
        ((victim,),) = sql(db_url, "select pid from ran where job_id = %s", (hold,))
        os.kill(victim, signal.SIGKILL)
        poll_until(
            lambda: len(children(proc)) == 3 and victim not in children(proc),
            what="the killed process to be replaced",
        )
        poll_until(
            lambda: sql(db_url, "select count(*) from graphile_worker._private_jobs")[0][0] == 0,
            what="the killed process's job to be recovered and completed",
        )
    finally:
        code, out = stop(proc)
    assert code == 0, out
    quick = "select job_id from ran where job_id <> %s"
    assert sql(db_url, f"select count(*), count(distinct job_id) from ({quick}) q", (hold,)) == [
        (300, 300)
    ]  # each quick job exactly once
    runs = sql(db_url, "select pid from ran where job_id = %s", (hold,))
    assert len(runs) == 2
    assert victim in {r[0] for r in runs}
    assert "exited with code -9; restarting it in 1 s" in out
    assert "SIGTERM received: stopping 3 worker process(es) gracefully" in out


def test_run_processes_from_python(db_url: str) -> None:
    sql(db_url, RAN)
    sql(db_url, "select graphile_worker.add_job('quick', '{}') from generate_series(1, 50)")
    proc = start(
        db_url, "-c",
        "import gw; raise SystemExit(gw.run_processes('tests.worker.proc_app:make_worker', 2))",
    )  # fmt: skip
    try:
        poll_until(lambda: len(children(proc)) == 2, what="2 worker processes")
        poll_until(lambda: sql(db_url, "select count(*) from ran")[0][0] >= 50, what="50 jobs")
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert sql(db_url, "select count(*), count(distinct job_id) from ran") == [(50, 50)]


def test_children_that_keep_crashing_make_the_supervisor_fail() -> None:
    import anyio

    from gw.worker._processes import ProcessSupervisor

    supervisor = ProcessSupervisor(
        [sys.executable, "-c", "raise SystemExit(3)"], 2, max_crashes=3, crash_window=60
    )
    assert anyio.run(supervisor.run) == 1
    assert supervisor.failed is not None
    assert "exited with code 3; 4 crashes within 60 s" in supervisor.failed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "0"], "processes must be between 1 and 256, got 0"),
        (["--processes", "2", "--admin"], "--processes cannot serve --admin"),
        (["--processes", "2", "--health", "127.0.0.1:0"], "--processes cannot share one --health"),
    ],
)
def test_bad_process_options(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gw", "--database-url", "postgresql://x/y", "worker",
         "--tasks", "tests.worker.proc_app", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"gw: error: {message}"), result.stderr


def test_run_processes_needs_an_importable_factory() -> None:
    def local() -> gw.Worker:
        raise AssertionError

    with pytest.raises(gw.ConfigurationError, match="needs a factory its child processes can"):
        gw.run_processes(local, 2)
