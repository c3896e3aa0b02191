"""Fleet-wide limits in one worker process (the multi-process checks are in
test_control_processes.py)."""

from __future__ import annotations

import time
from typing import Any

import anyio

import gw
from gw.testing import running, wait_for
from tests.worker.test_worker import make_worker, rows


async def test_a_rate_limited_task_starts_at_its_rate_while_others_run(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    starts: list[float] = []
    others: list[float] = []

    @gw.task("limited", rate_limit=gw.RateLimit(40))
    async def limited(payload: Any) -> None:
        starts.append(time.monotonic())

    @gw.task("other")
    async def other(payload: Any) -> None:
        others.append(time.monotonic())

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="limited", payload={}) for _ in range(12)])
    await utils.add_raw_jobs([gw.RawJobSpec(identifier="other", payload={}) for _ in range(200)])
    began = time.monotonic()
    async with running(make_worker(db_url, [limited, other], concurrency=4)):
        await wait_for(lambda: len(starts) == 12 and len(others) == 200, message="all jobs")
    # Burst 1: one start per 1/40 s (a little less for the wake-up's rounding);
    # the other task did not wait for the limited one.
    assert starts[-1] - starts[0] >= 11 / 40 * 0.95
    assert max(others) < starts[-1]
    assert min(others) - began < 2.0


async def test_a_busy_worker_still_runs_its_rate_limited_task(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    """Slots full and a local queue buffered ahead: the limited task is not
    starved until the others are done, it runs at its rate beside them."""
    starts: list[float] = []
    others_done: list[float] = []

    @gw.task("limited", rate_limit=gw.RateLimit(20))
    async def limited(payload: Any) -> None:
        starts.append(time.monotonic())

    @gw.task("other")
    async def other(payload: Any) -> None:
        await anyio.sleep(0.005)
        others_done.append(time.monotonic())

    # The limited jobs are older: in Graphile's order they would all run first.
    await utils.add_raw_jobs([gw.RawJobSpec(identifier="limited", payload={}) for _ in range(8)])
    await utils.add_raw_jobs([gw.RawJobSpec(identifier="other", payload={}) for _ in range(600)])
    worker = make_worker(
        db_url, [limited, other], concurrency=4, local_queue=gw.LocalQueueConfig(size=50)
    )
    async with running(worker):
        await wait_for(lambda: len(starts) == 8 and len(others_done) == 600, message="all jobs")
    assert starts[-1] - starts[0] >= 7 / 20 * 0.95
    beside = [s for s in starts if s < others_done[-1]]
    assert len(beside) >= 4, f"only {len(beside)} of 8 limited jobs started beside the others"


async def test_a_queue_rate_limit_applies_to_that_queue_only(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    mail: list[float] = []
    rest: list[str] = []

    @gw.task("send")
    async def send(payload: dict[str, str]) -> None:
        if payload["queue"] == "mail":
            mail.append(time.monotonic())
        else:
            rest.append(payload["queue"])

    await utils.add_raw_jobs(
        [
            gw.RawJobSpec(identifier="send", payload={"queue": q}, spec=gw.JobSpec(queue_name=q))
            for q in ["mail"] * 6 + [f"other{i}" for i in range(30)]
        ]
    )
    worker = make_worker(db_url, [send], queue_limits={"mail": gw.RateLimit(20)})
    async with running(worker):
        await wait_for(lambda: len(mail) == 6 and len(rest) == 30, message="all jobs")
    assert mail[-1] - mail[0] >= 5 / 20 * 0.95
    (usage,) = await utils.list_limits()
    assert (usage.key, usage.rate, usage.burst, usage.max_concurrency) == (
        "queue:mail",
        20.0,
        1.0,
        None,
    )
    assert usage.tokens is not None
    assert 0 <= usage.tokens <= 1


async def test_max_concurrency_caps_running_jobs_and_shows_its_use(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    now = peak = done = 0
    hold = anyio.Event()

    @gw.task("capped", max_concurrency=2)
    async def capped(payload: dict[str, bool]) -> None:
        nonlocal now, peak, done
        now += 1
        peak = max(peak, now)
        if payload["hold"]:
            await hold.wait()
        else:
            await anyio.sleep(0.01)
        now -= 1
        done += 1

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="capped", payload={"hold": True}) for _ in range(2)]
        + [gw.RawJobSpec(identifier="capped", payload={"hold": False}) for _ in range(10)]
    )
    async with running(make_worker(db_url, [capped], concurrency=8)):
        await wait_for(lambda: now == 2, message="two jobs running")
        (usage,) = await utils.list_limits()
        assert (usage.key, usage.max_concurrency, usage.running, usage.rate) == (
            "task:capped",
            2,
            2,
            None,
        )
        hold.set()
        await wait_for(lambda: done == 12, message="every job")
    assert peak == 2
    ((slots,),) = await rows(db_url, "select count(*) from graphile_worker._private_gw_slots")
    (usage,) = await utils.list_limits()
    assert usage.running == 0
    assert slots <= 12


async def test_run_once_waits_for_rate_limited_jobs(db_url: str, utils: gw.WorkerUtils) -> None:
    ran: list[int] = []

    @gw.task("limited", rate_limit=gw.RateLimit(50, burst=2))
    async def limited(payload: dict[str, int]) -> None:
        ran.append(payload["n"])

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="limited", payload={"n": n}) for n in range(6)]
    )
    assert await make_worker(db_url, [limited]).run_once() == 6
    assert sorted(ran) == list(range(6))


async def test_limits_are_recorded_by_the_last_worker_to_start(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("job", rate_limit=gw.RateLimit(5, burst=2), max_concurrency=4)
    async def first(payload: Any) -> None: ...

    await make_worker(db_url, [first]).run_once()

    @gw.task("job", rate_limit=gw.RateLimit(1))
    async def second(payload: Any) -> None: ...

    await make_worker(db_url, [second]).run_once()
    (usage,) = await utils.list_limits()
    assert (usage.rate, usage.burst, usage.max_concurrency) == (1.0, 1.0, None)
    assert usage.tokens is not None
    assert usage.tokens <= 1.0
