"""Lifecycle hooks: event order, interceptor results, schedule rewrites, failing hooks."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import anyio
import pytest

import gw
from gw.core.hooks import EVENTS
from gw.db.connection import connect
from gw.testing import running
from tests.helpers import wait_until

S = "graphile_worker"


def make_worker(db_url: str, tasks: list[Any], **options: Any) -> gw.Worker:
    options.setdefault("concurrency", 1)
    options.setdefault("poll_interval", 0.2)
    options.setdefault("reset_locked_interval", None)
    options.setdefault("shutdown", gw.ShutdownConfig(listen_os_signals=False))
    return gw.Worker(tasks, database_url=db_url, **options)


async def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await connect(db_url) as conn:
        cur = await conn.execute(query, params or None)
        return await cur.fetchall()


class Recorder:
    """A plugin that records every event (observers and interceptors alike)."""

    def __init__(self) -> None:
        self.events: list[gw.core.hooks.Event] = []

    def register(self, hooks: gw.HookRegistry) -> None:
        for event in EVENTS:
            hooks.on(event, self.events.append)

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def for_job(self, job_id: int) -> list[str]:
        return [
            type(e).__name__
            for e in self.events
            if getattr(getattr(e, "job", None), "id", None) == job_id
        ]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


# --------------------------------------------------------------------------- order


async def test_every_job_event_fires_in_documented_order(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    stuck_started = anyio.Event()

    @gw.task("outcome")
    async def outcome(payload: dict[str, str]) -> None:
        if payload["kind"] == "stuck":
            stuck_started.set()
            await anyio.sleep_forever()
        if payload["kind"] != "ok":
            raise RuntimeError(f"{payload['kind']} failed")

    ok = await utils.add_raw_job("outcome", {"kind": "ok"}, gw.JobSpec(priority=0))
    bad = await utils.add_raw_job(
        "outcome", {"kind": "bad"}, gw.JobSpec(priority=1, max_attempts=5, flags=["retry"])
    )
    final = await utils.add_raw_job(
        "outcome", {"kind": "final"}, gw.JobSpec(priority=2, max_attempts=1)
    )
    stuck = await utils.add_raw_job("outcome", {"kind": "stuck"}, gw.JobSpec(priority=3))
    recorder = Recorder()
    worker = make_worker(
        db_url,
        [outcome],
        plugins=[recorder],
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=0),
        # The retry of "bad" (due in e s) must not run even on a slow machine.
        forbidden_flags=lambda: ["retry"] if recorder.of(gw.JobFail) else [],
    )
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await stuck_started.wait()
        worker.shutdown("test over")

    names = recorder.names()
    assert names[:2] == ["WorkerInit", "WorkerStart"]
    assert names[-1] == "WorkerShutdown"
    assert names.count("WorkerShutdown") == 1
    run = ["JobFetch", "BeforeJobRun", "JobStart", "AfterJobRun"]
    assert recorder.for_job(ok.id) == [*run, "JobComplete"]
    assert recorder.for_job(bad.id) == [*run, "JobFail"]
    assert recorder.for_job(final.id) == [*run, "JobPermanentlyFail"]
    assert recorder.for_job(stuck.id) == ["JobFetch", "BeforeJobRun", "JobStart", "JobInterrupted"]
    # Nothing else happened: no local queue, no cron, no recovery.
    assert set(names) == {
        "WorkerInit",
        "WorkerStart",
        "WorkerShutdown",
        *run,
        "JobComplete",
        "JobFail",
        "JobPermanentlyFail",
        "JobInterrupted",
    }
    (init,) = recorder.of(gw.WorkerInit)
    assert (init.worker_id, init.tasks, init.concurrency) == (worker.worker_id, ("outcome",), 1)
    (shutdown,) = recorder.of(gw.WorkerShutdown)
    assert shutdown.reason == "test over"
    (fail,) = recorder.of(gw.JobFail)
    assert fail.error == "bad failed"
    assert fail.duration >= 0
    (permanent,) = recorder.of(gw.JobPermanentlyFail)
    assert (permanent.error, permanent.job.attempts) == ("final failed", 1)
    after = {e.job.id: e.error for e in recorder.of(gw.AfterJobRun)}
    assert after[ok.id] is None
    assert str(after[bad.id]) == "bad failed"
    assert all(e.worker_id == worker.worker_id for e in recorder.events if hasattr(e, "worker_id"))


async def test_local_queue_events_on_fetch_and_release(db_url: str, utils: gw.WorkerUtils) -> None:
    started = anyio.Event()

    @gw.task("step")
    async def step(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="step", payload={"i": i}) for i in range(4)])
    recorder = Recorder()
    worker = make_worker(
        db_url,
        [step],
        local_queue=gw.LocalQueueConfig(size=10),
        plugins=[recorder],
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=0),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        worker.shutdown("test over")

    lq = [n for n in recorder.names() if n.startswith("LocalQueue")]
    assert lq[:3] == ["LocalQueueInit", "LocalQueueSetMode", "LocalQueueGetJobsComplete"]
    assert lq[-2:] == ["LocalQueueSetMode", "LocalQueueReturnJobs"]
    assert recorder.names().index("WorkerStart") < recorder.names().index("LocalQueueInit")
    (init,) = recorder.of(gw.LocalQueueInit)
    assert init.size == 10
    fetched = recorder.of(gw.LocalQueueGetJobsComplete)
    assert fetched[0].jobs_count == 4
    # The four JobFetch events come before the fetch's GetJobsComplete.
    first_complete = recorder.names().index("LocalQueueGetJobsComplete")
    assert recorder.names()[:first_complete].count("JobFetch") == 4
    modes = [(e.old_mode, e.new_mode) for e in recorder.of(gw.LocalQueueSetMode)]
    assert modes[0] == ("starting", "polling")
    assert modes[-1][1] == "released"
    assert all(a[1] == b[0] for a, b in itertools.pairwise(modes))
    assert recorder.of(gw.LocalQueueReturnJobs)[-1].jobs_count == 3


async def test_local_queue_ttl_expiry_events(db_url: str, utils: gw.WorkerUtils) -> None:
    started = anyio.Event()
    returned = anyio.Event()

    @gw.task("step")
    async def step(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    await utils.add_raw_jobs([gw.RawJobSpec(identifier="step", payload={"i": i}) for i in range(3)])
    recorder = Recorder()
    worker = make_worker(
        db_url,
        [step],
        local_queue=gw.LocalQueueConfig(size=5, ttl=0.2),
        plugins=[recorder],
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=0),
    )
    worker.on(gw.LocalQueueReturnJobs, lambda event: returned.set())
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await started.wait()
        await returned.wait()
        worker.shutdown("test over")

    names = recorder.names()
    expired = [
        i
        for i, e in enumerate(recorder.events)
        if isinstance(e, gw.LocalQueueSetMode) and e.new_mode == "ttl_expired"
    ]
    assert expired
    assert names[expired[0] + 1] == "LocalQueueReturnJobs"
    assert recorder.events[expired[0] + 1].jobs_count == 2  # type: ignore[attr-defined]


async def test_refetch_delay_events(db_url: str, utils: gw.WorkerUtils) -> None:
    expired = anyio.Event()

    @gw.task("step")
    async def step(payload: Any) -> None:
        pass

    recorder = Recorder()
    worker = make_worker(
        db_url,
        [step],
        local_queue=gw.LocalQueueConfig(
            size=4, refetch_delay=gw.RefetchDelayConfig(duration=0.05, threshold=2)
        ),
        plugins=[recorder],
    )
    worker.on(gw.LocalQueueRefetchDelayExpired, lambda event: expired.set())
    async with running(worker):
        await expired.wait()
    start = recorder.of(gw.LocalQueueRefetchDelayStart)[0]
    assert (start.duration, start.threshold, start.abort_threshold) == (0.05, 2, 20)
    names = recorder.names()
    assert names.index("LocalQueueRefetchDelayStart") < names.index("LocalQueueRefetchDelayExpired")

    # A long delay is cut short by new-job notifications.
    ran = anyio.Event()

    @gw.task("ping")
    async def ping(payload: Any) -> None:
        ran.set()

    delayed = anyio.Event()
    aborted: list[gw.LocalQueueRefetchDelayAbort] = []
    patient = make_worker(
        db_url,
        [ping],
        poll_interval=3600,
        local_queue=gw.LocalQueueConfig(
            size=4,
            refetch_delay=gw.RefetchDelayConfig(duration=3600, threshold=2, max_abort_threshold=1),
        ),
    )
    patient.on(gw.LocalQueueRefetchDelayStart, lambda event: delayed.set())
    patient.on(gw.LocalQueueRefetchDelayAbort, aborted.append)
    async with running(patient):
        await delayed.wait()
        # LISTEN may still be connecting: add jobs until one's NOTIFY gets through.
        while not aborted:
            await utils.add_raw_job("ping", {})
            with anyio.move_on_after(1):
                await wait_until(lambda: bool(aborted))
        await ran.wait()
    assert aborted[0].abort_threshold == 1
    assert aborted[0].count >= 1


# --------------------------------------------------------------------------- interceptors


async def test_before_job_run_skip_completes_the_job_without_running_it(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    ran: list[int] = []

    @gw.task("maybe")
    async def maybe(payload: dict[str, Any]) -> None:
        ran.append(payload["i"])

    def skip_flagged(event: gw.BeforeJobRun) -> gw.HookResult:
        return gw.Skip() if event.payload.get("skip") else gw.Continue()

    skipped = await utils.add_raw_job("maybe", {"i": 1, "skip": True})
    normal = await utils.add_raw_job("maybe", {"i": 2})
    recorder = Recorder()
    worker = make_worker(db_url, [maybe], plugins=[recorder])
    worker.on(gw.BeforeJobRun, skip_flagged)
    assert await worker.run_once() == 2

    assert ran == [2]
    assert await rows(db_url, f"select id from {S}._private_jobs") == []
    assert recorder.for_job(skipped.id) == ["JobFetch", "BeforeJobRun", "JobComplete"]
    assert recorder.for_job(normal.id) == [
        "JobFetch",
        "BeforeJobRun",
        "JobStart",
        "AfterJobRun",
        "JobComplete",
    ]


async def test_fail_from_before_and_after_job_run(db_url: str, utils: gw.WorkerUtils) -> None:
    ran: list[str] = []

    @gw.task("judged")
    async def judged(payload: dict[str, str]) -> None:
        ran.append(payload["name"])
        if payload["name"] == "raises":
            raise RuntimeError("handler error")

    async def before(event: gw.BeforeJobRun) -> gw.HookResult | None:
        if event.payload["name"] == "refused":
            return gw.Fail("refused before running")
        return None

    async def after(event: gw.AfterJobRun) -> gw.HookResult | None:
        if event.job.payload["name"] == "vetoed":
            return gw.Fail("vetoed after running")
        if event.job.payload["name"] == "raises":
            assert isinstance(event.error, RuntimeError)
            return gw.Skip()  # counts as a success after all
        return gw.Continue()

    # One attempt each: run_once must not pick up a retry on a slow machine.
    once = gw.JobSpec(max_attempts=1)
    refused = await utils.add_raw_job("judged", {"name": "refused"}, once)
    vetoed = await utils.add_raw_job("judged", {"name": "vetoed"}, once)
    await utils.add_raw_job("judged", {"name": "raises"})
    await utils.add_raw_job("judged", {"name": "fine"})
    worker = make_worker(db_url, [judged])
    worker.on(gw.BeforeJobRun, before)
    worker.on(gw.AfterJobRun, after)
    assert await worker.run_once() == 4

    assert sorted(ran) == ["fine", "raises", "vetoed"]
    left = await rows(
        db_url, f"select id, attempts, last_error, locked_by from {S}._private_jobs order by id"
    )
    assert left == [
        (refused.id, 1, "refused before running", None),
        (vetoed.id, 1, "vetoed after running", None),
    ]


async def test_first_non_continue_interceptor_wins() -> None:
    hooks = gw.HookRegistry()
    calls: list[str] = []

    def first(event: Any) -> None:
        calls.append("first")

    async def second(event: Any) -> gw.HookResult:
        calls.append("second")
        return gw.Fail("second says no")

    def third(event: Any) -> gw.HookResult:
        calls.append("third")
        return gw.Skip()

    for handler in (first, second, third):
        hooks.on(gw.BeforeJobSchedule, handler)
    event = gw.BeforeJobSchedule("t", {}, gw.JobSpec())
    assert await hooks.intercept(event) == gw.Fail("second says no")
    assert calls == ["first", "second"]
    assert await gw.HookRegistry().intercept(event) == gw.Continue()


# --------------------------------------------------------------------------- scheduling


async def test_before_job_schedule_rewrites_skips_and_refuses(db_url: str) -> None:
    @gw.task("runner")
    async def runner(payload: Any) -> None:
        pass

    def policy(event: gw.BeforeJobSchedule) -> gw.HookResult | None:
        payload = event.payload
        if event.identifier == "blocked":
            return gw.Skip()
        if event.identifier == "forbidden":
            return gw.Fail("not allowed")
        if event.identifier == "old_name":
            return gw.Rewrite(
                identifier="new_name",
                payload={**payload, "checked": True},
                spec=gw.JobSpec(queue_name="rewritten", priority=7),
            )
        if event.identifier == "batch" and payload == ["scalar"]:
            return gw.Rewrite(payload={"not": "an array"})
        if event.identifier == "batch" and payload == ["empty"]:
            return gw.Rewrite(payload=[])
        if event.identifier == "batch":
            return gw.Rewrite(payload=[*payload, "added"])
        if event.identifier == "keep_payload":
            return gw.Rewrite(identifier="kept")
        return None

    worker = make_worker(db_url, [runner])
    worker.on(gw.BeforeJobSchedule, policy)
    async with running(worker):
        utils = worker.utils
        job = await utils.add_raw_job("old_name", {"a": 1})
        assert (job.task_identifier, job.payload, job.queue_name, job.priority) == (
            "new_name",
            {"a": 1, "checked": True},
            "rewritten",
            7,
        )
        kept = await utils.add_raw_job("keep_payload", {"b": 2})
        assert (kept.task_identifier, kept.payload) == ("kept", {"b": 2})
        batch = await utils.add_batch_job("batch", ["x"])
        assert batch.payload == ["x", "added"]
        (bulk,) = await utils.add_raw_jobs([gw.RawJobSpec(identifier="old_name", payload={})])
        assert bulk.task_identifier == "new_name"
        before = await rows(db_url, f"select id from {S}._private_jobs order by id")

        with pytest.raises(gw.JobScheduleSkipped, match="skipped job 'blocked'"):
            await utils.add_raw_job("blocked", {})
        with pytest.raises(gw.HookError, match="refused job 'forbidden': not allowed"):
            await utils.add_raw_job("forbidden", {})
        message = "must keep batch job 'batch'.s payload a non-empty JSON array"
        with pytest.raises(gw.HookError, match=message):
            await utils.add_batch_job("batch", ["scalar"])
        with pytest.raises(gw.HookError, match=message):
            await utils.add_batch_job("batch", ["empty"])
        with pytest.raises(gw.JobScheduleSkipped):
            await utils.add_raw_jobs(
                [
                    gw.RawJobSpec(identifier="fine", payload={}),
                    gw.RawJobSpec(identifier="blocked", payload={}),
                ]
            )
        assert await rows(db_url, f"select id from {S}._private_jobs order by id") == before


# --------------------------------------------------------------------------- robustness


async def test_raising_hooks_are_logged_and_survived(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[int] = []
    seen: list[str] = []

    @gw.task("sturdy")
    async def sturdy(payload: dict[str, int]) -> None:
        ran.append(payload["i"])

    def sync_raises(event: Any) -> None:
        raise ValueError("sync observer broke")

    async def async_raises(event: Any) -> None:
        raise ValueError("async observer broke")

    def sync_interceptor_raises(event: Any) -> gw.HookResult:
        raise ValueError("interceptor broke")

    def sync_records(event: gw.JobComplete) -> None:
        seen.append(f"sync {event.job.id}")

    async def async_records(event: gw.JobComplete) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"async {event.job.id}")

    job = await utils.add_raw_job("sturdy", {"i": 1})
    worker = make_worker(db_url, [sturdy])
    worker.on(gw.JobStart, sync_raises)
    worker.on(gw.JobComplete, async_raises)
    worker.on(gw.JobComplete, sync_records)
    worker.on(gw.JobComplete, async_records)
    worker.on(gw.BeforeJobRun, sync_interceptor_raises)
    worker.on(gw.WorkerShutdown, async_raises)
    with caplog.at_level(logging.ERROR, logger="gw.hooks"):
        assert await worker.run_once() == 1

    assert ran == [1]
    assert seen == [f"sync {job.id}", f"async {job.id}"]
    assert await rows(db_url, f"select id from {S}._private_jobs") == []
    logged = {(r.getMessage(), getattr(r, "event", None)) for r in caplog.records}
    assert logged == {
        ("hook for JobStart raised; ignoring it", "JobStart"),
        ("hook for JobComplete raised; ignoring it", "JobComplete"),
        ("hook for WorkerShutdown raised; ignoring it", "WorkerShutdown"),
        ("interceptor for BeforeJobRun raised; treating it as Continue", "BeforeJobRun"),
    }
    tracebacks = "".join(r.exc_text or "" for r in caplog.records)
    assert "sync observer broke" in tracebacks
    assert "async observer broke" in tracebacks


async def test_registry_rejects_bad_registrations_and_results(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = gw.HookRegistry()
    with pytest.raises(gw.ConfigurationError, match="is not a gw hook event class"):
        hooks.on(str, print)  # type: ignore[arg-type]
    with pytest.raises(gw.ConfigurationError, match="is not a gw hook event class"):
        hooks.on(gw.core.hooks.Event, print)
    with pytest.raises(gw.ConfigurationError, match="hook handler for JobStart is not callable"):
        hooks.on(gw.JobStart, "handler")  # type: ignore[arg-type]
    assert not hooks.has(gw.JobStart)

    hooks.on(gw.BeforeJobRun, lambda event: "yes please")
    with caplog.at_level(logging.ERROR, logger="gw.hooks"):
        result = await hooks.intercept(gw.BeforeJobRun("w", None, {}))  # type: ignore[arg-type]
    assert result == gw.Continue()
    assert "returned 'yes please', which is not a hook result" in caplog.text
