"""Task policies: per-task job defaults, retry backoff, final errors, RetryAfter,
and the warning for task identifiers no worker registered."""

from __future__ import annotations

import logging
import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import gw
from gw.core.utils import open_pool
from tests.worker.test_worker import make_worker, rows

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def job_row(db_url: str, job_id: int) -> dict[str, Any]:
    ((attempts, max_attempts, run_at, last_error, locked_by, queue, priority),) = await rows(
        db_url,
        "select j.attempts, j.max_attempts, j.run_at, j.last_error, j.locked_by,"
        " q.queue_name, j.priority from graphile_worker._private_jobs j"
        " left join graphile_worker._private_job_queues q on q.id = j.job_queue_id"
        " where j.id = %s",
        job_id,
    )
    return {
        "attempts": attempts,
        "max_attempts": max_attempts,
        "run_at": run_at,
        "last_error": last_error,
        "locked_by": locked_by,
        "queue": queue,
        "priority": priority,
    }


class Clocked:
    """Jobs added and run on one FakeClock (local time), so run_at values are exact."""

    def __init__(self, db_url: str, utils: gw.WorkerUtils) -> None:
        self.db_url = db_url
        self.clock = gw.FakeClock(START)
        self.utils = gw.WorkerUtils(utils.pool, use_local_time=True, clock=self.clock)

    def worker(self, tasks: list[Any], **options: Any) -> gw.Worker:
        return make_worker(self.db_url, tasks, clock=self.clock, use_local_time=True, **options)

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)


# --------------------------------------------------------------------------- job defaults


async def test_task_defaults_apply_and_an_explicit_spec_wins(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("report", queue_name="reports", max_attempts=3, priority=7)
    async def report(payload: Any) -> None:
        pass

    plain = await utils.add_job(report, {"n": 1})
    assert (plain.queue_name, plain.max_attempts, plain.priority) == ("reports", 3, 7)
    mine = await utils.add_job(report, {"n": 2}, gw.JobSpec(max_attempts=9, queue_name="mine"))
    assert (mine.queue_name, mine.max_attempts, mine.priority) == ("mine", 9, 7)
    # By raw identifier, the utils apply only the defaults they were given.
    raw = await utils.add_raw_job("report", {"n": 3})
    assert (raw.queue_name, raw.max_attempts, raw.priority) == (None, 25, 0)
    async with gw.WorkerUtils.connect(db_url, migrate=False, tasks=[report]) as known:
        by_name = await known.add_raw_job("report", {"n": 4})
        bulk = await known.add_raw_jobs(
            [
                gw.RawJobSpec(identifier="report", payload={"n": 5}),
                gw.RawJobSpec(identifier="other", payload={"n": 6}),
                gw.RawJobSpec(identifier="report", payload={"n": 7}, spec=gw.JobSpec(priority=-1)),
            ]
        )
    assert (by_name.queue_name, by_name.max_attempts, by_name.priority) == ("reports", 3, 7)
    assert [(j.queue_name, j.max_attempts, j.priority) for j in bulk] == [
        ("reports", 3, 7),
        (None, 25, 0),
        ("reports", 3, -1),
    ]
    tuples = await utils.add_jobs([(report, {"n": 8}), ("report", {"n": 9})])
    assert [(j.queue_name, j.priority) for j in tuples] == [("reports", 7), (None, 0)]
    # SQL keeps the column defaults: task defaults live in Python.
    ((queue, attempts),) = await rows(
        db_url,
        "select q.queue_name, j.max_attempts from graphile_worker.add_job('report', '{}') j"
        " left join graphile_worker._private_job_queues q on q.id = j.job_queue_id",
    )
    assert (queue, attempts) == (None, 25)


async def test_a_default_job_key_mode_applies_to_keyed_jobs_only(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("digest", job_key_mode="preserve_run_at")
    async def digest(payload: Any) -> None:
        pass

    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    first = await utils.add_job(digest, {"v": 1}, gw.JobSpec(job_key="d", run_at=later))
    second = await utils.add_job(
        digest, {"v": 2}, gw.JobSpec(job_key="d", run_at=later + timedelta(hours=1))
    )
    assert second.id == first.id
    assert (second.run_at, second.payload) == (later, {"v": 2})  # run_at preserved
    replaced = await utils.add_job(
        digest,
        {"v": 3},
        gw.JobSpec(job_key="d", job_key_mode="replace", run_at=later + timedelta(hours=2)),
    )
    assert replaced.run_at == later + timedelta(hours=2)
    assert (await utils.add_job(digest, {"v": 4})).key is None  # no key: no mode needed


async def test_the_workers_utils_and_define_job_carry_the_defaults(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    added: list[gw.Job] = []

    @gw.task("parent")
    async def parent(payload: Any, ctx: gw.JobContext) -> None:
        added.append(await ctx.utils.add_raw_job("child", {}))

    worker = make_worker(db_url, [parent])
    worker.define_job("child", lambda payload: None, queue_name="kids", priority=3)
    await utils.add_raw_job("parent", {})
    assert await worker.run_once() == 2
    assert [(j.queue_name, j.priority) for j in added] == [("kids", 3)]


def test_task_options_are_checked_when_the_task_is_defined() -> None:
    with pytest.raises(gw.ConfigurationError, match=r"^task 'a': max_attempts must be between 1"):
        gw.task("a", max_attempts=0)(lambda payload: None)
    with pytest.raises(gw.ConfigurationError, match=r"^task 'b': unknown job_key_mode 'keep'"):
        gw.task("b", job_key_mode="keep")(lambda payload: None)  # type: ignore[arg-type]
    with pytest.raises(gw.ConfigurationError, match=r"^task 'c': priority must be an integer"):
        gw.batch_task("c", priority="high")(lambda items: [])  # type: ignore[arg-type]
    with pytest.raises(gw.ConfigurationError, match=r"^task 'd': retry must be a gw.Retry\(...\)"):
        gw.task("d", retry=30)(lambda payload: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^unknown task option 'max_retries'; the options are "):
        gw.task("e", max_retries=3)  # type: ignore[call-overload]
    with pytest.raises(gw.ConfigurationError, match=r"^retry must be a gw.Retry\(...\), got 5"):
        gw.Worker([], retry=5)  # type: ignore[arg-type]


def test_cron_items_take_their_tasks_defaults() -> None:
    from gw.cron.sources import with_task_defaults

    items = gw.parse_crontab(
        "0 4 * * * nightly\n"
        "0 5 * * * nightly ?id=n2&queue=own&max=2\n"
        "0 6 * * * nightly ?id=n3&jobKey=n&jobKeyMode=replace\n"
        "0 7 * * * nightly ?id=n4&jobKey=n\n"
        "0 8 * * * other\n"
    )
    defaults = {
        "nightly": gw.JobSpec(
            queue_name="batch", max_attempts=5, priority=2, job_key_mode="preserve_run_at"
        )
    }
    out = with_task_defaults(items, defaults)
    assert [(i.queue, i.max_attempts, i.priority, i.job_key_mode) for i in out] == [
        ("batch", 5, 2, None),
        ("own", 2, 2, None),
        ("batch", 5, 2, "replace"),
        ("batch", 5, 2, "preserve_run_at"),
        (None, None, None, None),
    ]
    assert with_task_defaults(items, {}) is items


# --------------------------------------------------------------------------- backoff


def failing(identifier: str, retry: gw.Retry | None = None, **options: Any) -> gw.Task[..., Any]:
    async def fail(payload: Any) -> None:
        raise RuntimeError(f"{identifier} failed")

    return gw.task(identifier, retry=retry, **options)(fail)


async def test_each_backoff_gives_the_run_at_it_documents(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    t = Clocked(db_url, utils)

    def by_attempt(attempt: int, error: BaseException) -> float:
        assert str(error) == "custom failed"
        return attempt * 100.0

    tasks = [
        failing("graphile"),
        failing("fixed", gw.Retry(backoff=timedelta(seconds=30))),
        failing("exponential", gw.Retry(backoff=gw.Exponential(initial=5, base=3, cap=100))),
        failing("custom", gw.Retry(backoff=by_attempt)),
    ]
    ids = {task.identifier: (await t.utils.add_job(task, {})).id for task in tasks}
    worker_tasks: list[Any] = tasks
    expected = {
        "graphile": [math.exp(1), math.exp(2), math.exp(3), math.exp(4)],
        "fixed": [30.0, 30.0, 30.0, 30.0],
        "exponential": [5.0, 15.0, 45.0, 100.0],
        "custom": [100.0, 200.0, 300.0, 400.0],
    }
    for attempt in range(1, 5):
        before = t.clock.now()
        assert await t.worker(worker_tasks).run_once() == len(tasks)
        delays = {}
        for identifier, job_id in ids.items():
            row = await job_row(db_url, job_id)
            assert (row["attempts"], row["last_error"]) == (attempt, f"{identifier} failed")
            delays[identifier] = (row["run_at"] - before).total_seconds()
        assert delays == pytest.approx({k: v[attempt - 1] for k, v in expected.items()}, abs=1e-5)
        # Nothing is due before its time; then everything is.
        await t.advance(min(delays.values()) - 0.01)
        assert await t.worker(worker_tasks).run_once() == 0
        await t.advance(max(delays.values()) - min(delays.values()) + 0.01)


async def test_worker_default_policy_and_task_override(db_url: str, utils: gw.WorkerUtils) -> None:
    t = Clocked(db_url, utils)
    default = failing("default")
    own = failing("own", gw.Retry(backoff=7))
    a = await t.utils.add_job(default, {})
    b = await t.utils.add_job(own, {})
    assert await t.worker([default, own], retry=gw.Retry(backoff=60)).run_once() == 2
    assert (await job_row(db_url, a.id))["run_at"] == START + timedelta(seconds=60)
    assert (await job_row(db_url, b.id))["run_at"] == START + timedelta(seconds=7)


# --------------------------------------------------------------------------- final errors


class Invalid(Exception):
    pass


class Order(msgspec.Struct):
    order_id: int


async def test_final_errors_end_after_one_attempt_with_the_reason(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("give_up", retry=gw.Retry(give_up_on=Invalid))
    async def give_up(payload: Any) -> None:
        raise Invalid("address is not deliverable")

    @gw.task("only_io", retry=gw.Retry(retry_on=OSError))
    async def only_io(payload: Any) -> None:
        raise KeyError("missing")

    @gw.task("permanent")
    def permanent(payload: Any) -> None:  # a sync handler: same rules
        raise gw.PermanentFailure("user 42 was deleted")

    @gw.task("typed")
    async def typed(payload: Order) -> None:
        raise AssertionError("never runs")

    @gw.task("transient", retry=gw.Retry(give_up_on=Invalid))
    async def transient(payload: Any) -> None:
        raise OSError("connection reset")

    permanently: list[tuple[int, str]] = []
    failed: list[int] = []
    tasks = [give_up, only_io, permanent, typed, transient]
    ids = {
        "give_up": (await utils.add_job(give_up, {})).id,
        "only_io": (await utils.add_job(only_io, {})).id,
        "permanent": (await utils.add_job(permanent, {})).id,
        "typed": (await utils.add_raw_job("typed", {"order_id": "seven"})).id,
        "transient": (await utils.add_job(transient, {})).id,
    }
    worker = make_worker(db_url, tasks)
    worker.on(gw.JobPermanentlyFail, lambda e: permanently.append((e.job.id, e.error)))
    worker.on(gw.JobFail, lambda e: failed.append(e.job.id))
    assert await worker.run_once() == 5

    expected_errors = {
        "give_up": "address is not deliverable",
        "only_io": "'missing'",
        "permanent": "user 42 was deleted",
        "typed": "invalid payload for task 'typed': field 'order_id': expected `int`, got `str`",
    }
    for name, error in expected_errors.items():
        row = await job_row(db_url, ids[name])
        assert (row["attempts"], row["max_attempts"], row["locked_by"]) == (25, 25, None), name
        assert row["last_error"] == error
    assert sorted(permanently) == sorted((ids[n], e) for n, e in expected_errors.items())
    # The transient error is an ordinary failed attempt.
    row = await job_row(db_url, ids["transient"])
    assert (row["attempts"], row["last_error"]) == (1, "connection reset")
    assert failed == [ids["transient"]]
    # Failed for good: never fetched again, listed as failed.
    page = await utils.list_jobs(state="failed")
    assert sorted(j.id for j in page.jobs) == sorted(ids[n] for n in expected_errors)


async def test_a_final_error_of_a_batch_task_fails_the_whole_batch(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.batch_task("batch")
    async def batch(items: list[Any]) -> list[Any]:
        raise gw.PermanentFailure("the whole batch is void")

    job = await utils.add_batch_job(batch, [{"a": 1}, {"a": 2}])
    assert await make_worker(db_url, [batch]).run_once() == 1
    row = await job_row(db_url, job.id)
    assert (row["attempts"], row["last_error"]) == (25, "the whole batch is void")


# --------------------------------------------------------------------------- RetryAfter


async def test_retry_after_reschedules_without_spending_an_attempt(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    t = Clocked(db_url, utils)
    calls: list[int] = []

    @gw.task("poll", max_attempts=2, retry=gw.Retry(give_up_on=Exception))
    async def poll(payload: Any, ctx: gw.JobContext) -> None:
        calls.append(ctx.job.attempts)
        if len(calls) < 4:
            raise gw.RetryAfter(timedelta(minutes=1), "report not ready")

    events: list[str] = []
    job = await t.utils.add_job(poll, {})
    for round_ in range(4):
        worker = t.worker([poll])
        worker.on(gw.JobFail, lambda e: events.append("fail"))
        worker.on(gw.JobPermanentlyFail, lambda e: events.append("permanent"))
        worker.on(gw.JobComplete, lambda e: events.append("complete"))
        with caplog.at_level(logging.INFO, logger="gw.worker"):
            assert await worker.run_once() == 1
        if round_ < 3:
            row = await job_row(db_url, job.id)
            assert (row["attempts"], row["last_error"]) == (0, "report not ready")
            assert row["run_at"] == t.clock.now() + timedelta(minutes=1)
            await t.advance(59)
            assert await t.worker([poll]).run_once() == 0
            await t.advance(1)
    # Every run was attempt 1 of 2: snoozes never used up the attempts.
    assert calls == [1, 1, 1, 1]
    assert events == ["complete"]
    assert await rows(db_url, "select id from graphile_worker._private_jobs") == []
    snoozed = [r for r in caplog.records if "rescheduled in 60 s" in r.getMessage()]
    assert len(snoozed) == 3
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in snoozed)


# --------------------------------------------------------------------------- unknown tasks


async def test_unknown_identifier_warns_with_a_close_match(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("send_email")
    async def send_email(payload: Any) -> None:
        pass

    await make_worker(db_url, [send_email]).run_once()  # registers send_email
    with pytest.warns(gw.UnknownTaskWarning) as caught:
        job = await utils.add_raw_job("sned_email", {"to": "a@b.c"})
    (warning,) = caught
    assert str(warning.message) == (
        "no worker has registered task 'sned_email' on this database; did you mean "
        "'send_email'? (the job was added; it waits until a worker runs that task)"
    )
    assert warning.filename == __file__  # points at the caller
    assert (await utils.get_job(job.id)) is not None  # added all the same

    with pytest.warns(gw.UnknownTaskWarning, match="'zzz' on this database \\(the job"):
        await utils.add_job("zzz")
    with pytest.warns(gw.UnknownTaskWarning, match="did you mean 'send_email'"):
        await utils.add_batch_job("send_emails", [{}])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await utils.add_raw_job("send_email", {})
        await utils.add_job(send_email, {})
        # A task object is known to its producer: never checked.
        other = gw.task("never_registered")(lambda payload: None)
        await utils.add_job(other, {})
        # Once a job exists for an identifier, the database knows it.
        await utils.add_raw_job("zzz", {})


async def test_utils_of_a_worker_know_its_own_tasks(db_url: str) -> None:
    async with open_pool(db_url) as pool:
        utils = gw.WorkerUtils(pool, task_identifiers=["mine"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            job = await utils.add_raw_job("mine", {})
    assert job.task_identifier == "mine"


# --------------------------------------------------------------------------- job logging


async def test_ctx_logger_records_carry_the_job(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    @gw.task("chatty")
    async def chatty(payload: Any, ctx: gw.JobContext) -> None:
        ctx.logger.info("working on %s", payload["n"], extra={"step": "one"})

    @gw.task("chatty_sync")
    def chatty_sync(payload: Any, ctx: gw.JobContext) -> None:
        ctx.logger.warning("in a thread")

    a = await utils.add_job(chatty, {"n": 1})
    b = await utils.add_job(chatty_sync, {})
    worker = make_worker(db_url, [chatty, chatty_sync])
    with caplog.at_level(logging.INFO, logger="gw.job"):
        assert await worker.run_once() == 2
    records = {r.getMessage(): r for r in caplog.records if r.name == "gw.job"}
    first, second = records["working on 1"], records["in a thread"]
    assert (first.job_id, first.task_identifier, first.attempt) == (a.id, "chatty", 1)  # type: ignore[attr-defined]
    assert first.worker_id == worker.worker_id  # type: ignore[attr-defined]
    assert first.step == "one"  # type: ignore[attr-defined]
    assert second.job_id == b.id  # type: ignore[attr-defined]
    # gw's CLI format ends a task's lines with the job.
    from gw.cli._app import _Formatter

    line = _Formatter("%(levelname)s %(name)s: %(message)s").format(first)
    assert line == (
        f"INFO gw.job: working on 1 [job {a.id} chatty attempt 1, worker {worker.worker_id}]"
    )
