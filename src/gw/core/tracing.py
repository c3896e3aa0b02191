"""OpenTelemetry tracing from enqueue to run: ``gw.Tracing`` (needs ``gw[otel]``).

Producer: every add call on a ``WorkerUtils`` (async or ``gw.sync``) built
with ``tracing=`` is one PRODUCER span, ``send <task>``; the W3C trace
context of that span is written for each job it added, in the same statement
as the add, to gw's own table ``_private_gw_trace_context`` (one row per job;
the job row itself is untouched, so Node and Rust workers run such jobs as
any other and never see the context).

Consumer: a ``Worker`` built with ``tracing=`` reads the stored contexts in
its fetch statement and runs each attempt of a job inside a CONSUMER span,
``process <task>``, whose parent is the producer span (and which also links
to it, as the messaging conventions ask); the handler runs with that span
current, so spans the handler starts are its children (in the worker thread
of a sync handler too). Rows whose job is gone are deleted by the workers
every ``prune_interval``.

opentelemetry is imported when a :class:`Tracing` is created, never by
``import gw``; with tracing off gw runs no extra statement and does no
per-job work beyond checking that it is off.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, MissingExtra
from ._requests import duration

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from datetime import timedelta

    from ..db.pool import Pool
    from ..db.queries import Queries
    from ..runtime import Clock
    from ..types import Job
    from ._requests import AddJob

__all__ = ("MESSAGING_SYSTEM", "Attempt", "Send", "TraceContext", "Tracing", "prune_trace_contexts")

logger = logging.getLogger("gw.tracing")

MESSAGING_SYSTEM = "graphile_worker"
"""``messaging.system`` of every span (the queue's protocol, shared with Node and Rust)."""

TraceContext = tuple[str, "str | None"]
"""A job's stored W3C trace context: (traceparent, tracestate)."""

# Attributes the messaging conventions do not define, under the system's own
# namespace (as messaging.rabbitmq.* or messaging.kafka.* are).
_NS = "messaging.graphile_worker."
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"
_PRUNE_CHUNK = 5000


class Tracing:
    """OpenTelemetry spans for jobs, from the add that enqueues them to each attempt.

    Pass it to the producers and the workers::

        tracing = gw.Tracing()                        # the global TracerProvider
        worker = gw.Worker(tasks, tracing=tracing)
        async with gw.WorkerUtils.connect(tracing=tracing) as utils: ...
        gw.sync.WorkerUtils(conn, tracing=tracing)

    ``tracer_provider``: where spans go (None: OpenTelemetry's global
    provider, looked up when a span starts, so it may be set later).
    ``prune_interval``: how often a worker deletes the stored contexts of
    jobs that no longer exist (seconds or a ``timedelta``; one worker at a
    time across the fleet). Raises :class:`gw.errors.MissingExtra` when
    opentelemetry-api is not installed.
    """

    __slots__ = ("_otel", "prune_interval", "tracer_provider")

    def __init__(
        self, tracer_provider: Any = None, *, prune_interval: float | timedelta = 600.0
    ) -> None:
        if tracer_provider is not None and not callable(
            getattr(tracer_provider, "get_tracer", None)
        ):
            raise ConfigurationError(
                "tracer_provider must be an OpenTelemetry TracerProvider (something with "
                f"get_tracer()), or None for the global one; got {type(tracer_provider).__name__}"
            )
        self.tracer_provider = tracer_provider
        self.prune_interval = duration("Tracing prune_interval", prune_interval, allow_zero=False)
        self._otel = _Otel(tracer_provider)

    def __repr__(self) -> str:
        return (
            f"gw.Tracing(tracer_provider={self.tracer_provider!r}, "
            f"prune_interval={self.prune_interval:g})"
        )

    # ------------------------------------------------------------------ producer

    @contextmanager
    def send(self, identifier: str, queue_name: str | None) -> Iterator[Send]:
        """The PRODUCER span of one add (``add_job``, ``add_raw_job``, ``add_batch_job``)."""
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": identifier,
        }
        if queue_name is not None:
            attributes[_NS + "queue_name"] = queue_name
        with self._otel.producer(f"send {identifier}", attributes) as send:
            yield send

    @contextmanager
    def send_batch(self, jobs: Sequence[tuple[str, Any, Any]]) -> Iterator[Send]:
        """The PRODUCER span of one bulk add (``add_jobs``, ``add_raw_jobs``): one span
        for the call, with the job count; every job gets the span's context."""
        identifiers = {job[0] for job in jobs}
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.batch.message_count": len(jobs),
        }
        name = "send"
        if len(identifiers) == 1:
            (identifier,) = identifiers
            attributes["messaging.destination.name"] = identifier
            name = f"send {identifier}"
        with self._otel.producer(name, attributes) as send:
            yield send

    # ------------------------------------------------------------------ consumer

    def start(self, job: Job, worker_id: str, stored: TraceContext | None) -> Attempt:
        """Start the CONSUMER span of one attempt of ``job`` and make it current
        (end it with :meth:`Attempt.end`, in the same task)."""
        return self._otel.consumer(job, worker_id, stored)


class Send:
    """An add call's producer span: what to store for its jobs, and their ids."""

    __slots__ = ("_span", "params")

    def __init__(self, span: Any, params: dict[str, str | None] | None) -> None:
        self._span = span
        self.params = params
        """``traceparent``/``tracestate`` statement parameters (None: nothing to store,
        e.g. a no-op tracer with no SDK installed)."""

    def traced_call(self, call: AddJob, queries: Queries) -> AddJob:
        """``call`` with the statement that also stores the trace context."""
        if self.params is None:
            return call
        return dataclasses.replace(
            call, query=queries.traced_add[call.query], params={**call.params, **self.params}
        )

    def added(self, job_id: int) -> None:
        self._span.set_attribute("messaging.message.id", str(job_id))


class Attempt:
    """The consumer span of one running attempt (see :meth:`Tracing.start`)."""

    __slots__ = ("_otel", "_span", "_token")

    def __init__(self, otel: _Otel, span: Any, token: Any) -> None:
        self._otel = otel
        self._span = span
        self._token = token

    def end(
        self,
        outcome: str,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """End the span. ``outcome``: completed, skipped, failed, cancelled or
        interrupted; only ``failed`` (the handler's error, a timeout, a payload
        that does not fit, a hook's Fail) sets the status to ERROR: a cancel
        request or a shutdown is not the application's error."""
        otel = self._otel
        otel.detach(self._token)
        span = self._span
        if span.is_recording():
            span.set_attribute(_NS + "outcome", outcome)
            if error is not None:
                if exception is not None:
                    kind = type(exception)
                    span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}")
                    span.record_exception(exception)
                else:
                    span.set_attribute("error.type", "_OTHER")
                span.set_status(otel.Status(otel.StatusCode.ERROR, error))
        span.end()


class _Otel:
    """The opentelemetry objects gw uses (imported here, once tracing is on)."""

    __slots__ = (
        "Context",
        "Link",
        "SpanKind",
        "Status",
        "StatusCode",
        "attach",
        "detach",
        "get_current_span",
        "propagator",
        "set_span_in_context",
        "tracer",
    )

    def __init__(self, tracer_provider: Any) -> None:
        try:
            from opentelemetry import context, trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            raise MissingExtra("gw.Tracing", "otel") from None
        from .. import __version__

        self.tracer = trace.get_tracer(
            "gw", __version__, tracer_provider=tracer_provider, schema_url=_SCHEMA_URL
        )
        # Always W3C Trace Context (what the table stores), whatever the
        # global propagator is.
        self.propagator = TraceContextTextMapPropagator()
        self.Context = context.Context
        self.attach = context.attach
        self.detach = context.detach
        self.Link = trace.Link
        self.SpanKind = trace.SpanKind
        self.Status = trace.Status
        self.StatusCode = trace.StatusCode
        self.get_current_span = trace.get_current_span
        self.set_span_in_context = trace.set_span_in_context

    @contextmanager
    def producer(self, name: str, attributes: dict[str, Any]) -> Iterator[Send]:
        # Current while the statement runs: a database client's own span
        # (psycopg instrumentation) becomes its child.
        with self.tracer.start_as_current_span(
            name, kind=self.SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            self.propagator.inject(carrier)
            traceparent = carrier.get("traceparent")
            params = (
                None
                if traceparent is None
                else {"traceparent": traceparent, "tracestate": carrier.get("tracestate")}
            )
            yield Send(span, params)

    def consumer(self, job: Job, worker_id: str, stored: TraceContext | None) -> Attempt:
        links = None
        if stored is None:
            # No producer context (added from SQL, Node, or without tracing):
            # a new trace, not a child of whatever the worker's task carried.
            parent = self.Context()
        else:
            carrier = {"traceparent": stored[0]}
            if stored[1]:
                carrier["tracestate"] = stored[1]
            parent = self.propagator.extract(carrier, context=self.Context())
            # The messaging conventions ask consumers to link to the creation
            # context; a job is one message, so it is the parent as well.
            remote = self.get_current_span(parent).get_span_context()
            if remote.is_valid:
                links = [self.Link(remote)]
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.task_identifier,
            "messaging.message.id": str(job.id),
            "messaging.client.id": worker_id,
            _NS + "attempt": job.attempts,
            _NS + "max_attempts": job.max_attempts,
            _NS + "priority": job.priority,
        }
        if job.queue_name is not None:
            attributes[_NS + "queue_name"] = job.queue_name
        span = self.tracer.start_span(
            f"process {job.task_identifier}",
            context=parent,
            kind=self.SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        token = self.attach(self.set_span_in_context(span, parent))
        return Attempt(self, span, token)


def remember(
    contexts: dict[int, TraceContext],
    held: Mapping[int, Any],
    found: Iterable[tuple[int, str, str | None]],
) -> None:
    """Keep the contexts a fetch returned until their attempts start; drop those
    of jobs no longer held (handed back unstarted) once they pile up."""
    for job_id, traceparent, tracestate in found:
        contexts[job_id] = (traceparent, tracestate)
    if len(contexts) > 2 * len(held) + 1000:
        for job_id in [j for j in contexts if j not in held]:
            del contexts[job_id]


# --------------------------------------------------------------------------- pruning


async def prune_trace_contexts(pool: Pool, queries: Queries, chunk: int = _PRUNE_CHUNK) -> int:
    """Delete the stored contexts of jobs that no longer exist, ``chunk`` rows per
    statement in job id order; returns how many were deleted. Another pruner at
    work (anywhere in the fleet) makes this one stop at once."""
    deleted = 0
    after = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(queries.prune_trace_contexts, {"after": after, "chunk": chunk})
            row = await cur.fetchone()
        if row is None or row[0] is None:
            return deleted
        after, gone = int(row[0]), int(row[1])
        deleted += gone


async def prune_loop(pool: Pool, queries: Queries, tracing: Tracing, clock: Clock) -> None:
    """Prune every ``tracing.prune_interval`` for as long as the worker runs."""
    from ..db._errors import first_line

    period = tracing.prune_interval
    await clock.sleep(random.random() * min(60.0, period))
    while True:
        try:
            await prune_trace_contexts(pool, queries)
        except Exception as ex:  # never fatal: the next round tries again
            logger.warning("pruning stored trace contexts failed: %s", first_line(ex))
        await clock.sleep(period)
