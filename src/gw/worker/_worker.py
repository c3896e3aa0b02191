"""The worker: one task group that fetches, runs and records jobs.

::

    Worker.run()                 the worker's task group
    ├── listener                 LISTEN "jobs:insert" → wake the fetcher
    ├── fetcher                  get_jobs for free slots (or the local queue)
    ├── executors (xN)           run jobs; sync handlers in threads
    ├── batcher (2 tasks)        complete / fail in batches
    ├── reset-locked             unlock jobs locked > 4 h (crashed workers)
    ├── cron, recovery           when configured
    └── signals                  SIGINT/SIGTERM → graceful, then immediate

Shutdown: stop fetching → hand unclaimed jobs back → give running jobs
``grace_period`` → cancel the rest and release them with
``interrupted_job_retry_delay`` → flush the batcher → exit.

The class is assembled from parts: fetching (``_fetching``), executing
(``_executing``) and the background tasks (``_background``), over the shared
state declared in ``_state``; this module holds configuration and lifecycle.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from ..core import hooks as h
from ..core.tasks import Task, TaskRegistry, TaskSource
from ..core.utils import WorkerUtils, open_pool
from ..db.embedded import open_database_url
from ..db.migrate import migrate
from ..db.queries import int_array, queries_for
from ..errors import ConfigurationError, GwError
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
    move_on_after,
    open_task_group,
)
from ._background import BackgroundMixin
from ._batcher import Batcher
from ._config import LocalQueueConfig, RecoveryConfig, ShutdownConfig, duration
from ._execute import ExecEnv
from ._executing import ExecutingMixin
from ._fetching import FetchingMixin
from ._recovery import WorkerRecovery
from .context import Extensions

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    from ..db.pool import Pool
    from ..types import Job
    from ._state import Entry, Mode

__all__ = ("Worker",)

logger = logging.getLogger("gw.worker")

_CLEANUP_TIMEOUT = 15.0

ForbiddenFlags = (
    Sequence[str] | Callable[[], Sequence[str] | Awaitable[Sequence[str] | None] | None]
)


def _new_worker_id() -> str:
    return f"graphile_worker_{secrets.token_hex(9)}"


class Worker(FetchingMixin, ExecutingMixin, BackgroundMixin):
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
        self._ready: deque[Entry] = deque()
        self._parked = ParkingLot()
        self._waking = 0
        self._queue_waiting: dict[int, deque[Entry]] = {}
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
        self._cm_tg: Any = None
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
            # Stop the flush loops before the final flush: a loop left
            # running could take a pinned connection again after flush_all
            # handed it back (a mid-flush cancel puts its jobs back first).
            batch_tg.cancel_scope.cancel()
        await self._batcher.flush_all()

    async def _cleanup(self) -> None:
        """Runs on every exit path, even when cancelled from outside."""
        with CancelScope(shield=True), move_on_after(_CLEANUP_TIMEOUT):
            self._stopping = True
            await self._return_unclaimed()
            await self._release_interrupted()
            if self._batcher is not None:
                await self._batcher.flush_all()

    # ------------------------------------------------------------------ fetching
