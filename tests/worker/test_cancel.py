"""Cancelling jobs: waiting ones at once, running ones in the worker that holds them."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

import gw
from gw.testing import running, wait_for
from gw.worker._cancel import names_worker
from tests.worker.test_worker import make_worker, rows


async def job_state(db_url: str, job_id: int) -> tuple[Any, ...] | None:
    found = await rows(
        db_url,
        "select attempts, max_attempts, last_error, locked_by"
        " from graphile_worker._private_jobs where id = %s",
        job_id,
    )
    return found[0] if found else None


async def requests_left(db_url: str) -> int:
    ((count,),) = await rows(
        db_url, "select count(*) from graphile_worker._private_gw_cancel_requests"
    )
    return int(count)


async def test_a_waiting_job_is_failed_for_good_at_once(utils: gw.WorkerUtils, db_url: str) -> None:
    job = await utils.add_raw_job("never_runs", {"n": 1})
    other = await utils.add_raw_job("never_runs", {"n": 2})
    (result,) = await utils.cancel_jobs([job.id], reason="customer left")
    assert result == gw.CancelResult(job_id=job.id, outcome="cancelled")
    attempts, max_attempts, last_error, locked_by = await job_state(db_url, job.id) or ()
    assert (attempts, last_error, locked_by) == (max_attempts, "cancelled: customer left", None)
    # The other job is untouched, and cancelling again changes nothing.
    assert await job_state(db_url, other.id) == (0, 25, None, None)
    (again,) = await utils.cancel_jobs([job.id], reason="twice")
    assert again.outcome == "finished"
    assert (await job_state(db_url, job.id) or ())[2] == "cancelled: customer left"


async def test_unknown_ids_duplicates_and_no_reason(utils: gw.WorkerUtils, db_url: str) -> None:
    job = await utils.add_raw_job("never_runs", {})
    results = await utils.cancel_jobs([987654, job.id, job.id])
    outcomes = [(r.job_id, r.outcome) for r in results]
    assert outcomes == [(987654, "not_found"), (job.id, "cancelled")]
    assert (await job_state(db_url, job.id) or ())[2] == "cancelled: no reason given"
    assert await utils.cancel_jobs([]) == []


@pytest.mark.parametrize(
    ("ids", "reason", "message"),
    [
        ([0], None, "job ids must be positive integers, got 0"),
        (["7"], None, "job ids must be positive integers, got '7'"),
        ([1], 42, "the cancel reason must be text, got 42"),
    ],
)
async def test_bad_arguments_name_the_problem(
    utils: gw.WorkerUtils, db_url: str, ids: list[Any], reason: Any, message: str
) -> None:
    job = await utils.add_raw_job("never_runs", {})
    with pytest.raises(gw.ConfigurationError) as info:
        await utils.cancel_jobs(ids, reason)
    assert str(info.value) == message
    assert await job_state(db_url, job.id) == (0, 25, None, None)


async def test_a_reason_the_database_cannot_store_is_cleaned(
    utils: gw.WorkerUtils, db_url: str
) -> None:
    job = await utils.add_raw_job("never_runs", {})
    (result,) = await utils.cancel_jobs([job.id], "bad\x00byte " + "x" * 5000)
    assert result.outcome == "cancelled"
    stored = (await job_state(db_url, job.id) or ())[2]
    assert stored.startswith("cancelled: bad\ufffdbyte xxx")
    assert stored.endswith("more characters cut]")


async def test_a_job_held_by_another_kind_of_worker_is_not_cancellable(
    utils: gw.WorkerUtils, db_url: str
) -> None:
    job = await utils.add_raw_job("node_task", {})
    await rows(
        db_url,
        "update graphile_worker._private_jobs set locked_by = 'node_worker_1',"
        " locked_at = now(), attempts = 1 where id = %s returning id",
        job.id,
    )
    (result,) = await utils.cancel_jobs([job.id], "stop")
    assert result == gw.CancelResult(
        job_id=job.id, outcome="not_cancellable", worker_id="node_worker_1"
    )
    assert await job_state(db_url, job.id) == (1, 25, None, "node_worker_1")
    assert await requests_left(db_url) == 0


async def test_a_running_async_job_is_cancelled_and_its_slot_freed(
    utils: gw.WorkerUtils, db_url: str
) -> None:
    started = anyio.Event()
    unwound = anyio.Event()
    ran_next = anyio.Event()
    events: list[gw.JobCancelled] = []

    @gw.task("slow")
    async def slow(payload: Any) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            unwound.set()

    @gw.task("quick")
    async def quick(payload: Any) -> None:
        ran_next.set()

    worker = make_worker(db_url, [slow, quick], concurrency=1, poll_interval=3600)
    worker.on(gw.JobCancelled, events.append)
    async with running(worker):
        job = await utils.add_raw_job("slow", {})
        with anyio.fail_after(10):
            await started.wait()
        await utils.add_raw_job("quick", {})
        t0 = time.monotonic()
        (result,) = await utils.cancel_jobs([job.id], "too slow")
        assert result == gw.CancelResult(
            job_id=job.id, outcome="cancelling", worker_id=worker.worker_id
        )
        with anyio.fail_after(5):
            await unwound.wait()
            await ran_next.wait()  # the only slot was freed for the next job
        assert time.monotonic() - t0 < 1.0
        await wait_for(lambda: bool(events), message="JobCancelled hook")
        await wait_for(
            lambda: _state_is(db_url, job.id, "cancelled: too slow"), message="cancelled row"
        )
    attempts, max_attempts, _, locked_by = await job_state(db_url, job.id) or ()
    assert (attempts, locked_by) == (max_attempts, None)
    assert [(e.job.id, e.reason) for e in events] == [(job.id, "too slow")]
    assert await requests_left(db_url) == 0


async def _state_is(db_url: str, job_id: int, last_error: str) -> bool:
    state = await job_state(db_url, job_id)
    return state is not None and state[2] == last_error and state[3] is None


async def test_a_running_sync_job_sees_is_cancelled(utils: gw.WorkerUtils, db_url: str) -> None:
    started = threading.Event()
    saw_cancel = threading.Event()

    @gw.task("crunch")
    def crunch(payload: Any, ctx: gw.JobContext) -> None:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ctx.is_cancelled():
                saw_cancel.set()
                return
            time.sleep(0.01)

    worker = make_worker(db_url, [crunch], concurrency=2)
    async with running(worker):
        job = await utils.add_raw_job("crunch", {})
        await wait_for(started.is_set, message="handler started")
        (result,) = await utils.cancel_jobs([job.id], "enough")
        assert result.outcome == "cancelling"
        await wait_for(saw_cancel.is_set, message="ctx.is_cancelled() turned true")
        await wait_for(lambda: _state_is(db_url, job.id, "cancelled: enough"), message="row")


async def test_a_batch_job_is_cancelled_as_a_whole(utils: gw.WorkerUtils, db_url: str) -> None:
    started = anyio.Event()

    @gw.batch_task("mail_batch")
    async def mail_batch(items: list[Any]) -> list[Any]:
        started.set()
        await anyio.sleep_forever()
        return [None] * len(items)

    worker = make_worker(db_url, [mail_batch])
    async with running(worker):
        job = await utils.add_raw_job("mail_batch", [{"to": "a"}, {"to": "b"}])
        with anyio.fail_after(10):
            await started.wait()
        (result,) = await utils.cancel_jobs([job.id], "batch off")
        assert result.outcome == "cancelling"
        await wait_for(lambda: _state_is(db_url, job.id, "cancelled: batch off"), message="row")
    ((payload,),) = await rows(
        db_url, "select payload from graphile_worker._private_jobs where id = %s", job.id
    )
    assert payload == [{"to": "a"}, {"to": "b"}]  # nothing half-written


async def test_a_fetched_job_waiting_in_the_local_queue_is_cancelled_at_once(
    utils: gw.WorkerUtils, db_url: str
) -> None:
    started = anyio.Event()
    release = anyio.Event()
    ran: list[int] = []

    @gw.task("hold")
    async def hold(payload: Any) -> None:
        started.set()
        await release.wait()

    @gw.task("later")
    async def later(payload: Any) -> None:
        ran.append(payload["n"])

    worker = make_worker(
        db_url, [hold, later], concurrency=1, local_queue=gw.LocalQueueConfig(size=10)
    )
    async with running(worker):
        await utils.add_raw_job("hold", {})
        with anyio.fail_after(10):
            await started.wait()
        first, _ = await utils.add_raw_jobs(
            [
                gw.RawJobSpec(identifier="later", payload={"n": n}, spec=gw.JobSpec(queue_name="q"))
                for n in (1, 2)
            ]
        )
        await wait_for(lambda: worker._dispatch.buffered == 2, message="both buffered")
        (result,) = await utils.cancel_jobs([first.id], "not needed")
        assert result.outcome == "cancelling"
        await wait_for(lambda: worker._dispatch.buffered == 1, message="taken out of the buffer")
        release.set()
        await wait_for(lambda: ran == [2], message="the queue's next job ran")
        await wait_for(lambda: _state_is(db_url, first.id, "cancelled: not needed"), message="row")
    ((locked,),) = await rows(
        db_url,
        "select count(*) from graphile_worker._private_job_queues where locked_by is not null",
    )
    assert locked == 0


async def test_a_request_left_for_a_failing_attempt_ends_the_job(
    utils: gw.WorkerUtils, db_url: str
) -> None:
    """The attempt fails on its own before the worker took the request: its
    failure is recorded as the cancellation, not retried."""
    go = anyio.Event()

    @gw.task("flaky")
    async def flaky(payload: Any) -> None:
        await go.wait()
        raise RuntimeError("boom")

    job = await utils.add_raw_job("flaky", {})
    worker = make_worker(db_url, [flaky], poll_interval=3600, listen=False)
    async with running(worker):
        await wait_for(lambda: worker._dispatch.running == 1, message="running")
        # A request written without its NOTIFY, and polling too slow to see it.
        await rows(
            db_url,
            "insert into graphile_worker._private_gw_cancel_requests (job_id, reason)"
            " values (%s, 'late') returning job_id",
            job.id,
        )
        go.set()
        await wait_for(lambda: _state_is(db_url, job.id, "cancelled: late"), message="row")
    attempts, max_attempts, _, _ = await job_state(db_url, job.id) or ()
    assert attempts == max_attempts
    assert await requests_left(db_url) == 0


def test_cancel_notifications_name_their_worker() -> None:
    assert names_worker('{"worker_id": "w1", "ids": [1]}', "w1")
    assert not names_worker('{"worker_id": "w2", "ids": [1]}', "w1")
    # Unreadable payloads make the worker look (a query), never miss a request.
    assert names_worker("not json", "w1")
    assert names_worker("[1, 2]", "w1")
