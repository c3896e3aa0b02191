"""Executing: the executor tasks, each running jobs one after another, and
recording how each ended (complete, fail, or interrupted by shutdown)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import psycopg

from ..core import hooks as h
from ..db.queries import INTERRUPTED_JOB_MESSAGE
from ..errors import GwError, PayloadError
from ..runtime import CancelScope, checkpoint, open_task_group
from ._execute import Outcome, execute
from ._state import Entry, WorkerState, job_extra

if TYPE_CHECKING:
    from ..types import Job

logger = logging.getLogger("gw.worker")

# Executors yield to the scheduler at least this often when jobs never block.
_FAIRNESS_INTERVAL = 0.005


class ExecutingMixin(WorkerState):
    """Executors, job outcomes and the release of interrupted jobs."""

    async def _release_interrupted(self) -> None:
        """Release jobs cancelled mid-run (shutdown): retry later, attempt not counted."""
        jobs, self._interrupted = self._interrupted, []
        if not jobs:
            return
        assert self._pool is not None
        with CancelScope(shield=True):
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        self.queries.release_interrupted_jobs,
                        {
                            "ids": [j.id for j in jobs],
                            "worker_id": self.worker_id,
                            "delay": self.shutdown_config.interrupted_job_retry_delay,
                            "message": INTERRUPTED_JOB_MESSAGE,
                        },
                    )
            except (psycopg.Error, GwError) as ex:
                logger.error("could not release %d interrupted job(s): %s", len(jobs), ex)
                return
            for job in jobs:
                logger.warning(
                    "job %s (%s) interrupted by shutdown; it will run again later",
                    job.id,
                    job.task_identifier,
                    extra=job_extra(job),
                )
                await self.hooks.emit(h.JobInterrupted(self.worker_id, job))

    async def _executors(self, scope: CancelScope) -> None:
        with scope:
            async with open_task_group() as tg:
                for _ in range(self.concurrency):
                    tg.start_soon(self._executor)

    async def _executor(self) -> None:
        ready = self._ready
        last_yield = time.perf_counter()
        while True:
            if not ready:
                if self._stopping:
                    return
                await self._parked.park()
                self._waking -= 1
                last_yield = time.perf_counter()
                continue
            entry = ready.popleft()
            if ready:
                self._wake_executor()
            if self.local_queue is not None and not ready and not self._queue_waiting:
                self._buffer_since = None
            await self._run_one(entry)
            now = time.perf_counter()
            if now - last_yield >= _FAIRNESS_INTERVAL:
                await checkpoint()
                last_yield = now

    async def _run_one(self, entry: Entry) -> None:
        job, payload_json = entry
        assert self._batcher is not None
        assert self._env is not None
        self._running += 1
        started = time.perf_counter()
        try:
            task = self._task_by_id.get(job.task_id)
            if task is None:
                outcome = Outcome(error=f"Unsupported task {job.task_identifier!r}")
            else:
                outcome = await execute(job, task, payload_json, self._env)
        except BaseException:
            # Only cancellation gets here (execute() turns everything else into
            # an outcome): shutdown or an outer cancel interrupted the job.
            self._interrupted.append(job)
            self._end_queue_turn(job)
            self._job_finished()
            raise
        self._job_finished()
        await self._record(job, outcome, time.perf_counter() - started)

    def _job_finished(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._idle.notify()
        self._fetch_notify.notify()

    def _end_queue_turn(self, job: Job) -> bool:
        """Start the next local job of the same queue; True if the queue stays locked."""
        qid = job.job_queue_id
        if qid is None:
            return False
        waiting = self._queue_waiting.get(qid)
        if waiting and not self._stopping:
            self._ready.appendleft(waiting.popleft())
            if not waiting:
                del self._queue_waiting[qid]
            self._wake_executor()
            return True
        self._queue_active.discard(qid)
        return False

    async def _record(self, job: Job, outcome: Outcome, elapsed: float) -> None:
        assert self._batcher is not None
        keep = self._end_queue_turn(job)
        self.jobs_processed += 1
        if outcome.error is None:
            self._batcher.complete(job.id, keep)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "job %s (%s) %s in %.1f ms",
                    job.id,
                    job.task_identifier,
                    "skipped" if outcome.skipped else "completed",
                    elapsed * 1000,
                    extra=job_extra(job, elapsed),
                )
            if self.hooks.has(h.JobComplete):
                await self.hooks.emit(h.JobComplete(self.worker_id, job, elapsed))
            return
        self._batcher.fail(
            job.id,
            outcome.error,
            replacement_payload=outcome.replacement_payload,
            keep_queue_locked=keep,
        )
        final = job.attempts >= job.max_attempts
        logger.log(
            logging.ERROR if final else logging.WARNING,
            "job %s (%s) attempt %d/%d failed%s: %s",
            job.id,
            job.task_identifier,
            job.attempts,
            job.max_attempts,
            " permanently" if final else "",
            outcome.error,
            # A payload that does not fit is the producer's mistake: no traceback.
            exc_info=None if isinstance(outcome.exception, PayloadError) else outcome.exception,
            extra=job_extra(job, elapsed),
        )
        if final and self.hooks.has(h.JobPermanentlyFail):
            await self.hooks.emit(h.JobPermanentlyFail(self.worker_id, job, outcome.error, elapsed))
        elif not final and self.hooks.has(h.JobFail):
            await self.hooks.emit(h.JobFail(self.worker_id, job, outcome.error, elapsed))
