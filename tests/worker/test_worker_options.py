"""Worker options: local queue TTL and refetch delay, batch delays, triggers,
local time, task registration, OS signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import gw
from gw.testing import running, wait_for
from tests.worker.test_worker import job_count, make_worker, rows


async def test_local_queue_ttl_hands_unstarted_jobs_back(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    release = anyio.Event()
    returned: list[int] = []

    @gw.task("hold")
    async def hold(payload: Any) -> None:
        await release.wait()

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="hold", payload={"i": i}) for i in range(5)])
    worker = make_worker(
        db_url,
        [hold],
        concurrency=1,
        poll_interval=3600,
        listen=False,
        local_queue=gw.LocalQueueConfig(size=10, ttl=0.3),
    )
    worker.on(gw.LocalQueueReturnJobs, lambda e: returned.append(e.jobs_count))
    async with running(worker):
        await wait_for(lambda: returned == [4], message="TTL return")
        unlocked = await rows(
            db_url,
            "select count(*) from graphile_worker._private_jobs"
            " where locked_at is null and attempts = 0",
        )
        assert unlocked == [(4,)]
        release.set()


async def test_refetch_delay_expires_and_aborts_on_notifications(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    events: list[str] = []
    ran = anyio.Event()

    @gw.task("quick")
    async def quick(payload: Any) -> None:
        ran.set()

    worker = make_worker(
        db_url,
        [quick],
        poll_interval=3600,
        local_queue=gw.LocalQueueConfig(
            size=10,
            refetch_delay=gw.RefetchDelayConfig(duration=3600, threshold=5, max_abort_threshold=2),
        ),
    )
    worker.on(gw.LocalQueueRefetchDelayStart, lambda e: events.append("start"))
    worker.on(gw.LocalQueueRefetchDelayAbort, lambda e: events.append("abort"))
    worker.on(gw.LocalQueueRefetchDelayExpired, lambda e: events.append("expired"))
    async with running(worker):
        # The first fetch found nothing (< threshold): the delay began.
        await wait_for(lambda: events == ["start"])
        await utils.add_raw_job("quick", {})
        await utils.add_raw_job("quick", {})  # the second notification reaches the threshold
        with anyio.fail_after(10):  # far below the 3600 s delay
            await ran.wait()
    assert events[:2] == ["start", "abort"]

    events.clear()
    short = make_worker(
        db_url,
        [quick],
        poll_interval=3600,
        local_queue=gw.LocalQueueConfig(
            size=10, refetch_delay=gw.RefetchDelayConfig(duration=0.2, threshold=5)
        ),
    )
    short.on(gw.LocalQueueRefetchDelayStart, lambda e: events.append("start"))
    short.on(gw.LocalQueueRefetchDelayExpired, lambda e: events.append("expired"))
    async with running(short):
        await wait_for(lambda: events[:2] == ["start", "expired"])


async def test_complete_batch_delay_writes_jobs_together(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("noop")
    async def noop(payload: Any) -> None:
        return None

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="noop", payload={"i": i}) for i in range(8)])
    worker = make_worker(db_url, [noop], concurrency=8, complete_job_batch_delay=0.5)
    assert await worker.run_once() == 8
    stats = worker.stats()
    assert stats["completed"] == 8
    assert stats["completion_flushes"] == 1
    assert await job_count(db_url) == 0


async def test_shutdown_trigger_stops_the_worker(db_url: str) -> None:
    @gw.task("noop")
    async def noop(payload: Any) -> None:
        return None

    trigger = anyio.Event()
    worker = make_worker(db_url, [noop], shutdown_trigger=trigger)
    stopped: list[str] = []
    worker.on(gw.WorkerShutdown, lambda e: stopped.append(e.reason))
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            trigger.set()
    assert stopped == ["shutdown trigger"]


async def test_use_local_time_fetches_by_the_application_clock(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    seen: list[str] = []

    @gw.task("timed")
    async def timed(payload: dict[str, str]) -> None:
        seen.append(payload["name"])

    clock = gw.FakeClock(datetime.now(UTC) + timedelta(hours=1))
    await utils.add_raw_job(
        "timed", {"name": "in-30-min"}, gw.JobSpec(run_at=datetime.now(UTC) + timedelta(minutes=30))
    )
    # By the database clock the job is not due; by the application clock it is.
    assert await make_worker(db_url, [timed]).run_once() == 0
    assert await make_worker(db_url, [timed], use_local_time=True, clock=clock).run_once() == 1
    assert seen == ["in-30-min"]


async def test_define_job_apis(db_url: str, utils: gw.WorkerUtils) -> None:
    seen: list[Any] = []

    async def single(payload: dict[str, int]) -> None:
        seen.append(payload)

    async def many(items: list[int]) -> list[None]:
        seen.append(items)
        return [None for _ in items]

    def plain(payload: Any) -> None:
        seen.append("plain")

    worker = make_worker(db_url, [])
    worker.define_job("single", single)
    worker.define_batch_job("many", many)
    worker.define_jobs({"plain": plain})
    await utils.add_raw_job("single", {"a": 1})
    await utils.add_batch_job("many", [1, 2])
    await utils.add_raw_job("plain", {})
    assert await worker.run_once() == 3
    assert sorted(map(str, seen)) == sorted(map(str, [{"a": 1}, [1, 2], "plain"]))
    with pytest.raises(gw.GwError, match="before the worker starts"):
        worker.define_job("late", single)


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import sys, anyio, gw

    @gw.task("stuck")
    async def stuck(payload):
        print("started", flush=True)
        await anyio.sleep_forever()

    worker = gw.Worker(
        [stuck],
        database_url=sys.argv[1],
        concurrency=1,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(grace_period=3600, interrupted_job_retry_delay=60),
    )
    anyio.run(worker.run, backend=sys.argv[2])
    print("exited cleanly", flush=True)
    """
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_second_signal_interrupts_running_jobs(db_url: str, backend: str, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(SIGNAL_SCRIPT)
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select graphile_worker.add_job('stuck', '{}')")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(script), db_url, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)  # graceful: the job may take the (1 h) grace period
        proc.send_signal(signal.SIGINT)  # second signal: stop now
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "exited cleanly" in out
    assert "shutting down gracefully" in err
    assert "stopping now" in err
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "select attempts, locked_by, last_error, run_at > now() + interval '30 seconds'"
            " from graphile_worker._private_jobs"
        ).fetchone()
    assert row == (0, None, "Job recovered after worker interruption", True)
