"""The cron runner: turns cron items into jobs, once per matching minute.

It behaves like graphile-worker's ``src/cron.ts`` (contract §6.3-§6.5), so gw,
Node and Rust workers running the same crontab on one database share the work:

1. On start it reads ``_private_known_crontabs``. Identifiers never seen
   before are recorded (``known_since`` = start) and are **never** backfilled.
   Known items are backfilled minute by minute over the largest ``fill``
   window, for minutes no earlier than their ``last_execution`` (or
   ``known_since``) and within their own ``fill``.
2. Then it wakes at every minute boundary and schedules every matching item
   with one statement per minute. That statement advances
   ``last_execution`` under a row lock and only calls ``add_job`` for the
   identifiers it advanced, so each tick's job is created exactly once no
   matter how many workers (of any implementation) tick.

Time comes from a :class:`gw.runtime.Clock`: ``now()`` is the wall clock the
schedule is read against, ``sleep()`` waits on the monotonic clock. If the
wall clock is behind the minute it waited for (fired early, or the clock was
set back) it sleeps again, so no minute is scheduled twice; if it is ahead
(fired late, or the clock jumped forward) it schedules the missed minutes one
by one, as ordinary (not backfilled) ticks, exactly as Node does.

Schedules are read in UTC. With ``use_local_time`` they are read in the
process's local zone (the ``TZ`` setting) instead, and an explicit
``timezone`` overrides both. Local times are converted per instant, so DST
changes are honoured: a wall
time skipped by a spring-forward change never fires, and one repeated by a
fall-back change fires at both instants. ``_cron.ts`` and ``run_at`` are
always the UTC instant. ``use_local_time`` also passes the clock's time to the
scheduling statement in place of the database's ``now()``, as Node's
``useNodeTime`` does (it only matters when a job has no ``run_at``, which cron
jobs always have).

A database error stops the current pass; the runner logs it, backs off
(``min(200 ms * 1.5**n, 60 s)``, jittered by 0.5-1.5x) and starts over from
step 1, like Node. Minutes missed meanwhile are only recovered by ``fill``.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg

from gw.core import hooks as h
from gw.cron.matcher import ceil_minute, floor_minute, matches
from gw.errors import ConfigurationError, DatabaseError
from gw.runtime import TASK_STATUS_IGNORED, TaskStatus, checkpoint

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from gw.cron._types import CronItem
    from gw.db.pool import Pool
    from gw.db.queries import Queries
    from gw.runtime import Clock

__all__ = ("CronRunner", "cron_timestamp")

logger = logging.getLogger("gw.cron")

_MINUTE: Final = timedelta(minutes=1)
_TINY: Final = timedelta(microseconds=1)
# Wake a hair after the boundary so the wall clock is surely in the new minute.
_WAKE_MARGIN: Final = 0.001
_RETRY_MIN: Final = 0.2
_RETRY_MAX: Final = 60.0
_RETRY_MULTIPLIER: Final = 1.5
_encode = msgspec.json.Encoder().encode


def cron_timestamp(ts: datetime) -> str:
    """Node's ``Date.toISOString()`` rendering of a whole minute: ``2026-01-01T08:00:00.000Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def retry_delay(failures: int) -> float:
    """Seconds to wait before restarting after ``failures`` consecutive failures (>= 1)."""
    # Retries go on forever; cap the exponent before 1.5**n overflows a float.
    base = min(_RETRY_MIN * _RETRY_MULTIPLIER ** min(failures - 1, 64), _RETRY_MAX)
    return base * (0.5 + random.random())


class CronRunner:
    """Schedules ``items`` for as long as :meth:`run` runs.

    Run it inside a task group (the worker does: ``await tg.start(runner.run)``);
    cancel the group to stop it. ``items`` must have unique identifiers.
    """

    def __init__(
        self,
        items: Sequence[CronItem],
        *,
        pool: Pool,
        queries: Queries,
        clock: Clock,
        hooks: h.HookRegistry,
        worker_id: str,
        use_local_time: bool = False,
        timezone: tzinfo | None = None,
    ) -> None:
        self.items = tuple(items)
        seen: set[str] = set()
        for item in self.items:
            if item.identifier in seen:
                raise ConfigurationError(
                    f"cron identifier {item.identifier!r} is used more than once; "
                    "give each item a unique id"
                )
            seen.add(item.identifier)
        self._by_id = {item.identifier: item for item in self.items}
        self._pool = pool
        self._queries = queries
        self._clock = clock
        self._hooks = hooks
        self.worker_id = worker_id
        self.use_local_time = use_local_time
        self.timezone = timezone
        self._failures = 0
        self.next_timestamp: datetime | None = None
        """The minute the runner waits for next (None until registration is done)."""

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Register, backfill, then tick forever; restart after database errors.

        ``task_status.started()`` fires once the first registration and
        backfill are done, or after the first failure (so a worker is not held
        up by cron while the database misbehaves).
        """
        started = False
        while True:
            try:
                start = self._clock.now()
                await self._register_and_backfill(start)
                if not started:
                    started = True
                    task_status.started()
                await self._loop(ceil_minute(start))
            except (psycopg.Error, DatabaseError, OSError) as ex:
                if not started:
                    started = True
                    task_status.started()
                self.next_timestamp = None
                self._failures += 1
                delay = retry_delay(self._failures)
                logger.error(
                    "cron hit an error; restarting in %.0f ms (attempt %d): %s",
                    delay * 1000,
                    self._failures,
                    ex,
                    extra={"worker_id": self.worker_id, "attempts": self._failures},
                )
                await self._clock.sleep(delay)

    async def _loop(self, expected: datetime) -> None:
        clock = self._clock
        slept = behind = False
        while True:
            self.next_timestamp = expected
            now = clock.now()
            current = floor_minute(now)
            if current < expected:
                # Not there yet: the first wait, a timer that fired early, or a
                # wall clock that was set back. Waiting for ``expected`` again
                # is what keeps a minute from being scheduled twice.
                early = (expected - now).total_seconds()
                if slept:
                    # A few ms is timer jitter; more means the wall clock moved back.
                    logger.log(
                        logging.WARNING if early > 1 else logging.DEBUG,
                        "cron woke %.3fs before %s (clock set back?); waiting again",
                        early,
                        cron_timestamp(expected),
                        extra={"worker_id": self.worker_id},
                    )
                await clock.sleep(early + _WAKE_MARGIN)
                slept = True
                continue
            slept = False
            if current > expected:
                if not behind:
                    behind = True
                    logger.warning(
                        "cron is %s behind (clock jumped forward or the worker stalled); "
                        "scheduling the missed minutes from %s",
                        now - expected,
                        cron_timestamp(expected),
                        extra={"worker_id": self.worker_id},
                    )
                # Catching up never sleeps; let other tasks run between minutes.
                await checkpoint()
            else:
                behind = False
            await self._tick(expected)
            self._failures = 0
            expected += _MINUTE

    async def _tick(self, ts: datetime) -> None:
        if self._hooks.has(h.CronTick):
            await self._hooks.emit(h.CronTick(self.worker_id, ts, False))
        wall = self._wall(ts)
        due = [item for item in self.items if matches(item, wall)]
        if due:
            await self._schedule(due, ts, backfilled=False)

    # ------------------------------------------------------------------ start-up

    async def _register_and_backfill(self, start: datetime) -> None:
        identifiers = [item.identifier for item in self.items]
        rows = await self._pool.fetch(
            self._queries.cron.known_crontabs, {"identifiers": identifiers}
        )
        known_rows = {row["identifier"]: row for row in rows}
        # (item, earliest minute it may be backfilled for)
        known: list[tuple[CronItem, datetime]] = []
        unknown: list[str] = []
        for item in self.items:
            row = known_rows.get(item.identifier)
            if row is None:
                unknown.append(item.identifier)
            else:
                last = row["last_execution"]
                # Node compares ts >= last_execution, but that minute is done
                # already (the statement would skip it); start just after it.
                known.append((item, row["known_since"] if last is None else last + _TINY))
        if unknown:
            async with self._pool.connection() as conn:
                await conn.execute(
                    self._queries.cron.register_crontabs, {"identifiers": unknown, "start": start}
                )
        if known:
            await self._backfill(known, start)

    async def _backfill(self, known: list[tuple[CronItem, datetime]], start: datetime) -> None:
        # Like Node: walk the minutes oldest first, one statement per minute
        # that has work (last_execution only moves forward, so scheduling a
        # later minute first would lose the earlier ones). An item is due at
        # ts if ts is within its fill and after its last execution. Node
        # starts the walk at start - largest fill; starting at the earliest
        # minute any item can be due gives the same jobs with far fewer steps
        # when items ran recently.
        bounds = [
            (item, max(ceil_minute(start - item.fill), not_before))
            for item, not_before in known
            if item.fill > timedelta(0)
        ]
        if not bounds:
            return
        ts = ceil_minute(min(lower for _, lower in bounds))
        steps = 0
        while ts < start:
            steps += 1
            if steps % 1000 == 0:
                await checkpoint()  # a long window must not starve the event loop
            wall = self._wall(ts)
            due = [item for item, lower in bounds if ts >= lower and matches(item, wall)]
            if due:
                if self._hooks.has(h.CronTick):
                    await self._hooks.emit(h.CronTick(self.worker_id, ts, True))
                logger.debug(
                    "cron backfilling %d item(s) for %s",
                    len(due),
                    cron_timestamp(ts),
                    extra={"worker_id": self.worker_id},
                )
                await self._schedule(due, ts, backfilled=True)
            ts += _MINUTE

    # ------------------------------------------------------------------ scheduling

    async def _schedule(self, items: Iterable[CronItem], ts: datetime, *, backfilled: bool) -> None:
        stamp = cron_timestamp(ts)
        specs = [_spec(item, stamp, backfilled) for item in items]
        params: dict[str, Any] = {
            "specs": _encode(specs).decode(),
            "ts": ts,
            "now": self._clock.now() if self.use_local_time else None,
        }
        rows = await self._pool.fetch(self._queries.cron.schedule_cron_jobs, params)
        if rows:
            logger.debug(
                "cron scheduled %d job(s) for %s",
                len(rows),
                stamp,
                extra={"worker_id": self.worker_id},
            )
        if rows and self._hooks.has(h.CronJobScheduled):
            for row in rows:
                item = self._by_id[row["identifier"]]
                await self._hooks.emit(
                    h.CronJobScheduled(self.worker_id, item.identifier, item.task, ts, backfilled)
                )

    def _wall(self, ts: datetime) -> datetime:
        """``ts`` in the zone the schedules are read in."""
        if self.timezone is not None:
            return ts.astimezone(self.timezone)
        if not self.use_local_time:
            return ts
        # astimezone() without a zone converts to the process's local zone
        # with the offset in force at that instant.
        return ts.astimezone()


def _spec(item: CronItem, stamp: str, backfilled: bool) -> dict[str, Any]:
    # The shape of Node's scheduleCronJobs parameter; the payload's ``_cron``
    # replaces any user ``_cron`` key.
    payload = dict(item.payload or {})
    payload["_cron"] = {"ts": stamp, "backfilled": backfilled}
    return {
        "identifier": item.identifier,
        "job": {
            "task": item.task,
            "payload": payload,
            "queueName": item.queue,
            "runAt": stamp,
            "maxAttempts": item.max_attempts,
            "priority": item.priority,
            "jobKey": item.job_key,
            "jobKeyMode": item.job_key_mode,
        },
    }
