"""Job history (gw.History): one row per finished attempt, results, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import gw
from gw.testing import running, wait_for
from tests.worker.test_worker import make_worker, rows

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def history_rows(db_url: str) -> int:
    ((count,),) = await rows(db_url, "select count(*) from graphile_worker._private_gw_history")
    return int(count)


async def test_every_outcome_is_recorded_with_its_times(db_url: str, utils: gw.WorkerUtils) -> None:
    clock = gw.FakeClock(START)
    release = anyio.Event()
    sleeping = anyio.Event()

    @gw.task("adds")
    async def adds(payload: dict[str, int]) -> dict[str, int]:
        sleeping.set()
        await clock.sleep(2.5)  # on the worker's clock: the test moves it
        return {"sum": payload["a"] + payload["b"]}

    @gw.task("flaky", retry=gw.Retry(backoff=3600))  # no second attempt in this test
    async def flaky(payload: Any) -> None:
        raise RuntimeError("not today")

    @gw.task("doomed")
    async def doomed(payload: Any) -> None:
        raise gw.PermanentFailure("never")

    @gw.task("later")
    async def later(payload: Any) -> None:
        raise gw.RetryAfter(timedelta(hours=1), "not ready")

    @gw.task("skipped")
    async def skipped(payload: Any) -> None:
        raise AssertionError("a hook skips it")

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        await release.wait()

    worker = make_worker(
        db_url,
        [adds, flaky, doomed, later, skipped, stuck],
        clock=clock,
        concurrency=8,
        history=gw.History(),
    )
    worker.on(
        gw.BeforeJobRun,
        lambda e: gw.Skip() if e.job.task_identifier == "skipped" else gw.Continue(),
    )
    jobs = {
        name: await utils.add_raw_job(name, {"a": 2, "b": 3} if name == "adds" else {})
        for name in ("adds", "flaky", "doomed", "later", "skipped", "stuck")
    }
    async with running(worker):
        await sleeping.wait()
        await clock.advance(2.5)
        (cancel,) = await utils.cancel_jobs([jobs["stuck"].id], "enough")
        assert cancel.outcome == "cancelling"

        async def all_recorded() -> bool:
            return await history_rows(db_url) == 6

        await wait_for(all_recorded, message="6 history rows")

    entries = {e.task_identifier: e for e in await utils.list_history()}
    assert {t: e.outcome for t, e in entries.items()} == {
        "adds": "completed",
        "flaky": "failed",
        "doomed": "permanently_failed",
        "later": "rescheduled",
        "skipped": "skipped",
        "stuck": "cancelled",
    }
    done = entries["adds"]
    assert (done.started_at, done.finished_at, done.duration) == (
        START,
        START + timedelta(seconds=2.5),
        2.5,
    )
    assert done.result == {"sum": 5}
    assert (done.job_id, done.attempt, done.max_attempts, done.worker_id, done.error) == (
        jobs["adds"].id,
        1,
        25,
        worker.worker_id,
        None,
    )
    assert done.run_at == jobs["adds"].run_at
    assert entries["flaky"].error == "not today"
    assert (entries["flaky"].attempt, entries["flaky"].max_attempts) == (1, 25)
    assert entries["doomed"].error == "never"
    assert entries["later"].error == "not ready"
    assert entries["stuck"].error == "cancelled: enough"
    assert entries["stuck"].result is None

    result = await utils.get_result(jobs["adds"].id)
    assert result == done
    assert await utils.get_result(987654) is None
    failed = await utils.list_history(outcome="failed")
    assert [e.task_identifier for e in failed] == ["flaky"]
    assert await utils.list_history(task="adds", since=START + timedelta(seconds=3)) == []
    assert [e.task_identifier for e in await utils.list_history(job_id=jobs["doomed"].id)] == [
        "doomed"
    ]


async def test_history_off_writes_nothing(db_url: str, utils: gw.WorkerUtils) -> None:
    @gw.task("plain")
    async def plain(payload: Any) -> int:
        return 1

    @gw.task("bad")
    async def bad(payload: Any) -> None:
        raise RuntimeError("x")

    await utils.add_raw_job("plain", {})
    await utils.add_raw_job("bad", {})
    assert await make_worker(db_url, [plain, bad]).run_once() == 2
    assert await history_rows(db_url) == 0


async def test_results_can_be_left_out_and_payloads_kept(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("echo")
    async def echo(payload: dict[str, str]) -> str:
        return payload["text"] * 100

    job = await utils.add_raw_job("echo", {"text": "abc"})
    worker = make_worker(db_url, [echo], history=gw.History(results=False, payloads=True))
    assert await worker.run_once() == 1
    entry = await utils.get_result(job.id)
    assert entry is not None
    assert (entry.result, entry.payload) == (None, {"text": "abc"})


async def test_a_result_that_cannot_be_stored_never_fails_the_job(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("odd")
    async def odd(payload: dict[str, str]) -> Any:
        kind = payload["kind"]
        if kind == "big":
            return "x" * 200
        if kind == "object":
            return object()
        return "a\x00b"

    big = await utils.add_raw_job("odd", {"kind": "big"})
    obj = await utils.add_raw_job("odd", {"kind": "object"})
    nul = await utils.add_raw_job("odd", {"kind": "nul"})
    worker = make_worker(db_url, [odd], history=gw.History(max_result_bytes=100))
    assert await worker.run_once() == 3
    # Every job completed (deleted) whatever its result was.
    ((left,),) = await rows(db_url, "select count(*) from graphile_worker._private_jobs")
    assert left == 0
    big_entry = await utils.get_result(big.id)
    assert big_entry is not None
    assert big_entry.result == {"gw_result_too_large": 202, "limit": 100}
    obj_entry = await utils.get_result(obj.id)
    assert obj_entry is not None
    assert obj_entry.result == {"gw_unencodable_result": "object"}
    # PostgreSQL's jsonb refuses a NUL character: that job completed without history.
    assert await utils.get_result(nul.id) is None


async def test_old_history_is_pruned(db_url: str, utils: gw.WorkerUtils) -> None:
    clock = gw.FakeClock(START)

    @gw.task("noop")
    async def noop(payload: Any) -> None:
        pass

    # Migrate the schema (the worker does) before writing rows by hand.
    assert await make_worker(db_url, [noop]).run_once() == 0
    for age_days, job_id in ((8, 1), (6, 2)):
        finished = START - timedelta(days=age_days)
        await rows(
            db_url,
            "insert into graphile_worker._private_gw_history (job_id, task_identifier,"
            " attempt, max_attempts, worker_id, started_at, finished_at, outcome)"
            " values (%s, 'noop', 1, 25, 'w', %s, %s, 'completed') returning id",
            job_id,
            finished,
            finished,
        )
    worker = make_worker(
        db_url,
        [noop],
        clock=clock,
        history=gw.History(keep=timedelta(days=7), prune_interval=60),
        # Each fake minute would otherwise wake 300 polling fetches, one at a
        # time: slow enough on a loaded machine to time the test out.
        poll_interval=3600,
    )
    async with running(worker):

        async def pruned() -> bool:
            await clock.advance(60)  # a prune interval on the worker's clock
            return [e.job_id for e in await utils.list_history()] == [2]

        await wait_for(pruned, message="the 8-day-old row pruned, the 6-day-old kept")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "exploded"}, "unknown outcome 'exploded'; expected one of completed,"),
        ({"limit": 0}, "limit must be an integer from 1 to 10000, got 0"),
        ({"since": datetime(2026, 1, 1)}, "since must be an aware datetime"),
        ({"job_id": -1}, "job ids must be positive integers, got -1"),
    ],
)
async def test_bad_history_filters_say_what_is_wrong(
    utils: gw.WorkerUtils, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(gw.ConfigurationError) as info:
        await utils.list_history(**kwargs)
    assert str(info.value).startswith(message)


def test_bad_history_settings() -> None:
    with pytest.raises(gw.ConfigurationError, match="History keep must be > 0 seconds"):
        gw.History(keep=0)
    with pytest.raises(gw.ConfigurationError, match="History keep must be at most 36500 days"):
        gw.History(keep=timedelta(days=99999999))
    with pytest.raises(gw.ConfigurationError, match="max_result_bytes must be an integer >= 2"):
        gw.History(max_result_bytes=1)
    with pytest.raises(gw.ConfigurationError, match=r"history must be a gw\.History"):
        gw.Worker([], history=True)  # type: ignore[arg-type]


async def test_an_attempt_interrupted_by_shutdown_is_recorded(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    clock = gw.FakeClock(START)
    started = anyio.Event()

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    job = await utils.add_raw_job("stuck", {})
    worker = make_worker(db_url, [stuck], clock=clock, history=gw.History())
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        await clock.advance(4)
        worker.shutdown("test", graceful=False)
    (entry,) = await utils.list_history(job_id=job.id)
    assert (entry.outcome, entry.error, entry.attempt) == (
        "interrupted",
        "Job recovered after worker interruption",
        1,
    )
    assert (entry.started_at, entry.duration) == (START, 4.0)
    # Released to run again (the attempt does not count), not a final outcome.
    ((attempts, locked_by),) = await rows(
        db_url,
        "select attempts, locked_by from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, locked_by) == (0, None)


async def test_wait_for_result_wakes_when_the_job_ends(db_url: str, utils: gw.WorkerUtils) -> None:
    attempts: list[int] = []

    @gw.task("twice", retry=gw.Retry(backoff=0))
    async def twice(payload: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "done"

    job = await utils.add_raw_job("twice", {})
    worker = make_worker(db_url, [twice], history=gw.History())
    found: list[gw.HistoryEntry] = []
    async with anyio.create_task_group() as tg:

        async def wait() -> None:
            found.append(await utils.wait_for_result(job.id, timeout=30))

        tg.start_soon(wait)
        # The first (failed) attempt is not the final word: the wait goes on
        # through it and returns the completed second attempt.
        async with running(worker):

            async def waited() -> bool:
                return bool(found)

            await wait_for(waited, message="wait_for_result to return")
    (entry,) = found
    assert (entry.job_id, entry.outcome, entry.result, entry.attempt) == (
        job.id,
        "completed",
        "done",
        2,
    )
    # Once recorded, the final result comes back at once.
    assert await utils.wait_for_result(job.id, timeout=0.5) == entry


async def test_wait_for_result_returns_a_permanent_failure(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()
    release = anyio.Event()

    @gw.task("doomed")
    async def doomed(payload: Any) -> None:
        started.set()
        await release.wait()
        raise gw.PermanentFailure("never")

    # The last (only) attempt: while it runs, attempts == max_attempts, and
    # the wait still waits for it.
    job = await utils.add_raw_job("doomed", {}, gw.JobSpec(max_attempts=1))
    async with running(make_worker(db_url, [doomed], history=gw.History())):
        await started.wait()
        with pytest.raises(gw.ResultTimeout):
            await utils.wait_for_result(job.id, timeout=0.3)
        release.set()
        entry = await utils.wait_for_result(job.id, timeout=30)
    assert (entry.outcome, entry.error) == ("permanently_failed", "never")


async def test_wait_for_result_times_out_and_says_when_there_is_nothing_to_wait_for(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("plain")
    async def plain(payload: Any) -> None:
        pass

    queued = await utils.add_raw_job("plain", {})
    with pytest.raises(gw.ResultTimeout, match=rf"job {queued.id} did not finish within 0.2 s"):
        await utils.wait_for_result(queued.id, timeout=0.2)
    # Run without history: the job is gone and nothing says how it ended.
    assert await make_worker(db_url, [plain]).run_once() == 1
    with pytest.raises(gw.ResultUnavailable, match=rf"job {queued.id} is not waiting to run"):
        await utils.wait_for_result(queued.id, timeout=5)
    with pytest.raises(gw.ResultUnavailable, match="no final history record"):
        await utils.wait_for_result(987654, timeout=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be > 0 seconds, got 0"),
        ({"timeout": float("nan")}, "timeout must be > 0 seconds, got nan"),
        ({"timeout": timedelta(0)}, "timeout must be > 0 seconds, got datetime.timedelta(0)"),
        ({"timeout": "5"}, "timeout must be a number of seconds or a timedelta, got '5'"),
    ],
)
async def test_bad_wait_for_result_arguments(
    utils: gw.WorkerUtils, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(gw.ConfigurationError) as info:
        await utils.wait_for_result(1, **kwargs)
    assert str(info.value).startswith(message)
    with pytest.raises(gw.ConfigurationError, match="job ids must be positive integers"):
        await utils.wait_for_result(0)


async def test_the_backlog_is_sampled_once_per_interval_for_the_fleet(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    clock = gw.FakeClock(datetime.now(UTC))
    release = anyio.Event()
    started = anyio.Event()

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started.set()
        await release.wait()

    await utils.add_raw_job("stuck", {})
    for _ in range(2):
        await utils.add_raw_job("elsewhere", {})  # no worker here runs it: ready
    await utils.add_raw_job("elsewhere", {}, gw.JobSpec(run_at=clock.now() + timedelta(days=1)))
    dead = await utils.add_raw_job("elsewhere", {}, gw.JobSpec(max_attempts=1))
    await rows(
        db_url,
        "update graphile_worker._private_jobs set attempts = 1 where id = %s returning id",
        dead.id,
    )
    history = gw.History(sample_interval=60)
    workers = [
        make_worker(db_url, [stuck], clock=clock, history=history, poll_interval=3600)
        for _ in range(2)
    ]
    async with running(workers[0]), running(workers[1]):
        await started.wait()

        async def sampled() -> bool:
            await clock.advance(10)
            found = await rows(
                db_url,
                "select ready, scheduled, running, failed, sampled_at"
                " from graphile_worker._private_gw_backlog_samples",
            )
            return len(found) >= 2

        await wait_for(sampled, message="two backlog samples")
        release.set()
    samples = await rows(
        db_url,
        "select ready, scheduled, running, failed, sampled_at"
        " from graphile_worker._private_gw_backlog_samples order by sampled_at",
    )
    # One row per slot (two workers sampled), on a minute boundary, with the
    # counts at that time.
    assert [s[:4] for s in samples[:2]] == [(2, 1, 1, 1), (2, 1, 1, 1)]
    first, second = samples[0][4], samples[1][4]
    assert second - first == timedelta(minutes=1)
    assert first.timestamp() % 60 == 0


def test_backlog_sampling_settings() -> None:
    assert gw.History().sample_interval == 60.0
    assert gw.History(sample_interval=None).sample_seconds is None
    with pytest.raises(gw.ConfigurationError, match="History sample_interval must be > 0"):
        gw.History(sample_interval=0)
