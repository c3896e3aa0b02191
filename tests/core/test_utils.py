"""WorkerUtils: adding jobs (typed, raw, many, batch) and the job_key rules."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

import msgspec
import pytest

import gw
from gw.core.utils import WorkerUtils, open_pool
from gw.db.listen import Listener
from gw.errors import InvalidJobSpec
from gw.types import JobSpec, RawJobSpec
from tests.core.conftest import Db, UntouchablePool
from tests.helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gw.db.pool import Pool


class Email(msgspec.Struct):
    to: str
    subject: str = "hello"


@gw.task("send_email")
async def send_email(payload: Email) -> None:
    return None


@gw.batch_task("send_emails")
async def send_emails(items: list[Email]) -> list[None]:
    return [None for _ in items]


_MARKER = "gw-test-end-of-notifications"


@asynccontextmanager
async def insert_notifications(db_url: str, db: Db) -> AsyncIterator[list[str]]:
    """Collect the ``jobs:insert`` payloads sent while the block runs.

    A marker NOTIFY sent after the block bounds the wait: PostgreSQL delivers
    notifications in commit order, so everything the block caused arrives
    before the marker.
    """
    payloads: list[str] = []
    async with Listener(db_url, ["jobs:insert"]) as listener:
        yield payloads
        await db.execute("select pg_notify('jobs:insert', %s)", (_MARKER,))
        while (note := await listener.receive()).payload != _MARKER:
            payloads.append(note.payload)


# --------------------------------------------------------------------------- add_job


async def test_add_job_takes_a_gw_task_and_a_struct_payload(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_job(send_email, Email(to="a@example.com"))

    assert job.task_identifier == "send_email"
    assert job.payload == {"to": "a@example.com", "subject": "hello"}
    assert (job.queue_name, job.key, job.flags, job.locked_at, job.locked_by) == (None,) * 5
    assert (job.priority, job.attempts, job.max_attempts, job.revision) == (0, 0, 25, 0)
    assert job.is_available
    row = await db.job(job.id)
    assert row["payload"] == {"to": "a@example.com", "subject": "hello"}
    assert row["run_at"] == job.run_at <= await db.now()
    # The stored payload decodes back into the task's payload type.
    stored = await db.value("select payload::text from {s}._private_jobs where id = %s", (job.id,))
    assert send_email.decode(stored) == Email(to="a@example.com")


async def test_add_raw_job_stores_every_spec_field(utils: WorkerUtils, db: Db) -> None:
    run_at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=5)))
    spec = JobSpec(
        queue_name="mail",
        run_at=run_at,
        max_attempts=3,
        priority=-7,
        flags=("slow", "bulk"),
        job_key="welcome:1",
    )
    job = await utils.add_raw_job("send_email", {"to": "b@example.com"}, spec)

    assert (job.task_identifier, job.queue_name, job.key) == ("send_email", "mail", "welcome:1")
    assert (job.max_attempts, job.priority, job.run_at) == (3, -7, run_at)
    assert job.flags == {"slow": True, "bulk": True}
    assert job.flag_names == ["bulk", "slow"]
    row = await db.one(
        "select j.*, t.identifier, q.queue_name from {s}._private_jobs j"
        " join {s}._private_tasks t on t.id = j.task_id"
        " join {s}._private_job_queues q on q.id = j.job_queue_id"
    )
    assert row["id"] == job.id
    assert (row["identifier"], row["queue_name"], row["key"]) == ("send_email", "mail", "welcome:1")
    assert (row["max_attempts"], row["priority"], row["run_at"]) == (3, -7, run_at)
    assert row["flags"] == {"slow": True, "bulk": True}
    assert row["payload"] == {"to": "b@example.com"}


async def test_add_raw_job_without_payload_stores_an_empty_object(
    utils: WorkerUtils, db: Db
) -> None:
    job = await utils.add_raw_job("noop")
    assert job.payload == {}
    assert (await db.job(job.id))["payload"] == {}


async def test_add_job_accepts_scalars_lists_and_datetimes_as_payload(utils: WorkerUtils) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    jobs = [
        await utils.add_raw_job("t", value)
        for value in (7, "text", [1, "two", None], {"at": when}, True)
    ]
    assert [j.payload for j in jobs] == [
        7,
        "text",
        [1, "two", None],
        {"at": when.isoformat().replace("+00:00", "Z")},
        True,
    ]


async def test_add_job_notifies_workers(utils: WorkerUtils, db: Db, db_url: str) -> None:
    async with insert_notifications(db_url, db) as notes:
        await utils.add_raw_job("t", {})
    assert len(notes) == 1
    assert msgspec.json.decode(notes[0])["count"] == 1


# --------------------------------------------------------------------------- add_jobs


async def test_add_jobs_adds_typed_and_raw_jobs_in_one_call(utils: WorkerUtils, db: Db) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    jobs = await utils.add_jobs(
        [
            (send_email, Email(to="x@example.com")),
            ("report", {"id": 1}, JobSpec(queue_name="reports", priority=4)),
            ("report", {"id": 2}, None),
            (send_email, Email(to="y@example.com"), JobSpec(run_at=later, job_key="y")),
            ("report", {"id": 3}, JobSpec(max_attempts=2, flags=("slow",), queue_name="reports")),
        ]
    )
    assert [(j.task_identifier, j.payload) for j in jobs] == [
        ("send_email", {"to": "x@example.com", "subject": "hello"}),
        ("report", {"id": 1}),
        ("report", {"id": 2}),
        ("send_email", {"to": "y@example.com", "subject": "hello"}),
        ("report", {"id": 3}),
    ]
    assert [j.queue_name for j in jobs] == [None, "reports", None, None, "reports"]
    assert [j.priority for j in jobs] == [0, 4, 0, 0, 0]
    assert [j.max_attempts for j in jobs] == [25, 25, 25, 25, 2]
    assert [j.flags for j in jobs] == [None, None, None, None, {"slow": True}]
    assert jobs[3].key == "y"
    assert jobs[3].run_at == later
    assert await db.count_jobs() == 5
    assert len({j.id for j in jobs}) == 5
    # What add_jobs returned is what is stored.
    for job in jobs:
        assert await utils.get_job(job.id) == job


async def test_add_raw_jobs_makes_one_add_jobs_call_on_one_connection(db_url: str, db: Db) -> None:
    async def calls() -> dict[str, int]:
        await db.execute("select pg_stat_clear_snapshot()")
        rows = await db.rows(
            "select funcname, calls from pg_stat_user_functions where schemaname = %s",
            ("graphile_worker",),
        )
        return {r["funcname"]: r["calls"] for r in rows}

    before = await calls()
    # track_functions makes the server count SQL function calls of this pool's sessions.
    async with open_pool(
        db_url, max_size=1, connect_kwargs={"options": "-c track_functions=pl"}
    ) as tracked:
        borrowed = 0
        real_connection = tracked.connection

        def counting_connection(*args: Any, **kwargs: Any) -> Any:
            nonlocal borrowed
            borrowed += 1
            return real_connection(*args, **kwargs)

        tracked.connection = counting_connection  # type: ignore[method-assign]
        jobs = await WorkerUtils(tracked).add_raw_jobs(
            [RawJobSpec(identifier=f"task_{i % 3}", payload={"i": i}) for i in range(500)]
        )
    assert len(jobs) == 500
    assert borrowed == 1

    # Closing the pool ended its session, which flushes the session's counters.
    async def flushed() -> bool:
        return (await calls()).get("add_jobs", 0) > before.get("add_jobs", 0)

    await wait_until(flushed)
    after = await calls()
    assert after.get("add_jobs", 0) - before.get("add_jobs", 0) == 1
    assert after.get("add_job", 0) == before.get("add_job", 0)
    assert await db.count_jobs() == 500


@pytest.mark.parametrize("method", ["add_jobs", "add_raw_jobs"])
async def test_adding_no_jobs_returns_empty_without_touching_the_database(method: str) -> None:
    utils = WorkerUtils(cast("Pool", UntouchablePool()))
    assert await getattr(utils, method)([]) == []


async def test_add_raw_jobs_analyzes_the_jobs_table_from_10000_jobs(db_url: str, db: Db) -> None:
    async def analyze_count() -> int:
        await db.execute("select pg_stat_clear_snapshot()")
        return int(
            await db.value(
                "select analyze_count from pg_stat_user_tables"
                " where schemaname = 'graphile_worker' and relname = '_private_jobs'"
            )
        )

    # One connection, so both batches report their statistics from the same backend.
    async with open_pool(db_url, max_size=1) as pool:
        utils = WorkerUtils(pool)
        start = await analyze_count()
        await utils.add_raw_jobs([RawJobSpec(identifier="bulk", payload=i) for i in range(9_999)])
        await utils.add_raw_jobs([RawJobSpec(identifier="bulk", payload=i) for i in range(10_000)])

        async def analyzed() -> bool:
            return await analyze_count() > start

        await wait_until(analyzed)
        # Stats are flushed per backend, so the smaller batch's (absent)
        # ANALYZE would have been counted with the larger one's.
        assert await analyze_count() == start + 1
    assert await db.count_jobs() == 19_999


# --------------------------------------------------------------------------- add_batch_job


async def test_add_batch_job_stores_the_items_as_one_json_array(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_batch_job(send_emails, [Email(to="a@x.org"), Email(to="b@x.org")])
    assert job.task_identifier == "send_emails"
    assert job.payload == [
        {"to": "a@x.org", "subject": "hello"},
        {"to": "b@x.org", "subject": "hello"},
    ]
    assert await db.count_jobs() == 1
    tuple_job = await utils.add_batch_job("send_emails", (1, 2))
    assert tuple_job.payload == [1, 2]


async def test_batch_jobs_with_the_same_key_merge_their_items(utils: WorkerUtils, db: Db) -> None:
    first = await utils.add_batch_job("send_emails", [1, 2], JobSpec(job_key="digest"))
    second = await utils.add_batch_job("send_emails", [3], JobSpec(job_key="digest"))
    assert second.id == first.id
    assert second.payload == [1, 2, 3]
    assert second.revision == 1
    assert await db.count_jobs() == 1


# --------------------------------------------------------------------------- job keys


async def test_replace_mode_replaces_payload_and_run_at_and_bumps_revision(
    utils: WorkerUtils, db: Db
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    sooner = datetime.now(UTC) + timedelta(minutes=1)
    first = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="k", run_at=later, priority=3))
    second = await utils.add_raw_job(
        "t", {"v": 2}, JobSpec(job_key="k", job_key_mode="replace", run_at=sooner)
    )
    assert second.id == first.id
    assert (second.revision, second.payload, second.run_at, second.priority) == (
        1,
        {"v": 2},
        sooner,
        0,
    )
    # The default mode for a keyed job is replace.
    third = await utils.add_raw_job("t", {"v": 3}, JobSpec(job_key="k"))
    assert (third.id, third.revision, third.payload) == (first.id, 2, {"v": 3})
    row = await db.job(first.id)
    assert (row["revision"], row["payload"], row["key"]) == (2, {"v": 3}, "k")
    assert await db.count_jobs() == 1


async def test_preserve_run_at_mode_keeps_the_existing_run_at(utils: WorkerUtils, db: Db) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    first = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="k", run_at=later))
    second = await utils.add_raw_job(
        "t",
        {"v": 2},
        JobSpec(job_key="k", job_key_mode="preserve_run_at", run_at=datetime.now(UTC)),
    )
    assert (second.id, second.revision, second.payload, second.run_at) == (
        first.id,
        1,
        {"v": 2},
        later,
    )
    assert (await db.job(first.id))["run_at"] == later


async def test_unsafe_dedupe_returns_the_existing_job_and_schedules_nothing(
    utils: WorkerUtils, db: Db, db_url: str
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    first = await utils.add_raw_job(
        "t", {"v": 1}, JobSpec(job_key="k", run_at=later, queue_name="q")
    )
    async with insert_notifications(db_url, db) as notes:
        again = await utils.add_raw_job(
            "other_task",
            {"v": 2},
            JobSpec(job_key="k", job_key_mode="unsafe_dedupe", run_at=datetime.now(UTC)),
        )
    assert notes == []
    assert (again.id, again.revision, again.payload, again.run_at) == (first.id, 1, {"v": 1}, later)
    # The job is reported with its own task and queue, not the ones asked for.
    assert (again.task_identifier, again.queue_name) == ("t", "q")
    assert await db.count_jobs() == 1


async def test_unsafe_dedupe_on_a_locked_job_leaves_it_running(
    utils: WorkerUtils, db: Db, db_url: str
) -> None:
    first = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="k"))
    await db.lock(first.id, "w_busy")
    locked = await db.job(first.id)
    async with insert_notifications(db_url, db) as notes:
        again = await utils.add_raw_job(
            "t", {"v": 2}, JobSpec(job_key="k", job_key_mode="unsafe_dedupe")
        )
    assert notes == []
    assert (again.id, again.revision, again.payload) == (first.id, 1, {"v": 1})
    assert (again.locked_by, again.locked_at) == ("w_busy", locked["locked_at"])
    row = await db.job(first.id)
    assert {k: v for k, v in row.items() if k not in ("revision", "updated_at")} == {
        k: v for k, v in locked.items() if k not in ("revision", "updated_at")
    }
    assert await db.count_jobs() == 1


async def test_unsafe_dedupe_without_an_existing_job_adds_one(
    utils: WorkerUtils, db: Db, db_url: str
) -> None:
    async with insert_notifications(db_url, db) as notes:
        job = await utils.add_raw_job(
            "t", {"v": 1}, JobSpec(job_key="fresh", job_key_mode="unsafe_dedupe", queue_name="q")
        )
    assert len(notes) == 1
    assert (job.revision, job.key, job.queue_name, job.task_identifier) == (0, "fresh", "q", "t")
    assert await db.count_jobs() == 1


async def test_replacing_a_locked_job_detaches_it_and_adds_a_new_one(
    utils: WorkerUtils, db: Db
) -> None:
    first = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="k", max_attempts=5))
    await db.lock(first.id)
    second = await utils.add_raw_job("t", {"v": 2}, JobSpec(job_key="k"))
    assert second.id != first.id
    assert (second.key, second.revision, second.payload) == ("k", 0, {"v": 2})
    old = await db.job(first.id)
    # The running job finishes but is never retried and no longer holds the key.
    assert (old["key"], old["attempts"], old["locked_by"]) == (None, 5, "other_worker")


# --------------------------------------------------------------------------- batch rules


async def test_any_preserve_run_at_in_a_batch_applies_to_the_whole_batch(
    utils: WorkerUtils, db: Db
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    now = datetime.now(UTC)
    a = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="a", run_at=later))
    b = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="b", run_at=later))
    jobs = await utils.add_raw_jobs(
        [
            RawJobSpec(identifier="t", payload={"v": 2}, spec=JobSpec(job_key="a", run_at=now)),
            RawJobSpec(
                identifier="t",
                payload={"v": 2},
                spec=JobSpec(job_key="b", job_key_mode="preserve_run_at", run_at=now),
            ),
        ]
    )
    assert sorted((j.id, j.run_at, j.payload["v"], j.revision) for j in jobs) == sorted(
        [(a.id, later, 2, 1), (b.id, later, 2, 1)]
    )
    # Without preserve_run_at anywhere, both take the new run_at.
    jobs = await utils.add_raw_jobs(
        [
            RawJobSpec(identifier="t", payload={"v": 3}, spec=JobSpec(job_key="a", run_at=now)),
            RawJobSpec(identifier="t", payload={"v": 3}, spec=JobSpec(job_key="b", run_at=now)),
        ]
    )
    assert sorted((j.id, j.run_at) for j in jobs) == sorted([(a.id, now), (b.id, now)])
    assert await db.count_jobs() == 2


async def test_unsafe_dedupe_is_rejected_in_batches(utils: WorkerUtils, db: Db) -> None:
    await utils.add_raw_job("t", {}, JobSpec(job_key="k"))
    before = await db.snapshot()
    with pytest.raises(InvalidJobSpec) as caught:
        await utils.add_raw_jobs(
            [
                RawJobSpec(identifier="t", payload={}),
                RawJobSpec(
                    identifier="t",
                    payload={},
                    spec=JobSpec(job_key="k", job_key_mode="unsafe_dedupe"),
                ),
            ]
        )
    assert str(caught.value) == (
        "job #1 ('t'): job_key_mode 'unsafe_dedupe' is not supported when adding jobs in a "
        "batch; add that job with add_job/add_raw_job instead"
    )
    with pytest.raises(InvalidJobSpec, match="'unsafe_dedupe' is not supported"):
        await utils.add_jobs([("t", {}, JobSpec(job_key="k", job_key_mode="unsafe_dedupe"))])
    assert await db.snapshot() == before


async def test_a_key_used_twice_in_one_batch_is_a_clear_error(utils: WorkerUtils, db: Db) -> None:
    before = await db.snapshot()
    with pytest.raises(InvalidJobSpec) as caught:
        await utils.add_jobs(
            [
                ("t", {"n": 1}, JobSpec(job_key="dup")),
                ("u", {}),
                ("t", {"n": 2}, JobSpec(job_key="dup")),
            ]
        )
    assert str(caught.value) == (
        "job_key 'dup' appears more than once in one batch; "
        "each key may be used once per add_jobs call"
    )
    assert await db.snapshot() == before


@pytest.mark.parametrize("mode", ["replace", "preserve_run_at", "unsafe_dedupe"])
async def test_job_key_mode_without_job_key_is_an_error(
    utils: WorkerUtils, db: Db, mode: str
) -> None:
    spec = JobSpec(job_key_mode=mode)  # type: ignore[arg-type]
    message = f"job_key_mode={mode!r} needs a job_key; set job_key too"
    before = await db.snapshot()
    with pytest.raises(InvalidJobSpec) as caught:
        await utils.add_raw_job("t", {}, spec)
    assert str(caught.value) == message
    with pytest.raises(InvalidJobSpec) as caught:
        await utils.add_jobs([("t", {}), ("t", {}, spec)])
    assert str(caught.value) == f"job #1 ('t'): {message}"
    assert await db.snapshot() == before


# --------------------------------------------------------------------------- before_schedule


async def test_a_before_schedule_hook_may_rewrite_the_job(pool: Pool, db: Db) -> None:
    async def hook(identifier: str, payload: Any, spec: JobSpec) -> tuple[str, Any, JobSpec]:
        return f"{identifier}_v2", {"wrapped": payload}, JobSpec(priority=1)

    utils = WorkerUtils(pool, before_schedule=hook)
    job = await utils.add_raw_job("t", {"v": 1})
    assert (job.task_identifier, job.payload, job.priority) == ("t_v2", {"wrapped": {"v": 1}}, 1)
    [batched] = await utils.add_jobs([("u", 2)])
    assert (batched.task_identifier, batched.payload) == ("u_v2", {"wrapped": 2})
    assert await db.count_jobs() == 2


async def test_a_before_schedule_hook_must_keep_a_batch_payload_a_list(pool: Pool, db: Db) -> None:
    async def hook(identifier: str, payload: Any, spec: JobSpec) -> tuple[str, Any, JobSpec]:
        return identifier, [], spec

    before = await db.snapshot()
    with pytest.raises(InvalidJobSpec) as caught:
        await WorkerUtils(pool, before_schedule=hook).add_batch_job("t", [1, 2])
    assert str(caught.value) == (
        "the before_job_schedule hook must return a non-empty list as the payload "
        "of a batch job, got []"
    )
    assert await db.snapshot() == before


# --------------------------------------------------------------------------- construction


async def test_connect_opens_a_pool_and_migrates(db_url: str, db: Db) -> None:
    async with WorkerUtils.connect(db_url, schema="Connected", max_pg_conn=2) as utils:
        assert utils.schema == "Connected"
        job = await utils.add_raw_job("t", {"via": "connect"})
        assert utils.pool.max_size == 2
    connected = Db(db.conn, "Connected")
    assert (await connected.job(job.id))["payload"] == {"via": "connect"}
    assert await connected.value("select max(id) from {s}.migrations") == 20


async def test_use_local_time_schedules_and_reschedules_on_the_given_clock(
    pool: Pool, db: Db
) -> None:
    start = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    utils = WorkerUtils(pool, use_local_time=True, clock=gw.FakeClock(start))
    job = await utils.add_raw_job("t", {})
    [batched] = await utils.add_jobs([("t", {})])
    assert job.run_at == batched.run_at == start
    later = await utils.add_raw_job("t", {}, JobSpec(run_at=start + timedelta(days=1)))
    [moved] = await utils.reschedule_jobs([later.id])
    assert moved.run_at == start
    assert (await db.job(later.id))["run_at"] == start


@pytest.mark.parametrize("entry", [("only_a_task",), ("t", {}, None, "extra"), "t"])
async def test_add_jobs_entries_must_be_task_payload_tuples(
    utils: WorkerUtils, db: Db, entry: Any
) -> None:
    before = await db.snapshot()
    with pytest.raises(InvalidJobSpec) as caught:
        await utils.add_jobs([("t", {}), entry])
    assert str(caught.value) == (
        f"job #1: expected a (task, payload) or (task, payload, spec) tuple, got {entry!r}"
    )
    assert await db.snapshot() == before
