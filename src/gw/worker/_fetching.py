"""Fetching: lock jobs for free executor slots (or the local queue) and hand them out.

Named queues stay serial even when one fetch returns several jobs of the
same queue: the extra ones wait here and run one after another, and the
queue lock is released only with the last of them."""

from __future__ import annotations

import inspect
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import psycopg

from ..core import hooks as h
from ..db.queries import int_array
from ..errors import GwError
from ..runtime import CancelScope, move_on_after
from ..types import Job
from ._state import Entry, Mode, WorkerState, decode_json

if TYPE_CHECKING:
    from ._config import LocalQueueConfig

logger = logging.getLogger("gw.worker")


class FetchingMixin(WorkerState):
    """The fetch loop, local-queue bookkeeping and handing jobs back."""

    async def _fetch_loop(self) -> None:
        try:
            await self._fetch_until_stopped()
        finally:
            await self._fetch_conn.release()

    async def _fetch_until_stopped(self) -> None:
        lq = self.local_queue
        target = self.concurrency + (lq.size if lq else 0)
        batch_cap = lq.size if lq else self.concurrency
        # Refill early so the next batch arrives before the executors run dry.
        refill_at = (lq.size * 3 // 4) if lq else 0
        poll_at = self.clock.monotonic() + self.poll_interval
        rechecked = False
        if lq is not None:
            await self.hooks.emit(h.LocalQueueInit(self.worker_id, lq.size))
        while not self._stopping:
            buffered = len(self._ready) + self._waiting_count()
            free = target - self._running - buffered
            if lq is not None and buffered > refill_at:
                free = 0
            if free > 0 and self._maybe_more:
                if lq is not None:
                    await self._set_lq_mode("polling")
                asked = min(free, batch_cap)
                got = await self._fetch(asked)
                if got:
                    rechecked = False
                if got < asked:
                    self._maybe_more = False
                    poll_at = self.clock.monotonic() + self.poll_interval
                    if lq is not None and lq.refetch_delay and got < lq.refetch_delay.threshold:
                        await self._refetch_delay(lq)
                continue
            if self._once:
                assert self._batcher is not None
                if self._running == 0 and buffered == 0 and not self._batcher.pending:
                    if rechecked:
                        self.shutdown("run_once complete")
                        return
                    # Everything finished; look once more for jobs they added.
                    rechecked = True
                    self._maybe_more = True
                    continue
                if lq is not None:
                    await self._set_lq_mode("waiting")
                await self._fetch_notify.wait()
                continue
            now = self.clock.monotonic()
            deadline: float | None = poll_at if free > 0 else None
            if lq is not None and self._buffer_since is not None:
                expires = self._buffer_since + lq.ttl
                if now >= expires:
                    await self._set_lq_mode("ttl_expired")
                    await self._return_unclaimed(reason="local queue ttl expired")
                    continue
                deadline = expires if deadline is None else min(deadline, expires)
            if deadline is not None and now >= deadline:
                self._maybe_more = True  # time to poll
                poll_at = now + self.poll_interval
                continue
            if lq is not None:
                await self._set_lq_mode("waiting")
            with move_on_after(None if deadline is None else deadline - now):
                await self._fetch_notify.wait()

    async def _fetch(self, limit: int) -> int:
        assert self._pool is not None
        flags = await self._current_forbidden_flags()
        params: dict[str, Any] = {
            "task_ids": self._task_ids_literal,
            "limit": limit,
            "worker_id": self.worker_id,
        }
        if flags:
            params["forbidden_flags"] = flags
        if self.use_local_time:
            params["now"] = self.clock.now()
        query = self.queries.get_jobs(local_time=self.use_local_time, with_flags=bool(flags))
        try:
            conn = await self._fetch_conn.get()
            # Binary results: timestamps decode several times faster than text.
            cur = await conn.execute(query, params, prepare=True, binary=True)
            rows = await cur.fetchall()
            unknown = {r[1] for r in rows if r[1] is not None} - self._queue_names.keys()
            if unknown:
                cur = await conn.execute(self.queries.queue_names, {"ids": int_array(unknown)})
                self._queue_names.update(await cur.fetchall())
        except (psycopg.Error, GwError) as ex:
            await self._fetch_conn.discard()
            logger.warning("fetching jobs failed: %s; retrying after the poll interval", ex)
            self._maybe_more = False
            return limit  # not "fewer than asked": the poll timer decides the retry
        if not rows:
            return 0
        jobs = [self._job_from_row(row) for row in rows]
        if self.hooks.has(h.JobFetch):
            for job, _ in jobs:
                await self.hooks.emit(h.JobFetch(self.worker_id, job))
        if self.local_queue is not None and self.hooks.has(h.LocalQueueGetJobsComplete):
            await self.hooks.emit(h.LocalQueueGetJobsComplete(self.worker_id, len(jobs)))
        self._dispatch(jobs)
        return len(rows)

    def _job_from_row(self, row: tuple[Any, ...]) -> Entry:
        task = self._task_by_id.get(row[2])
        payload_json: str = row[3]
        # Positional, in Job's field order: this runs once per fetched job.
        job = Job(
            row[0],
            task.identifier if task else f"<unknown task {row[2]}>",
            self._queue_names.get(row[1]) if row[1] is not None else None,
            decode_json(payload_json),
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[14],
            row[15],
            row[16],
            row[2],
            row[1],
        )
        return job, payload_json

    def _dispatch(self, jobs: list[Entry]) -> None:
        for entry in jobs:
            qid = entry[0].job_queue_id
            if qid is not None:
                if qid in self._queue_active:
                    self._queue_waiting.setdefault(qid, deque()).append(entry)
                    continue
                self._queue_active.add(qid)
            self._ready.append(entry)
        if self.local_queue is not None and self._buffer_since is None:
            self._buffer_since = self.clock.monotonic()
        self._wake_executor()

    def _wake_executor(self) -> None:
        # Wake one idle executor at a time: it wakes the next only if work is
        # still left when it starts, so quick jobs do not stampede the pool.
        if self._ready and self._waking == 0 and self._parked.unpark(1):
            self._waking += 1

    def _waiting_count(self) -> int:
        return sum(len(d) for d in self._queue_waiting.values()) if self._queue_waiting else 0

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
        await self.hooks.emit(
            h.LocalQueueRefetchDelayStart(self.worker_id, delay.duration, delay.threshold, abort_at)
        )
        self._notifications = 0
        deadline = self.clock.monotonic() + delay.duration
        while not self._stopping:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                await self.hooks.emit(h.LocalQueueRefetchDelayExpired(self.worker_id))
                break
            with move_on_after(remaining):
                await self._fetch_notify.wait()
            if self._notifications >= abort_at:
                await self.hooks.emit(
                    h.LocalQueueRefetchDelayAbort(self.worker_id, self._notifications, abort_at)
                )
                break
        self._maybe_more = True

    async def _set_lq_mode(self, mode: Mode) -> None:
        """Track the local queue's mode (Node's names) and report changes."""
        old = self._lq_mode
        if mode == old:
            return
        self._lq_mode = mode
        if self.hooks.has(h.LocalQueueSetMode):
            await self.hooks.emit(h.LocalQueueSetMode(self.worker_id, old, mode))

    async def _return_unclaimed(self, reason: str = "shutdown") -> None:
        """Hand back jobs that were fetched but not started."""
        if self._stopping and self.local_queue is not None:
            await self._set_lq_mode("released")
        entries = list(self._ready)
        self._ready.clear()
        # A queue whose head job is running here stays locked until it ends.
        unstarted_heads = {job.job_queue_id for job, _ in entries}
        running_queues = self._queue_active - unstarted_heads
        for waiting in self._queue_waiting.values():
            entries.extend(waiting)
        self._queue_waiting.clear()
        self._buffer_since = None
        if not entries:
            return
        keep = [job.id for job, _ in entries if job.job_queue_id in running_queues]
        self._queue_active = running_queues
        ids = [job.id for job, _ in entries]
        assert self._pool is not None
        with CancelScope(shield=True):
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        self.queries.return_jobs,
                        {"ids": ids, "keep": keep, "worker_id": self.worker_id},
                    )
            except (psycopg.Error, GwError) as ex:
                logger.error(
                    "could not return %d unstarted job(s) (%s); they stay locked by %s",
                    len(ids),
                    ex,
                    self.worker_id,
                )
                return
        if self.local_queue is not None:
            await self.hooks.emit(h.LocalQueueReturnJobs(self.worker_id, len(ids)))
        logger.info("returned %d unstarted job(s) (%s)", len(ids), reason)
