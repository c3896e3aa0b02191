"""Batched completion and failure of jobs.

Finished jobs are recorded in memory and written in one statement per flush.
With no delay configured the batcher is adaptive: it flushes as soon as it
runs, and whatever finished while a flush was in flight goes into the next
one, so a busy worker writes large batches and an idle one writes single
jobs immediately. With a delay it waits that long to gather more.

What a failed write does depends on why it failed:

- the database is unreachable or busy (a transient error): the batch is kept
  and retried with backoff; the jobs stay locked by this worker meanwhile, so
  nothing is lost or run twice (``give_up_after``, used by run_once, bounds
  how long: then the error is raised);
- the database rejected the statement: the batch is split until the row it
  rejects is alone, so one bad row cannot hold the others; that row gets a
  fallback (a failure without the message or payload the database refused);
- anything else is a bug in gw: it is logged, the jobs are handed back to
  the database (they run again later), and the worker stops with a
  :class:`~gw.errors.GwInternalError`, rather than retrying it forever.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from ..core._json import storable_text
from ..db._errors import first_line
from ..errors import DatabaseError, GwInternalError
from ..runtime import CancelScope, Clock, Notify, move_on_after, open_task_group
from ._store import Failure, JobStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("Batcher",)

T = TypeVar("T")

logger = logging.getLogger("gw.worker")

_MAX_BACKOFF = 10.0
_RELEASE_TIMEOUT = 5.0
_BUG_RETRY_DELAY = 60.0


class Batcher:
    """Collects completions and failures and writes them through a :class:`JobStore`."""

    def __init__(
        self,
        store: JobStore,
        *,
        clock: Clock,
        complete_delay: float | None,
        fail_delay: float | None,
        on_flush: Callable[[], None] | None = None,
        give_up_after: float | None = None,
    ) -> None:
        self._store = store
        self._give_up_after = give_up_after
        self._clock = clock
        self._complete_delay = complete_delay
        self._fail_delay = fail_delay
        self._on_flush = on_flush
        self._completed: list[int] = []
        self._completed_keep: list[int] = []
        self._records: dict[int, bytes] = {}
        """History records of completed jobs not yet written, by job id."""
        self._failed: list[Failure] = []
        self._writing = 0
        self._complete_ready = Notify()
        self._fail_ready = Notify()
        self.flushed = Notify()
        """Notified after every successful flush."""
        self.stats = {"completion_flushes": 0, "failure_flushes": 0, "completed": 0, "failed": 0}
        """Counters of what was written (for tests and metrics)."""

    # -- recording (called by executors; never blocks)

    def complete(
        self, job_id: int, keep_queue_locked: bool = False, record: bytes | None = None
    ) -> None:
        if record is not None:
            self._records[job_id] = record
        self._completed.append(job_id)
        if keep_queue_locked:
            self._completed_keep.append(job_id)
        self._complete_ready.notify()

    def fail(self, failure: Failure) -> None:
        self._failed.append(failure)
        self._fail_ready.notify()

    @property
    def pending(self) -> int:
        """Finished jobs not yet written (including those being written now)."""
        return len(self._completed) + len(self._failed) + self._writing

    # -- flushing

    async def run(self) -> None:
        """Flush completions and failures as they come (until cancelled)."""
        async with open_task_group() as tg:
            tg.start_soon(
                self._loop, self._complete_ready, self._complete_delay, self._flush_completions
            )
            tg.start_soon(self._loop, self._fail_ready, self._fail_delay, self._flush_failures)

    async def _loop(
        self, ready: Notify, delay: float | None, flush: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await ready.wait()
            if delay:
                await self._clock.sleep(delay)
            await self._retrying(flush)

    async def flush_all(self) -> None:
        """Write everything pending now, retrying transient errors until cancelled."""
        await self._retrying(self._flush_completions)
        await self._retrying(self._flush_failures)

    async def _retrying(self, flush: Callable[[], Awaitable[None]]) -> None:
        delay = 0.1
        failing_since: float | None = None
        while True:
            try:
                await flush()
                return
            except DatabaseError as ex:
                if not ex.transient:
                    raise  # the write paths isolate rejected rows; this is a bug
                now = self._clock.monotonic()
                if failing_since is None:
                    failing_since = now
                elif self._give_up_after is not None and now - failing_since >= self._give_up_after:
                    raise
                logger.warning(
                    "could not record %d finished job(s) (%s); retrying in %.1f s",
                    self.pending,
                    ex,
                    delay,
                )
            await self._clock.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _flush_completions(self) -> None:
        if not self._completed:
            return
        ids, self._completed = self._completed, []
        keep, self._completed_keep = self._completed_keep, []
        self._writing += len(ids)
        try:
            await self._write_completions(ids, set(keep))
        except DatabaseError as ex:
            if ex.transient:
                # Put them back (in front) so the retry writes them.
                self._completed[:0] = ids
                self._completed_keep[:0] = keep
                raise
            await self._bug(ids, ex)
        except Exception as ex:
            await self._bug(ids, ex)
        except BaseException:
            self._completed[:0] = ids
            self._completed_keep[:0] = keep
            raise
        finally:
            self._writing -= len(ids)
        self.stats["completion_flushes"] += 1
        self.stats["completed"] += len(ids)
        self._flushed()

    async def _write_completions(self, ids: list[int], keep: set[int]) -> None:
        records = self._records

        async def complete(batch: list[int]) -> None:
            history = [records[i] for i in batch if i in records] if records else ()
            await self._store.complete(batch, [i for i in batch if i in keep], history)
            for i in batch:
                records.pop(i, None)

        async def refused(job_id: int, rejected: DatabaseError) -> None:
            logger.error(
                "the database refused to delete completed job %s (%s); recording it as failed",
                job_id,
                rejected,
            )
            if records.pop(job_id, None) is not None:
                # The history record may be what was refused (a NUL in the
                # result): complete the job without it rather than fail it.
                try:
                    await self._store.complete([job_id], [job_id] if job_id in keep else [])
                except DatabaseError as again:
                    if again.transient:
                        raise
                    rejected = again
                else:
                    logger.error(
                        "the database refused the history record of job %s (%s); "
                        "the job completed without it",
                        job_id,
                        _reason(rejected),
                    )
                    return
            message = f"the job succeeded, but gw could not delete it: {_reason(rejected)}"
            await self._write_failures([Failure(job_id, message, keep_queue_locked=job_id in keep)])

        await _isolating(ids, complete, refused)

    async def _flush_failures(self) -> None:
        if not self._failed:
            return
        failed, self._failed = self._failed, []
        self._writing += len(failed)
        try:
            await self._write_failures(failed)
        except DatabaseError as ex:
            if ex.transient:
                self._failed[:0] = failed
                raise
            await self._bug([f.id for f in failed], ex)
        except Exception as ex:
            await self._bug([f.id for f in failed], ex)
        except BaseException:
            self._failed[:0] = failed
            raise
        finally:
            self._writing -= len(failed)
        self.stats["failure_flushes"] += 1
        self.stats["failed"] += len(failed)
        self._flushed()

    async def _write_failures(self, failed: list[Failure]) -> None:
        await _isolating(failed, self._store.fail, self._failure_refused)

    async def _failure_refused(self, failure: Failure, rejected: DatabaseError) -> None:
        if failure.payload is None and failure.message.startswith("gw could not record"):
            # Even the fallback was refused: nothing more gw can write.
            logger.error(
                "the database refused every failure record of job %s (%s); it stays locked "
                "until the stale-lock reset or recovery frees it",
                failure.id,
                rejected,
            )
            return
        logger.error(
            "the database refused the failure of job %s (%s); its error was: %s",
            failure.id,
            rejected,
            storable_text(failure.message, 4096),
        )
        message = (
            f"gw could not record this job's error ({_reason(rejected)}); "
            "the worker's log has the original message"
        )
        # Same verdict (retry, final, snooze), without what the database refused.
        await self._write_failures([replace(failure, message=message, payload=None, history=None)])

    async def _bug(self, ids: list[int], ex: BaseException) -> None:
        """Report an unexpected error, hand the jobs back, and stop the worker."""
        for job_id in ids:
            self._records.pop(job_id, None)
        logger.critical(
            "recording %d finished job(s) failed unexpectedly; handing them back to run again",
            len(ids),
            exc_info=ex,
        )
        with CancelScope(shield=True), move_on_after(_RELEASE_TIMEOUT):
            try:
                await self._store.release_interrupted(
                    ids, _BUG_RETRY_DELAY, "gw could not record this job's outcome (a bug in gw)"
                )
            except DatabaseError as release_error:
                logger.error("could not hand back %d job(s): %s", len(ids), release_error)
        raise GwInternalError(
            f"recording finished jobs failed unexpectedly ({type(ex).__name__}: {ex}); "
            "this is a bug in gw, please report it"
        ) from ex

    def _flushed(self) -> None:
        self.flushed.notify()
        if self._on_flush is not None:
            self._on_flush()


async def _isolating(
    items: list[T],
    write: Callable[[list[T]], Awaitable[None]],
    refused: Callable[[T, DatabaseError], Awaitable[None]],
) -> None:
    """``write(items)``; if the database refuses the batch, split it until the
    row it refuses is alone, and hand that row to ``refused``. Transient
    errors propagate (the caller retries the whole batch)."""
    try:
        await write(items)
        return
    except DatabaseError as ex:
        if ex.transient:
            raise
        rejected = ex
    if len(items) > 1:
        half = len(items) // 2
        await _isolating(items[:half], write, refused)
        await _isolating(items[half:], write, refused)
        return
    await refused(items[0], rejected)


def _reason(ex: DatabaseError) -> str:
    """The database's own words for why it refused a row."""
    return first_line(ex.__cause__ or ex)
