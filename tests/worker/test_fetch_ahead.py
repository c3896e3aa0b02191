"""Without a local queue, a worker fetches one job ahead per slot only while a
backlog keeps its fetches full and jobs end within milliseconds: fewer, larger
fetches at a deep queue, and nothing held back from other workers when jobs
take time."""

from __future__ import annotations

from typing import Any

import anyio

import gw
from gw.testing import running, wait_for
from tests.worker.test_worker import make_worker

JOBS = 400
CONCURRENCY = 4


async def test_quick_jobs_at_a_deep_queue_are_fetched_ahead(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    done: list[int] = []

    @gw.task("quick")
    async def quick(payload: dict[str, int]) -> None:
        done.append(payload["i"])

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="quick", payload={"i": i}) for i in range(JOBS)]
    )
    worker = make_worker(db_url, [quick], concurrency=CONCURRENCY)
    assert await worker.run_once() == JOBS
    assert sorted(done) == list(range(JOBS))
    # One fetch per free slot would take JOBS / CONCURRENCY statements; once
    # the run times settle below 5 ms, each fetch asks for twice that.
    assert worker.stats()["fetches"] < 0.9 * JOBS / CONCURRENCY


async def test_jobs_that_take_time_are_not_fetched_ahead(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    release = anyio.Event()
    running_now: list[int] = []

    @gw.task("slow")
    async def slow(payload: dict[str, int]) -> None:
        running_now.append(payload["i"])
        await release.wait()

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="slow", payload={"i": i}) for i in range(20)]
    )
    worker = make_worker(db_url, [slow], concurrency=2)
    async with running(worker):
        await wait_for(lambda: len(running_now) == 2, message="both slots busy")
        stats: dict[str, Any] = worker.stats()
        assert stats["running"] == 2
        assert stats["buffered"] == 0  # the other 18 stay free for other workers
        release.set()
        await wait_for(lambda: len(running_now) == 20, message="all jobs ran")
