"""A lost or hung database: bounded shutdown and one public error shape.

The database sits behind the proxy in :mod:`tests.faults.proxy`, which the tests
blackhole (nothing answers, as in a partition) or sever (connections drop, as
in a crash). Timing assertions here are upper bounds on a shutdown that would
otherwise hang for minutes, measured on the loop clock.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import gw
from gw.testing import wait_for
from tests.faults.proxy import db_proxy
from tests.worker.test_worker import make_worker, rows

pytestmark = pytest.mark.faults

# Slack on top of a documented bound: scheduling, connection teardown.
SLACK = 2.0


def blocking_task(started: anyio.Event) -> gw.Task[..., Any]:
    @gw.task("block")
    async def block(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    return block


@pytest.mark.parametrize("running_jobs", [1, 3])
async def test_shutdown_with_an_unreachable_database_ends_within_the_bound(
    db_url: str, utils: gw.WorkerUtils, running_jobs: int
) -> None:
    started = anyio.Event()
    for i in range(running_jobs + 3):
        await utils.add_raw_job("block", {"i": i})
    config = gw.ShutdownConfig(listen_os_signals=False, grace_period=0.5, cleanup_timeout=2.0)
    async with db_proxy(db_url) as proxy:
        worker = make_worker(
            proxy.url,
            [blocking_task(started)],
            concurrency=running_jobs,
            local_queue=gw.LocalQueueConfig(size=3),
            shutdown=config,
            recovery=gw.RecoveryConfig(heartbeat_interval=1, sweep_threshold=60),
        )
        bound = config.grace_period + config.cleanup_timeout + SLACK
        with anyio.fail_after(bound + 30):  # a hang fails here, not in the assertion
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                await started.wait()
                proxy.blackhole()
                begin = anyio.current_time()
                worker.shutdown("test")
        elapsed = anyio.current_time() - begin
    assert elapsed <= bound
    # Nothing could be written: the jobs stay locked for recovery, none is lost.
    (locked,) = await rows(
        db_url, "select count(*) from graphile_worker._private_jobs where locked_by is not null"
    )
    assert locked[0] >= 1


async def test_a_second_request_cuts_a_hung_cleanup_short(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()
    await utils.add_raw_job("block", {})
    config = gw.ShutdownConfig(listen_os_signals=False, grace_period=0, cleanup_timeout=600)
    async with db_proxy(db_url) as proxy:
        worker = make_worker(proxy.url, [blocking_task(started)], shutdown=config)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                await started.wait()
                proxy.blackhole()
                worker.shutdown("first")
                # Cleanup is now stuck on the database, with 10 minutes to go.
                await wait_for(lambda: bool(worker._cleanup._scopes), message="cleanup")
                begin = anyio.current_time()
                worker.shutdown("second", graceful=False)
        assert anyio.current_time() - begin <= gw.worker._shutdown.HURRY_BUDGET + SLACK


async def test_run_once_reports_a_lost_database_as_one_gw_error(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    async with db_proxy(db_url) as proxy:

        @gw.task("cut")
        async def cut(payload: Any) -> None:
            proxy.sever()

        await utils.add_raw_job("cut", {})
        await utils.add_raw_job("cut", {})
        worker = make_worker(
            proxy.url,
            [cut],
            concurrency=1,
            shutdown=gw.ShutdownConfig(listen_os_signals=False, cleanup_timeout=1),
        )
        with pytest.raises(gw.GwError) as caught:
            await worker.run_once()
    assert isinstance(caught.value, gw.DatabaseError)
    assert caught.value.transient
    assert not isinstance(caught.value, BaseExceptionGroup)


async def test_run_once_gives_up_writing_outcomes_to_a_database_that_stays_away(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    clock = gw.FakeClock()
    async with db_proxy(db_url) as proxy:

        @gw.task("cut")
        async def cut(payload: Any) -> None:
            proxy.sever()

        await utils.add_raw_job("cut", {})
        worker = make_worker(
            proxy.url,
            [cut],
            clock=clock,
            shutdown=gw.ShutdownConfig(listen_os_signals=False, cleanup_timeout=1),
        )
        result: list[BaseException] = []

        async def drive_clock() -> None:
            # The batcher backs off on the worker's clock: move it along.
            while True:
                await clock.wait_for_sleepers(1)
                await clock.advance(5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(drive_clock)
            try:
                await worker.run_once()
            except gw.GwError as ex:
                result.append(ex)
            tg.cancel_scope.cancel()
    assert isinstance(result[0], gw.DatabaseError)
    assert clock.monotonic() >= gw.worker._worker.ONCE_WRITE_RETRY


async def test_a_worker_that_cannot_connect_raises_connection_failed(db_url: str) -> None:
    @gw.task("t")
    async def t(payload: Any) -> None:
        return None

    worker = make_worker("postgresql://nobody@127.0.0.1:1/nothing", [t])
    with pytest.raises(gw.ConnectionFailed, match="could not connect to PostgreSQL"):
        await worker.run()


async def test_async_with_worker_surfaces_one_gw_error(db_url: str) -> None:
    @gw.task("t")
    async def t(payload: Any) -> None:
        return None

    worker = make_worker("postgresql://nobody@127.0.0.1:1/nothing", [t])
    with pytest.raises(gw.ConnectionFailed):
        async with worker:
            pass


async def test_listen_failures_are_logged_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from gw.worker import _background
    from gw.worker._fetching import WorkSignal
    from gw.worker._health import HealthState

    attempts = 0

    class RefusingListener:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        async def __aenter__(self) -> RefusingListener:
            nonlocal attempts
            attempts += 1
            raise psycopg.errors.FeatureNotSupported("cannot execute LISTEN during recovery")

        async def __aexit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(_background, "Listener", RefusingListener)
    clock = gw.FakeClock()
    caplog.set_level(logging.WARNING, "gw.worker")
    health = HealthState()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            _background.listen_for_jobs, "postgresql://x", WorkSignal(), clock, 1.0, health
        )
        for _ in range(3):
            await clock.wait_for_sleepers(1)
            await clock.advance_to_next()
        await clock.wait_for_sleepers(1)
        tg.cancel_scope.cancel()
    assert attempts == 4
    messages = [r.getMessage() for r in caplog.records if "cannot LISTEN" in r.getMessage()]
    assert len(messages) == 4  # once per attempt, the delay doubling: not a flood
    assert [m.rsplit("again in ", 1)[1] for m in messages] == ["1 s", "2 s", "4 s", "8 s"]
    assert "cannot execute LISTEN during recovery" in messages[0]
    # What /readyz reports meanwhile.
    assert health.listening is False
    assert health.listen_error == "cannot execute LISTEN during recovery"
