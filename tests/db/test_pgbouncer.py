"""Workers and migrations through PgBouncer in transaction pooling mode.

The test starts its own PgBouncer (Debian's package; skipped with the reason
when it is not installed) on a free loopback port, in front of the test
server. Through a transaction pooler every statement may run on another
server session: no server-side prepared statements (PgBouncer 1.18 here has
no protocol-level support), no session state, and LISTEN on a direct URL or
not at all.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import gw
from gw.testing import running, wait_for
from tests.helpers import poll_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gw.testing import TestDatabases

JOBS = 5000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bouncer:
    def __init__(self, server_url: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            pytest.skip("PgBouncer is not installed (apt-get install pgbouncer; .ci/run does)")
        target = conninfo_to_dict(server_url)
        self.user = str(target.get("user") or "postgres")
        host = str(target.get("host") or "127.0.0.1")
        port = str(target.get("port") or "5432")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-pgbouncer-"))
        (self.dir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={host} port={port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
        )
        command = [binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            # The user that owns the server's socket directory can reach it.
            runner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else ""
            if runner in ("", "root"):
                runner = "postgres"
            try:
                pwd.getpwnam(runner)
            except KeyError:
                pytest.skip(f"running as root without a {runner!r} user for PgBouncer")
            shutil.chown(self.dir, runner)
            for path in self.dir.iterdir():
                shutil.chown(path, runner)
            command = ["runuser", "-u", runner, "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        poll_until(self._accepting, what="PgBouncer to accept connections", timeout=20)

    def _accepting(self) -> bool:
        if self.process.poll() is not None:
            err = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"PgBouncer did not start: {err}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def url_for(self, db_url: str) -> str:
        dbname = conninfo_to_dict(db_url)["dbname"]
        return make_conninfo("", host="127.0.0.1", port=self.port, dbname=dbname, user=self.user)

    def close(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=20)  # waits, and closes the stderr pipe
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def bouncer(pg_server: TestDatabases) -> Iterator[Bouncer]:
    b = Bouncer(pg_server.admin_url)
    try:
        yield b
    finally:
        b.close()


@pytest.mark.parametrize("mode", ["listen-direct", "polling"])
async def test_three_workers_drain_exactly_once_through_pgbouncer(
    db_url: str, bouncer: Bouncer, utils: gw.WorkerUtils, mode: str
) -> None:
    pooled = bouncer.url_for(db_url)
    ran: list[int] = []
    woke = anyio.Event()

    @gw.task("count")
    async def count(payload: Any, ctx: gw.JobContext) -> None:
        ran.append(ctx.job.id)
        if payload.get("last"):
            woke.set()

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="count", payload={}) for _ in range(JOBS)])
    listen = mode == "listen-direct"
    workers = [
        gw.Worker(
            [count],
            database_url=pooled,
            prepared_statements=False,
            listen=listen,
            listen_database_url=db_url if listen else None,
            # With LISTEN, only a notification can wake an idle worker quickly.
            poll_interval=30 if listen else 0.2,
            concurrency=4,
            max_pg_conn=6,
            reset_locked_interval=None,
            shutdown=gw.ShutdownConfig(listen_os_signals=False),
        )
        for _ in range(3)
    ]
    async with running(workers[0]), running(workers[1]), running(workers[2]):
        await wait_for(lambda: len(ran) >= JOBS, timeout=120, message=f"{JOBS} jobs")
        if listen:
            await wait_for(
                lambda: all(w._health.listening for w in workers), message="LISTEN everywhere"
            )
        # One more job while every worker idles: how soon does one run it?
        started = time.monotonic()
        await utils.add_raw_job("count", {"last": True})
        with anyio.fail_after(10):
            await woke.wait()
        latency = time.monotonic() - started
    assert len(ran) == JOBS + 1
    assert len(set(ran)) == JOBS + 1  # each exactly once
    assert (await utils.stats()).total == 0
    assert latency < 1.0, f"woken after {latency:.2f} s"


async def test_concurrent_migrations_through_pgbouncer(db_url: str, bouncer: Bouncer) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("drop schema graphile_worker cascade")
    pooled = bouncer.url_for(db_url)

    async def migrate() -> None:
        async with gw.WorkerUtils.connect(pooled, prepared_statements=False) as utils:
            assert utils  # connect() migrates

    async with anyio.create_task_group() as tg:
        tg.start_soon(migrate)
        tg.start_soon(migrate)
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("select id from graphile_worker.migrations order by id")]
        advisory = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory'"
        ).fetchone()
    assert ids == list(range(1, 21))
    assert advisory == (0,)  # no lock left behind on a pooled server session


def test_the_cli_through_pgbouncer(db_url: str, bouncer: Bouncer) -> None:
    import sys

    pooled = bouncer.url_for(db_url)
    root = Path(__file__).resolve().parents[2]

    def gw_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gw", "--database-url", pooled, "--transaction-pooler",
             *args],
            capture_output=True, text=True, timeout=120, cwd=root,
        )  # fmt: skip

    for _ in range(3):
        assert gw_cli("add", "send_email", "--payload", '{"to": "a@b.c"}').returncode == 0
    done = gw_cli("worker", "--tasks", "examples.tasks", "--once", "--poll-only")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "processed 3 job(s)\n"
    assert "prepared statement" not in done.stderr


async def test_concurrent_sweeps_through_pgbouncer_recover_once(
    db_url: str, bouncer: Bouncer, utils: gw.WorkerUtils
) -> None:
    from tests.worker.test_recovery import lock_as, register

    jobs = [await utils.add_raw_job("t", {}) for _ in range(3)]
    await register(db_url, "gw_dead_pgbouncer_1", age=3600)
    await lock_as(db_url, [j.id for j in jobs], "gw_dead_pgbouncer_1", age=3600)
    results: list[gw.SweepResult] = []

    async def sweep() -> None:
        async with gw.WorkerUtils.connect(
            bouncer.url_for(db_url), migrate=False, prepared_statements=False
        ) as pooled:
            results.append(await pooled.sweep_stale_workers(sweep_threshold=60, recovery_delay=0))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(sweep)
    # The sweep lock is a transaction lock: exactly one sweeper recovered the jobs
    # (or several did in turn, each finding the work done), and no lock is left.
    assert sorted(j for r in results for j in r.job_ids) == sorted(j.id for j in jobs)
    with psycopg.connect(db_url, autocommit=True) as conn:
        left = conn.execute("select count(*) from pg_locks where locktype = 'advisory'").fetchone()
        locked = conn.execute(
            "select count(*) from graphile_worker._private_jobs where locked_by is not null"
        ).fetchone()
    assert (left, locked) == ((0,), (0,))
