"""Hot standby and failover, on a private primary and a standby built from it
(pg_basebackup -R, then pg_ctl promote); never the shared test server."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import gw
import gw.sync
from gw.testing import wait_for

from .private_pg import PrivatePostgres, find_bin_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries (initdb, pg_ctl)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def pair() -> Iterator[tuple[PrivatePostgres, PrivatePostgres]]:
    """A migrated primary and its hot standby (one pair per test: promotion is final)."""
    primary = PrivatePostgres(port=_free_port())
    standby = None
    try:
        primary.start()
        with gw.sync.WorkerUtils(primary.url) as utils:
            utils.migrate()
        standby = PrivatePostgres(port=_free_port(), primary=primary)
        standby.start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.close()
        primary.close()


def _worker(url: str, tasks: list[Any], **options: Any) -> gw.Worker:
    return gw.Worker(
        tasks,
        database_url=url,
        concurrency=2,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
        **options,
    )


async def test_a_worker_on_a_standby_waits_quietly_then_runs_after_promotion(
    pair: tuple[PrivatePostgres, PrivatePostgres], caplog: pytest.LogCaptureFixture
) -> None:
    primary, standby = pair
    (job_id,) = sql(primary.url, "select id from graphile_worker.add_job('t', '{}')")[0]
    await wait_for(
        lambda: bool(sql(standby.url, "select 1 from graphile_worker._private_jobs")),
        message="the job to reach the standby",
    )
    ran: list[int] = []

    @gw.task("t")
    async def t(payload: Any, ctx: gw.JobContext) -> None:
        ran.append(ctx.job.id)

    clock = gw.FakeClock()
    worker = _worker(standby.url, [t], clock=clock, poll_interval=1.0)
    with caplog.at_level(logging.WARNING, logger="gw.worker"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await wait_for(
                lambda: "does not accept writes" in caplog.text, message="the first refusal"
            )
            # A minute on the worker's clock: a few lines, not one per attempt burst.
            # Each second waits for the worker to be back in its retry wait (after
            # the attempt's round trip), so a slow machine sees the same minute.
            for _ in range(60):
                await clock.wait_for_timeouts(1)
                await clock.advance(1)
                await anyio.wait_all_tasks_blocked()
            refusals = [r for r in caplog.records if "does not accept writes" in r.getMessage()]
            assert 3 <= len(refusals) <= 10, [r.getMessage() for r in refusals]
            assert ran == []

            await anyio.to_thread.run_sync(standby.promote)

            async def advanced_until_run() -> bool:
                await clock.advance(1)
                return ran == [job_id]

            await wait_for(advanced_until_run, timeout=60, message="the job to run after promotion")
            worker.shutdown("test")
    assert "registering task identifiers: the database accepts writes now" in caplog.text


async def test_a_multi_host_url_follows_the_promoted_primary(
    pair: tuple[PrivatePostgres, PrivatePostgres],
) -> None:
    primary, standby = pair
    both = make_conninfo(
        "",
        host=f"{primary.sockets},{standby.sockets}",
        port=f"{primary.port},{standby.port}",
        user="postgres",
        dbname="postgres",
        target_session_attrs="read-write",
        connect_timeout="3",
    )
    ran: list[str] = []

    @gw.task("t")
    async def t(payload: dict[str, str]) -> None:
        ran.append(payload["where"])

    worker = _worker(both, [t], poll_interval=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        sql(primary.url, """select graphile_worker.add_job('t', '{"where": "primary"}')""")
        await wait_for(lambda: ran == ["primary"], message="a job on the primary")

        await anyio.to_thread.run_sync(primary.stop)  # the primary dies...
        await anyio.to_thread.run_sync(standby.promote)  # ...and the standby takes over
        sql(standby.url, """select graphile_worker.add_job('t', '{"where": "promoted"}')""")
        await wait_for(
            lambda: ran == ["primary", "promoted"], timeout=60, message="a job after failover"
        )
        worker.shutdown("test")
