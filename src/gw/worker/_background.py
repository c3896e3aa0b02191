"""Background tasks of a running worker: LISTEN, the stale-lock reset, OS
signals, the shutdown trigger, and the BeforeJobSchedule hook for utils.

Each gets what it needs passed in (a signal to wake the fetcher, the store,
a callback), never the worker. None of them can stop the worker by failing:
errors are logged and retried with backoff.
"""

from __future__ import annotations

import logging
import math
import random
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from ..core import hooks as h
from ..db._errors import first_line
from ..db.listen import Listener
from ..errors import DatabaseError, HookError, JobScheduleSkipped
from ..runtime import Event, open_signal_receiver
from ._cancel import CANCEL_CHANNEL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..db.pool import Pool
    from ..db.queries import Queries
    from ..runtime import Clock
    from ..types import JobSpec
    from ._cancel import CancelWatcher
    from ._config import History
    from ._fetching import WorkSignal
    from ._health import HealthState
    from ._store import JobStore

__all__ = (
    "listen_for_jobs",
    "notification_count",
    "prune_history_loop",
    "reset_locked_loop",
    "sample_backlog_loop",
    "schedule_interceptor",
    "watch_signals",
    "watch_trigger",
)

logger = logging.getLogger("gw.worker")

_decode_json = msgspec.json.Decoder().decode
_LISTEN_RETRY_MAX = 60.0


def notification_count(payload: str) -> int:
    """How many new jobs a ``jobs:insert`` payload announces (1 when it does not say)."""
    if not payload:
        return 1
    try:
        data = _decode_json(payload)
    except (msgspec.DecodeError, RecursionError):
        return 1
    if isinstance(data, dict):
        count = data.get("count", 1)
        return int(count) if isinstance(count, (int, float)) and count == count else 1
    return 1


async def listen_for_jobs(
    url: str,
    work: WorkSignal,
    clock: Clock,
    poll_interval: float,
    health: HealthState,
    cancels: CancelWatcher | None = None,
) -> None:
    """LISTEN for new jobs (and gw's cancel requests) and wake the fetcher (or
    the cancel watcher); poll meanwhile when LISTEN fails."""

    def on_connect() -> None:
        health.listening, health.listen_error = True, None
        # Jobs (or cancel requests) may have been added while we were not listening.
        work.jobs_may_be_available()
        if cancels is not None:
            cancels.check_soon()

    channels = ["jobs:insert"] if cancels is None else ["jobs:insert", CANCEL_CHANNEL]

    delay = max(poll_interval, 1.0)
    while True:
        try:
            async with Listener(url, channels, on_connect=on_connect, clock=clock) as listener:
                delay = max(poll_interval, 1.0)
                async for note in listener:
                    if note.channel == CANCEL_CHANNEL:
                        assert cancels is not None
                        cancels.notified(note.payload)
                        continue
                    count = notification_count(note.payload)
                    if count > 0:
                        work.jobs_added(count)
        except Exception as ex:  # never fatal: fetching falls back to polling
            health.listening, health.listen_error = False, str(ex) or type(ex).__name__
            logger.warning(
                "cannot LISTEN for new jobs (%s); polling every %g s meanwhile, "
                "trying LISTEN again in %g s",
                ex,
                poll_interval,
                delay,
            )
            await clock.sleep(delay)
            delay = min(delay * 2, _LISTEN_RETRY_MAX)


async def reset_locked_loop(store: JobStore, interval: tuple[float, float], clock: Clock) -> None:
    """Every ``interval`` (random within the range), unlock jobs locked > 4 h."""
    low, high = interval
    await clock.sleep(random.random() * min(60.0, high))
    while True:
        try:
            await store.reset_locked()
        except DatabaseError as ex:
            logger.warning("resetting stale locks failed: %s", ex)
        await clock.sleep(low + random.random() * (high - low))


async def prune_history_loop(pool: Pool, queries: Queries, history: History, clock: Clock) -> None:
    """Delete history rows older than ``history.keep`` every ``prune_interval``
    (one worker at a time across the fleet; the others skip that round)."""
    chunk = 10000
    await clock.sleep(random.random() * min(60.0, history.prune_seconds))
    while True:
        before = clock.now() - timedelta(seconds=history.keep_seconds)
        try:
            while True:
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        queries.prune_history, {"before": before, "chunk": chunk}
                    )
                    if cur.rowcount < chunk:
                        break
        except Exception as ex:  # never fatal: the next round tries again
            logger.warning("pruning job history failed: %s", first_line(ex))
        await clock.sleep(history.prune_seconds)


async def sample_backlog_loop(pool: Pool, queries: Queries, history: History, clock: Clock) -> None:
    """Record the queue's shape (ready, scheduled, running, failed) once per
    ``history.sample_interval`` for the admin's backlog chart: the first worker
    of the fleet to reach a slot writes it, the others skip it."""
    interval = history.sample_seconds
    if interval is None:
        return
    while True:
        now = clock.now().timestamp()
        slot = math.floor(now / interval) * interval
        # Shortly after the slot starts, spread so a fleet does not count at once.
        await clock.sleep(slot + interval - now + random.random() * min(5.0, interval / 10))
        slot += interval
        try:
            async with pool.connection() as conn:
                await conn.execute(
                    queries.sample_backlog,
                    {"slot": datetime.fromtimestamp(slot, UTC), "now": clock.now()},
                )
        except Exception as ex:  # never fatal: the chart just misses a point
            logger.warning("sampling the backlog failed: %s", first_line(ex))


async def watch_signals(on_signal: Callable[[str], None]) -> None:
    """Call ``on_signal(name)`` for every SIGINT/SIGTERM (main thread only)."""
    try:
        receiver = open_signal_receiver(signal.SIGINT, signal.SIGTERM)
    except (RuntimeError, ValueError, NotImplementedError):
        return  # not the main thread (or no signal support): nothing to listen to
    with receiver as signals:
        async for signum in signals:
            on_signal(signal.Signals(signum).name)


async def watch_trigger(
    trigger: Event | Callable[[], Awaitable[Any]], on_fire: Callable[[str], None]
) -> None:
    """Wait for the user's shutdown trigger, then call ``on_fire(reason)``."""
    try:
        if isinstance(trigger, Event):
            await trigger.wait()
        else:
            await trigger()
    except Exception as ex:
        logger.error("the shutdown trigger raised %s: %s; shutting down", type(ex).__name__, ex)
        on_fire("shutdown trigger failed")
        return
    on_fire("shutdown trigger")


def schedule_interceptor(
    hooks: h.HookRegistry,
) -> Callable[[str, Any, JobSpec], Awaitable[tuple[str, Any, JobSpec]]]:
    """The BeforeJobSchedule hook as WorkerUtils' ``before_schedule`` callback."""

    async def before_schedule(
        identifier: str, payload: Any, spec: JobSpec
    ) -> tuple[str, Any, JobSpec]:
        decision = await hooks.intercept(h.BeforeJobSchedule(identifier, payload, spec))
        if isinstance(decision, h.Skip):
            raise JobScheduleSkipped(f"a BeforeJobSchedule hook skipped job {identifier!r}")
        if isinstance(decision, h.Fail):
            raise HookError(
                f"a BeforeJobSchedule hook refused job {identifier!r}: {decision.message}"
            )
        if isinstance(decision, h.Rewrite):
            replace = decision.replace_payload and decision.payload is not None
            new_payload = decision.payload if replace else payload
            if isinstance(payload, list) and (not isinstance(new_payload, list) or not new_payload):
                raise HookError(
                    f"a BeforeJobSchedule hook must keep batch job {identifier!r}'s payload a "
                    "non-empty JSON array"
                )
            return (decision.identifier or identifier, new_payload, decision.spec or spec)
        return identifier, payload, spec

    return before_schedule
