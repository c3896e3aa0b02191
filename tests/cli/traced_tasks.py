"""Tasks for ``gw worker --tracing`` (tests/cli/test_history.py): like a user's
tasks module, it sets up the OpenTelemetry SDK; each finished span is written
as one JSON line to the file named by GW_TEST_SPANS."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import gw

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan


class _JsonLines(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(os.environ["GW_TEST_SPANS"], "a") as out:
            for span in spans:
                record = {"name": span.name, "attributes": dict(span.attributes or {})}
                out.write(json.dumps(record) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(_JsonLines()))
trace.set_tracer_provider(provider)


@gw.task
async def answer(payload: dict[str, Any]) -> int:
    with trace.get_tracer("app").start_as_current_span("inside answer"):
        return 42
