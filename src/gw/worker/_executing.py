"""Executors: ``concurrency`` tasks that take jobs from the dispatch, run them,
and record how each ended (complete, fail, or interrupted by shutdown)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ..core import hooks as h
from ..core._json import storable_text
from ..core.retry import PermanentFailure, Retry, RetryAfter
from ..errors import PayloadError
from ..runtime import CancelScope, Notify, ParkingLot, SystemClock, checkpoint, open_task_group
from ._execute import Outcome, execute
from ._store import Failure

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ..core.tasks import Task
    from ..core.tracing import TraceContext, Tracing
    from ..runtime import Clock
    from ..types import Job
    from ._batcher import Batcher
    from ._config import History
    from ._dispatch import Dispatch, Entry
    from ._execute import ExecEnv

__all__ = ("Executors", "Recorder", "job_extra")

logger = logging.getLogger("gw.worker")

_encoder = msgspec.json.Encoder()

# Executors yield to the scheduler at least this often when jobs never block.
_FAIRNESS_INTERVAL = 0.005
# Jobs whose moving-average run time is below this are "quick" (fetched ahead).
_QUICK_JOB = 0.005
# A job's error in the log is cut here (last_error keeps up to MAX_ERROR_LENGTH).
_LOGGED_ERROR_LENGTH = 4096
_NO_TRACEBACK = (PayloadError, PermanentFailure, RetryAfter)


def job_extra(job: Job, elapsed: float | None = None) -> dict[str, Any]:
    """Structured ``extra=`` fields for a job's log records."""
    extra: dict[str, Any] = {
        "job_id": job.id,
        "task_identifier": job.task_identifier,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
    }
    if elapsed is not None:
        extra["duration"] = elapsed
    return extra


class Recorder:
    """Turns an outcome into a batched write, a log line and hook events."""

    def __init__(
        self,
        batcher: Batcher,
        hooks: h.HookRegistry,
        worker_id: str,
        history: HistoryRecords | None = None,
    ) -> None:
        self._batcher = batcher
        self._hooks = hooks
        self._worker_id = worker_id
        self.history = history
        """Builds each attempt's history record (None: the worker keeps no history)."""
        self.processed = 0
        """Jobs finished (completed, failed or skipped) so far."""
        self._duration = 1.0  # a moving average of run times (seconds); starts slow

    def quick(self) -> bool:
        """Recent jobs ended within a few milliseconds (see Fetcher: fetching ahead)."""
        return self._duration < _QUICK_JOB

    async def record(
        self,
        job: Job,
        outcome: Outcome,
        elapsed: float,
        keep: bool,
        policy: Retry,
        started_at: float | None = None,
    ) -> None:
        self.processed += 1
        self._duration += (elapsed - self._duration) * 0.1
        hooks = self._hooks
        history = self.history
        if outcome.error is None:
            record = None
            if history is not None and started_at is not None:
                kind = "skipped" if outcome.skipped else "completed"
                record = history.record(job, started_at, kind, outcome.result)
            self._batcher.complete(job.id, keep, record)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "job %s (%s) %s in %.1f ms",
                    job.id,
                    job.task_identifier,
                    "skipped" if outcome.skipped else "completed",
                    elapsed * 1000,
                    extra=job_extra(job, elapsed),
                )
            if hooks.has(h.JobComplete):
                await hooks.emit(h.JobComplete(self._worker_id, job, elapsed))
            return
        error = outcome.exception
        verdict = policy.decide(job.attempts, job.max_attempts, error)
        record = None
        if history is not None and started_at is not None:
            # Failed or permanently failed: the fail statement knows which.
            record = history.record(
                job, started_at, "rescheduled" if verdict.kind == "snooze" else None
            )
        self._batcher.fail(
            Failure(
                job.id,
                outcome.error,
                outcome.replacement_payload,
                keep,
                verdict.kind,
                verdict.delay,
                record,
            )
        )
        if verdict.kind == "snooze":
            logger.info(
                "job %s (%s) rescheduled in %g s: %s",
                job.id,
                job.task_identifier,
                verdict.delay,
                storable_text(outcome.error, _LOGGED_ERROR_LENGTH),
                extra=job_extra(job, elapsed),
            )
            return
        final = verdict.kind == "final"
        logger.log(
            logging.ERROR if final else logging.WARNING,
            "job %s (%s) attempt %d/%d failed%s: %s",
            job.id,
            job.task_identifier,
            job.attempts,
            job.max_attempts,
            " permanently" if final else "",
            storable_text(outcome.error, _LOGGED_ERROR_LENGTH),
            # A payload that does not fit is the producer's mistake, and a
            # PermanentFailure is the handler's decision: no traceback.
            exc_info=None if isinstance(error, _NO_TRACEBACK) else error,
            extra=job_extra(job, elapsed),
        )
        if final and hooks.has(h.JobPermanentlyFail):
            await hooks.emit(h.JobPermanentlyFail(self._worker_id, job, outcome.error, elapsed))
        elif not final and hooks.has(h.JobFail):
            await hooks.emit(h.JobFail(self._worker_id, job, outcome.error, elapsed))

    def cancelled(
        self,
        job: Job,
        reason: str,
        elapsed: float,
        keep: bool,
        started_at: float | None = None,
    ) -> None:
        """Record a job cancelled on request: failed for good, never retried.

        Synchronous (the write is buffered), so it holds even when shutdown
        cancels the executor right after."""
        self.processed += 1
        record = None
        if self.history is not None:
            record = self.history.record(job, started_at, "cancelled")
        self._batcher.fail(
            Failure(job.id, f"cancelled: {reason}", None, keep, "final", None, record)
        )
        logger.warning(
            "job %s (%s) cancelled: %s",
            job.id,
            job.task_identifier,
            storable_text(reason, _LOGGED_ERROR_LENGTH),
            extra=job_extra(job, elapsed),
        )

    async def cancelled_hook(self, job: Job, reason: str, elapsed: float) -> None:
        if self._hooks.has(h.JobCancelled):
            await self._hooks.emit(h.JobCancelled(self._worker_id, job, reason, elapsed))


class HistoryRecords:
    """Builds the history record of each finished attempt (see gw.History)."""

    def __init__(self, config: History, clock: Clock, worker_id: str) -> None:
        self._config = config
        self.clock = clock
        self._worker_id = worker_id
        # Epoch seconds on the worker's clock; the system clock's without
        # building a datetime (twice per job on the hot path).
        self.epoch: Callable[[], float] = (
            time.time if isinstance(clock, SystemClock) else lambda: clock.now().timestamp()
        )

    def record(
        self, job: Job, started_at: float | None, outcome: str | None, result: Any = None
    ) -> bytes:
        """The JSON record (``outcome`` None: the fail statement decides); short keys
        and epoch seconds, which the server reads faster than ISO text (see
        ``gw.db.queries._HISTORY_RECORD``)."""
        config = self._config
        now = self.epoch()
        run_at = job.run_at
        record: dict[str, Any] = {
            "j": job.id,
            "t": job.task_identifier,
            "q": job.queue_name,
            "a": job.attempts,
            "m": job.max_attempts,
            "r": None if run_at is None else run_at.timestamp(),
            "s": now if started_at is None else started_at,
            "f": now,
        }
        if outcome is not None:
            record["o"] = outcome
        if config.results and result is not None:
            record["v"] = self._encoded(result)
        if config.payloads:
            record["p"] = job.payload
        try:
            return _encoder.encode(record)
        except (TypeError, ValueError, OverflowError):
            # The payload or a name gw cannot write as JSON: keep the rest.
            record.pop("p", None)
            return _encoder.encode(record)

    def _encoded(self, result: Any) -> msgspec.Raw:
        try:
            text = _encoder.encode(result)
        except (TypeError, ValueError, OverflowError):
            text = _encoder.encode({"gw_unencodable_result": type(result).__name__})
        limit = self._config.max_result_bytes
        if len(text) > limit:
            text = _encoder.encode({"gw_result_too_large": len(text), "limit": limit})
        return msgspec.Raw(text)


class _Slot:
    """One executor: the cancel scope its jobs run in and the job it runs now."""

    __slots__ = ("cancel_reason", "done", "job", "scope")

    def __init__(self) -> None:
        self.scope = CancelScope()
        self.job: Job | None = None
        self.cancel_reason: str | None = None
        """Set when the running job is to be cancelled on request."""
        self.done: tuple[Job, str, float] | None = None
        """A job cancelled on request whose hook has not run yet."""


class Executors:
    """Runs fetched jobs, ``concurrency`` at a time.

    Idle executors park; :meth:`wake` unparks one when jobs are ready, and
    each executor that starts a job wakes the next only if more are ready,
    so quick jobs do not stampede the scheduler.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        concurrency: int,
        tasks: Mapping[int, Task[..., Any]],
        env: ExecEnv,
        recorder: Recorder,
        on_job_done: Callable[[Job], None],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self._dispatch = dispatch
        self._concurrency = concurrency
        self._tasks = tasks
        self._env = env
        self._recorder = recorder
        self._on_job_done = on_job_done
        self._on_fatal = on_fatal
        self._lot = ParkingLot()
        self._waking = 0
        self._stopping = False
        self.idle = Notify()
        """Notified whenever the last running job ends."""
        self.interrupted: list[Job] = []
        """Jobs cancelled mid-run (shutdown, or a fatal error): to be released."""
        self.interrupted_records: dict[int, bytes] = {}
        """Their history records (with gw.History), by job id."""
        self._running: dict[int, _Slot] = {}
        self._execute: Callable[[Job, Task[..., Any], Any, ExecEnv], Awaitable[Outcome]] = execute

    async def run(self) -> None:
        """Run the executors until :meth:`stop` (or cancellation)."""
        async with open_task_group() as tg:
            for _ in range(self._concurrency):
                tg.start_soon(self._slot)

    def trace(self, tracing: Tracing, contexts: dict[int, TraceContext]) -> None:
        """Run each attempt inside an OpenTelemetry consumer span (gw.Tracing)."""
        from ._tracing import traced_execute

        self._execute = traced_execute(
            tracing, contexts, self._env.worker_id, self._cancel_requested
        )

    def _cancel_requested(self, job_id: int) -> bool:
        slot = self._running.get(job_id)
        return slot is not None and slot.cancel_reason is not None

    def cancel(self, job_id: int, reason: str) -> bool:
        """Cancel a running job (its executor records it); False if it is not running."""
        slot = self._running.get(job_id)
        if slot is None or slot.cancel_reason is not None:
            return False
        slot.cancel_reason = reason
        slot.scope.cancel()
        return True

    async def _slot(self) -> None:
        # One cancel scope serves many jobs: a scope per job would cost more
        # than some jobs do. Cancelling a job cancels the scope; the executor
        # records the job outside it and carries on in a new one.
        slot = _Slot()
        while True:
            with slot.scope:
                await self._loop(slot)
            done, slot.done = slot.done, None
            if done is None:
                return
            slot.scope = CancelScope()
            await self._recorder.cancelled_hook(*done)

    def wake(self) -> None:
        """Jobs are ready: wake an idle executor (unless one is waking already)."""
        if self._waking == 0 and self._dispatch.ready and self._lot.unpark(1):
            self._waking += 1

    def stop(self) -> None:
        """Let executors return once no job is ready for them."""
        self._stopping = True
        self._waking += self._lot.unpark_all()

    async def _loop(self, slot: _Slot) -> None:
        dispatch = self._dispatch
        last_yield = time.perf_counter()
        while True:
            entry = dispatch.take()
            if entry is None:
                if self._stopping:
                    return
                await self._lot.park()
                self._waking -= 1
                last_yield = time.perf_counter()
                continue
            self.wake()  # more ready: hand them to an idle executor
            await self._run_one(entry, slot)
            if slot.done is not None:
                return  # leave the cancelled scope before anything else awaits
            now = time.perf_counter()
            if now - last_yield >= _FAIRNESS_INTERVAL:
                await checkpoint()
                last_yield = now

    async def _run_one(self, entry: Entry, slot: _Slot) -> None:
        job, payload, error = entry
        history = self._recorder.history
        started_at = history.epoch() if history is not None else None
        started = time.perf_counter()
        running = self._running
        running[job.id] = slot
        slot.job = job
        try:
            task = self._tasks.get(job.task_id)
            if error is not None:
                outcome = Outcome(error=error, exception=PayloadError(error))
            else:
                if task is None:
                    outcome = Outcome(error=f"Unsupported task {job.task_identifier!r}")
                else:
                    outcome = await self._execute(job, task, payload, self._env)
        except BaseException:
            # Only cancellation gets here (execute() turns everything else into
            # an outcome): a cancel request for this job, or shutdown or an
            # outer cancel interrupting it.
            del running[job.id]
            slot.job = None
            if slot.cancel_reason is not None:
                self._cancelled(job, slot, started, started_at)
            else:
                self._interrupt(job, started_at)
            raise
        del running[job.id]
        slot.job = None
        if slot.cancel_reason is not None:
            # Cancelled, but the handler returned anyway (it caught the
            # cancellation, or ended just then): still a cancelled job.
            self._cancelled(job, slot, started, started_at)
            return
        if outcome.fatal is not None:
            self._interrupt(job, started_at)
            self._on_fatal(outcome.fatal)
            return
        keep = self._dispatch.finish(job)
        if keep:
            self.wake()  # the queue's next job is ready
        self._job_done(job)
        policy = task.retry if task is not None and task.retry is not None else self._env.retry
        await self._recorder.record(
            job, outcome, time.perf_counter() - started, keep, policy, started_at
        )

    def _cancelled(self, job: Job, slot: _Slot, started: float, started_at: float | None) -> None:
        reason = slot.cancel_reason
        assert reason is not None
        slot.cancel_reason = None
        elapsed = time.perf_counter() - started
        keep = self._dispatch.finish(job)
        if keep:
            self.wake()
        self._job_done(job)
        self._recorder.cancelled(job, reason, elapsed, keep, started_at)
        slot.done = (job, reason, elapsed)

    def discard(self, job_id: int, reason: str) -> Job | None:
        """Cancel a fetched job that has not started; None if it is not buffered here."""
        found = self._dispatch.discard(job_id)
        if found is None:
            return None
        entry, keep = found
        if keep:
            self.wake()
        self._recorder.cancelled(entry[0], reason, 0.0, keep)
        self._on_job_done(entry[0])
        return entry[0]

    def _interrupt(self, job: Job, started_at: float | None) -> None:
        self.interrupted.append(job)
        history = self._recorder.history
        if history is not None and started_at is not None:
            self.interrupted_records[job.id] = history.record(job, started_at, "interrupted")
        self._dispatch.finish(job)
        self._job_done(job)

    def _job_done(self, job: Job) -> None:
        if self._dispatch.running == 0:
            self.idle.notify()
        self._on_job_done(job)
