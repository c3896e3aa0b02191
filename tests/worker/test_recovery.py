"""Dead-worker recovery: heartbeats, sweeps, the JobRecovery hook, WorkerUtils."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import gw
from gw.core import recovery
from gw.db.connection import connect
from gw.testing import running
from tests.helpers import wait_until

S = "graphile_worker"
CRASH_WORKER = Path(__file__).with_name("crash_worker.py")
MESSAGE = "Job recovered after worker interruption"


def make_worker(db_url: str, tasks: list[Any], **options: Any) -> gw.Worker:
    options.setdefault("concurrency", 4)
    options.setdefault("poll_interval", 0.2)
    options.setdefault("reset_locked_interval", None)
    options.setdefault("shutdown", gw.ShutdownConfig(listen_os_signals=False))
    return gw.Worker(tasks, database_url=db_url, **options)


def fast_recovery(**overrides: Any) -> gw.RecoveryConfig:
    settings: dict[str, Any] = {
        "heartbeat_interval": 0.2,
        "sweep_interval": 0.2,
        "sweep_threshold": 1.0,
        "recovery_delay": 0.0,
    }
    settings.update(overrides)
    return gw.RecoveryConfig(**settings)


async def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await connect(db_url) as conn:
        cur = await conn.execute(query, params or None)
        return await cur.fetchall() if cur.description else []


async def scalar(db_url: str, query: str, *params: Any) -> Any:
    return (await rows(db_url, query, *params))[0][0]


async def register(db_url: str, worker_id: str, *, age: float) -> None:
    """A heartbeat row whose last heartbeat was ``age`` seconds ago."""
    await rows(db_url, f"select {S}.worker_heartbeat(%s, null)", worker_id)
    await rows(
        db_url,
        f"update {S}._private_workers set last_heartbeat_at = now() - %s * interval '1 second'"
        " where id = %s",
        age,
        worker_id,
    )


async def lock_as(db_url: str, ids: list[int], locker: str, *, age: float) -> None:
    """Lock jobs (and their queues) the way a fetch by ``locker`` ``age`` seconds ago did."""
    await rows(
        db_url,
        f"update {S}._private_jobs set locked_by = %s, attempts = attempts + 1,"
        " locked_at = now() - %s * interval '1 second' where id = any(%s)",
        locker,
        age,
        ids,
    )
    await rows(
        db_url,
        f"update {S}._private_job_queues as q set locked_by = %s,"
        " locked_at = now() - %s * interval '1 second'"
        f" from {S}._private_jobs as j where j.job_queue_id = q.id and j.id = any(%s)",
        locker,
        age,
        ids,
    )


async def snapshot(db_url: str) -> list[Any]:
    return [
        await rows(db_url, f"select * from {S}._private_jobs order by id"),
        await rows(db_url, f"select * from {S}._private_job_queues order by id"),
        await rows(db_url, f"select * from {S}._private_workers order by id"),
    ]


async def job_state(db_url: str, job_id: int) -> tuple[Any, ...]:
    """(attempts, locked_by, last_error) of one job."""
    result = await rows(
        db_url,
        f"select attempts, locked_by, last_error from {S}._private_jobs where id = %s",
        job_id,
    )
    return result[0]


# --------------------------------------------------------------------------- crash + recovery


async def test_sigkilled_worker_jobs_are_recovered_once_by_another_worker(
    db_url: str, utils: gw.WorkerUtils, anyio_backend_name: str, tmp_path: Path
) -> None:
    specs = [
        gw.RawJobSpec(
            identifier="hold",
            payload={"i": i},
            spec=gw.JobSpec(queue_name=f"q{i}" if i < 10 else None),
        )
        for i in range(50)
    ]
    jobs = await utils.add_raw_jobs(specs)
    ids = [job.id for job in jobs]
    # Half the jobs already failed twice: recovery must give back only the crashed attempt.
    await utils.reschedule_jobs(ids[::2], attempts=2)
    before = {job_id: (2 if index % 2 == 0 else 0) for index, job_id in enumerate(ids)}

    with (tmp_path / "crash_worker.log").open("wb") as log:
        proc = await anyio.open_process(
            [sys.executable, str(CRASH_WORKER), db_url, anyio_backend_name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:

            async def all_locked() -> bool:
                assert proc.returncode is None, (tmp_path / "crash_worker.log").read_text()
                locked = await scalar(
                    db_url, f"select count(*) from {S}._private_jobs where locked_by is not null"
                )
                queues = await scalar(
                    db_url,
                    f"select count(*) from {S}._private_job_queues where locked_by is not null",
                )
                return bool(locked == 50 and queues == 10)

            await wait_until(all_locked, timeout=40)
            lockers = await rows(db_url, f"select distinct locked_by from {S}._private_jobs")
            workers = await utils.list_active_workers()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ((dead_id,),) = lockers
    # The heartbeat row is keyed by exactly the id written into locked_by.
    assert [w.worker_id for w in workers] == [dead_id]
    assert workers[0].metadata["tasks"] == ["hold"]
    attempts = dict(await rows(db_url, f"select id, attempts from {S}._private_jobs"))
    assert attempts == {job_id: n + 1 for job_id, n in before.items()}

    runs: list[tuple[int, int]] = []
    recovered: list[gw.WorkerRecovered] = []

    @gw.task("hold")
    async def hold(payload: Any, ctx: gw.JobContext) -> None:
        runs.append((ctx.job.id, ctx.attempt))

    worker = make_worker(db_url, [hold], concurrency=10, recovery=fast_recovery())
    worker.on(gw.WorkerRecovered, recovered.append)
    async with running(worker):

        async def all_done() -> bool:
            remaining = await scalar(db_url, f"select count(*) from {S}._private_jobs")
            return bool(len(runs) == 50 and remaining == 0)

        await wait_until(all_done, timeout=40)

    assert Counter(job_id for job_id, _ in runs) == Counter(ids)
    assert dict(runs) == {job_id: n + 1 for job_id, n in before.items()}
    assert {dead_id} == {w for event in recovered for w in event.recovered_worker_ids}
    assert sorted(j for event in recovered for j in event.job_ids) == sorted(ids)
    assert all(event.worker_id == worker.worker_id for event in recovered)
    assert await rows(
        db_url, f"select count(*) from {S}._private_job_queues where locked_by is not null"
    ) == [(0,)]
    # The dead row was swept; the second worker deregistered on its clean exit.
    assert await rows(db_url, f"select id from {S}._private_workers") == []


# --------------------------------------------------------------------------- heartbeats


async def test_worker_registers_refreshes_and_removes_its_heartbeat_row(db_url: str) -> None:
    @gw.task("noop")
    async def noop(payload: Any) -> None:
        pass

    clock = gw.FakeClock(datetime.now(UTC))
    worker = make_worker(
        db_url,
        [noop],
        clock=clock,
        recovery=gw.RecoveryConfig(heartbeat_interval=30, sweep_interval=60, sweep_threshold=300),
    )
    async with running(worker):
        # Registered before run() reports started.
        (row,) = await gw.WorkerUtils(worker.utils.pool).list_active_workers()
        assert row.worker_id == worker.worker_id
        assert row.metadata == {
            "hostname": row.metadata["hostname"],
            "pid": os.getpid(),
            "gw_version": gw.__version__,
            "schema": S,
            "tasks": ["noop"],
        }
        assert row.metadata["hostname"]
        first = row.last_heartbeat_at
        # The heartbeat loop sleeps on the worker's clock.
        await clock.wait_for_sleepers(2)
        await clock.advance(30)

        async def refreshed() -> bool:
            beat = await scalar(
                db_url,
                f"select last_heartbeat_at from {S}._private_workers where id = %s",
                worker.worker_id,
            )
            return bool(beat > first)

        await wait_until(refreshed)
    assert await rows(db_url, f"select id from {S}._private_workers") == []


async def test_default_worker_heartbeats_without_sweeping(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("noop")
    async def noop(payload: Any) -> None:
        pass

    # By default a worker registers a heartbeat (so sweepers elsewhere see its
    # jobs as owned) but does not sweep; recovery=False turns both off.
    worker = make_worker(db_url, [noop])
    async with running(worker):
        active = await worker.utils.list_active_workers()
        assert [w.worker_id for w in active] == [worker.worker_id]
        assert worker.recovery is not None
        assert not worker.recovery.sweep
    assert await utils.list_active_workers() == []  # deregistered on the way out
    for off in (False, gw.RecoveryConfig(enabled=False)):
        disabled = make_worker(db_url, [noop], recovery=off)
        async with running(disabled):
            assert await disabled.utils.list_active_workers() == []


async def test_recovery_without_the_workers_table_warns_and_runs_jobs(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    ran = anyio.Event()

    @gw.task("ping")
    async def ping(payload: Any) -> None:
        ran.set()

    await rows(db_url, f"drop table {S}._private_workers cascade")
    await utils.add_raw_job("ping", {})
    worker = make_worker(db_url, [ping], migrate=False, recovery=True)
    with caplog.at_level(logging.WARNING, logger="gw.recovery"):
        async with running(worker):
            await ran.wait()
    assert "_private_workers does not exist; run the migrations" in caplog.text
    assert worker._recovery is not None
    assert not worker._recovery.registered


async def test_live_worker_is_never_swept(db_url: str, utils: gw.WorkerUtils) -> None:
    started = anyio.Event()
    release = anyio.Event()

    @gw.task("slow")
    async def slow(payload: Any) -> None:
        started.set()
        await release.wait()

    job = await utils.add_raw_job("slow", {})
    busy = make_worker(db_url, [slow], recovery=fast_recovery(sweep=False))
    async with running(busy):
        await started.wait()
        # Far older than the threshold, yet the holder heartbeats: not dead.
        await rows(
            db_url,
            f"update {S}._private_jobs set locked_at = now() - interval '1 hour' where id = %s",
            job.id,
        )

        async def alive_past_threshold() -> bool:
            return bool(
                await scalar(
                    db_url,
                    f"select started_at < now() - interval '1.5 seconds' from {S}._private_workers",
                )
            )

        await wait_until(alive_past_threshold)
        result = await utils.sweep_stale_workers_with_config(fast_recovery())
        assert (result.worker_ids, result.job_ids) == ([], [])
        assert (await job_state(db_url, job.id))[1] == busy.worker_id
        release.set()


# --------------------------------------------------------------------------- sweeping


async def test_dry_run_reports_and_changes_nothing(db_url: str, utils: gw.WorkerUtils) -> None:
    jobs = await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="t", payload={}, spec=gw.JobSpec(queue_name="lane"))]
        + [gw.RawJobSpec(identifier="t", payload={"i": i}) for i in range(3)]
    )
    ids = [j.id for j in jobs]
    await register(db_url, "gw_dead_worker_1", age=3600)
    await lock_as(db_url, ids, "gw_dead_worker_1", age=3600)
    before = await snapshot(db_url)

    result = await utils.sweep_stale_workers(sweep_threshold=60, recovery_delay=0, dry_run=True)

    assert result == gw.SweepResult(dry_run=True, worker_ids=["gw_dead_worker_1"], job_ids=ids)
    assert await snapshot(db_url) == before
    real = await utils.sweep_stale_workers(sweep_threshold=60, recovery_delay=0)
    assert (real.worker_ids, real.job_ids, real.recovered_jobs) == (["gw_dead_worker_1"], ids, 4)
    assert [await job_state(db_url, i) for i in ids] == [(0, None, MESSAGE)] * 4


async def test_recovery_delay_pushes_run_at(db_url: str, utils: gw.WorkerUtils) -> None:
    job = await utils.add_raw_job("t", {})
    await lock_as(db_url, [job.id], "gw_dead_worker_2", age=120)
    result = await utils.sweep_stale_workers(sweep_threshold=60, recovery_delay=90)
    assert result.job_ids == [job.id]
    delay = await scalar(
        db_url,
        f"select extract(epoch from run_at - now()) from {S}._private_jobs where id = %s",
        job.id,
    )
    assert 80 < float(delay) <= 90


async def test_two_sweepers_at_once_recover_each_job_once(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    jobs = await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="t", payload={"i": i}) for i in range(20)]
    )
    ids = [j.id for j in jobs]
    await register(db_url, "gw_dead_worker_3", age=3600)
    await lock_as(db_url, ids, "gw_dead_worker_3", age=3600)
    inside = anyio.Event()
    second_done = anyio.Event()
    results: dict[str, gw.SweepResult | None] = {}

    async def hold_the_lock(job: gw.Job, locker: str) -> gw.HookResult:
        inside.set()
        await second_done.wait()
        return gw.Continue()

    async def first() -> None:
        results["first"] = await recovery.sweep_stale_workers(
            utils.pool, utils.queries, sweep_threshold=60, recovery_delay=0, decide=hold_the_lock
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await inside.wait()
        # The first sweep holds the advisory lock inside its transaction.
        results["second"] = await recovery.sweep_stale_workers(
            utils.pool, utils.queries, sweep_threshold=60, recovery_delay=0
        )
        second_done.set()

    assert results["second"] is None
    first_result = results["first"]
    assert first_result is not None
    assert (first_result.job_ids, first_result.recovered_jobs) == (ids, 20)
    # Given back once: attempts went 1 -> 0, never below.
    assert await rows(db_url, f"select distinct attempts, locked_by from {S}._private_jobs") == [
        (0, None)
    ]


async def test_concurrent_utils_sweeps_recover_every_job_exactly_once(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    jobs = await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="t", payload={"i": i}) for i in range(30)]
    )
    ids = [j.id for j in jobs]
    # Two prior attempts: a double recovery would show as attempts 1.
    await utils.reschedule_jobs(ids, attempts=2)
    await register(db_url, "gw_dead_worker_4", age=3600)
    await lock_as(db_url, ids, "gw_dead_worker_4", age=3600)
    results: list[gw.SweepResult] = []

    async def sweep() -> None:
        results.append(await utils.sweep_stale_workers(sweep_threshold=60, recovery_delay=0))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(sweep)
    assert sum(r.recovered_jobs for r in results) == 30
    assert sorted(j for r in results for j in r.job_ids) == ids
    assert await rows(db_url, f"select distinct attempts, locked_by from {S}._private_jobs") == [
        (2, None)
    ]


async def test_resilient_jobs_get_the_longer_threshold(db_url: str, utils: gw.WorkerUtils) -> None:
    resilient = await utils.add_raw_job(
        "t", {}, gw.JobSpec(flags=[recovery.INFRASTRUCTURE_RESILIENT_FLAG])
    )
    plain = await utils.add_raw_job("t", {})
    await register(db_url, "gw_resilient_holder", age=2)
    await register(db_url, "gw_plain_holder", age=2)
    await lock_as(db_url, [resilient.id], "gw_resilient_holder", age=2)
    await lock_as(db_url, [plain.id], "gw_plain_holder", age=2)
    config = gw.RecoveryConfig(heartbeat_interval=0.1, sweep_threshold=1, recovery_delay=0)

    first = await utils.sweep_stale_workers_with_config(config)
    assert (first.worker_ids, first.job_ids) == (["gw_plain_holder"], [plain.id])
    assert (await job_state(db_url, resilient.id))[1] == "gw_resilient_holder"

    # Past threshold x multiplier (3 s) even the resilient holder is dead.
    await register(db_url, "gw_resilient_holder", age=4)
    second = await utils.sweep_stale_workers_with_config(config)
    assert (second.worker_ids, second.job_ids) == (["gw_resilient_holder"], [resilient.id])

    # Other flags, or a larger multiplier, are honoured too.
    custom = await utils.add_raw_job("t", {}, gw.JobSpec(flags=["long_running"]))
    await register(db_url, "gw_custom_holder", age=4)
    await lock_as(db_url, [custom.id], "gw_custom_holder", age=4)
    roomy = gw.RecoveryConfig(
        heartbeat_interval=0.1,
        sweep_threshold=1,
        resilient_job_flags=("long_running",),
        resilient_sweep_threshold_multiplier=5,
    )
    assert (await utils.sweep_stale_workers_with_config(roomy, dry_run=True)).worker_ids == []
    assert (await utils.sweep_stale_workers_with_config(config, dry_run=True)).worker_ids == [
        "gw_custom_holder"
    ]


async def test_orphan_lockers_are_recovered_after_the_threshold(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    old = await utils.add_raw_job("t", {}, gw.JobSpec(queue_name="old-lane"))
    fresh = await utils.add_raw_job("t", {}, gw.JobSpec(queue_name="fresh-lane"))
    await utils.add_raw_job("t", {}, gw.JobSpec(queue_name="queue-only"))
    await lock_as(db_url, [old.id], "node_pool_old", age=10)
    await lock_as(db_url, [fresh.id], "node_pool_fresh", age=0)
    # A queue lock without its job (the job finished, the unlock never came).
    await rows(
        db_url,
        f"update {S}._private_job_queues set locked_by = 'node_pool_queue',"
        " locked_at = now() - interval '10 seconds' where queue_name = 'queue-only'",
    )

    result = await utils.sweep_stale_workers(sweep_threshold=5, recovery_delay=0)

    assert result.worker_ids == ["node_pool_old", "node_pool_queue"]
    assert result.job_ids == [old.id]
    assert await job_state(db_url, old.id) == (0, None, MESSAGE)
    assert (await job_state(db_url, fresh.id))[1] == "node_pool_fresh"
    queues = dict(await rows(db_url, f"select queue_name, locked_by from {S}._private_job_queues"))
    assert queues == {"old-lane": None, "fresh-lane": "node_pool_fresh", "queue-only": None}


async def test_force_unlock_leaves_other_workers_locks_alone(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    a = await utils.add_raw_job("t", {}, gw.JobSpec(queue_name="a-lane"))
    b = await utils.add_raw_job("t", {}, gw.JobSpec(queue_name="b-lane"))
    await lock_as(db_url, [a.id], "gw_worker_a", age=0)
    await lock_as(db_url, [b.id], "gw_worker_b", age=0)

    with pytest.raises(gw.ConfigurationError, match="worker ids must be non-empty strings"):
        await utils.force_unlock_workers(["gw_worker_a", ""])
    assert (await job_state(db_url, a.id))[1] == "gw_worker_a"

    await utils.force_unlock_workers(["gw_worker_a"])

    # Unlocked, but the attempt still counts (unlike recovery).
    assert await job_state(db_url, a.id) == (1, None, None)
    assert await job_state(db_url, b.id) == (1, "gw_worker_b", None)
    queues = dict(await rows(db_url, f"select queue_name, locked_by from {S}._private_job_queues"))
    assert queues == {"a-lane": None, "b-lane": "gw_worker_b"}


async def test_sweep_with_config_rejects_other_types(db_url: str, utils: gw.WorkerUtils) -> None:
    job = await utils.add_raw_job("t", {})
    await lock_as(db_url, [job.id], "gw_dead_worker_5", age=3600)
    expected = r"config must be a gw\.RecoveryConfig, got dict"
    with pytest.raises(gw.ConfigurationError, match=expected):
        await utils.sweep_stale_workers_with_config({"sweep_threshold": 1})  # type: ignore[arg-type]
    assert (await job_state(db_url, job.id))[1] == "gw_dead_worker_5"


def test_recovery_config_validation() -> None:
    with pytest.raises(gw.ConfigurationError, match=r"heartbeat_interval \(30 s\) must be shorter"):
        gw.RecoveryConfig(heartbeat_interval=30, sweep_threshold=10)
    with pytest.raises(gw.ConfigurationError, match="sweep_threshold must be > 0 seconds"):
        gw.RecoveryConfig(sweep_threshold=0)
    with pytest.raises(gw.ConfigurationError, match="resilient_job_flags must be a list"):
        gw.RecoveryConfig(resilient_job_flags="infrastructure_resilient")  # type: ignore[arg-type]
    with pytest.raises(gw.ConfigurationError, match="multiplier must be an integer >= 1"):
        gw.RecoveryConfig(resilient_sweep_threshold_multiplier=0)
    config = gw.RecoveryConfig(
        sweep_threshold=timedelta(minutes=2),
        resilient_job_flags=["a", "b"],  # type: ignore[arg-type]
    )
    assert (config.sweep_threshold, config.resilient_job_flags) == (120.0, ("a", "b"))


# --------------------------------------------------------------------------- JobRecovery hook


async def test_job_recovery_hook_decides_per_job(db_url: str, utils: gw.WorkerUtils) -> None:
    default = await utils.add_raw_job("other", {"do": "continue"}, gw.JobSpec(queue_name="q1"))
    moved = await utils.add_raw_job("other", {"do": "reschedule"})
    failed = await utils.add_raw_job("other", {"do": "fail"})
    kept = await utils.add_raw_job("other", {"do": "skip"}, gw.JobSpec(queue_name="q4"))
    ids = [default.id, moved.id, failed.id, kept.id]
    dead = "gw_dead_worker_6"
    await register(db_url, dead, age=3600)
    await lock_as(db_url, ids, dead, age=3600)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    asked: list[gw.JobRecovery] = []
    recovered = anyio.Event()
    events: list[gw.WorkerRecovered] = []

    async def policy(event: gw.JobRecovery) -> gw.HookResult:
        asked.append(event)
        action = event.job.payload["do"]
        if action == "reschedule":
            return gw.Reschedule(run_at=later, attempts=5)
        if action == "fail":
            return gw.Fail("not worth retrying soon")
        if action == "skip":
            return gw.Skip()
        return gw.Continue()

    def on_recovered(event: gw.WorkerRecovered) -> None:
        events.append(event)
        recovered.set()

    @gw.task("noop")
    async def noop(payload: Any) -> None:
        pass

    # The worker does not know "other", so nothing it recovers runs here.
    worker = make_worker(
        db_url, [noop], recovery=fast_recovery(sweep_interval=3600, recovery_delay=0)
    )
    worker.on(gw.JobRecovery, policy)
    worker.on(gw.WorkerRecovered, on_recovered)
    async with running(worker):
        await recovered.wait()

    assert [(e.job.id, e.stale_worker_id, e.worker_id) for e in asked] == [
        (i, dead, worker.worker_id) for i in ids
    ]
    assert [(e.recovered_worker_ids, e.job_ids) for e in events] == [
        ((dead,), (default.id, moved.id, failed.id))
    ]
    assert await job_state(db_url, default.id) == (0, None, MESSAGE)
    assert await job_state(db_url, moved.id) == (5, None, MESSAGE)
    assert (
        await scalar(db_url, f"select run_at from {S}._private_jobs where id = %s", moved.id)
        == later
    )
    # Fail: the normal failure path (the attempt counts, backoff applies).
    assert await job_state(db_url, failed.id) == (1, None, "not worth retrying soon")
    backoff = await scalar(
        db_url,
        f"select extract(epoch from run_at - now()) from {S}._private_jobs where id = %s",
        failed.id,
    )
    assert float(backoff) > 1
    # Skip: left locked, with its queue.
    assert await job_state(db_url, kept.id) == (1, dead, None)
    queues = dict(await rows(db_url, f"select queue_name, locked_by from {S}._private_job_queues"))
    assert queues == {"q1": None, "q4": dead}


async def test_bad_job_recovery_answers_fall_back_to_default(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="t", payload={"i": i}) for i in range(3)]
    )
    ids = [j.id for j in jobs]
    await lock_as(db_url, ids, "gw_dead_worker_7", age=3600)
    answers: list[Any] = [
        gw.Reschedule(run_at=datetime(2030, 1, 1)),  # naive
        gw.Reschedule(run_at=datetime(2030, 1, 1, tzinfo=UTC), attempts=-1),
        "later",
    ]

    async def decide(job: gw.Job, locker: str) -> Any:
        return answers[ids.index(job.id)]

    with caplog.at_level(logging.ERROR, logger="gw.recovery"):
        result = await recovery.sweep_stale_workers(
            utils.pool, utils.queries, sweep_threshold=60, recovery_delay=0, decide=decide
        )
    assert result is not None
    assert result.job_ids == ids
    assert [await job_state(db_url, i) for i in ids] == [(0, None, MESSAGE)] * 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("is not a timezone-aware datetime" in m for m in messages)
    assert any("attempts -1 is not an integer between 0 and 32767" in m for m in messages)
    assert any("returned 'later'" in m for m in messages)
