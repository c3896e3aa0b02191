"""A traced worker process for tests/worker/test_tracing.py.

Usage: ``python -m tests.worker.tracing_app DATABASE_URL asyncio|trio``. Runs
a worker with ``gw.Tracing`` on an in-memory exporter until SIGTERM, then
writes the finished spans as JSON to the file named by ``GW_TRACE_SPANS``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import msgspec
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gw


@gw.task("echo")
async def echo(payload: Any) -> Any:
    return payload


def span_json(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_span_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


def main(database_url: str, backend: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    worker = gw.Worker(
        [echo],
        database_url=database_url,
        concurrency=2,
        poll_interval=0.2,
        migrate=False,
        tracing=gw.Tracing(provider),
        shutdown=gw.ShutdownConfig(grace_period=1.0),
    )
    anyio.run(worker.run, backend=backend)
    spans = [span_json(s) for s in exporter.get_finished_spans()]
    with open(os.environ["GW_TRACE_SPANS"], "wb") as out:
        out.write(msgspec.json.encode(spans))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
