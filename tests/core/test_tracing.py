"""gw.Tracing on the producer side: one PRODUCER span per add call, and the W3C
context stored beside each job it added (gw track 0004), in the same statement."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import gw
import gw.sync
from gw.core.tracing import prune_trace_contexts
from gw.core.utils import WorkerUtils
from gw.db.queries import queries_for
from tests.core.conftest import Db, UntouchablePool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gw.db.pool import Pool

TASKS = ("email", "report")
CONTEXTS = "select job_id, traceparent, tracestate from {s}._private_gw_trace_context order by 1"


class Spans:
    """A local TracerProvider whose finished spans land in memory (never the global one)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = gw.Tracing(self.provider)

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    yield s
    s.provider.shutdown()


def traceparent(span: ReadableSpan) -> str:
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


async def contexts(db: Db) -> list[tuple[int, str, str | None]]:
    return [(r["job_id"], r["traceparent"], r["tracestate"]) for r in await db.rows(CONTEXTS)]


async def test_add_job_is_a_producer_span_whose_context_the_job_keeps(
    pool: Pool, db: Db, spans: Spans
) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=spans.tracing)
    request = spans.provider.get_tracer("app")
    with request.start_as_current_span("POST /signup") as outer:
        job = await utils.add_job("email", {"to": "a@b.c"}, gw.JobSpec(queue_name="mail"))

    send, parent = spans.finished()
    assert parent.name == "POST /signup"
    assert (send.name, send.kind) == ("send email", SpanKind.PRODUCER)
    assert send.parent is not None
    assert send.parent.span_id == outer.get_span_context().span_id
    assert dict(send.attributes or {}) == {
        "messaging.system": "graphile_worker",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "email",
        "messaging.message.id": str(job.id),
        "messaging.graphile_worker.queue_name": "mail",
    }
    assert send.status.status_code is StatusCode.UNSET
    assert await contexts(db) == [(job.id, traceparent(send), None)]
    # The job row is the one any producer writes: Node and Rust see nothing new.
    stored = await db.job(job.id)
    assert stored["payload"] == {"to": "a@b.c"}
    assert job.payload == {"to": "a@b.c"}


async def test_a_bulk_add_is_one_span_with_the_job_count(pool: Pool, db: Db, spans: Spans) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=spans.tracing)
    same = await utils.add_jobs([("email", {"n": n}) for n in range(3)])
    mixed = await utils.add_raw_jobs(
        [
            gw.RawJobSpec(identifier="email", payload={}),
            gw.RawJobSpec(identifier="report", payload={}, spec=gw.JobSpec(priority=1)),
        ]
    )

    one, two = spans.finished()
    assert (one.name, one.kind) == ("send email", SpanKind.PRODUCER)
    assert dict(one.attributes or {}) == {
        "messaging.system": "graphile_worker",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "email",
        "messaging.batch.message_count": 3,
    }
    # Jobs of several tasks: no single destination.
    assert two.name == "send"
    assert "messaging.destination.name" not in (two.attributes or {})
    assert (two.attributes or {})["messaging.batch.message_count"] == 2
    assert await contexts(db) == [(j.id, traceparent(one), None) for j in same] + [
        (j.id, traceparent(two), None) for j in mixed
    ]


async def test_without_tracing_nothing_is_stored(pool: Pool, db: Db) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS)
    await utils.add_job("email", {})
    await utils.add_jobs([("email", {}), ("report", {})])
    assert await contexts(db) == []
    assert await db.count_jobs() == 3


def test_statements_without_tracing_do_not_touch_the_context_table() -> None:
    queries = queries_for("graphile_worker")
    untraced = [
        queries.add_job,
        queries.add_job_checked,
        queries.add_job_named,
        queries.add_job_named_checked,
        queries.add_jobs,
        queries.get_jobs(local_time=False, with_flags=True, skip_queues=True),
        queries.get_jobs(local_time=True, with_flags=False, scope="queue"),
    ]
    assert not [q for q in untraced if "_private_gw_trace_context" in q]
    assert "_private_gw_trace_context" in queries.get_jobs(
        local_time=False, with_flags=False, traced=True
    )
    assert all("_private_gw_trace_context" in q for q in queries.traced_add.values())


async def test_a_tracer_that_records_nothing_stores_nothing(pool: Pool, db: Db) -> None:
    # No SDK configured: OpenTelemetry's global provider hands out no-op spans,
    # which have no context to store.
    from opentelemetry.trace import NoOpTracerProvider

    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=gw.Tracing(NoOpTracerProvider()))
    await utils.add_job("email", {})
    await utils.add_jobs([("email", {})])
    assert await contexts(db) == []
    assert await db.count_jobs() == 2


async def test_a_replaced_job_takes_the_new_context_a_deduplicated_one_keeps_its_own(
    pool: Pool, db: Db, spans: Spans
) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=spans.tracing)
    first = await utils.add_job("email", {"v": 1}, gw.JobSpec(job_key="k"))
    again = await utils.add_job("email", {"v": 2}, gw.JobSpec(job_key="k"))
    same = await utils.add_job(
        "email", {"v": 3}, gw.JobSpec(job_key="k", job_key_mode="unsafe_dedupe")
    )
    assert first.id == again.id == same.id
    _, two, three = spans.finished()
    assert await contexts(db) == [(first.id, traceparent(two), None)]
    assert (three.attributes or {})["messaging.message.id"] == str(first.id)


async def test_a_refused_add_is_an_error_span_and_stores_nothing(
    pool: Pool, db: Db, spans: Spans
) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=spans.tracing)
    before = await db.snapshot()
    with pytest.raises(gw.InvalidJobSpec, match="job_key 'k' appears more than once"):
        await utils.add_jobs(
            [("email", {}, gw.JobSpec(job_key="k")), ("email", {}, gw.JobSpec(job_key="k"))]
        )
    (send,) = spans.finished()
    assert send.status.status_code is StatusCode.ERROR
    assert [e.name for e in send.events] == ["exception"]
    assert await db.snapshot() == before
    assert await contexts(db) == []


def test_the_sync_facade_traces_its_adds_inside_the_callers_transaction(
    db_url: str, spans: Spans
) -> None:
    @gw.task("report")
    def report(payload: Any) -> None: ...

    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            utils = gw.sync.WorkerUtils(conn, tracing=spans.tracing)
            job = utils.add_job(report, {"day": 1})
            batch = utils.add_jobs([(report, {"day": 2}), (report, {"day": 3})])
        with conn.transaction():
            gw.sync.WorkerUtils(conn, tracing=spans.tracing).add_job(report, {"day": 4})
            raise psycopg.Rollback
        rows = conn.execute(
            "select job_id, traceparent from graphile_worker._private_gw_trace_context"
            " order by job_id"
        ).fetchall()
    one, many, rolled_back = spans.finished()
    assert (one.name, many.name, rolled_back.name) == ("send report",) * 3
    assert (one.attributes or {})["messaging.message.id"] == str(job.id)
    assert (many.attributes or {})["messaging.batch.message_count"] == 2
    # The rolled-back add took its context with it.
    assert rows == [(job.id, traceparent(one))] + [(j.id, traceparent(many)) for j in batch]


async def test_prune_deletes_the_contexts_of_jobs_that_are_gone(
    pool: Pool, db: Db, spans: Spans
) -> None:
    utils = WorkerUtils(pool, task_identifiers=TASKS, tracing=spans.tracing)
    jobs = await utils.add_jobs([("email", {"n": n}) for n in range(5)])
    await utils.complete_jobs([jobs[0].id, jobs[2].id, jobs[4].id])
    # Another pruner at work: this one stops at once.
    async with pool.connection() as other, other.transaction():
        await other.execute("select pg_advisory_xact_lock(1196903751, 1414677317)")
        assert await prune_trace_contexts(pool, utils.queries) == 0
    assert len(await contexts(db)) == 5
    # Small chunks walk the whole table.
    assert await prune_trace_contexts(pool, utils.queries, chunk=2) == 3
    assert [row[0] for row in await contexts(db)] == [jobs[1].id, jobs[3].id]
    assert await prune_trace_contexts(pool, utils.queries) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"tracer_provider": "jaeger"},
            "tracer_provider must be an OpenTelemetry TracerProvider (something with "
            "get_tracer()), or None for the global one; got str",
        ),
        (
            {"prune_interval": 0},
            "Tracing prune_interval must be > 0 seconds, got 0",
        ),
        (
            {"prune_interval": timedelta(seconds=-1)},
            "Tracing prune_interval must be > 0 seconds, got "
            "datetime.timedelta(days=-1, seconds=86399)",
        ),
        (
            {"prune_interval": "10m"},
            "Tracing prune_interval must be a number of seconds or a timedelta, got '10m'",
        ),
    ],
)
def test_bad_tracing_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(gw.ConfigurationError) as caught:
        gw.Tracing(**kwargs)
    assert str(caught.value) == message


def test_tracing_must_be_a_tracing_object() -> None:
    @gw.task("t")
    async def t(payload: Any) -> None: ...

    makers = [
        lambda: WorkerUtils(UntouchablePool(), tracing=True),  # type: ignore[arg-type]
        lambda: gw.sync.WorkerUtils("postgresql://nowhere/x", tracing=True),  # type: ignore[arg-type]
        lambda: gw.Worker([t], tracing=True),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(gw.ConfigurationError) as caught:
            make()
        assert str(caught.value) == "tracing must be a gw.Tracing(...), got True"


def test_without_opentelemetry_tracing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(gw.errors.MissingExtra) as caught:
        gw.Tracing()
    assert str(caught.value) == "gw.Tracing needs the 'otel' extra: pip install 'gw[otel]'"
    assert caught.value.extra == "otel"


def test_import_gw_does_not_load_opentelemetry() -> None:
    import subprocess

    code = (
        "import sys, gw, gw.sync, gw.worker, gw.core.tracing; gw.Tracing; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
