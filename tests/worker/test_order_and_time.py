"""Jobs start in priority order inside every fetch; the worker's waits follow its clock."""

from __future__ import annotations

import itertools
import random
from typing import Any

import anyio
import pytest

import gw
from gw.db.connection import connect
from gw.testing import running, wait_for
from tests.worker.test_worker import make_worker, rows


async def analyze(db_url: str) -> None:
    # Statistics make the planner choose as it would on a real table (for a
    # few hundred rows, a hash join whose output comes back in table order).
    async with await connect(db_url) as conn:
        await conn.execute("analyze graphile_worker._private_jobs")


def inversions(keys: list[Any]) -> int:
    return sum(1 for a, b in itertools.pairwise(keys) if a > b)


async def test_priority_order_holds_inside_a_named_queue(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started: list[int] = []

    @gw.task("step")
    async def step(payload: Any, ctx: gw.JobContext) -> None:
        started.append(ctx.job.priority)

    # Uneven counts per priority, so that fetches of 10 mix priorities.
    rng = random.Random(3)
    priorities = [rng.randint(0, 5) for _ in range(300)]
    await utils.add_raw_jobs(
        [
            gw.RawJobSpec(
                identifier="step", payload={}, spec=gw.JobSpec(queue_name="q", priority=p)
            )
            for p in priorities
        ]
    )
    await analyze(db_url)
    assert await make_worker(db_url, [step], concurrency=10).run_once() == 300
    assert inversions(started) == 0
    assert sorted(started) == sorted(priorities)


async def test_priority_order_holds_in_a_local_queue(db_url: str, utils: gw.WorkerUtils) -> None:
    started: list[tuple[int, Any, int]] = []

    @gw.task("step")
    async def step(payload: Any, ctx: gw.JobContext) -> None:
        started.append((ctx.job.priority, ctx.job.run_at, ctx.job.id))

    rng = random.Random(5)
    await utils.add_raw_jobs(
        [
            gw.RawJobSpec(
                identifier="step", payload={}, spec=gw.JobSpec(priority=rng.randint(-5, 5))
            )
            for _ in range(500)
        ]
    )
    await analyze(db_url)
    worker = make_worker(db_url, [step], concurrency=10, local_queue=gw.LocalQueueConfig(size=500))
    assert await worker.run_once() == 500
    # One fetch took all 500: they start in exactly (priority, run_at, id) order.
    assert inversions(started) == 0


# --------------------------------------------------------------------------- the clock


def recorder() -> tuple[gw.Task[..., Any], list[int]]:
    seen: list[int] = []

    @gw.task("rec")
    async def rec(payload: dict[str, int]) -> None:
        seen.append(payload["i"])

    return rec, seen


async def test_fake_clock_drives_the_poll_interval(db_url: str, utils: gw.WorkerUtils) -> None:
    clock = gw.FakeClock()
    rec, seen = recorder()
    # No LISTEN: only the poll timer can find the job.
    worker = make_worker(db_url, [rec], clock=clock, listen=False, poll_interval=30)
    async with running(worker):
        await clock.wait_for_timeouts(1)  # the fetcher waits for its next poll
        await utils.add_raw_job("rec", {"i": 1})
        assert (seen, clock.timeout_count, worker.jobs_processed) == ([], 1, 0)
        await clock.advance(30)
        await wait_for(lambda: seen == [1], message="the polled job to run")


async def test_fake_clock_drives_the_local_queue_ttl(db_url: str, utils: gw.WorkerUtils) -> None:
    clock = gw.FakeClock()
    release = anyio.Event()
    ran: list[int] = []

    @gw.task("hold")
    async def hold(payload: dict[str, int]) -> None:
        ran.append(payload["i"])
        await release.wait()

    for i in range(4):
        await utils.add_raw_job("hold", {"i": i})
    worker = make_worker(
        db_url,
        [hold],
        clock=clock,
        concurrency=1,
        poll_interval=3600,
        local_queue=gw.LocalQueueConfig(size=10, ttl=60),
    )
    async with running(worker):
        await wait_for(lambda: worker.stats()["buffered"] == 3, message="3 jobs buffered")
        await clock.wait_for_timeouts(1)
        await clock.advance(59)
        assert worker.stats()["buffered"] == 3
        await clock.advance(1)
        await wait_for(lambda: _returned(db_url, 3), message="the 3 buffered jobs handed back")
        assert worker.stats()["buffered"] == 0
        release.set()
    assert ran[0] == 0


async def _returned(db_url: str, count: int) -> bool:
    (row,) = await rows(
        db_url,
        "select count(*) from graphile_worker._private_jobs"
        " where locked_by is null and attempts = 0",
    )
    return bool(row[0] == count)


async def test_fake_clock_drives_the_grace_period(db_url: str, utils: gw.WorkerUtils) -> None:
    clock = gw.FakeClock()
    started = anyio.Event()

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    job = await utils.add_raw_job("stuck", {})
    worker = make_worker(
        db_url,
        [stuck],
        clock=clock,
        poll_interval=3600,
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=100),
    )
    with anyio.fail_after(20):  # real seconds, far below the fake grace period
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            await started.wait()
            worker.shutdown("test")
            # The grace period waits on the fake clock (the poll timer is at +3600).
            await wait_for(lambda: clock.next_deadline() == 100, message="the grace period")
            assert worker.stats()["running"] == 1
            await clock.advance(100)
    ((attempts, locked_by),) = await rows(
        db_url,
        "select attempts, locked_by from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, locked_by) == (0, None)


# --------------------------------------------------------------------------- embedded server


def test_closing_one_embedded_user_keeps_the_server_for_the_others(tmp_path: Any) -> None:
    import psycopg

    from gw.db.embedded import EmbeddedPostgres

    first = EmbeddedPostgres(tmp_path / "pgdata")
    second = EmbeddedPostgres(tmp_path / "pgdata")
    url = first.start()
    try:
        assert second.start() == url
        first.stop()
        first.stop()  # releasing twice is harmless
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        second.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3).close()


async def test_two_gw_objects_share_the_embedded_server(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("GW_EMBEDDED_DATA_DIR", str(tmp_path / "pgdata"))
    rec, seen = recorder()
    async with gw.WorkerUtils.connect() as long_lived:
        async with gw.WorkerUtils.connect() as short_lived:
            await short_lived.add_raw_job("rec", {"i": 1})
        # Closing one user did not stop the server under the other.
        await long_lived.add_raw_job("rec", {"i": 2})
        assert (
            await gw.Worker([rec], shutdown=gw.ShutdownConfig(listen_os_signals=False)).run_once()
            == 2
        )
        assert sorted(seen) == [1, 2]
        assert (await long_lived.stats()).total == 0


# --------------------------------------------------------------------------- public names


def test_public_names_report_their_public_path() -> None:
    import inspect

    misplaced = [
        name
        for name in gw.__all__
        if (inspect.isclass(getattr(gw, name)) or inspect.isfunction(getattr(gw, name)))
        and getattr(gw, name).__module__ != "gw"
    ]
    assert misplaced == []
    assert repr(gw.Worker) == "<class 'gw.Worker'>"
    assert gw.JobSpec(queue_name="q") == gw.JobSpec(queue_name="q")
