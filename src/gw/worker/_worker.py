"""The worker: a thin orchestrator over small parts.

::

    Worker.run()                 outer task group (signals live through cleanup)
    └── main task group
        ├── listener             LISTEN "jobs:insert" → WorkSignal
        ├── reset-locked         unlock jobs locked > 4 h (crashed workers)
        ├── cron, recovery       when configured
        ├── trigger              the user's shutdown trigger
        ├── batcher              complete / fail in batches (JobStore)
        ├── fetcher              JobStore.fetch → Dispatch
        └── executors (xN)       Dispatch → execute → Recorder → batcher

The parts own their state: :class:`~._dispatch.Dispatch` (pure local queue),
:class:`~._store.JobStore` (every statement; psycopg errors become gw errors
there), :class:`~._batcher.Batcher`, :class:`~._fetching.Fetcher`,
:class:`~._executing.Executors`. This module wires them and runs shutdown:
stop fetching → hand unclaimed jobs back → give running jobs
``grace_period`` → cancel the rest and release them → write what is pending
→ deregister → WorkerShutdown; each cleanup step is shielded and bounded by
one shared budget (:mod:`._shutdown`).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, Unpack

from .._address import parse_host_port
from ..core import hooks as h
from ..core.limits import KeyLimit, RateLimit
from ..core.retry import DEFAULT_RETRY, Retry
from ..core.tasks import Task, TaskOptions, TaskOptionsDict, TaskRegistry, TaskSource
from ..core.tracing import Tracing, prune_loop as prune_trace_loop
from ..core.utils import WorkerUtils, open_pool
from ..db.connection import CancelPolicy, use_cancel_policy
from ..db.embedded import open_database_url
from ..db.migrate import migrate
from ..db.queries import INTERRUPTED_JOB_MESSAGE, int_array, queries_for
from ..errors import ConfigurationError, DatabaseError, GwError
from ..runtime import (
    TASK_STATUS_IGNORED,
    CancelScope,
    CapacityLimiter,
    Clock,
    Event,
    SystemClock,
    TaskStatus,
    move_on_after,
    open_asyncio_bridge,
    open_task_group,
)
from ._background import (
    listen_for_jobs,
    prune_history_loop,
    reset_locked_loop,
    sample_backlog_loop,
    schedule_interceptor,
    watch_signals,
    watch_trigger,
)
from ._batcher import Batcher
from ._cancel import CancelWatcher
from ._config import History, LocalQueueConfig, RecoveryConfig, ShutdownConfig, duration
from ._dispatch import Dispatch
from ._execute import ExecEnv
from ._executing import Executors, HistoryRecords, Recorder, job_extra
from ._fetching import Fetcher, WorkSignal
from ._health import HealthState, serve_health
from ._limits import FleetLimits
from ._recovery import WorkerRecovery
from ._shutdown import Cleanup, public_error
from ._store import JobStore
from .context import Extensions

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    from ..cron import CronItem
    from ..db.pool import Pool
    from ..runtime import AsyncioBridge
    from ..types import Job

__all__ = ("Worker",)

# SQLSTATEs of a server that cannot take writes yet: read_only_sql_transaction
# (a hot standby) and cannot_connect_now (starting up, in recovery).
_NOT_WRITABLE = frozenset({"25006", "57P03"})
_WRITABLE_RETRY_MAX = 10.0

logger = logging.getLogger("gw.worker")

ONCE_WRITE_RETRY = 30.0
"""How long run_once retries writing outcomes to an unreachable database."""

ForbiddenFlags = (
    Sequence[str] | Callable[[], Sequence[str] | Awaitable[Sequence[str] | None] | None]
)


def _fleet_limits(
    tasks: TaskRegistry, queue_limits: Mapping[str, RateLimit] | None
) -> list[KeyLimit]:
    limits = [
        KeyLimit("task", t.identifier, t.rate_limit, t.max_concurrency)
        for t in tasks
        if t.rate_limit is not None or t.max_concurrency is not None
    ]
    if queue_limits is None:
        return limits
    if not isinstance(queue_limits, Mapping):
        raise ConfigurationError(
            "queue_limits must map queue names to gw.RateLimit(...), e.g. "
            '{"emails": gw.RateLimit(10)}'
        )
    for name, limit in queue_limits.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"queue_limits: {name!r} is not a queue name")
        if not isinstance(limit, RateLimit):
            raise ConfigurationError(
                f"queue_limits[{name!r}] must be a gw.RateLimit(...), got {limit!r} (a named "
                "queue already runs one job at a time across the fleet)"
            )
        limits.append(KeyLimit("queue", name, limit))
    return limits


def _new_worker_id() -> str:
    return f"graphile_worker_{secrets.token_hex(9)}"


class _Parts:
    """What a started worker is made of (built once connected)."""

    __slots__ = (
        "batcher",
        "cancels",
        "executors",
        "fetcher",
        "pool",
        "recorder",
        "store",
        "utils",
    )

    def __init__(
        self,
        pool: Pool,
        utils: WorkerUtils,
        store: JobStore,
        batcher: Batcher,
        recorder: Recorder,
        fetcher: Fetcher,
        executors: Executors,
        cancels: CancelWatcher,
    ) -> None:
        self.pool = pool
        self.utils = utils
        self.store = store
        self.batcher = batcher
        self.recorder = recorder
        self.fetcher = fetcher
        self.executors = executors
        self.cancels = cancels


class Worker:
    """Runs jobs from a Graphile Worker schema on asyncio or trio.

    ``await worker.run()`` until shutdown (SIGINT/SIGTERM, ``shutdown()`` or
    the ``shutdown_trigger``); ``await worker.run_once()`` to process what
    is ready and return; or ``async with worker:`` to run it in the
    background of your own application. Failures come out as one
    :class:`~gw.GwError`; cancellation, KeyboardInterrupt and SystemExit
    propagate as they are.
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
        retry: Retry | None = None,
        queue_limits: Mapping[str, RateLimit] | None = None,
        history: History | None = None,
        tracing: Tracing | None = None,
        listen: bool = True,
        listen_database_url: str | None = None,
        prepared_statements: bool = True,
        crontab: str | Path | None = None,
        cron: Sequence[Any] = (),
        recovery: RecoveryConfig | bool | None = None,
        health: str | None = None,
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
        self._given_pool = pool
        self.use_local_time = use_local_time
        if forbidden_flags is not None and not callable(forbidden_flags):
            flags = list(forbidden_flags)
            if isinstance(forbidden_flags, str) or not all(isinstance(f, str) for f in flags):
                raise ConfigurationError("forbidden_flags must be a list of strings or a callable")
        self._forbidden_flags = forbidden_flags
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
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError(f"retry must be a gw.Retry(...), got {retry!r}")
        self.retry = retry or DEFAULT_RETRY
        if history is not None and not isinstance(history, History):
            raise ConfigurationError(f"history must be a gw.History(...), got {history!r}")
        self.history = history
        if tracing is not None and not isinstance(tracing, Tracing):
            raise ConfigurationError(f"tracing must be a gw.Tracing(...), got {tracing!r}")
        self.tracing = tracing
        """OpenTelemetry spans for each attempt (and for jobs its handlers add)."""
        self.limits = _fleet_limits(self.tasks, queue_limits)
        """The fleet-wide limits this worker enforces (tasks' and ``queue_limits``)."""
        self.health = (
            None if health is None else parse_host_port(health, "health address", "127.0.0.1:8080")
        )
        self.health_address: str | None = None
        """``host:port`` the health probes listen on, once the worker started."""
        self._health = HealthState()
        self.listen = listen
        self.listen_database_url = listen_database_url
        # Off through a transaction pooler (PgBouncer < 1.21): server-side
        # prepared statements belong to one server connection.
        self.prepared_statements = prepared_statements
        self.crontab = crontab
        # Parsed and checked now so a bad crontab fails at construction; cron's
        # modules load only for a worker that has cron items.
        self.cron_items: list[CronItem] = []
        if crontab is not None or not isinstance(cron, (list, tuple)) or cron:
            from ..cron.sources import cron_items

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

        # State that exists before the worker connects (shutdown() may come first).
        self._dispatch = Dispatch()
        self._work = WorkSignal()
        self._cleanup = Cleanup(self.shutdown_config.cleanup_timeout)
        self._cancel_policy = CancelPolicy()
        self._shutdown_requested = Event()
        self._shutdown_reason = "shutdown"
        self._immediate = False
        self._fatal: BaseException | None = None
        self._once = False
        self._started = False
        self._parts: _Parts | None = None
        self._task_by_id: dict[int, Task[..., Any]] = {}
        self._task_ids_literal = "{}"
        self._fleet = (
            FleetLimits(self.limits, poll_interval=self.poll_interval) if self.limits else None
        )
        self._recovery: WorkerRecovery | None = None
        self._asyncio_bridge: AsyncioBridge | None = None
        self._cm_tg: Any = None

    # ------------------------------------------------------------------ public API

    @property
    def utils(self) -> WorkerUtils:
        """WorkerUtils on this worker's pool (available once the worker started)."""
        if self._parts is None:
            raise GwError("worker.utils is available once the worker has started")
        return self._parts.utils

    @property
    def jobs_processed(self) -> int:
        """Jobs this worker finished (completed, failed or skipped) so far."""
        return self._parts.recorder.processed if self._parts else 0

    def stats(self) -> dict[str, int]:
        """Counters: jobs processed, running, buffered, fetch statements, and what the
        batcher wrote."""
        out = {
            "processed": self.jobs_processed,
            "running": self._dispatch.running,
            "buffered": self._dispatch.buffered,
        }
        if self._parts is not None:
            out["fetches"] = self._parts.fetcher.fetches
            out.update(self._parts.batcher.stats)
            out["unwritten"] = self._parts.batcher.pending
        return out

    def define_job(
        self, identifier: str, fn: Callable[..., Any], **options: Unpack[TaskOptionsDict]
    ) -> Task[..., Any]:
        """Register a handler before the worker starts (RS's ``define_job``); the
        options are those of :func:`gw.task`."""
        self._check_not_started()
        return self.tasks.define(identifier, fn, TaskOptions.of(options))

    def define_batch_job(
        self, identifier: str, fn: Callable[..., Any], **options: Unpack[TaskOptionsDict]
    ) -> Task[..., Any]:
        """Register a batch handler before the worker starts (RS's ``define_batch_job``)."""
        self._check_not_started()
        return self.tasks.define_batch(identifier, fn, TaskOptions.of(options))

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
        """Ask the worker to stop.

        ``graceful=False`` ends the grace period at once and cuts what is left
        of cleanup to about a second (a second SIGINT/SIGTERM does this).
        """
        if not graceful:
            self._immediate = True
            self._cleanup.hurry()
            if self._parts is not None:
                self._parts.executors.idle.notify()  # end the grace-period wait now
        if not self._shutdown_requested.is_set():
            self._shutdown_reason = reason
            self._shutdown_requested.set()
            self._health.stopping = True
        if self._parts is not None:
            self._parts.fetcher.stop()

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
        if tg is None:
            return
        try:
            await tg.__aexit__(None, None, None)
        except BaseException as ex:
            public = public_error(ex)
            if public is None:
                raise
        else:
            return
        raise public

    # ------------------------------------------------------------------ lifecycle

    async def _run(
        self, listen_signals: bool, *, task_status: TaskStatus[Any] = TASK_STATUS_IGNORED
    ) -> None:
        """Run the worker; whatever goes wrong leaves as one public exception."""
        try:
            await self._lifetime(listen_signals, task_status)
        except BaseException as ex:
            public = public_error(ex)
            if public is None:
                raise  # plain cancellation
            if self._fatal is not None:
                public = self._fatal
            if public is ex:
                raise
        else:
            if self._fatal is None:
                return
            public = self._fatal
        # Raised outside the except block: the error keeps its own context.
        raise public

    async def _lifetime(self, listen_signals: bool, task_status: TaskStatus[Any]) -> None:
        if self._started:
            raise GwError("a Worker can only run once; create a new one")
        self._started = True
        if not len(self.tasks):
            raise ConfigurationError("the worker has no tasks; pass tasks=[...]")
        await self.hooks.emit(
            h.WorkerInit(self.worker_id, tuple(self.tasks.identifiers), self.concurrency)
        )
        needs_asyncio = any(t.loop == "asyncio" for t in self.tasks)
        with use_cancel_policy(self._cancel_policy):
            async with open_asyncio_bridge(needs_asyncio) as bridge, open_task_group() as outer:
                self._asyncio_bridge = bridge
                # Signals are watched through cleanup, so a second one can cut it short.
                if listen_signals:
                    outer.start_soon(watch_signals, self._on_signal)
                try:
                    async with open_database_url(self.database_url) as url:
                        await self._run_on(url, task_status)
                finally:
                    outer.cancel_scope.cancel()

    async def _run_on(self, url: str, task_status: TaskStatus[Any]) -> None:
        pool = self._given_pool or open_pool(
            url, max_size=self.max_pg_conn, prepared_statements=self.prepared_statements
        )
        try:
            parts = await self._prepare(pool)
            if parts is None:
                return  # shut down while waiting for a writable database
            self._parts = parts
            await self._main(url, task_status)
        finally:
            if self._given_pool is None:
                with self._cleanup.step("closing database connections"):
                    await pool.close()

    async def _prepare(self, pool: Pool) -> _Parts | None:
        if self.migrate:

            async def install() -> None:
                async with pool.connection() as conn:
                    await migrate(conn, self.schema)

            if not await self._until_writable(install, "migrating the schema"):
                return None
        utils = WorkerUtils(
            pool,
            self.schema,
            task_identifiers=self.tasks.identifiers,
            task_defaults=self.tasks.defaults(),
            use_local_time=self.use_local_time,
            clock=self.clock,
            before_schedule=(
                schedule_interceptor(self.hooks) if self.hooks.has(h.BeforeJobSchedule) else None
            ),
            tracing=self.tracing,
        )
        store = JobStore(
            pool,
            self.queries,
            self.worker_id,
            clock=self.clock,
            use_local_time=self.use_local_time,
            prepare=self.prepared_statements,
            traced=self.tracing is not None,
        )
        if not await self._until_writable(
            lambda: self._register_tasks(store), "registering task identifiers"
        ):
            return None
        utils.on_task_identifiers_deleted = lambda: self._register_tasks(store)
        if self.limits:
            await store.configure_limits(self.limits)
        batcher = Batcher(
            store,
            clock=self.clock,
            complete_delay=self.complete_job_batch_delay,
            fail_delay=self.fail_job_batch_delay,
            # Finished jobs released their queues (and limit slots): more
            # jobs may be fetchable.
            on_flush=self._on_flush,
            # run_once must end: it reports a database that stays away.
            give_up_after=ONCE_WRITE_RETRY if self._once else None,
        )
        recorder = Recorder(
            batcher,
            self.hooks,
            self.worker_id,
            None
            if self.history is None
            else HistoryRecords(self.history, self.clock, self.worker_id),
        )
        env = ExecEnv(
            worker_id=self.worker_id,
            extensions=self.extensions,
            utils=utils,
            hooks=self.hooks,
            limiter=CapacityLimiter(self.concurrency),
            default_timeout=self.job_timeout,
            retry=self.retry,
            asyncio_bridge=self._asyncio_bridge,
            before_run=self.hooks.has(h.BeforeJobRun),
            job_start=self.hooks.has(h.JobStart),
            after_run=self.hooks.has(h.AfterJobRun),
            keep_results=self.history is not None and self.history.results,
        )
        dispatch = self._dispatch
        limits = self._fleet
        if limits is not None:
            signal, job_finished = self._work, limits.job_finished

            def on_job_done(job: Job) -> None:
                job_finished(job)
                signal.slot_freed()
        else:
            slot_freed = self._work.slot_freed

            def on_job_done(job: Job) -> None:
                slot_freed()

        executors = Executors(
            dispatch,
            concurrency=self.concurrency,
            tasks=self._task_by_id,
            env=env,
            recorder=recorder,
            on_job_done=on_job_done,
            on_fatal=self._on_fatal,
        )
        fetcher = Fetcher(
            store,
            dispatch,
            self._work,
            wake_executors=executors.wake,
            task_ids=lambda: self._task_ids_literal,
            settled=lambda: (
                dispatch.running == 0 and dispatch.buffered == 0 and not batcher.pending
            ),
            hooks=self.hooks,
            worker_id=self.worker_id,
            clock=self.clock,
            concurrency=self.concurrency,
            poll_interval=self.poll_interval,
            local_queue=self.local_queue,
            forbidden_flags=self._forbidden_flags,
            once=self._once,
            quick_jobs=recorder.quick,
            limits=limits,
        )
        if self.tracing is not None:
            assert store.trace_contexts is not None
            executors.trace(self.tracing, store.trace_contexts)
        cancels = CancelWatcher(
            store,
            dispatch,
            executors,
            recorder,
            # The poll fallback runs on real time: a test's fake clock should
            # not gain a sleeper it never asked for.
            clock=SystemClock(),
            poll_interval=self.poll_interval,
        )
        if self._shutdown_requested.is_set():
            fetcher.stop()
        return _Parts(pool, utils, store, batcher, recorder, fetcher, executors, cancels)

    async def _until_writable(self, step: Callable[[], Awaitable[Any]], what: str) -> bool:
        """Run a start-up ``step``; while the database refuses writes (a hot standby,
        a server in recovery) retry it with backoff, one log line per attempt, so
        that a worker started before a failover runs once it completes. False if
        shutdown came first. run_once does not wait: it reports the error."""
        delay = 1.0
        while True:
            try:
                await step()
                if delay > 1.0:
                    logger.warning("%s: the database accepts writes now", what)
                return True
            except DatabaseError as ex:
                if self._once or ex.sqlstate not in _NOT_WRITABLE:
                    raise
                logger.warning(
                    "%s (the database does not accept writes: a hot standby, or a server in "
                    "recovery?); trying again in %g s",
                    ex,
                    delay,
                )
            with self.clock.move_on_after(delay):
                await self._shutdown_requested.wait()
            if self._shutdown_requested.is_set():
                return False
            delay = min(delay * 2, _WRITABLE_RETRY_MAX)

    async def _database_problem(self) -> str | None:
        """None when the database answers a query within two seconds, else why not."""
        assert self._parts is not None
        with move_on_after(2.0):
            try:
                await self._parts.pool.fetch("select 1")
            except Exception as ex:  # a probe: any failure means "not ready"
                return str(ex) or type(ex).__name__
            return None
        return "no answer within 2 s"

    async def _register_tasks(self, store: JobStore) -> None:
        ids = await store.register_tasks(self.tasks.identifiers)
        # Updated in place: the executors hold this very mapping.
        self._task_by_id.clear()
        self._task_by_id.update((task_id, self.tasks.get(name)) for task_id, name in ids.items())
        fleet = self._fleet
        if fleet is None:
            self._task_ids_literal = int_array(sorted(self._task_by_id))
            return
        # Limited tasks are fetched only under their limits.
        fleet.set_task_ids({name: task_id for task_id, name in ids.items()})
        limited = fleet.limited_tasks
        self._task_ids_literal = int_array(
            sorted(task_id for task_id, name in ids.items() if name not in limited)
        )

    async def _main(self, url: str, task_status: TaskStatus[Any]) -> None:
        parts = self._parts
        assert parts is not None
        try:
            async with open_task_group() as tg:
                tg.start_soon(parts.store.watch)
                tg.start_soon(parts.cancels.run)
                if self._shutdown_trigger is not None:
                    tg.start_soon(watch_trigger, self._shutdown_trigger, self.shutdown)
                if self.listen and not self._once:
                    self._health.listening = False
                    tg.start_soon(
                        listen_for_jobs,
                        self.listen_database_url or url,
                        self._work,
                        self.clock,
                        self.poll_interval,
                        self._health,
                        parts.cancels,
                    )
                elif not self._once:
                    logger.info(
                        "not listening for new jobs (listen=False): polling every %g s",
                        self.poll_interval,
                    )
                if self.health is not None and not self._once:
                    self.health_address = await tg.start(
                        serve_health, *self.health, self._health, self._database_problem
                    )
                if self.reset_locked_interval and not self._once:
                    tg.start_soon(
                        reset_locked_loop, parts.store, self.reset_locked_interval, self.clock
                    )
                if self.history is not None and not self._once:
                    for loop in (prune_history_loop, sample_backlog_loop):
                        tg.start_soon(loop, parts.pool, self.queries, self.history, self.clock)
                if self.tracing is not None and not self._once:
                    tg.start_soon(
                        prune_trace_loop, parts.pool, self.queries, self.tracing, self.clock
                    )
                if not self._once:
                    await self._start_cron(tg, parts.pool)
                    await self._start_recovery(tg, parts.pool)
                await self.hooks.emit(h.WorkerStart(self.worker_id))
                logger.info(
                    "worker %s started: %d task(s), concurrency %d",
                    self.worker_id,
                    len(self.tasks),
                    self.concurrency,
                    extra={"worker_id": self.worker_id},
                )
                task_status.started(self)
                await self._process(parts)
                tg.cancel_scope.cancel()
        finally:
            await self._clean_up(parts)
        # Only when nothing else went wrong: a cleanup error must not hide it.
        if self._cleanup.errors and self._fatal is None:
            raise self._cleanup.errors[0]

    async def _start_cron(self, tg: Any, pool: Pool) -> None:
        """Schedule ``crontab``/``cron`` items (gw.cron.runner); run() only, never run_once()."""
        if not self.cron_items:
            return
        from ..cron.runner import CronRunner
        from ..cron.sources import with_task_defaults

        runner = CronRunner(
            with_task_defaults(self.cron_items, self.tasks.defaults()),
            pool=pool,
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

    async def _start_recovery(self, tg: Any, pool: Pool) -> None:
        """Heartbeat (and sweep stale workers when asked to)."""
        if self.recovery is None or not self.recovery.enabled:
            return
        self._recovery = WorkerRecovery(
            self.recovery,
            pool=pool,
            queries=self.queries,
            worker_id=self.worker_id,
            tasks=self.tasks.identifiers,
            hooks=self.hooks,
            clock=self.clock,
            work=self._work,
            quiet=self._quiet_recovery,
        )
        await self._recovery.start(tg)

    async def _process(self, parts: _Parts) -> None:
        """Fetch and execute until shutdown, then wind down in order."""
        dispatch, fetcher, executors = self._dispatch, parts.fetcher, parts.executors
        fetcher_done = Event()

        async def fetch(scope: CancelScope) -> None:
            with scope:
                try:
                    await fetcher.run()
                finally:
                    fetcher_done.set()
            if fetcher.finished:
                self.shutdown("run_once complete")

        async def execute(scope: CancelScope) -> None:
            with scope:
                await executors.run()

        async with open_task_group() as batch_tg:
            batch_tg.start_soon(parts.batcher.run)
            async with open_task_group() as work_tg:
                fetch_scope, exec_scope = CancelScope(), CancelScope()
                work_tg.start_soon(execute, exec_scope)
                work_tg.start_soon(fetch, fetch_scope)
                await self._shutdown_requested.wait()
                # From here on a query cut short closes its connection
                # instead of waiting on the server to acknowledge a cancel.
                self._cancel_policy.abandon = True
                dispatch.stopping = True
                fetcher.stop()
                with self._cleanup.step("waiting for the fetch in flight"):
                    await fetcher_done.wait()
                fetch_scope.cancel()
                with self._cleanup.step("handing back unstarted jobs"):
                    await fetcher.return_unclaimed()
                executors.stop()
                await self._grace_period(executors)
                exec_scope.cancel()
            with self._cleanup.step("releasing interrupted jobs"):
                await self._release_interrupted(parts)
            # The flush loops stop before the final flush (in _clean_up): a
            # loop left running could take a pinned connection back after the
            # final flush handed it back.
            batch_tg.cancel_scope.cancel()

    async def _grace_period(self, executors: Executors) -> None:
        """Let running jobs finish, for up to ``grace_period`` on the worker's clock."""
        if self._immediate or not self._dispatch.running:
            return
        with self.clock.move_on_after(self.shutdown_config.grace_period):
            while self._dispatch.running and not self._immediate:
                await executors.idle.wait()

    async def _release_interrupted(self, parts: _Parts) -> None:
        """Release jobs cancelled mid-run: retried later, their attempt not counted."""
        executors = parts.executors
        jobs, executors.interrupted = executors.interrupted, []
        records, executors.interrupted_records = executors.interrupted_records, {}
        if not jobs:
            return
        ids = [j.id for j in jobs]
        delay = self.shutdown_config.interrupted_job_retry_delay
        try:
            try:
                await parts.store.release_interrupted(
                    ids, delay, INTERRUPTED_JOB_MESSAGE, list(records.values())
                )
            except DatabaseError as ex:
                if not records:
                    raise
                # A history record the database refuses must not keep the
                # jobs locked: release them without it.
                logger.warning("could not record interrupted jobs in the history: %s", ex)
                await parts.store.release_interrupted(ids, delay, INTERRUPTED_JOB_MESSAGE)
        except DatabaseError as ex:
            parts.store.disown(j.id for j in jobs)
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

    async def _clean_up(self, parts: _Parts) -> None:
        """Runs on every way out of _main (also when cancelled from outside)."""
        self._cancel_policy.abandon = True
        self._dispatch.stopping = True
        parts.fetcher.stop()
        step = self._cleanup.step
        with step("handing back unstarted jobs"):
            await parts.fetcher.return_unclaimed()
        with step("releasing interrupted jobs"):
            await self._release_interrupted(parts)
        with step("writing finished jobs") as scope:
            await parts.batcher.flush_all()
        if scope.cancelled_caught and parts.batcher.pending:
            unwritten = DatabaseError(
                f"could not record {parts.batcher.pending} finished job(s) before exiting; "
                f"they stay locked by {self.worker_id} until unlocked (force_unlock_workers) "
                "or recovered"
            )
            logger.error("%s", unwritten)
            self._cleanup.errors.append(unwritten)
        if parts.store.strays_possible:
            with step("handing back jobs a failed fetch locked"):
                await parts.store.return_strays()
        with step("returning pinned connections"):
            await parts.store.close()
        if self._recovery is not None:
            with step("removing the heartbeat row"):
                await self._recovery.stop()
        with step("WorkerShutdown hooks"):
            await self.hooks.emit(h.WorkerShutdown(self.worker_id, self._shutdown_reason))
        logger.info(
            "worker %s stopped (%s); %d job(s) processed",
            self.worker_id,
            self._shutdown_reason,
            self.jobs_processed,
            extra={"worker_id": self.worker_id},
        )

    # ------------------------------------------------------------------ events

    def _on_signal(self, name: str) -> None:
        if self._shutdown_requested.is_set():
            logger.warning("%s again: stopping now, interrupting running jobs", name)
            self.shutdown(name, graceful=False)
        else:
            logger.warning("%s received: shutting down gracefully (again to stop at once)", name)
            self.shutdown(name)

    def _on_flush(self) -> None:
        if self._fleet is not None:
            self._fleet.written()
        self._work.jobs_may_be_available()

    def _on_fatal(self, error: BaseException) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: stop now, then re-raise it."""
        if self._fatal is None:
            self._fatal = error
            logger.warning(
                "a job raised %s: stopping the worker (running jobs are released)",
                type(error).__name__,
            )
        self.shutdown(type(error).__name__, graceful=False)
