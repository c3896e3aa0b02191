"""WorkerUtils: removing, completing, failing, rescheduling, cleanup, force-unlock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gw.core.utils import WorkerUtils
from gw.errors import ConfigurationError
from gw.types import CleanupTask, JobSpec

if TYPE_CHECKING:
    from gw.db.pool import Pool
    from tests.core.conftest import Db


# --------------------------------------------------------------------------- remove_job


async def test_remove_job_deletes_an_unlocked_job(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job("t", {"v": 1}, JobSpec(job_key="k", queue_name="q"))
    other = await utils.add_raw_job("t", {"v": 2}, JobSpec(job_key="other"))
    removed = await utils.remove_job("k")
    assert removed is not None
    assert (removed.id, removed.key, removed.task_identifier, removed.queue_name) == (
        job.id,
        "k",
        "t",
        "q",
    )
    assert [r["id"] for r in await db.rows("select id from {s}._private_jobs")] == [other.id]


async def test_remove_job_on_a_locked_job_stops_its_retries(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job("t", {}, JobSpec(job_key="k", max_attempts=7))
    await db.lock(job.id, "w_busy")
    removed = await utils.remove_job("k")
    assert removed is not None
    assert (removed.id, removed.key, removed.attempts, removed.locked_by) == (
        job.id,
        None,
        7,
        "w_busy",
    )
    row = await db.job(job.id)
    assert (row["key"], row["attempts"], row["max_attempts"], row["locked_by"]) == (
        None,
        7,
        7,
        "w_busy",
    )


async def test_remove_job_with_an_unknown_key_returns_none(utils: WorkerUtils, db: Db) -> None:
    await utils.add_raw_job("t", {}, JobSpec(job_key="k"))
    before = await db.snapshot()
    assert await utils.remove_job("nope") is None
    assert await db.snapshot() == before


# --------------------------------------------------------------------------- admin functions


async def _three_jobs(utils: WorkerUtils, db: Db) -> tuple[int, int, int]:
    """(unlocked, locked by another worker, locked more than 4 hours ago)."""
    free = await utils.add_raw_job("t", {"n": 1}, JobSpec(max_attempts=4))
    busy = await utils.add_raw_job("t", {"n": 2}, JobSpec(max_attempts=4))
    stale = await utils.add_raw_job("t", {"n": 3}, JobSpec(max_attempts=4))
    await db.lock(busy.id)
    await db.lock(stale.id, ago="5 hours")
    return free.id, busy.id, stale.id


async def test_complete_jobs_deletes_unlocked_jobs_and_leaves_locked_ones(
    utils: WorkerUtils, db: Db
) -> None:
    free, busy, stale = await _three_jobs(utils, db)
    busy_row = await db.job(busy)
    done = await utils.complete_jobs([free, busy, stale, 999_999])
    assert sorted(j.id for j in done) == [free, stale]
    assert {j.task_identifier for j in done} == {"t"}
    assert [r["id"] for r in await db.rows("select id from {s}._private_jobs")] == [busy]
    assert await db.job(busy) == busy_row


async def test_permanently_fail_jobs_sets_the_reason_and_exhausts_attempts(
    utils: WorkerUtils, db: Db
) -> None:
    free, busy, stale = await _three_jobs(utils, db)
    busy_row = await db.job(busy)
    failed = await utils.permanently_fail_jobs([free, busy, stale], "invalid payload")
    assert sorted(j.id for j in failed) == [free, stale]
    for job in failed:
        assert (job.last_error, job.attempts, job.max_attempts) == ("invalid payload", 4, 4)
        row = await db.job(job.id)
        assert (row["last_error"], row["attempts"]) == ("invalid payload", 4)
    assert await db.job(busy) == busy_row


@pytest.mark.parametrize("reason", [None, ""])
async def test_permanently_fail_jobs_has_a_default_reason(
    utils: WorkerUtils, db: Db, reason: str | None
) -> None:
    job = await utils.add_raw_job("t", {})
    [failed] = await utils.permanently_fail_jobs([job.id], reason)
    assert (failed.last_error, failed.attempts) == ("Manually marked as failed", 25)
    assert (await db.job(job.id))["last_error"] == "Manually marked as failed"


async def test_reschedule_jobs_changes_only_the_given_fields(utils: WorkerUtils, db: Db) -> None:
    free, busy, _stale = await _three_jobs(utils, db)
    busy_row = await db.job(busy)
    free_row = await db.job(free)
    when = datetime(2040, 1, 1, tzinfo=UTC)
    changed = await utils.reschedule_jobs([free, busy], run_at=when, priority=9)
    assert [j.id for j in changed] == [free]
    row = await db.job(free)
    assert (row["run_at"], row["priority"]) == (when, 9)
    assert (row["attempts"], row["max_attempts"]) == (free_row["attempts"], 4)
    assert await db.job(busy) == busy_row

    changed = await utils.reschedule_jobs([free], run_at=when, attempts=2, max_attempts=10)
    row = await db.job(free)
    assert (changed[0].attempts, changed[0].max_attempts) == (2, 10)
    assert (row["run_at"], row["priority"], row["attempts"], row["max_attempts"]) == (
        when,
        9,
        2,
        10,
    )


async def test_reschedule_jobs_without_run_at_runs_them_now(utils: WorkerUtils, db: Db) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    job = await utils.add_raw_job("t", {}, JobSpec(run_at=later, priority=5))
    before = await db.now()
    [changed] = await utils.reschedule_jobs([job.id])
    after = await db.now()
    assert before <= changed.run_at <= after
    row = await db.job(job.id)
    assert before <= row["run_at"] <= after
    assert (row["priority"], row["attempts"], row["max_attempts"]) == (5, 0, 25)


@pytest.mark.parametrize("method", ["complete_jobs", "permanently_fail_jobs", "reschedule_jobs"])
async def test_admin_functions_with_no_ids_change_nothing(
    utils: WorkerUtils, db: Db, method: str
) -> None:
    await utils.add_raw_job("t", {})
    before = await db.snapshot()
    assert await getattr(utils, method)([]) == []
    assert await db.snapshot() == before


# --------------------------------------------------------------------------- cleanup


async def test_cleanup_delete_permafailed_jobs(utils: WorkerUtils, db: Db) -> None:
    ok = await utils.add_raw_job("t", {})
    dead = await utils.add_raw_job("t", {})
    dead_but_running = await utils.add_raw_job("t", {})
    await utils.permanently_fail_jobs([dead.id, dead_but_running.id])
    await db.lock(dead_but_running.id)
    done = await utils.cleanup([CleanupTask.DELETE_PERMAFAILED_JOBS])
    assert done == [CleanupTask.DELETE_PERMAFAILED_JOBS]
    assert [r["id"] for r in await db.rows("select id from {s}._private_jobs order by id")] == [
        ok.id,
        dead_but_running.id,
    ]


async def test_cleanup_gc_job_queues_keeps_used_and_locked_queues(
    utils: WorkerUtils, db: Db
) -> None:
    await utils.add_raw_job("t", {}, JobSpec(queue_name="used"))
    gone = await utils.add_raw_job("t", {}, JobSpec(queue_name="unused"))
    locked = await utils.add_raw_job("t", {}, JobSpec(queue_name="locked_empty"))
    await db.lock(locked.id)
    await utils.complete_jobs([gone.id])
    # A job that finished while its queue stays locked (worker still holds it).
    await db.execute("delete from {s}._private_jobs where id = %s", (locked.id,))
    await utils.cleanup(["GC_JOB_QUEUES"])
    names = await db.rows("select queue_name from {s}._private_job_queues order by queue_name")
    assert [r["queue_name"] for r in names] == ["locked_empty", "used"]


async def test_cleanup_gc_task_identifiers_keeps_the_workers_identifiers(
    pool: Pool, db: Db
) -> None:
    utils = WorkerUtils(pool, task_identifiers=["known_idle"])
    for identifier in ("in_use", "known_idle", "stale"):
        job = await utils.add_raw_job(identifier, {})
        if identifier != "in_use":
            await utils.complete_jobs([job.id])
    refreshed: list[bool] = []

    async def refresh() -> None:
        refreshed.append(True)

    utils.on_task_identifiers_deleted = refresh
    done = await utils.cleanup([CleanupTask.GC_TASK_IDENTIFIERS])
    assert done == [CleanupTask.GC_TASK_IDENTIFIERS]
    assert refreshed == [True]
    assert await utils.known_task_identifiers() == ["in_use", "known_idle"]
    # Without the keep-list the idle identifier goes too.
    await WorkerUtils(pool).cleanup(["gc-task-identifiers"])
    assert await utils.known_task_identifiers() == ["in_use"]


async def test_cleanup_runs_tasks_in_graphile_order(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job("only_failed", {}, JobSpec(queue_name="q"))
    await utils.permanently_fail_jobs([job.id])
    done = await utils.cleanup(
        [
            CleanupTask.GC_JOB_QUEUES,
            CleanupTask.GC_TASK_IDENTIFIERS,
            "delete_permafailed_jobs",
        ]
    )
    assert done == [
        CleanupTask.DELETE_PERMAFAILED_JOBS,
        CleanupTask.GC_TASK_IDENTIFIERS,
        CleanupTask.GC_JOB_QUEUES,
    ]
    # Deleting the job first is what lets the GC steps remove its task and queue.
    assert await db.snapshot() == {
        "_private_jobs": [],
        "_private_job_queues": [],
        "_private_tasks": [],
    }


async def test_cleanup_default_collects_queues_and_identifiers(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job("t", {}, JobSpec(queue_name="q"))
    await utils.complete_jobs([job.id])
    assert await utils.cleanup() == [CleanupTask.GC_TASK_IDENTIFIERS, CleanupTask.GC_JOB_QUEUES]
    assert await db.snapshot() == {
        "_private_jobs": [],
        "_private_job_queues": [],
        "_private_tasks": [],
    }


async def test_cleanup_rejects_unknown_tasks(utils: WorkerUtils, db: Db) -> None:
    await utils.add_raw_job("t", {})
    before = await db.snapshot()
    with pytest.raises(ConfigurationError) as caught:
        await utils.cleanup(["GC_JOB_QUEUES", "vacuum_everything"])
    assert str(caught.value) == (
        "unknown cleanup task 'vacuum_everything'; expected one of "
        "delete-permanently-failed-jobs, gc-task-identifiers, gc-job-queues"
    )
    assert await db.snapshot() == before


# --------------------------------------------------------------------------- force_unlock_workers


async def test_force_unlock_workers_leaves_other_workers_locks_alone(
    utils: WorkerUtils, db: Db
) -> None:
    mine = await utils.add_raw_job("t", {}, JobSpec(queue_name="qa"))
    mine_too = await utils.add_raw_job("t", {})
    theirs = await utils.add_raw_job("t", {}, JobSpec(queue_name="qb"))
    await db.lock(mine.id, "w_dead")
    await db.lock(mine_too.id, "w_dead")
    await db.lock(theirs.id, "w_alive")
    theirs_row = await db.job(theirs.id)

    await utils.force_unlock_workers(["w_dead", "w_unknown"])

    for job_id in (mine.id, mine_too.id):
        row = await db.job(job_id)
        # Unlocked as is: the attempt still counts and run_at does not move.
        assert (row["locked_by"], row["locked_at"], row["attempts"]) == (None, None, 1)
        assert row["run_at"] == (mine if job_id == mine.id else mine_too).run_at
    assert await db.job(theirs.id) == theirs_row
    queues = await db.rows(
        "select queue_name, locked_by from {s}._private_job_queues order by queue_name"
    )
    assert queues == [
        {"queue_name": "qa", "locked_by": None},
        {"queue_name": "qb", "locked_by": "w_alive"},
    ]


async def test_force_unlock_workers_with_no_ids_does_nothing(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job("t", {})
    await db.lock(job.id)
    before = await db.snapshot()
    await utils.force_unlock_workers([])
    assert await db.snapshot() == before
