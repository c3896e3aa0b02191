"""gw.Tracing in the worker: a CONSUMER span per attempt, under the producer span
of the add that enqueued the job, with the handler running inside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import psycopg
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import gw
import gw.sync
from gw.testing import running, wait_for
from tests.core.test_tracing import Spans
from tests.helpers import poll_until
from tests.worker.test_worker import job_count, make_worker, rows

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from opentelemetry.sdk.trace import ReadableSpan

ROOT = Path(__file__).resolve().parents[2]
CONTEXT_ROWS = "select count(*) from graphile_worker._private_gw_trace_context"


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    yield s
    s.provider.shutdown()


@pytest.fixture
async def traced_utils(db_url: str, spans: Spans) -> AsyncIterator[gw.WorkerUtils]:
    async with gw.WorkerUtils.connect(db_url, migrate=False, tracing=spans.tracing) as utils:
        yield utils


def of_kind(spans: Spans, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans.finished() if s.kind is kind]


def named(spans: Spans, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.finished() if s.name == name]
    return span


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None
    assert parent.context is not None
    return (
        child.parent is not None
        and child.parent.span_id == parent.context.span_id
        and child.context.trace_id == parent.context.trace_id
    )


async def context_rows(db_url: str) -> int:
    return int((await rows(db_url, CONTEXT_ROWS))[0][0])


async def test_each_attempt_is_a_consumer_span_under_the_producer_span(
    db_url: str, spans: Spans, traced_utils: gw.WorkerUtils
) -> None:
    @gw.task("flaky", retry=gw.Retry(backoff=0))
    async def flaky(payload: Any, ctx: gw.JobContext) -> None:
        if ctx.job.attempts == 1:
            raise RuntimeError("first try fails")

    worker = make_worker(db_url, [flaky], tracing=spans.tracing)
    async with running(worker):
        job = await traced_utils.add_job(flaky, {}, gw.JobSpec(queue_name="serial"))
        await wait_for(lambda: len(of_kind(spans, SpanKind.CONSUMER)) == 2, message="2 attempts")

    (send,) = of_kind(spans, SpanKind.PRODUCER)
    first, second = sorted(
        of_kind(spans, SpanKind.CONSUMER),
        key=lambda s: (s.attributes or {})["messaging.graphile_worker.attempt"],
    )
    assert send.context is not None
    common = {
        "messaging.system": "graphile_worker",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "flaky",
        "messaging.message.id": str(job.id),
        "messaging.client.id": worker.worker_id,
        "messaging.graphile_worker.max_attempts": 25,
        "messaging.graphile_worker.priority": 0,
        "messaging.graphile_worker.queue_name": "serial",
    }
    assert dict(first.attributes or {}) == common | {
        "messaging.graphile_worker.attempt": 1,
        "messaging.graphile_worker.outcome": "failed",
        "error.type": "builtins.RuntimeError",
    }
    assert dict(second.attributes or {}) == common | {
        "messaging.graphile_worker.attempt": 2,
        "messaging.graphile_worker.outcome": "completed",
    }
    for attempt in (first, second):
        assert attempt.name == "process flaky"
        assert is_child(attempt, send)
        assert attempt.parent is not None
        assert attempt.parent.is_remote
        assert [link.context.span_id for link in attempt.links] == [send.context.span_id]
    assert (first.status.status_code, first.status.description) == (
        StatusCode.ERROR,
        "first try fails",
    )
    (event,) = first.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.message"] == "first try fails"
    assert second.status.status_code is StatusCode.UNSET


async def test_spans_the_handler_starts_are_children_of_its_attempt(
    db_url: str, spans: Spans, traced_utils: gw.WorkerUtils
) -> None:
    tracer = spans.provider.get_tracer("app")

    @gw.task("fan_out")
    async def fan_out(payload: Any, ctx: gw.JobContext) -> None:
        with tracer.start_as_current_span("async work"):
            # The worker's own utils trace too: the next job joins this trace.
            await ctx.utils.add_job("in_thread", {})

    @gw.task("in_thread")
    def in_thread(payload: Any) -> None:
        with tracer.start_as_current_span("sync work"):
            pass

    worker = make_worker(db_url, [fan_out, in_thread], tracing=spans.tracing)
    async with running(worker):
        await traced_utils.add_job(fan_out, {})
        await wait_for(lambda: len(of_kind(spans, SpanKind.CONSUMER)) == 2, message="2 jobs")

    process_fan_out = named(spans, "process fan_out")
    async_work = named(spans, "async work")
    send_in_thread = named(spans, "send in_thread")
    process_in_thread = named(spans, "process in_thread")
    assert is_child(process_fan_out, named(spans, "send fan_out"))
    assert is_child(async_work, process_fan_out)
    assert is_child(send_in_thread, async_work)
    assert is_child(process_in_thread, send_in_thread)
    assert is_child(named(spans, "sync work"), process_in_thread)


async def test_a_job_added_without_tracing_starts_a_new_trace(
    db_url: str, spans: Spans, utils: gw.WorkerUtils
) -> None:
    @gw.task("plain")
    async def plain(payload: Any) -> None:
        pass

    tracer = spans.provider.get_tracer("app")
    worker = make_worker(db_url, [plain], tracing=spans.tracing)
    # Whatever span is current where the worker starts is no job's parent.
    with tracer.start_as_current_span("startup") as startup:
        async with running(worker):
            job = await utils.add_job(plain, {})
            await wait_for(lambda: bool(of_kind(spans, SpanKind.CONSUMER)), message="the attempt")
    (attempt,) = of_kind(spans, SpanKind.CONSUMER)
    assert attempt.parent is None
    assert list(attempt.links) == []
    assert attempt.context is not None
    assert attempt.context.trace_id != startup.get_span_context().trace_id
    assert (attempt.attributes or {})["messaging.message.id"] == str(job.id)
    assert await context_rows(db_url) == 0


async def test_workers_without_tracing_run_traced_jobs_and_traced_workers_prune(
    db_url: str, spans: Spans, traced_utils: gw.WorkerUtils
) -> None:
    ran: list[int] = []

    @gw.task("job")
    async def job(payload: Any, ctx: gw.JobContext) -> None:
        ran.append(ctx.job.id)

    added = await traced_utils.add_jobs([(job, {}), (job, {})])
    assert await make_worker(db_url, [job]).run_once() == 2
    assert sorted(ran) == [j.id for j in added]
    assert of_kind(spans, SpanKind.CONSUMER) == []
    # Their contexts outlive the jobs until a traced worker prunes them.
    assert await context_rows(db_url) == 2
    tracing = gw.Tracing(spans.provider, prune_interval=0.05)
    async with running(make_worker(db_url, [job], tracing=tracing)):

        async def pruned() -> bool:
            return await context_rows(db_url) == 0

        await wait_for(pruned, message="the contexts of finished jobs to be pruned")


async def test_cancelled_interrupted_and_timed_out_attempts(
    db_url: str, spans: Spans, traced_utils: gw.WorkerUtils
) -> None:
    started = {n: anyio.Event() for n in ("cancel", "interrupt")}

    @gw.task("stuck")
    async def stuck(payload: Any) -> None:
        started[payload["n"]].set()
        await anyio.sleep_forever()

    @gw.task("slow", timeout=0.05)
    async def slow(payload: Any) -> None:
        await anyio.sleep_forever()

    def outcomes() -> dict[str, tuple[str, StatusCode]]:
        return {
            str((s.attributes or {})["messaging.message.id"]): (
                str((s.attributes or {})["messaging.graphile_worker.outcome"]),
                s.status.status_code,
            )
            for s in of_kind(spans, SpanKind.CONSUMER)
        }

    worker = make_worker(
        db_url,
        [stuck, slow],
        tracing=spans.tracing,
        retry=gw.Retry(backoff=3600),
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=0),
    )
    async with running(worker):
        cancelled = await traced_utils.add_job(stuck, {"n": "cancel"})
        await started["cancel"].wait()
        await traced_utils.cancel_jobs([cancelled.id], "enough")
        timed_out = await traced_utils.add_job(slow, {})
        interrupted = await traced_utils.add_job(stuck, {"n": "interrupt"})
        await started["interrupt"].wait()
        await wait_for(lambda: len(outcomes()) == 2, message="the cancelled and timed-out spans")
    assert outcomes() == {
        str(cancelled.id): ("cancelled", StatusCode.UNSET),
        str(timed_out.id): ("failed", StatusCode.ERROR),
        str(interrupted.id): ("interrupted", StatusCode.UNSET),
    }
    timeout = next(
        s for s in of_kind(spans, SpanKind.CONSUMER) if s.status.status_code is StatusCode.ERROR
    )
    assert (timeout.attributes or {})["error.type"] == "builtins.TimeoutError"
    assert timeout.status.description == "timed out after 0.05 s"
    assert await job_count(db_url) == 3  # two to retry (one later), one failed for good


# --------------------------------------------------------------------------- across processes


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_trace_crosses_from_the_adding_process_to_the_worker_process(
    db_url: str, backend: str, tmp_path: Path, spans: Spans
) -> None:
    out = tmp_path / "spans.json"
    env = {**os.environ, "GW_TRACE_SPANS": str(out), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.worker.tracing_app", db_url, backend],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # Its heartbeat row follows the registration of its task.
        poll_until(
            lambda: sql(db_url, "select count(*) from graphile_worker._private_workers")[0][0] > 0,
            what="the worker process to start",
        )
        with gw.sync.WorkerUtils(db_url, tracing=spans.tracing) as utils:
            job = utils.add_raw_job("echo", {"hello": "there"})
        poll_until(
            lambda: sql(db_url, "select count(*) from graphile_worker._private_jobs")[0][0] == 0,
            what="the job to run",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output

    (send,) = spans.finished()
    assert send.context is not None
    (process,) = msgspec.json.decode(out.read_bytes())
    assert (process["name"], process["kind"], process["status"]) == (
        "process echo",
        "CONSUMER",
        "UNSET",
    )
    assert process["trace_id"] == f"{send.context.trace_id:032x}"
    assert process["parent_span_id"] == f"{send.context.span_id:016x}"
    assert process["links"] == [f"{send.context.span_id:016x}"]
    assert process["attributes"]["messaging.message.id"] == str(job.id)
    assert process["attributes"]["messaging.graphile_worker.outcome"] == "completed"
