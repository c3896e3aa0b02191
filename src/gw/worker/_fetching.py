"""The fetcher: locks jobs for free executor slots (or the local queue) and
hands them to the dispatch; hands back what was fetched but never started."""

from __future__ import annotations

import inspect
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import hooks as h
from ..db.queries import int_array
from ..errors import DatabaseError, GwError
from ..runtime import Notify

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..runtime import Clock
    from ._config import LocalQueueConfig
    from ._dispatch import Dispatch, Entry
    from ._limits import FleetLimits
    from ._store import JobStore

__all__ = ("Fetcher", "WorkSignal")

logger = logging.getLogger("gw.worker")

T = TypeVar("T")

_MAX_RETRY_DELAY = 30.0


class WorkSignal:
    """Wakes the fetcher: a slot freed up, or the database may hold new jobs.

    Passed to the parts that learn about work (LISTEN, recovery, the batcher
    unlocking queues) instead of the worker itself.
    """

    __slots__ = ("_notify", "announced", "generation", "maybe_more")

    def __init__(self) -> None:
        self._notify = Notify()
        self.maybe_more = True
        """The database may hold runnable jobs this worker has not fetched."""
        self.announced = 0
        """Jobs announced by NOTIFY (counted for the local queue's refetch delay)."""
        self.generation = 0
        """Counts the times jobs may have become available (idle limited keys look again)."""

    def jobs_added(self, count: int = 1) -> None:
        """NOTIFY said ``count`` jobs were added."""
        self.announced += count
        self.jobs_may_be_available()

    def jobs_may_be_available(self) -> None:
        self.maybe_more = True
        self.generation += 1
        self._notify.notify()

    def slot_freed(self) -> None:
        self._notify.notify()

    async def wait(self) -> None:
        await self._notify.wait()


Mode = str
"""Local queue modes, named as in Node's LocalQueue: starting, polling,
waiting, ttl_expired, released."""


class Fetcher:
    """Keeps the dispatch filled with jobs while there are free slots."""

    def __init__(
        self,
        store: JobStore,
        dispatch: Dispatch,
        signal: WorkSignal,
        *,
        wake_executors: Callable[[], None],
        task_ids: Callable[[], str],
        settled: Callable[[], bool],
        hooks: h.HookRegistry,
        worker_id: str,
        clock: Clock,
        concurrency: int,
        poll_interval: float,
        local_queue: LocalQueueConfig | None,
        forbidden_flags: Any,
        once: bool,
        quick_jobs: Callable[[], bool],
        limits: FleetLimits | None = None,
    ) -> None:
        self._store = store
        self._dispatch = dispatch
        self._signal = signal
        self._wake_executors = wake_executors
        self._task_ids = task_ids
        self._settled = settled
        self._hooks = hooks
        self._worker_id = worker_id
        self._clock = clock
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._lq = local_queue
        self._forbidden_flags = forbidden_flags
        self._once = once
        self._quick_jobs = quick_jobs
        self._limits = limits
        self._limited_queues = limits.limited_queues if limits is not None else []
        self._stopping = False
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self.mode: Mode = "starting"
        self.finished = False
        """run_once: everything ready (and what it added) was processed."""
        self.fetches = 0
        """Fetch statements run so far."""

    def stop(self) -> None:
        """Stop fetching (the loop ends after the fetch in flight, if any)."""
        self._stopping = True
        self._signal.slot_freed()

    async def run(self) -> None:
        """Fetch until stopped (or, for run_once, until nothing is left)."""
        lq = self._lq
        clock = self._clock
        dispatch = self._dispatch
        signal = self._signal
        target = self._concurrency + (lq.size if lq else 0)
        batch_cap = lq.size if lq else self._concurrency
        # Refill early so the next batch arrives before the executors run dry.
        refill_at = (lq.size * 3 // 4) if lq else 0
        poll_at = clock.monotonic() + self._poll_interval
        # run_once: after jobs ran, look once more for jobs they added (no
        # jobs ran yet, so the first empty fetch is the last).
        rechecked = True
        if lq is not None:
            await self._hooks.emit(h.LocalQueueInit(self._worker_id, lq.size))
        # Without a local queue: while a backlog keeps fetches full and jobs end
        # within milliseconds, fetch one job ahead per slot. Each fetch walks
        # the dead index entries completed jobs left (until VACUUM), so fewer,
        # larger fetches keep a deep queue as fast as a shallow one; a job
        # waits ahead for at most one quick job to end, so other workers lose
        # nothing they could have started sooner.
        ahead = 0
        limits = self._limits
        while not self._stopping:
            buffered = dispatch.buffered
            if limits is not None and clock.monotonic() >= self._retry_at:
                # Limited keys first: the main fetch would take every free slot.
                # A busy worker (slots full, jobs buffered ahead) still takes
                # one job of a due key: it starts after the buffered jobs
                # ahead of it, and the key's limit bounds how many it takes.
                slots = max(1, self._concurrency - dispatch.running - buffered)
                got = await self._fetch_limited(limits, slots)
                if got is None:
                    continue
                if got:
                    rechecked = False
                    continue
                buffered = dispatch.buffered
            free = target + ahead - dispatch.running - buffered
            if (lq is not None and buffered > refill_at) or (ahead and buffered):
                # Fetch once the buffered jobs have started: larger, fewer fetches.
                free = 0
            now = clock.monotonic()
            if free > 0 and signal.maybe_more and now >= self._retry_at:
                if lq is not None:
                    await self._set_mode("polling")
                asked = min(free, batch_cap + ahead)
                got = await self._fetch(asked)
                if got is None:
                    continue  # failed: retried at _retry_at
                if got:
                    rechecked = False
                if lq is None:
                    deep = got == asked and self._quick_jobs()
                    ahead = self._concurrency if deep else 0
                if got < asked:
                    signal.maybe_more = False
                    poll_at = clock.monotonic() + self._poll_interval
                    if lq is not None and lq.refetch_delay and got < lq.refetch_delay.threshold:
                        await self._refetch_delay(lq)
                continue
            if self._once:
                if self._settled() and (limits is None or not limits.waiting):
                    if rechecked:
                        self.finished = True
                        return
                    # Everything finished; look once more for jobs they added.
                    rechecked = True
                    signal.maybe_more = True
                    continue
                if lq is not None:
                    await self._set_mode("waiting")
                wake = self._limits_wake(now)
                with clock.move_on_after(None if wake is None else max(0.0, wake - now)):
                    await signal.wait()
                continue
            deadline: float | None = None
            if free > 0:
                deadline = max(poll_at, self._retry_at)
            wake = self._limits_wake(now)
            if wake is not None:
                deadline = wake if deadline is None else min(deadline, wake)
            if lq is not None:
                expires = dispatch.expires_at(lq.ttl)
                if expires is not None:
                    if now >= expires:
                        await self._set_mode("ttl_expired")
                        await self.return_unclaimed("local queue ttl expired")
                        continue
                    deadline = expires if deadline is None else min(deadline, expires)
            if deadline is not None and now >= deadline:
                if free > 0 and now >= poll_at:
                    signal.maybe_more = True  # time to poll
                    poll_at = now + self._poll_interval
                continue  # (or a limited key is due)
            if lq is not None:
                await self._set_mode("waiting")
            with clock.move_on_after(None if deadline is None else deadline - now):
                await signal.wait()

    def _limits_wake(self, now: float) -> float | None:
        """When a limited key is next due."""
        limits = self._limits
        if limits is None:
            return None
        times = [t for t in (limits.next_at(), limits.idle_until()) if t is not None]
        return max(min(times), self._retry_at) if times else None

    async def _fetch_limited(self, limits: FleetLimits, slots: int) -> int | None:
        """Fetch the due limited keys' jobs into at most ``slots`` free slots."""
        total = 0
        signal = self._signal
        for state in limits.due(self._clock.monotonic(), signal.generation):
            if slots <= 0:
                break
            if state.limit.kind == "task":
                if state.task_id is None:
                    continue
                task_ids = int_array([state.task_id])
            else:
                task_ids = self._task_ids()
            skip = self._limited_queues if state.limit.kind == "task" else ()
            fetch = partial(
                self._store.fetch_limited, state.limit, slots, task_ids, limited_queues=skip
            )
            fetched = await self._fetching(f"fetching jobs of {state.limit.key}", fetch)
            if fetched is None:
                return None
            entries, granted, tokens = fetched
            limits.fetched(
                state,
                asked=slots,
                granted=granted,
                got=len(entries),
                tokens=tokens,
                now=self._clock.monotonic(),
                generation=signal.generation,
            )
            if entries:
                await self._take(entries)
                slots -= len(entries)
                total += len(entries)
        return total

    async def _fetching(self, what: str, fetch: Callable[[list[str]], Awaitable[T]]) -> T | None:
        """Run one fetch statement (after returning strays); None if it failed,
        and then it is retried with backoff."""
        self.fetches += 1
        try:
            flags = await self._current_forbidden_flags()
            if self._store.strays_possible:
                await self._store.return_strays()
            return await fetch(flags)
        except DatabaseError as ex:
            self._failed(f"{what} failed: {ex}", ex)
        except Exception as ex:  # the user's forbidden_flags callable
            self._failed(
                f"the forbidden_flags callable raised {type(ex).__name__}: {ex}; no jobs "
                "are fetched until it works",
                ex,
            )
        return None

    async def _fetch(self, limit: int) -> int | None:
        """Fetch up to ``limit`` jobs into the dispatch; None if fetching failed."""
        entries = await self._fetching(
            "fetching jobs",
            lambda flags: self._store.fetch(limit, self._task_ids(), flags, self._limited_queues),
        )
        if entries is None:
            return None
        self._retry_delay = 0.0
        if not entries:
            return 0
        await self._take(entries)
        return len(entries)

    async def _take(self, entries: list[Entry]) -> None:
        """Hand fetched jobs to the dispatch (after the JobFetch hooks)."""
        hooks = self._hooks
        if hooks.has(h.JobFetch):
            for entry in entries:
                await hooks.emit(h.JobFetch(self._worker_id, entry[0]))
        if self._lq is not None and hooks.has(h.LocalQueueGetJobsComplete):
            await hooks.emit(h.LocalQueueGetJobsComplete(self._worker_id, len(entries)))
        self._dispatch.add(entries, self._clock.monotonic())
        self._wake_executors()

    def _failed(self, message: str, ex: BaseException) -> None:
        if self._once:  # run_once reports the failure instead of retrying
            if isinstance(ex, DatabaseError):
                raise ex
            raise GwError(message) from ex
        # Back off from the poll interval up to 30 s, logging once per attempt.
        delay = self._retry_delay * 2 if self._retry_delay else self._poll_interval
        self._retry_delay = min(delay, max(_MAX_RETRY_DELAY, self._poll_interval))
        self._retry_at = self._clock.monotonic() + self._retry_delay
        logger.warning(
            "%s; trying again in %.3g s",
            message,
            self._retry_delay,
            extra={"worker_id": self._worker_id},
        )

    async def _current_forbidden_flags(self) -> list[str]:
        source = self._forbidden_flags
        if source is None:
            return []
        if callable(source):
            value = source()
            if inspect.isawaitable(value):
                value = await value
            return [str(f) for f in (value or [])]
        return list(source)

    async def _refetch_delay(self, lq: LocalQueueConfig) -> None:
        delay = lq.refetch_delay
        assert delay is not None
        abort_at = delay.max_abort_threshold or 5 * lq.size
        hooks = self._hooks
        signal = self._signal
        await hooks.emit(
            h.LocalQueueRefetchDelayStart(
                self._worker_id, delay.duration, delay.threshold, abort_at
            )
        )
        signal.announced = 0
        deadline = self._clock.monotonic() + delay.duration
        while not self._stopping:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                await hooks.emit(h.LocalQueueRefetchDelayExpired(self._worker_id))
                break
            with self._clock.move_on_after(remaining):
                await signal.wait()
            if signal.announced >= abort_at:
                await hooks.emit(
                    h.LocalQueueRefetchDelayAbort(self._worker_id, signal.announced, abort_at)
                )
                break
        signal.maybe_more = True

    async def _set_mode(self, mode: Mode) -> None:
        """Track the local queue's mode (Node's names) and report changes."""
        old = self.mode
        if mode == old:
            return
        self.mode = mode
        if self._hooks.has(h.LocalQueueSetMode):
            await self._hooks.emit(h.LocalQueueSetMode(self._worker_id, old, mode))

    async def return_unclaimed(self, reason: str = "shutdown") -> None:
        """Hand back jobs that were fetched but not started."""
        if self._stopping and self._lq is not None:
            await self._set_mode("released")
        unclaimed = self._dispatch.unclaimed()
        if not unclaimed.ids:
            return
        try:
            await self._store.return_unclaimed(unclaimed.ids, unclaimed.keep_queue_locked)
        except DatabaseError as ex:
            # No longer ours to run: the next stray check hands them back.
            self._store.disown(unclaimed.ids)
            logger.error(
                "could not return %d unstarted job(s) (%s); they stay locked by %s until "
                "it can, or until they are recovered",
                len(unclaimed.ids),
                ex,
                self._worker_id,
            )
            return
        if self._lq is not None:
            await self._hooks.emit(h.LocalQueueReturnJobs(self._worker_id, len(unclaimed.ids)))
        logger.info("returned %d unstarted job(s) (%s)", len(unclaimed.ids), reason)
