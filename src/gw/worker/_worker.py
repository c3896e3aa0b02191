"""The worker: one task group that fetches, runs and records jobs.

::

    Worker.run()                 the worker's task group
    ├── listener                 LISTEN "jobs:insert" → wake the fetcher
    ├── fetcher                  get_jobs for free slots (or the local queue)
    ├── executors (xN)         run jobs; sync handlers in threads
    ├── batcher (2 tasks)        complete / fail in batches
    ├── reset-locked             unlock jobs locked > 4 h (crashed workers)
    ├── cron, recovery           when configured
    └── signals                  SIGINT/SIGTERM → graceful, then immediate

Shutdown: stop fetching → hand unclaimed jobs back → give running jobs
``grace_period`` → cancel the rest and release them with
``interrupted_job_retry_delay`` → flush the batcher → exit.

Named queues stay serial even when one fetch returns several jobs of the
same queue: those jobs run one after another here, and the queue lock is only
released with the last of them.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import secrets
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self

import msgspec
import psycopg

from ..core import hooks as h
from ..core.tasks import Task, TaskRegistry, TaskSource
from ..core.utils import WorkerUtils, open_pool
from ..db.embedded import open_database_url
from ..db.listen import Listener
from ..db.migrate import migrate
from ..db.queries import GET_JOBS_COLUMNS, INTERRUPTED_JOB_MESSAGE, int_array, queries_for
from ..errors import ConfigurationError, GwError, PayloadError
from ..runtime import (
    TASK_STATUS_IGNORED,
    CancelScope,
    CapacityLimiter,
    Clock,
    Event,
    Notify,
    ParkingLot,
    SystemClock,
    TaskStatus,
    checkpoint,
    move_on_after,
    open_signal_receiver,
    open_task_group,
)
from ..types import Job, JobSpec
from ._batcher import Batcher
from ._config import LocalQueueConfig, RecoveryConfig, ShutdownConfig, duration
from ._execute import ExecEnv, Outcome, execute
from ._recovery import WorkerRecovery
from .context import Extensions

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    from ..db.pool import Pool

__all__ = ("Worker",)

logger = logging.getLogger("gw.worker")

_decode_json = msgspec.json.Decoder().decode
_COL = {name: i for i, name in enumerate(GET_JOBS_COLUMNS)}
_CLEANUP_TIMEOUT = 15.0
# Executors yield to the scheduler at least this often when jobs never block.
_FAIRNESS_INTERVAL = 0.005

ForbiddenFlags = (
    Sequence[str] | Callable[[], Sequence[str] | Awaitable[Sequence[str] | None] | None]
)


def _new_worker_id() -> str:
    return f"graphile_worker_{secrets.token_hex(9)}"


class Worker:
    """Runs jobs from a Graphile Worker schema on asyncio or trio.

    ``await worker.run()`` until shutdown (SIGINT/SIGTERM, ``shutdown()`` or
    the ``shutdown_trigger``); ``await worker.run_once()`` to process what
    is ready and return; or ``async with worker:`` to run it in the
    background of your own application.
    """

    def __init__(
        self,
        tasks: Iterable[TaskSource] | Mapping[str, Callable[..., Any]] = (),
        *,
        database_url: str | None = None,
        pool: Pool | None = None,
        schema: str = "graphile_worker",
        concurrency: int | None = None,
        poll_interval: float | timedelta = 1.0,
        max_pg_conn: int = 20,
        use_local_time: bool = False,
        forbidden_flags: ForbiddenFlags | None = None,
        local_queue: LocalQueueConfig | None = None,
        complete_job_batch_delay: float | timedelta | None = None,
        fail_job_batch_delay: float | timedelta | None = None,
        shutdown: ShutdownConfig | None = None,
        shutdown_trigger: Event | Callable[[], Awaitable[Any]] | None = None,
        extensions: Mapping[Any, Any] | Sequence[Any] | None = None,
        job_timeout: float | timedelta | None = None,
        listen: bool = True,
        listen_database_url: str | None = None,
        crontab: str | Path | None = None,
        cron: Sequence[Any] = (),
        recovery: RecoveryConfig | bool | None = None,
        hooks: h.HookRegistry | None = None,
        plugins: Sequence[h.Plugin] = (),
        clock: Clock | None = None,
        migrate: bool = True,
        reset_locked_interval: tuple[float, float] | None = (480.0, 600.0),
        worker_id: str | None = None,
    ) -> None:
        self.tasks = tasks if isinstance(tasks, TaskRegistry) else TaskRegistry(tasks)
        self.schema = schema
        self.queries = queries_for(schema)
        if concurrency is None:
            concurrency = os.cpu_count() or 1
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.poll_interval = duration("poll_interval", poll_interval, allow_zero=False)
        if max_pg_conn < 2:
            raise ConfigurationError("max_pg_conn must be at least 2")
        self.max_pg_conn = max_pg_conn
        self.database_url = database_url
        self._pool: Pool | None = pool
        self._owns_pool = pool is None
        self.use_local_time = use_local_time
        self._forbidden_flags = forbidden_flags
        if forbidden_flags is not None and not callable(forbidden_flags):
            flags = list(forbidden_flags)
            if isinstance(forbidden_flags, str) or not all(isinstance(f, str) for f in flags):
                raise ConfigurationError("forbidden_flags must be a list of strings or a callable")
        self.local_queue = local_queue
        self.complete_job_batch_delay = (
            None
            if complete_job_batch_delay is None
            else duration("complete_job_batch_delay", complete_job_batch_delay)
        )
        self.fail_job_batch_delay = (
            None
            if fail_job_batch_delay is None
            else duration("fail_job_batch_delay", fail_job_batch_delay)
        )
        self.shutdown_config = shutdown or ShutdownConfig()
        self._shutdown_trigger = shutdown_trigger
        self.extensions = Extensions(extensions)
        self.job_timeout = (
            None if job_timeout is None else duration("job_timeout", job_timeout, allow_zero=False)
        )
        self.listen = listen
        self.listen_database_url = listen_database_url
        self.crontab = crontab
        from ..cron.sources import cron_items

        # Parsed and checked now so a bad crontab fails at construction.
        self.cron_items = cron_items(crontab, cron, self.tasks.identifiers)
        # None (the default) still heartbeats, without sweeping: a sweeper
        # elsewhere (gw or Rust) then sees this worker's long jobs as owned
        # rather than orphaned (contract §8.2). False turns both off.
        self._quiet_recovery = recovery is None
        if recovery is True:
            recovery = RecoveryConfig()
        elif recovery is None:
            recovery = RecoveryConfig(sweep=False)
        self.recovery: RecoveryConfig | None = recovery if recovery else None
        self.hooks = hooks or h.HookRegistry()
        for plugin in plugins:
            self.hooks.add_plugin(plugin)
        self.clock = clock or SystemClock()
        self.migrate = migrate
        self.reset_locked_interval = reset_locked_interval
        self.worker_id = worker_id or _new_worker_id()
        if len(self.worker_id) < 10:
            raise ConfigurationError("worker_id must be at least 10 characters long")

        self._utils: WorkerUtils | None = None
        self._task_by_id: dict[int, Task[..., Any]] = {}
        self._queue_names: dict[int, str] = {}
        self._task_ids: list[int] = []
        self._task_ids_literal = "{}"
        self._ready: deque[tuple[Job, str]] = deque()
        self._parked = ParkingLot()
        self._waking = 0
        self._queue_waiting: dict[int, deque[tuple[Job, str]]] = {}
        self._queue_active: set[int] = set()
        self._running = 0
        self._idle = Notify()
        self._fetch_notify = Notify()
        self._maybe_more = True
        self._notifications = 0
        self._stopping = False
        self._shutdown_requested = Event()
        self._shutdown_reason = "shutdown"
        self._immediate = False
        self._interrupted: list[Job] = []
        self._batcher: Batcher | None = None
        self._once = False
        self._started = False
        self._buffer_since: float | None = None
        self._env: ExecEnv | None = None
        self.jobs_processed = 0
        """Jobs this worker finished (completed, failed or skipped) so far."""
        self._cm_scope: CancelScope | None = None
        self._cm_tg: Any = None
        self._running_event: Event | None = None
        self._recovery: WorkerRecovery | None = None
        self._lq_mode: Mode = "starting"

    # ------------------------------------------------------------------ public API

    @property
    def utils(self) -> WorkerUtils:
        """WorkerUtils on this worker's pool (available once the worker started)."""
        if self._utils is None:
            raise GwError("worker.utils is available once the worker has started")
        return self._utils

    def stats(self) -> dict[str, int]:
        """Counters: jobs processed, running, buffered, and what the batcher wrote."""
        out = {
            "processed": self.jobs_processed,
            "running": self._running,
            "buffered": len(self._ready) + self._waiting_count(),
        }
        if self._batcher is not None:
            out.update(self._batcher.stats)
            out["unwritten"] = self._batcher.pending
        return out

    def define_job(self, identifier: str, fn: Callable[..., Any]) -> Task[..., Any]:
        """Register a handler before the worker starts (RS's ``define_job``)."""
        self._check_not_started()
        return self.tasks.define(identifier, fn)

    def define_batch_job(self, identifier: str, fn: Callable[..., Any]) -> Task[..., Any]:
        """Register a batch handler before the worker starts (RS's ``define_batch_job``)."""
        self._check_not_started()
        return self.tasks.define_batch(identifier, fn)

    def define_jobs(self, tasks: Iterable[TaskSource] | Mapping[str, Callable[..., Any]]) -> None:
        """Register several tasks at once (RS's ``define_jobs``)."""
        self._check_not_started()
        for source in [tasks] if isinstance(tasks, Mapping) else tasks:
            self.tasks.add(source)

    def _check_not_started(self) -> None:
        if self._started:
            raise GwError("register tasks before the worker starts")

    def on(self, event: type[h.E], handler: Callable[[h.E], Any]) -> None:
        """Register a lifecycle hook (see gw.core.hooks)."""
        self.hooks.on(event, handler)

    def shutdown(self, reason: str = "requested", *, graceful: bool = True) -> None:
        """Ask the worker to stop; ``graceful=False`` skips the grace period."""
        if not graceful:
            self._immediate = True
            self._idle.notify()  # end the grace-period wait now
        if not self._shutdown_requested.is_set():
            self._shutdown_reason = reason
            self._shutdown_requested.set()
        self._fetch_notify.notify()
        self._waking += self._parked.unpark_all()

    async def run(self, *, task_status: TaskStatus[Self] = TASK_STATUS_IGNORED) -> None:
        """Run until shutdown. ``task_status.started(worker)`` once jobs are being fetched."""
        await self._run(self.shutdown_config.listen_os_signals, task_status=task_status)

    async def run_once(self) -> int:
        """Process every job that is ready now (and any they add), then return their count."""
        self._once = True
        await self._run(False)
        return self.jobs_processed

    async def __aenter__(self) -> Self:
        """Start the worker in the background of the caller (OS signals are not handled)."""
        tg = open_task_group()
        await tg.__aenter__()
        self._cm_tg = tg
        try:
            await tg.start(self._run, False)
        except BaseException:
            await tg.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.shutdown("context exit")
        tg, self._cm_tg = self._cm_tg, None
        if tg is not None:
            await tg.__aexit__(None, None, None)

    # ------------------------------------------------------------------ lifecycle

    async def _run(
        self, listen_signals: bool, *, task_status: TaskStatus[Any] = TASK_STATUS_IGNORED
    ) -> None:
        if self._started:
            raise GwError("a Worker can only run once; create a new one")
        self._started = True
        if not len(self.tasks):
            raise ConfigurationError("the worker has no tasks; pass tasks=[...]")
        await self.hooks.emit(
            h.WorkerInit(self.worker_id, tuple(self.tasks.identifiers), self.concurrency)
        )
        async with open_database_url(self.database_url) as url:
            if self._pool is None:
                self._pool = open_pool(url, max_size=self.max_pg_conn)
            try:
                await self._prepare()
                await self._main(url, task_status, listen_signals)
            finally:
                if self._owns_pool and self._pool is not None:
                    with CancelScope(shield=True):
                        await self._pool.close()

    async def _prepare(self) -> None:
        assert self._pool is not None
        if self.migrate:
            async with self._pool.connection() as conn:
                await migrate(conn, self.schema)
        self._utils = WorkerUtils(
            self._pool,
            self.schema,
            task_identifiers=self.tasks.identifiers,
            use_local_time=self.use_local_time,
            clock=self.clock,
            before_schedule=(
                self._before_schedule if self.hooks.has(h.BeforeJobSchedule) else None
            ),
        )
        self._utils.on_task_identifiers_deleted = self._register_tasks
        await self._register_tasks()
        self._batcher = Batcher(
            pool=self._pool,
            queries=self.queries,
            worker_id=self.worker_id,
            clock=self.clock,
            complete_delay=self.complete_job_batch_delay,
            fail_delay=self.fail_job_batch_delay,
        )
        self._batcher.on_flush = self._after_flush
        self._fetch_conn = self._pool.pinned()
        self._env = ExecEnv(
            worker_id=self.worker_id,
            extensions=self.extensions,
            utils=self._utils,
            hooks=self.hooks,
            limiter=CapacityLimiter(self.concurrency),
            default_timeout=self.job_timeout,
            before_run=self.hooks.has(h.BeforeJobRun),
            job_start=self.hooks.has(h.JobStart),
            after_run=self.hooks.has(h.AfterJobRun),
        )

    def _after_flush(self) -> None:
        # Finished jobs released their queues: more jobs may be fetchable now.
        self._maybe_more = True
        self._fetch_notify.notify()

    async def _register_tasks(self) -> None:
        assert self._pool is not None
        identifiers = self.tasks.identifiers
        async with self._pool.connection() as conn:
            await conn.execute(self.queries.register_task_identifiers, {"identifiers": identifiers})
            cur = await conn.execute(self.queries.task_ids, {"identifiers": identifiers})
            rows = await cur.fetchall()
        self._task_by_id = {row[0]: self.tasks.get(row[1]) for row in rows}
        self._task_ids = sorted(self._task_by_id)
        self._task_ids_literal = int_array(self._task_ids)

    async def _main(self, url: str, task_status: TaskStatus[Any], listen_signals: bool) -> None:
        assert self._batcher is not None
        try:
            async with open_task_group() as tg:
                if listen_signals:
                    tg.start_soon(self._signal_loop)
                if self._shutdown_trigger is not None:
                    tg.start_soon(self._trigger_loop)
                if self.listen and not self._once:
                    tg.start_soon(self._listen_loop, self.listen_database_url or url)
                if self.reset_locked_interval and not self._once:
                    tg.start_soon(self._reset_locked_loop)
                if not self._once:
                    await self._start_extras(tg)
                await self.hooks.emit(h.WorkerStart(self.worker_id))
                logger.info(
                    "worker %s started: %d task(s), concurrency %d",
                    self.worker_id,
                    len(self.tasks),
                    self.concurrency,
                    extra={"worker_id": self.worker_id},
                )
                task_status.started(self)
                await self._process()
                tg.cancel_scope.cancel()
        finally:
            await self._cleanup()
            await self._stop_extras()
            with CancelScope(shield=True):
                await self.hooks.emit(h.WorkerShutdown(self.worker_id, self._shutdown_reason))
            logger.info(
                "worker %s stopped (%s); %d job(s) processed",
                self.worker_id,
                self._shutdown_reason,
                self.jobs_processed,
                extra={"worker_id": self.worker_id},
            )

    async def _start_extras(self, tg: Any) -> None:
        """Start the optional long-running parts: cron and recovery."""
        await self._start_cron(tg)
        await self._start_recovery(tg)

    async def _start_cron(self, tg: Any) -> None:
        """Schedule ``crontab``/``cron`` items (gw.cron.runner); run() only, never run_once()."""
        if not self.cron_items:
            return
        from ..cron.runner import CronRunner

        assert self._pool is not None
        runner = CronRunner(
            self.cron_items,
            pool=self._pool,
            queries=self.queries,
            clock=self.clock,
            hooks=self.hooks,
            worker_id=self.worker_id,
            use_local_time=self.use_local_time,
        )

        async def until_shutdown(*, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
            # Like Node, stop scheduling as soon as shutdown starts, not only
            # when the task group is torn down after the grace period.
            async with open_task_group() as cron_tg:
                await cron_tg.start(runner.run)
                task_status.started()
                await self._shutdown_requested.wait()
                cron_tg.cancel_scope.cancel()

        # Returns once known crontabs are registered and backfilled.
        await tg.start(until_shutdown)

    async def _start_recovery(self, tg: Any) -> None:
        """Heartbeat and sweep stale workers when ``recovery`` is configured."""
        if self.recovery is not None and self.recovery.enabled:
            self._recovery = WorkerRecovery(self, self.recovery, quiet=self._quiet_recovery)
            await self._recovery.start(tg)

    async def _stop_extras(self) -> None:
        """Undo what _start_extras did that must outlive cancellation (shielded)."""
        if self._recovery is not None:
            await self._recovery.stop()

    async def _process(self) -> None:
        """Fetch and execute until shutdown, then wind down in order."""
        assert self._batcher is not None
        async with open_task_group() as batch_tg:
            batch_tg.start_soon(self._batcher.run_completions)
            batch_tg.start_soon(self._batcher.run_failures)
            async with open_task_group() as work_tg:
                exec_scope = CancelScope()
                work_tg.start_soon(self._executors, exec_scope)
                work_tg.start_soon(self._fetch_loop)
                await self._shutdown_requested.wait()
                self._stopping = True
                self._fetch_notify.notify()
                await self._return_unclaimed()
                self._waking += self._parked.unpark_all()
                grace = 0.0 if self._immediate else self.shutdown_config.grace_period
                if self._running:
                    with move_on_after(grace):
                        while self._running and not self._immediate:
                            await self._idle.wait()
                exec_scope.cancel()
            await self._release_interrupted()
            await self._batcher.flush_all()
            batch_tg.cancel_scope.cancel()

    async def _cleanup(self) -> None:
        """Runs on every exit path, even when cancelled from outside."""
        with CancelScope(shield=True), move_on_after(_CLEANUP_TIMEOUT):
            self._stopping = True
            await self._return_unclaimed()
            await self._release_interrupted()
            if self._batcher is not None:
                await self._batcher.flush_all()

    # ------------------------------------------------------------------ fetching

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

    def _job_from_row(self, row: tuple[Any, ...]) -> tuple[Job, str]:
        task = self._task_by_id.get(row[2])
        payload_json: str = row[3]
        # Positional, in Job's field order: this runs once per fetched job.
        job = Job(
            row[0],
            task.identifier if task else f"<unknown task {row[2]}>",
            self._queue_names.get(row[1]) if row[1] is not None else None,
            _decode_json(payload_json),
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

    def _dispatch(self, jobs: list[tuple[Job, str]]) -> None:
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
                    extra=_job_extra(job),
                )
                await self.hooks.emit(h.JobInterrupted(self.worker_id, job))

    # ------------------------------------------------------------------ executing

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

    async def _run_one(self, entry: tuple[Job, str]) -> None:
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
                    extra=_job_extra(job, elapsed),
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
            extra=_job_extra(job, elapsed),
        )
        if final and self.hooks.has(h.JobPermanentlyFail):
            await self.hooks.emit(h.JobPermanentlyFail(self.worker_id, job, outcome.error, elapsed))
        elif not final and self.hooks.has(h.JobFail):
            await self.hooks.emit(h.JobFail(self.worker_id, job, outcome.error, elapsed))

    # ------------------------------------------------------------------ background tasks

    async def _listen_loop(self, url: str) -> None:
        def on_connect() -> None:
            # Jobs may have been added while we were not listening.
            self._maybe_more = True
            self._fetch_notify.notify()

        while True:
            try:
                async with Listener(url, ["jobs:insert"], on_connect=on_connect) as listener:
                    async for note in listener:
                        count = _notification_count(note.payload)
                        if count > 0:
                            self._notifications += count
                            self._maybe_more = True
                            self._fetch_notify.notify()
            except GwError as ex:
                logger.warning(
                    "cannot LISTEN for new jobs (%s); polling every %gs meanwhile",
                    ex,
                    self.poll_interval,
                )
                await self.clock.sleep(max(self.poll_interval, 1.0))

    async def _reset_locked_loop(self) -> None:
        assert self.reset_locked_interval is not None
        assert self._pool is not None
        low, high = self.reset_locked_interval
        await self.clock.sleep(random.random() * min(60.0, high))
        while True:
            params = {"now": self.clock.now()} if self.use_local_time else None
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        self.queries.reset_locked_at(local_time=self.use_local_time), params
                    )
            except (psycopg.Error, GwError) as ex:
                logger.warning("resetting stale locks failed: %s", ex)
            await self.clock.sleep(low + random.random() * (high - low))

    async def _signal_loop(self) -> None:
        try:
            receiver = open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except (RuntimeError, ValueError, NotImplementedError):
            return  # not the main thread (or no signal support): nothing to listen to
        with receiver as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self._shutdown_requested.is_set():
                    logger.warning("%s again: stopping now, interrupting running jobs", name)
                    self.shutdown(name, graceful=False)
                else:
                    logger.warning(
                        "%s received: shutting down gracefully (again to stop at once)", name
                    )
                    self.shutdown(name)

    async def _trigger_loop(self) -> None:
        trigger = self._shutdown_trigger
        if isinstance(trigger, Event):
            await trigger.wait()
        elif trigger is not None:
            await trigger()
        self.shutdown("shutdown trigger")

    async def _before_schedule(
        self, identifier: str, payload: Any, spec: JobSpec
    ) -> tuple[str, Any, JobSpec]:
        decision = await self.hooks.intercept(h.BeforeJobSchedule(identifier, payload, spec))
        if isinstance(decision, h.Skip):
            from ..errors import JobScheduleSkipped

            raise JobScheduleSkipped(f"a BeforeJobSchedule hook skipped job {identifier!r}")
        if isinstance(decision, h.Fail):
            from ..errors import HookError

            raise HookError(
                f"a BeforeJobSchedule hook refused job {identifier!r}: {decision.message}"
            )
        if isinstance(decision, h.Rewrite):
            replace = decision.replace_payload and decision.payload is not None
            new_payload = decision.payload if replace else payload
            if isinstance(payload, list) and (not isinstance(new_payload, list) or not new_payload):
                from ..errors import HookError

                raise HookError(
                    f"a BeforeJobSchedule hook must keep batch job {identifier!r}'s payload a "
                    "non-empty JSON array"
                )
            return (decision.identifier or identifier, new_payload, decision.spec or spec)
        return identifier, payload, spec


def _notification_count(payload: str) -> int:
    if not payload:
        return 1
    try:
        data = _decode_json(payload)
    except msgspec.DecodeError:
        return 1
    if isinstance(data, dict):
        count = data.get("count", 1)
        return int(count) if isinstance(count, (int, float)) else 1
    return 1


def _job_extra(job: Job, elapsed: float | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "job_id": job.id,
        "task_identifier": job.task_identifier,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
    }
    if elapsed is not None:
        extra["duration"] = elapsed
    return extra


# Local queue modes, named as in Node's LocalQueue.
Mode = Literal["starting", "polling", "waiting", "ttl_expired", "released"]
