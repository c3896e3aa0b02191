"""WorkerUtils: list_jobs/get_job filters, stats, queues, locked workers, recovery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from gw.db.queries import INTERRUPTED_JOB_MESSAGE
from gw.errors import ConfigurationError
from gw.types import JobPage, JobSpec, JobStats, LockedWorker, QueueInfo, SweepResult

if TYPE_CHECKING:
    from gw.core.utils import WorkerUtils
    from tests.core.conftest import Db


class Mixed:
    """One job in each state, with search bait (LIKE metacharacters)."""

    ready: int
    scheduled: int
    locked: int
    failed: int
    backslash: int


@pytest.fixture
async def mixed(utils: WorkerUtils, db: Db) -> Mixed:
    m = Mixed()
    m.ready = (
        await utils.add_raw_job(
            "email", {"subject": "50% off"}, JobSpec(queue_name="mail", job_key="promo_1")
        )
    ).id
    m.scheduled = (
        await utils.add_raw_job(
            "email",
            {"subject": "later"},
            JobSpec(run_at=datetime.now(UTC) + timedelta(days=1), job_key="promoX1"),
        )
    ).id
    m.locked = (await utils.add_raw_job("report", {"n": 1}, JobSpec(queue_name="reports"))).id
    await db.lock(m.locked, "w_reporter")
    m.failed = (await utils.add_raw_job("report", {"n": 2})).id
    await utils.permanently_fail_jobs([m.failed], "disk full")
    m.backslash = (await utils.add_raw_job("cleanup", {"path": "C:\\tmp"})).id
    return m


async def ids(utils: WorkerUtils, **filters: Any) -> list[int]:
    return [j.id for j in (await utils.list_jobs(**filters)).jobs]


async def test_list_jobs_by_state(utils: WorkerUtils, mixed: Mixed) -> None:
    m = mixed
    assert await ids(utils) == [m.backslash, m.failed, m.locked, m.scheduled, m.ready]
    assert await ids(utils, state="all") == await ids(utils)
    assert await ids(utils, state="ready") == [m.backslash, m.ready]
    assert await ids(utils, state="scheduled") == [m.scheduled]
    assert await ids(utils, state="locked") == [m.locked]
    assert await ids(utils, state="failed") == [m.failed]


async def test_list_jobs_by_identifier_and_queue(utils: WorkerUtils, mixed: Mixed) -> None:
    m = mixed
    assert await ids(utils, identifier="email") == [m.scheduled, m.ready]
    assert await ids(utils, identifier="report", state="failed") == [m.failed]
    assert await ids(utils, queue="reports") == [m.locked]
    assert await ids(utils, queue="mail", identifier="email") == [m.ready]
    assert await ids(utils, queue="mail", identifier="report") == []
    assert await ids(utils, identifier="nothing") == []


async def test_list_jobs_search(utils: WorkerUtils, mixed: Mixed) -> None:
    m = mixed
    # Identifier, queue, key, last_error and payload, case-insensitively.
    assert await ids(utils, search="EMAIL") == [m.scheduled, m.ready]
    assert await ids(utils, search="reports") == [m.locked]
    assert await ids(utils, search="disk FULL") == [m.failed]
    assert await ids(utils, search="later") == [m.scheduled]
    assert m.locked in await ids(utils, search=str(m.locked))
    # LIKE metacharacters are literal text.
    assert await ids(utils, search="%") == [m.ready]
    assert await ids(utils, search="promo_1") == [m.ready]
    assert await ids(utils, search="C:\\") == [m.backslash]
    assert await ids(utils, search="nothing like it") == []


async def test_list_jobs_pages(utils: WorkerUtils) -> None:
    added = [(await utils.add_raw_job("t", {"i": i})).id for i in range(5)]
    newest_first = added[::-1]
    page = await utils.list_jobs(limit=2)
    assert isinstance(page, JobPage)
    assert ([j.id for j in page.jobs], page.limit, page.offset, page.has_more) == (
        newest_first[:2],
        2,
        0,
        True,
    )
    page = await utils.list_jobs(limit=2, offset=2)
    assert ([j.id for j in page.jobs], page.has_more) == (newest_first[2:4], True)
    page = await utils.list_jobs(limit=2, offset=4)
    assert ([j.id for j in page.jobs], page.has_more) == (newest_first[4:], False)
    page = await utils.list_jobs(limit=5)
    assert (len(page.jobs), page.has_more) == (5, False)
    page = await utils.list_jobs(limit=1)
    assert (len(page.jobs), page.has_more) == (1, True)
    page = await utils.list_jobs(limit=500, offset=100)
    assert (page.jobs, page.has_more) == ([], False)


async def test_listed_jobs_carry_names_and_payload(utils: WorkerUtils, mixed: Mixed) -> None:
    [job] = (await utils.list_jobs(state="locked")).jobs
    assert (job.task_identifier, job.queue_name, job.payload, job.locked_by) == (
        "report",
        "reports",
        {"n": 1},
        "w_reporter",
    )
    assert job.state(datetime.now(UTC)) == "locked"


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "limit must be an integer between 1 and 500"),
        ({"limit": 501}, "limit must be an integer between 1 and 500"),
        ({"limit": -5}, "limit must be an integer between 1 and 500"),
        ({"limit": True}, "limit must be an integer between 1 and 500"),
        ({"limit": "10"}, "limit must be an integer between 1 and 500"),
        ({"offset": -1}, "offset must be an integer >= 0"),
        ({"offset": 1.5}, "offset must be an integer >= 0"),
        (
            {"state": "running"},
            "unknown state 'running'; expected one of all, ready, scheduled, locked, failed",
        ),
    ],
)
async def test_list_jobs_rejects_bad_filters(
    utils: WorkerUtils, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await utils.list_jobs(**filters)
    assert str(caught.value) == message


async def test_get_job(utils: WorkerUtils, mixed: Mixed) -> None:
    job = await utils.get_job(mixed.ready)
    assert job is not None
    assert (job.id, job.task_identifier, job.queue_name, job.key, job.payload) == (
        mixed.ready,
        "email",
        "mail",
        "promo_1",
        {"subject": "50% off"},
    )
    assert await utils.get_job(999_999) is None


async def test_stats_count_jobs_by_state(utils: WorkerUtils, mixed: Mixed) -> None:
    assert await utils.stats() == JobStats(total=5, ready=2, scheduled=1, locked=1, failed=1)


async def test_stats_of_an_empty_schema(utils: WorkerUtils) -> None:
    assert await utils.stats() == JobStats(total=0, ready=0, scheduled=0, locked=0, failed=0)


async def test_queues_and_locked_workers(utils: WorkerUtils, mixed: Mixed, db: Db) -> None:
    locked_at = (await db.job(mixed.locked))["locked_at"]
    await utils.add_raw_job("email", {}, JobSpec(queue_name="mail"))
    assert await utils.queues() == [
        QueueInfo(queue_name="mail", job_count=2, locked_at=None, locked_by=None),
        QueueInfo(queue_name="reports", job_count=1, locked_at=locked_at, locked_by="w_reporter"),
    ]
    other = await utils.add_raw_job("t", {})
    await db.lock(other.id, "w_other", ago="1 hour")
    other_locked_at = (await db.job(other.id))["locked_at"]
    assert await utils.locked_workers() == [
        LockedWorker(
            worker_id="w_other", locked_jobs=1, locked_queues=0, oldest_locked_at=other_locked_at
        ),
        LockedWorker(
            worker_id="w_reporter", locked_jobs=1, locked_queues=1, oldest_locked_at=locked_at
        ),
    ]


# --------------------------------------------------------------------------- recovery


async def heartbeat(db: Db, worker_id: str, ago: str = "0 seconds", metadata: Any = None) -> None:
    await db.execute(
        "select {s}.worker_heartbeat(%s, %s::json)",
        (worker_id, None if metadata is None else json.dumps(metadata)),
    )
    await db.execute(
        "update {s}._private_workers set last_heartbeat_at = now() - %s::interval where id = %s",
        (ago, worker_id),
    )


async def test_list_active_workers(utils: WorkerUtils, db: Db) -> None:
    assert await utils.list_active_workers() == []
    await heartbeat(db, "w_fresh", metadata={"host": "a"})
    await heartbeat(db, "w_quiet", ago="10 minutes")
    everyone = await utils.list_active_workers()
    assert [(w.worker_id, w.metadata) for w in everyone] == [
        ("w_fresh", {"host": "a"}),
        ("w_quiet", None),
    ]
    assert [w.worker_id for w in await utils.list_active_workers(threshold=300)] == ["w_fresh"]


async def _recovery_scene(utils: WorkerUtils, db: Db) -> dict[str, int]:
    jobs = {}
    for name, queue in (("stale", "q_stale"), ("orphan", None), ("fresh", None), ("alive", None)):
        jobs[name] = (await utils.add_raw_job("t", {"name": name}, JobSpec(queue_name=queue))).id
    await heartbeat(db, "w_alive")
    await heartbeat(db, "w_stale", ago="10 minutes")
    await db.lock(jobs["alive"], "w_alive", ago="10 minutes")
    await db.lock(jobs["stale"], "w_stale", ago="10 minutes")
    # Lockers without a heartbeat row (e.g. a Node pool): old lock vs fresh lock.
    await db.lock(jobs["orphan"], "node_pool_old", ago="10 minutes")
    await db.lock(jobs["fresh"], "node_pool_new")
    return jobs


async def test_sweep_stale_workers_dry_run_changes_nothing(utils: WorkerUtils, db: Db) -> None:
    jobs = await _recovery_scene(utils, db)
    before = await db.snapshot()
    workers = await db.rows("select * from {s}._private_workers order by id")
    result = await utils.sweep_stale_workers(sweep_threshold=300, dry_run=True)
    assert result == SweepResult(
        dry_run=True,
        worker_ids=["node_pool_old", "w_stale"],
        job_ids=sorted([jobs["stale"], jobs["orphan"]]),
    )
    assert await db.snapshot() == before
    assert await db.rows("select * from {s}._private_workers order by id") == workers


async def test_sweep_stale_workers_recovers_jobs_and_deregisters(
    utils: WorkerUtils, db: Db
) -> None:
    jobs = await _recovery_scene(utils, db)
    untouched = {name: await db.job(jobs[name]) for name in ("fresh", "alive")}
    start = await db.now()
    result = await utils.sweep_stale_workers(sweep_threshold=300, recovery_delay=60)
    assert result == SweepResult(
        dry_run=False,
        worker_ids=["node_pool_old", "w_stale"],
        job_ids=sorted([jobs["stale"], jobs["orphan"]]),
        recovered_jobs=2,
    )
    for name in ("stale", "orphan"):
        row = await db.job(jobs[name])
        # Unlocked, the interrupted attempt given back, retried after the delay.
        assert (row["locked_by"], row["locked_at"], row["attempts"]) == (None, None, 0)
        assert row["last_error"] == INTERRUPTED_JOB_MESSAGE
        assert row["run_at"] >= start + timedelta(seconds=60)
    for name, row in untouched.items():
        assert await db.job(jobs[name]) == row
    queue = await db.one(
        "select locked_by from {s}._private_job_queues where queue_name = 'q_stale'"
    )
    assert queue == {"locked_by": None}
    remaining = await db.rows("select id from {s}._private_workers order by id")
    assert remaining == [{"id": "w_alive"}]
    # Nothing left to recover.
    again = await utils.sweep_stale_workers(sweep_threshold=300)
    assert (again.worker_ids, again.job_ids) == ([], [])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sweep_threshold": -1}, "sweep_threshold must be a number of seconds >= 0, got -1"),
        ({"recovery_delay": "soon"}, "recovery_delay must be a number of seconds >= 0, got 'soon'"),
    ],
)
async def test_sweep_stale_workers_rejects_bad_options(
    utils: WorkerUtils, db: Db, options: dict[str, Any], message: str
) -> None:
    await _recovery_scene(utils, db)
    before = await db.snapshot()
    with pytest.raises(ConfigurationError) as caught:
        await utils.sweep_stale_workers(**options)
    assert str(caught.value) == message
    assert await db.snapshot() == before
