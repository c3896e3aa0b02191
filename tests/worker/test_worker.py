from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

import gw
from gw.db.connection import connect
from gw.testing import running, wait_for


class SendEmail(msgspec.Struct):
    to: str
    cc: list[str] = []


def make_worker(db_url: str, tasks: list[Any], **options: Any) -> gw.Worker:
    options.setdefault("concurrency", 4)
    options.setdefault("poll_interval", 0.2)
    options.setdefault("reset_locked_interval", None)
    options.setdefault("shutdown", gw.ShutdownConfig(listen_os_signals=False))
    return gw.Worker(tasks, database_url=db_url, **options)


async def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await connect(db_url) as conn:
        cur = await conn.execute(sql, params or None)
        return await cur.fetchall()


async def job_count(db_url: str) -> int:
    return int((await rows(db_url, "select count(*) from graphile_worker._private_jobs"))[0][0])


# --------------------------------------------------------------------------- wake-ups


async def test_job_added_while_idle_starts_via_notify(db_url: str, utils: gw.WorkerUtils) -> None:
    ran = anyio.Event()

    @gw.task("ping")
    async def ping(payload: Any) -> None:
        ran.set()

    # A poll interval far longer than the deadline below: only NOTIFY can wake it.
    worker = make_worker(db_url, [ping], poll_interval=3600)
    async with running(worker):
        await wait_for(lambda: worker.jobs_processed == 0 and not worker._work.maybe_more)
        await utils.add_raw_job("ping", {})
        with anyio.fail_after(10):
            await ran.wait()
        await wait_for(lambda: _empty(db_url), message="job row gone")


async def test_polling_runs_jobs_when_listen_is_broken(db_url: str, utils: gw.WorkerUtils) -> None:
    ran = anyio.Event()

    @gw.task("ping")
    async def ping(payload: Any) -> None:
        ran.set()

    # LISTEN goes to a port where nothing listens: only polling can find the job.
    worker = make_worker(
        db_url, [ping], poll_interval=0.1, listen_database_url="postgresql://x@127.0.0.1:1/x"
    )
    async with running(worker):
        await utils.add_raw_job("ping", {})
        with anyio.fail_after(20):
            await ran.wait()


# --------------------------------------------------------------------------- ordering


async def test_named_queue_never_runs_two_jobs_at_once(db_url: str, utils: gw.WorkerUtils) -> None:
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    done: list[int] = []

    @gw.task("serial")
    async def serial(payload: dict[str, Any]) -> None:
        queue = payload["q"]
        active[queue] = active.get(queue, 0) + 1
        peak[queue] = max(peak.get(queue, 0), active[queue])
        await anyio.lowlevel.checkpoint()  # let other executors interleave if they could
        await anyio.lowlevel.checkpoint()
        active[queue] -= 1
        done.append(payload["i"])

    specs = [
        gw.RawJobSpec(
            identifier="serial",
            payload={"q": f"q{i % 3}", "i": i},
            spec=gw.JobSpec(queue_name=f"q{i % 3}"),
        )
        for i in range(60)
    ]
    for local_queue in (None, gw.LocalQueueConfig(size=20)):
        done.clear()
        await utils.add_raw_jobs(specs)
        worker = make_worker(db_url, [serial], concurrency=8, local_queue=local_queue)
        processed = await worker.run_once()
        assert processed == 60
        assert sorted(done) == list(range(60))
        assert peak == {"q0": 1, "q1": 1, "q2": 1}
    assert await job_count(db_url) == 0
    locked = await rows(
        db_url,
        "select count(*) from graphile_worker._private_job_queues where locked_at is not null",
    )
    assert locked == [(0,)]


async def test_priority_then_run_at_order(db_url: str, utils: gw.WorkerUtils) -> None:
    order: list[str] = []

    @gw.task("ordered")
    async def ordered(payload: dict[str, str]) -> None:
        order.append(payload["name"])

    now = datetime.now(UTC)
    for name, priority, age in [
        ("late-p0", 0, 1),
        ("early-p0", 0, 10),
        ("p5", 5, 100),
        ("p-5", -5, 0),
        ("future", -10, -3600),
    ]:
        await utils.add_raw_job(
            "ordered",
            {"name": name},
            gw.JobSpec(priority=priority, run_at=now - timedelta(seconds=age)),
        )
    await make_worker(db_url, [ordered], concurrency=1).run_once()
    assert order == ["p-5", "early-p0", "late-p0", "p5"]
    assert await job_count(db_url) == 1  # the future job is left alone


async def test_forbidden_flags_skip_jobs(db_url: str, utils: gw.WorkerUtils) -> None:
    seen: list[str] = []

    @gw.task("flagged")
    async def flagged(payload: dict[str, str]) -> None:
        seen.append(payload["name"])

    await utils.add_raw_job("flagged", {"name": "slow"}, gw.JobSpec(flags=("slow",)))
    await utils.add_raw_job("flagged", {"name": "plain"})
    await utils.add_raw_job("flagged", {"name": "other"}, gw.JobSpec(flags=("other",)))

    await make_worker(db_url, [flagged], forbidden_flags=["slow"]).run_once()
    assert sorted(seen) == ["other", "plain"]
    left = await rows(db_url, "select attempts, locked_at from graphile_worker._private_jobs")
    assert left == [(0, None)]

    calls = 0

    async def dynamic() -> list[str]:
        nonlocal calls
        calls += 1
        return []

    await make_worker(db_url, [flagged], forbidden_flags=dynamic).run_once()
    assert seen[-1] == "slow"
    assert calls >= 1


# --------------------------------------------------------------------------- failures


async def test_failure_records_message_and_backoff(db_url: str, utils: gw.WorkerUtils) -> None:
    @gw.task("flaky")
    async def flaky(payload: Any) -> None:
        raise RuntimeError("database said no")

    job = await utils.add_raw_job("flaky", {}, gw.JobSpec(max_attempts=3))
    for attempt in (1, 2):
        await make_worker(db_url, [flaky]).run_once()
        ((attempts, last_error, delay, locked),) = await rows(
            db_url,
            "select attempts, last_error, extract(epoch from run_at - now()), locked_at"
            " from graphile_worker._private_jobs where id = %s",
            job.id,
        )
        assert attempts == attempt
        assert last_error == "database said no"
        assert locked is None
        expected = math.exp(attempt)
        assert expected - 1.5 < float(delay) <= expected + 0.1
        await utils.reschedule_jobs([job.id])  # make it due again
    await make_worker(db_url, [flaky]).run_once()
    (final,) = await rows(
        db_url, "select attempts, max_attempts from graphile_worker._private_jobs"
    )
    assert final == (3, 3)
    # Permanently failed: visible, never fetched again.
    assert await make_worker(db_url, [flaky]).run_once() == 0
    page = await utils.list_jobs(state="failed")
    assert [j.id for j in page.jobs] == [job.id]


async def test_typed_payload_mismatch_names_field_and_type(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    got: list[SendEmail] = []

    @gw.task("send_email")
    async def send_email(payload: SendEmail, ctx: gw.JobContext) -> None:
        assert ctx.job.task_identifier == "send_email"
        got.append(payload)

    await utils.add_job(send_email, SendEmail(to="a@example.com", cc=["b@example.com"]))
    bad = await utils.add_raw_job("send_email", {"to": 42})
    await make_worker(db_url, [send_email]).run_once()
    assert got == [SendEmail(to="a@example.com", cc=["b@example.com"])]
    ((error, attempts),) = await rows(
        db_url,
        "select last_error, attempts from graphile_worker._private_jobs where id = %s",
        bad.id,
    )
    assert attempts == 25  # a payload that does not fit fails for good at once
    assert "field 'to'" in error
    assert "expected `str`, got `int`" in error


async def test_sync_handlers_run_in_a_worker_thread(db_url: str, utils: gw.WorkerUtils) -> None:
    threads: list[str] = []

    @gw.task("blocking")
    def blocking(payload: dict[str, int], ctx: gw.JobContext) -> None:
        threads.append(threading.current_thread().name)
        assert not ctx.is_cancelled()

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="blocking", payload={"i": i}) for i in range(5)]
    )
    assert await make_worker(db_url, [blocking]).run_once() == 5
    assert len(threads) == 5
    assert threading.main_thread().name not in threads
    assert await job_count(db_url) == 0


async def test_batch_partial_failure_retries_only_failed_items(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    class Item(msgspec.Struct):
        id: int

    calls: list[list[int]] = []

    @gw.batch_task("index")
    async def index(items: list[Item]) -> list[Exception | None]:
        calls.append([i.id for i in items])
        return [ValueError(f"item {i.id} is odd") if i.id % 2 else None for i in items]

    job = await utils.add_batch_job("index", [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}])
    await make_worker(db_url, [index]).run_once()
    assert calls == [[1, 2, 3, 4]]
    stored = await utils.get_job(job.id)
    assert stored is not None
    assert stored.payload == [{"id": 1}, {"id": 3}]
    assert stored.attempts == 1
    assert stored.last_error == "Batch failures:\nitem 1 is odd\nitem 3 is odd"


async def test_per_job_timeout_fails_and_retries(db_url: str, utils: gw.WorkerUtils) -> None:
    @gw.task("hangs", timeout=0.2)
    async def hangs(payload: Any) -> None:
        await anyio.sleep_forever()

    @gw.task("slow")
    async def slow(payload: Any) -> None:
        await anyio.sleep_forever()

    a = await utils.add_raw_job("hangs", {})
    b = await utils.add_raw_job("slow", {})
    await make_worker(db_url, [hangs, slow], job_timeout=0.3).run_once()
    errors = dict(await rows(db_url, "select id, last_error from graphile_worker._private_jobs"))
    assert errors == {a.id: "timed out after 0.2 s", b.id: "timed out after 0.3 s"}
    unlocked = await rows(
        db_url, "select count(*) from graphile_worker._private_jobs where locked_at is null"
    )
    assert unlocked == [(2,)]


class Boom(BaseException):
    pass


async def test_other_base_exceptions_are_the_jobs_failure(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("base")
    async def base(payload: Any) -> None:
        raise Boom("custom base exception")

    await utils.add_raw_job("base", {})
    await make_worker(db_url, [base]).run_once()
    left = await rows(
        db_url, "select last_error, attempts, locked_at from graphile_worker._private_jobs"
    )
    assert left == [("custom base exception", 1, None)]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_keyboard_interrupt_or_system_exit_in_a_handler_stops_the_worker(
    db_url: str, utils: gw.WorkerUtils, stop: type[BaseException], sync: bool
) -> None:
    # Not the job's failure: the process is asked to stop. The worker releases
    # the job (its attempt does not count) and raises the exception itself.
    def raise_it(payload: Any) -> None:
        raise stop()

    async def araise_it(payload: Any) -> None:
        raise stop()

    handler = gw.task("stopper")(raise_it if sync else araise_it)
    job = await utils.add_raw_job("stopper", {})
    with pytest.raises(stop):
        await make_worker(db_url, [handler]).run_once()
    assert await released(db_url, job.id)


async def test_cancelled_from_outside_releases_running_job(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()

    @gw.task("long")
    async def long(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    job = await utils.add_raw_job("long", {})
    worker = make_worker(db_url, [long])
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        tg.cancel_scope.cancel()
    assert await released(db_url, job.id)


async def released(db_url: str, job_id: int) -> bool:
    """Whether the job was handed back as interrupted: unlocked, its attempt not counted."""
    row = await rows(
        db_url,
        "select attempts, locked_by, last_error from graphile_worker._private_jobs where id = %s",
        job_id,
    )
    return row == [(0, None, "Job recovered after worker interruption")]


# --------------------------------------------------------------------------- shutdown


async def test_graceful_shutdown_returns_queued_and_lets_running_finish(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    release = anyio.Event()
    started = anyio.Event()
    finished: list[int] = []

    @gw.task("step")
    async def step(payload: dict[str, int]) -> None:
        started.set()
        await release.wait()
        finished.append(payload["i"])

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="step", payload={"i": i}) for i in range(6)])
    worker = make_worker(
        db_url,
        [step],
        concurrency=1,
        local_queue=gw.LocalQueueConfig(size=10),
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=30),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        worker.shutdown("test")
        # Phase 1: the five unstarted jobs are handed back at once.
        await wait_for(lambda: _count_returned(db_url, 5), message="5 jobs returned")
        # Phase 2: the running one may finish within the grace period.
        release.set()
    assert len(finished) == 1
    assert await job_count(db_url) == 5


async def _count_returned(db_url: str, expected: int) -> bool:
    result = await rows(
        db_url,
        "select count(*) from graphile_worker._private_jobs where locked_at is null"
        " and attempts = 0",
    )
    return bool(result[0][0] == expected)


async def test_jobs_running_past_grace_period_are_released_with_delay(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()
    interrupted: list[int] = []

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    job = await utils.add_raw_job("stuck", {}, gw.JobSpec(queue_name="lane"))
    worker = make_worker(
        db_url,
        [stuck],
        shutdown=gw.ShutdownConfig(
            listen_os_signals=False, grace_period=0.2, interrupted_job_retry_delay=120
        ),
    )
    worker.on(gw.JobInterrupted, lambda event: interrupted.append(event.job.id))
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        worker.shutdown("test")
    ((attempts, locked_by, error, delay),) = await rows(
        db_url,
        "select attempts, locked_by, last_error, extract(epoch from run_at - now())"
        " from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, locked_by) == (0, None)
    assert error == "Job recovered after worker interruption"
    assert 100 < float(delay) <= 120
    assert interrupted == [job.id]
    queues = await rows(db_url, "select locked_by from graphile_worker._private_job_queues")
    assert queues == [(None,)]


async def test_second_shutdown_request_skips_grace_period(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    await utils.add_raw_job("stuck", {})
    worker = make_worker(
        db_url, [stuck], shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=3600)
    )
    with anyio.fail_after(20):  # far below the grace period
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            await started.wait()
            worker.shutdown("first")
            worker.shutdown("second", graceful=False)
    assert await rows(db_url, "select locked_by from graphile_worker._private_jobs") == [(None,)]


# --------------------------------------------------------------------------- run modes


async def test_run_once_processes_ready_jobs_and_what_they_add(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    seen: list[int] = []

    @gw.task("chain")
    async def chain(payload: dict[str, int], ctx: gw.JobContext) -> None:
        seen.append(payload["n"])
        if payload["n"] < 3:
            await ctx.utils.add_raw_job("chain", {"n": payload["n"] + 1})

    await utils.add_raw_job("chain", {"n": 0})
    await utils.add_raw_job(
        "chain", {"n": 10}, gw.JobSpec(run_at=datetime.now(UTC) + timedelta(hours=1))
    )
    assert await make_worker(db_url, [chain]).run_once() == 4
    assert seen == [0, 1, 2, 3]
    assert await job_count(db_url) == 1


async def test_embedding_in_callers_task_group(db_url: str) -> None:
    done = anyio.Event()

    @gw.task("embedded")
    async def embedded(payload: dict[str, str], ctx: gw.JobContext) -> None:
        assert ctx.extensions["greeting"] == "hello"
        done.set()

    async with make_worker(db_url, [embedded], extensions={"greeting": "hello"}) as worker:
        await worker.utils.add_raw_job("embedded", {"x": "y"})
        with anyio.fail_after(10):
            await done.wait()
    assert await job_count(db_url) == 0


async def test_unknown_identifiers_are_never_fetched(db_url: str, utils: gw.WorkerUtils) -> None:
    @gw.task("known")
    async def known(payload: Any) -> None:
        return None

    await utils.add_raw_job("unknown_task", {})
    await utils.add_raw_job("known", {})
    assert await make_worker(db_url, [known]).run_once() == 1
    left = await rows(db_url, "select attempts, locked_at from graphile_worker._private_jobs")
    assert left == [(0, None)]


# --------------------------------------------------------------------------- contention


async def test_three_workers_run_every_job_exactly_once(db_url: str, utils: gw.WorkerUtils) -> None:
    total = 20_000
    runs = [0] * total

    @gw.task("count")
    async def count(payload: list[int]) -> None:
        runs[payload[0]] += 1

    for start in range(0, total, 10_000):
        await utils.add_raw_jobs(
            [gw.RawJobSpec(identifier="count", payload=[i]) for i in range(start, start + 10_000)]
        )
    workers = [
        make_worker(db_url, [count], concurrency=10, local_queue=gw.LocalQueueConfig(size=200))
        for _ in range(3)
    ]
    async with anyio.create_task_group() as tg:
        for worker in workers:
            await tg.start(worker.run)
        await wait_for(lambda: sum(w.jobs_processed for w in workers) >= total, timeout=120)
        await wait_for(lambda: _empty(db_url), timeout=30, message="table empty")
        for worker in workers:
            worker.shutdown("done")
    assert runs == [1] * total
    assert all(w.jobs_processed > 0 for w in workers)


async def _empty(db_url: str) -> bool:
    return await job_count(db_url) == 0


# --------------------------------------------------------------------------- config errors


def test_worker_rejects_bad_options() -> None:
    @gw.task("t")
    async def t(payload: Any) -> None:
        return None

    with pytest.raises(gw.ConfigurationError, match="concurrency must be an integer >= 1"):
        gw.Worker([t], concurrency=0)
    with pytest.raises(gw.ConfigurationError, match="poll_interval must be > 0 seconds"):
        gw.Worker([t], poll_interval=0)
    with pytest.raises(gw.ConfigurationError, match="forbidden_flags must be a list of strings"):
        gw.Worker([t], forbidden_flags="slow")
    with pytest.raises(gw.ConfigurationError, match=r"local_queue\.size must be an integer >= 1"):
        gw.LocalQueueConfig(size=0)
    with pytest.raises(gw.ConfigurationError, match="grace_period must be >= 0 seconds"):
        gw.ShutdownConfig(grace_period=-1)
    with pytest.raises(gw.ConfigurationError, match="two handlers are registered for task 't'"):
        gw.Worker([t, gw.task("t")(lambda p: None)])


async def test_worker_without_tasks_is_a_clear_error(db_url: str) -> None:
    with pytest.raises(gw.ConfigurationError, match="no tasks"):
        await gw.Worker([], database_url=db_url).run_once()
