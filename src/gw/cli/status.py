"""Inspection commands: stats, queues, workers, limits, check."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
from cyclopts import Parameter

from ..types import ActiveWorker, JobStats, LimitUsage, LockedWorker, QueueInfo
from ._app import current, open_utils, run
from ._output import emit_json, print_table, say
from ._params import Duration

__all__ = ("check", "limits", "queues", "stats", "workers")


def stats() -> None:
    """Count jobs by state."""

    async def go() -> JobStats:
        async with open_utils() as utils:
            return await utils.stats()

    result = run(go)
    if current().json:
        emit_json(result)
        return
    print_table(
        ("STATE", "JOBS"),
        [
            ("ready", result.ready),
            ("scheduled", result.scheduled),
            ("locked", result.locked),
            ("failed", result.failed),
            ("total", result.total),
        ],
    )


def queues() -> None:
    """List named queues with their job counts and locks."""

    async def go() -> list[QueueInfo]:
        async with open_utils() as utils:
            return await utils.queues()

    result = run(go)
    if current().json:
        emit_json(result)
        return
    if not result:
        say("no named queues")
        return
    print_table(
        ("QUEUE", "JOBS", "LOCKED BY", "LOCKED AT"),
        [(q.queue_name, q.job_count, q.locked_by, q.locked_at) for q in result],
        wrap=("QUEUE", "LOCKED BY"),
    )


class WorkersReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw workers --json``: lockers holding jobs/queues, and heartbeating workers."""

    locked: list[LockedWorker]
    active: list[ActiveWorker]


def workers(*, active_within: Duration | None = None) -> None:
    """List workers holding locks, and workers registered for recovery (heartbeats).

    Parameters
    ----------
    active_within
        Only list heartbeating workers seen this recently, e.g. 5m (default: all).
    """

    async def go() -> WorkersReport:
        async with open_utils() as utils:
            locked = await utils.locked_workers()
            active = await utils.list_active_workers(active_within)
            return WorkersReport(locked=locked, active=active)

    report = run(go)
    if current().json:
        emit_json(report)
        return
    if report.locked:
        print_table(
            ("WORKER", "LOCKED JOBS", "LOCKED QUEUES", "OLDEST LOCK"),
            [
                (w.worker_id, w.locked_jobs, w.locked_queues, w.oldest_locked_at)
                for w in report.locked
            ],
            title="Workers holding locks",
            wrap=("WORKER",),
        )
    else:
        say("no worker holds a lock")
    if report.active:
        print_table(
            ("WORKER", "LAST HEARTBEAT", "STARTED"),
            [(w.worker_id, w.last_heartbeat_at, w.started_at) for w in report.active],
            title="Heartbeating workers (recovery enabled)",
            wrap=("WORKER",),
        )


def limits() -> None:
    """List the fleet-wide rate and concurrency limits, and how much of each is in use.

    gw workers record the limits of their tasks and queues when they start.
    RATE is how fast jobs may start (burst: how many back to back); TOKENS is
    how many may start right now; RUNNING counts the jobs of the key that gw
    workers run now, against MAX CONCURRENCY.
    """

    async def go() -> list[LimitUsage]:
        async with open_utils() as utils:
            return await utils.list_limits()

    result = run(go)
    if current().json:
        emit_json(result)
        return
    if not result:
        say(
            "no fleet-wide limits: they are set with "
            "@gw.task(rate_limit=..., max_concurrency=...) or Worker(queue_limits=...)"
        )
        return
    print_table(
        ("KEY", "RATE", "BURST", "TOKENS", "MAX CONCURRENCY", "RUNNING"),
        [
            (
                limit.key,
                None if limit.rate is None else format_rate(limit.rate),
                None if limit.burst is None else _number(limit.burst),
                None if limit.tokens is None else _format_tokens(limit.tokens),
                limit.max_concurrency,
                limit.running,
            )
            for limit in result
        ],
        wrap=("KEY",),
    )


_RATE_UNITS = (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))


def format_rate(per_second: float) -> str:
    """``20/s``, ``2.5/s``; under one a second, per minute, hour or day: ``30/m``
    (the first unit where the count is whole, else where it is at least 1)."""
    if per_second >= 1:
        return f"{_number(per_second)}/s"
    for unit, span in _RATE_UNITS:
        count = per_second * span
        if count >= 1 and math.isclose(count, round(count), rel_tol=1e-9):
            return f"{round(count)}/{unit}"
    for unit, span in _RATE_UNITS:
        count = per_second * span
        if count >= 1:
            return f"{_number(count)}/{unit}"
    return f"{per_second * 86400:.2g}/d"


def _number(value: float) -> str:
    """``20``, ``2.5``, ``8.57``: at most two decimals, never an exponent."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _format_tokens(tokens: float) -> str:
    """Rounded down to two decimals: it never shows a start that is not allowed."""
    return _number(math.floor(max(tokens, 0.0) * 100) / 100)


class CheckReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw check --json``."""

    database: str
    server_version: str
    schema: str
    schema_ready: bool


def check(
    *, quiet: Annotated[bool, Parameter(alias="-q", negative="", show_default=False)] = False
) -> None:
    """Connect to PostgreSQL and report its version and whether the schema is installed.

    Parameters
    ----------
    quiet
        Print nothing; only the exit code tells (0: reachable).
    """
    from ..db.connection import describe_conninfo
    from ..errors import DatabaseError

    async def go() -> CheckReport:
        async with open_utils() as utils:
            async with utils.pool.connection() as conn:
                number = conn.info.server_version
            try:
                await utils.stats()
                ready = True
            except DatabaseError:
                ready = False
            return CheckReport(
                database=describe_conninfo(utils.pool.conninfo),
                server_version=f"{number // 10000}.{number % 10000}",
                schema=utils.schema,
                schema_ready=ready,
            )

    report = run(go)
    if quiet:
        return
    if current().json:
        emit_json(report)
        return
    say(f"connected to {report.database} (PostgreSQL {report.server_version})")
    if report.schema_ready:
        say(f"schema {report.schema} is installed")
    else:
        say(f"schema {report.schema} is missing or out of date; run `gw migrate`", style="yellow")
