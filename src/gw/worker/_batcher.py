"""Batched completion and failure of jobs.

Finished jobs are recorded in memory and written in one statement per flush.
With no delay configured the batcher is adaptive: it flushes as soon as it
runs, and whatever finished while a flush was in flight goes into the next
one, so a busy worker writes large batches and an idle one writes single
jobs immediately. With a delay it waits that long to gather more.

A flush that fails (database down) is retried with backoff: the jobs stay
locked by this worker until it succeeds, so nothing is lost or run twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg

from ..db.queries import int_array
from ..runtime import CancelScope, Clock, Notify, move_on_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..db.pool import Pool
    from ..db.queries import Queries

__all__ = ("Batcher",)

logger = logging.getLogger("gw.worker")

_FLUSH_TIMEOUT_ON_EXIT = 15.0
_encoder = msgspec.json.Encoder()


class Batcher:
    """Collects completions and failures and writes them in batches."""

    def __init__(
        self,
        *,
        pool: Pool,
        queries: Queries,
        worker_id: str,
        clock: Clock,
        complete_delay: float | None,
        fail_delay: float | None,
    ) -> None:
        self._pool = pool
        self._q = queries
        self._worker_id = worker_id
        self._clock = clock
        self._complete_delay = complete_delay
        self._fail_delay = fail_delay
        self._complete_conn = pool.pinned()
        self._fail_conn = pool.pinned()
        self._writing = 0
        self._completed: list[int] = []
        self._completed_keep: list[int] = []
        self._failed: list[dict[str, Any]] = []
        self._complete_ready = Notify()
        self._fail_ready = Notify()
        self.flushed = Notify()
        """Notified after every successful flush (tests and run_once wait on it)."""
        self.stats = {"completion_flushes": 0, "failure_flushes": 0, "completed": 0, "failed": 0}
        """Counters of what was written (for tests and metrics)."""
        self.on_flush: Callable[[], None] | None = None
        """Called after a flush: finished jobs may have unlocked queues, so the
        worker should look for work again."""

    # -- recording (called by executors; never blocks)

    def complete(self, job_id: int, keep_queue_locked: bool = False) -> None:
        self._completed.append(job_id)
        if keep_queue_locked:
            self._completed_keep.append(job_id)
        self._complete_ready.notify()

    def fail(
        self,
        job_id: int,
        message: str,
        *,
        replacement_payload: bytes | None = None,
        keep_queue_locked: bool = False,
    ) -> None:
        entry: dict[str, Any] = {"id": job_id, "message": message, "keep": keep_queue_locked}
        if replacement_payload is not None:
            entry["payload"] = msgspec.Raw(replacement_payload)
        self._failed.append(entry)
        self._fail_ready.notify()

    @property
    def pending(self) -> int:
        """Finished jobs not yet written (including those being written now)."""
        return len(self._completed) + len(self._failed) + self._writing

    # -- flushing

    async def run_completions(self) -> None:
        """Flush completions forever (run as a task)."""
        while True:
            await self._complete_ready.wait()
            if self._complete_delay:
                await self._clock.sleep(self._complete_delay)
            await self._retrying(self._flush_completions)

    async def run_failures(self) -> None:
        """Flush failures forever (run as a task)."""
        while True:
            await self._fail_ready.wait()
            if self._fail_delay:
                await self._clock.sleep(self._fail_delay)
            await self._retrying(self._flush_failures)

    async def flush_all(self) -> None:
        """Write everything pending now (shielded; used on shutdown)."""
        with CancelScope(shield=True), move_on_after(_FLUSH_TIMEOUT_ON_EXIT) as scope:
            await self._retrying(self._flush_completions)
            await self._retrying(self._flush_failures)
        with CancelScope(shield=True):
            await self._complete_conn.release()
            await self._fail_conn.release()
        if scope.cancelled_caught and self.pending:
            logger.error(
                "could not record %d finished job(s) before exiting; they stay locked by %s "
                "until unlocked (force_unlock_workers) or recovered",
                self.pending,
                self._worker_id,
            )

    async def _retrying(self, flush: Any) -> None:
        delay = 0.1
        while True:
            try:
                await flush()
                return
            except (psycopg.Error, OSError) as ex:
                logger.warning("could not record finished jobs (%s); retrying in %.1fs", ex, delay)
            except Exception as ex:  # a GwError from the pool (timeout, closed)
                logger.warning("could not record finished jobs (%s); retrying in %.1fs", ex, delay)
            await self._clock.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _flush_completions(self) -> None:
        if not self._completed:
            return
        ids, self._completed = self._completed, []
        keep, self._completed_keep = self._completed_keep, []
        self._writing += len(ids)
        try:
            conn = await self._complete_conn.get()
            await conn.execute(
                self._q.complete_jobs,
                {"ids": int_array(ids), "keep": int_array(keep), "worker_id": self._worker_id},
                prepare=True,
            )
        except BaseException:
            # Put them back (in front) so the retry writes them.
            self._completed[:0] = ids
            self._completed_keep[:0] = keep
            await self._complete_conn.discard()
            raise
        finally:
            self._writing -= len(ids)
        self.stats["completion_flushes"] += 1
        self.stats["completed"] += len(ids)
        self._flushed()

    async def _flush_failures(self) -> None:
        if not self._failed:
            return
        failed, self._failed = self._failed, []
        self._writing += len(failed)
        try:
            conn = await self._fail_conn.get()
            await conn.execute(
                self._q.fail_jobs,
                {"failures": _encoder.encode(failed).decode(), "worker_id": self._worker_id},
                prepare=True,
            )
        except BaseException:
            self._failed[:0] = failed
            await self._fail_conn.discard()
            raise
        finally:
            self._writing -= len(failed)
        self.stats["failure_flushes"] += 1
        self.stats["failed"] += len(failed)
        self._flushed()

    def _flushed(self) -> None:
        self.flushed.notify()
        if self.on_flush is not None:
            self.on_flush()
