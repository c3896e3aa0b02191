"""OpenTelemetry tracing: one trace from the request that adds a job to every attempt.

Needs gw[otel] and opentelemetry-sdk. Spans are kept in memory and printed as a
tree here; in production give the TracerProvider a BatchSpanProcessor and an
exporter (OTLP, ...), or leave tracer_provider out to use the global one.

python examples/tracing.py
"""

from __future__ import annotations

from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gw

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("shop")
tracing = gw.Tracing(provider)  # the same object for producers and workers


@gw.task("send_receipt", retry=gw.Retry(backoff=0))
async def send_receipt(payload: dict[str, Any], ctx: gw.JobContext) -> None:
    # The attempt's span is current here: this span is its child.
    with tracer.start_as_current_span("render receipt"):
        if ctx.job.attempts == 1:
            raise ConnectionError("mail server busy")


def print_tree(spans: list[ReadableSpan]) -> None:
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        attributes = span.attributes or {}
        outcome = attributes.get("messaging.graphile_worker.outcome")
        attempt = attributes.get("messaging.graphile_worker.attempt")
        note = f" (attempt {attempt}: {outcome})" if outcome else ""
        print(f"{'  ' * depth}{span.name}{note}")
        assert span.context is not None
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


async def main() -> None:
    worker = gw.Worker([send_receipt], concurrency=1, tracing=tracing)
    async with gw.WorkerUtils.connect(tracing=tracing) as utils:
        with tracer.start_as_current_span("POST /orders"):
            await utils.add_job(send_receipt, {"order": 1})
        await worker.run_once()  # the failed first attempt is retried at once
    print_tree(list(exporter.get_finished_spans()))


if __name__ == "__main__":
    anyio.run(main)
