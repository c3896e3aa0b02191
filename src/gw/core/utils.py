"""WorkerUtils: add, manage and maintain jobs without running a worker.

Every job goes in through the schema's ``add_job``/``add_jobs`` SQL functions
(never a raw INSERT) so that task and queue rows, job-key semantics and the
``jobs:insert`` NOTIFY behave exactly as for Node and Rust producers.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import msgspec
import psycopg

from ..db.embedded import open_database_url
from ..db.listen import Listener
from ..db.migrate import MigrationReport, migrate
from ..db.pool import Pool
from ..db.queries import HISTORY_CHANNEL, Queries, like_pattern, queries_for
from ..errors import (
    ConfigurationError,
    GwError,
    InvalidJobSpec,
    ResultTimeout,
    ResultUnavailable,
)
from ..runtime import Clock, Notify, SystemClock, open_task_group
from ..types import (
    JOB_STATES,
    ActiveWorker,
    CancelResult,
    CleanupTask,
    HistoryEntry,
    HistoryStats,
    Job,
    JobPage,
    JobSpec,
    JobState,
    JobStats,
    LimitUsage,
    LockedWorker,
    QueueInfo,
    RawJobSpec,
    SweepResult,
    check_identifier,
)
from . import _history_stats as stats, _requests as rq, recovery
from ._json import json_loads
from ._requests import TaskLike
from .tracing import Tracing

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from ..worker._config import RecoveryConfig
    from .tasks import Task

__all__ = ("TaskLike", "WorkerUtils", "open_pool")

logger = logging.getLogger("gw.utils")

ANALYZE_THRESHOLD = 10_000
MAX_LIST_LIMIT = 500
DEFAULT_CLEANUP: tuple[CleanupTask, ...] = (
    CleanupTask.GC_JOB_QUEUES,
    CleanupTask.GC_TASK_IDENTIFIERS,
)


BeforeSchedule = Callable[[str, Any, JobSpec], Awaitable[tuple[str, Any, JobSpec]]]


async def _configure_connection(conn: Any) -> None:
    # msgspec decodes json/jsonb columns several times faster than json.loads.
    from psycopg.types.json import set_json_loads

    set_json_loads(json_loads, conn)
    if conn.info.encoding == "ascii":
        # A SQL_ASCII database holds bytes, not text: psycopg returns bytes for
        # text columns. gw reads them as UTF-8 (bytes that are not valid UTF-8
        # show as U+FFFD) so that names and messages are str everywhere.
        from psycopg.adapt import Loader

        class Utf8Loader(Loader):
            def load(self, data: Any) -> str:
                return bytes(data).decode("utf-8", "replace")

        for name in ("text", "varchar", "bpchar", "name"):
            conn.adapters.register_loader(name, Utf8Loader)


def open_pool(
    database_url: str, *, max_size: int = 10, prepared_statements: bool = True, **kwargs: Any
) -> Pool:
    """A :class:`~gw.db.pool.Pool` configured the way gw's queries expect.

    ``prepared_statements=False`` for a transaction pooler (PgBouncer before 1.21,
    or without ``max_prepared_statements``): no statement is prepared server-side.
    """
    if not prepared_statements:
        kwargs["connect_kwargs"] = {"prepare_threshold": None, **kwargs.get("connect_kwargs", {})}
    return Pool(database_url, max_size=max_size, configure=_configure_connection, **kwargs)


class WorkerUtils:
    """Job management for Graphile Worker schemas, on asyncio or trio.

    Build one from a pool (``WorkerUtils(pool)``), or let
    :meth:`connect` open the database for you::

        async with gw.WorkerUtils.connect() as utils:
            await utils.add_raw_job("send_email", {"to": "a@b.c"})
    """

    def __init__(
        self,
        pool: Pool,
        schema: str = "graphile_worker",
        *,
        task_identifiers: Iterable[str] = (),
        task_defaults: Mapping[str, JobSpec] | None = None,
        use_local_time: bool = False,
        clock: Clock | None = None,
        before_schedule: BeforeSchedule | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.pool = pool
        self.queries: Queries = queries_for(schema)
        self.schema = schema
        self.task_identifiers = tuple(task_identifiers)
        self.task_defaults: Mapping[str, JobSpec] = dict(task_defaults or {})
        """Job defaults by task identifier, applied to jobs added by identifier."""
        self.use_local_time = use_local_time
        self.clock = clock or SystemClock()
        self._before_schedule = before_schedule
        self.on_task_identifiers_deleted: Callable[[], Awaitable[None]] | None = None
        if tracing is not None and not isinstance(tracing, Tracing):
            raise ConfigurationError(f"tracing must be a gw.Tracing(...), got {tracing!r}")
        self.tracing = tracing
        """gw.Tracing: each add is a producer span whose context the job keeps."""
        # Whether bulk adds may read lean rows (Queries.lean_add_allowed),
        # checked on the first one.
        self._lean_add: bool | None = None

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        database_url: str | None = None,
        *,
        schema: str = "graphile_worker",
        max_pg_conn: int = 10,
        migrate: bool = True,
        tasks: Iterable[Task[..., Any]] = (),
        prepared_statements: bool = True,
        tracing: Tracing | None = None,
    ) -> AsyncIterator[Self]:
        """Open the database (``database_url``, ``DATABASE_URL`` or embedded) and a pool.

        ``tasks``: gw tasks whose job defaults apply to jobs added here by
        identifier (as they do to jobs added with the task object).
        ``prepared_statements=False`` through a transaction pooler (PgBouncer).
        ``tracing``: a :class:`gw.Tracing` to trace each add (OpenTelemetry).
        """
        async with (
            open_database_url(database_url) as url,
            open_pool(url, max_size=max_pg_conn, prepared_statements=prepared_statements) as pool,
        ):
            utils = cls(
                pool,
                schema,
                task_defaults={t.identifier: t.defaults for t in tasks if t.defaults is not None},
                tracing=tracing,
            )
            if migrate:
                await utils.migrate()
            yield utils

    # ------------------------------------------------------------------ schema

    async def migrate(self) -> MigrationReport:
        """Install or upgrade the schema (safe to run concurrently)."""
        async with self.pool.connection() as conn:
            return await migrate(conn, self.schema)

    # ------------------------------------------------------------------ adding jobs

    async def add_job(
        self, task: str | TaskLike, payload: Any = None, spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job for ``task`` (a gw task or an identifier) with ``payload``.

        The payload is encoded with msgspec: a Struct, dict, list or any
        JSON-able value (None means ``{}``). The task's job defaults fill
        the fields ``spec`` leaves unset. Adding by an identifier no worker
        has registered warns with :class:`gw.UnknownTaskWarning` (the job is
        added all the same).
        """
        job, notice = await self._add_one(task, payload, spec, batch=False)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    async def add_raw_job(
        self, identifier: str, payload: Any = None, spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job by identifier with a JSON-able payload (see :meth:`add_job`)."""
        job, notice = await self._add_one(identifier, payload, spec, batch=False)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    async def add_raw_job_noting(
        self, identifier: str, payload: Any = None, spec: JobSpec | None = None
    ) -> tuple[Job, str | None]:
        """:meth:`add_raw_job`, returning the unknown-task notice instead of warning it
        (None when a worker has registered the identifier); for the CLI and the admin."""
        return await self._add_one(identifier, payload, spec, batch=False)

    async def add_batch_job(
        self, task: str | TaskLike, items: Sequence[Any], spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job whose payload is the JSON array ``items`` (for batch tasks)."""
        rq.check_batch_items(items)
        job, notice = await self._add_one(task, list(items), spec, batch=True)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    async def _add_one(
        self, task: str | TaskLike, payload: Any, spec: JobSpec | None, *, batch: bool
    ) -> tuple[Job, str | None]:
        identifier, spec, check_known = rq.prepare_add(
            task, spec, self.task_defaults, self.task_identifiers
        )
        if self._before_schedule is not None:
            identifier, payload, spec = await self._before_schedule(identifier, payload, spec)
            identifier = check_identifier(identifier)
            rq.check_spec(spec)
            if batch:
                rq.check_batch_items(payload, from_hook=True)
        now = self.clock.now() if self.use_local_time else None
        call = rq.add_job_request(
            self.queries, identifier, payload, spec, now, check_known=check_known
        )
        if self.tracing is None:
            return await self._add_call(identifier, call)
        with self.tracing.send(identifier, spec.queue_name) as send:
            job, notice = await self._add_call(identifier, send.traced_call(call, self.queries))
            send.added(job.id)
        return job, notice

    async def _add_call(self, identifier: str, call: rq.AddJob) -> tuple[Job, str | None]:
        with rq.database_errors("add_job"):
            async with self.pool.connection() as conn:
                cur = await conn.execute(call.query, call.params)
                row = await cur.fetchone()
                job = call.job(row)
                if call.is_unknown(row):
                    cur = await conn.execute(self.queries.task_identifiers)
                    known = [r[0] for r in await cur.fetchall()]
                    return job, rq.unknown_task_notice(identifier, known)
        return job, None

    async def add_jobs(
        self,
        jobs: Sequence[tuple[str | TaskLike, Any] | tuple[str | TaskLike, Any, JobSpec | None]],
    ) -> list[Job]:
        """Schedule many jobs in one round trip: ``[(task, payload[, spec]), ...]``."""
        return await self._add_many(rq.job_tuples(jobs))

    async def add_raw_jobs(self, jobs: Sequence[RawJobSpec]) -> list[Job]:
        """Schedule many raw jobs in one statement (``add_jobs``); [] for no input.

        ``unsafe_dedupe`` is not allowed here; if any job asks for
        ``preserve_run_at`` the whole batch preserves run_at (Graphile's rule).
        """
        return await self._add_many([(j.identifier, j.payload, j.spec) for j in jobs])

    async def _add_many(self, jobs: Sequence[tuple[str, Any, JobSpec | None]]) -> list[Job]:
        if not jobs:
            return []
        if self.task_defaults:
            defaults = self.task_defaults
            jobs = [
                (identifier, payload, rq.with_defaults(spec, defaults.get(identifier)))
                for identifier, payload, spec in jobs
            ]
        if self._before_schedule is not None:
            jobs = await self._rewrite_all(jobs)
        calls = rq.add_jobs_requests(jobs, self.clock.now() if self.use_local_time else None)
        if self.tracing is None:
            return await self._insert_many(calls, len(jobs))
        with self.tracing.send_batch(jobs) as send:
            return await self._insert_many(calls, len(jobs), send.params)

    async def _insert_many(
        self, calls: Iterator[rq.AddJobs], count: int, trace: dict[str, Any] | None = None
    ) -> list[Job]:
        """Run the add_jobs statements (traced: storing ``trace``'s context too)."""
        async with self.pool.connection() as conn:
            if self._lean_add is None:
                try:
                    cur = await conn.execute(
                        self.queries.lean_add_allowed, {"schema": self.queries.schema}
                    )
                    row = await cur.fetchone()
                    self._lean_add = bool(row and row[0])
                except psycopg.Error as ex:
                    raise rq.database_error("add_jobs", ex) from None
            added = await _add_jobs_pipeline(
                conn,
                self.queries,
                calls,
                several=count > rq.ADD_JOBS_STATEMENT_SIZE,
                trace=trace,
                lean=self._lean_add,
            )
            if count >= ANALYZE_THRESHOLD:
                try:
                    await conn.execute(self.queries.analyze_jobs)
                except psycopg.Error as ex:  # only a planner hint; never fail the add
                    logger.warning("ANALYZE after a large batch failed: %s", ex)
        return added

    async def _rewrite_all(
        self, jobs: Sequence[tuple[str, Any, JobSpec | None]]
    ) -> list[tuple[str, Any, JobSpec | None]]:
        """Let the BeforeJobSchedule hook see (and rewrite) every job of a batch."""
        assert self._before_schedule is not None
        out: list[tuple[str, Any, JobSpec | None]] = []
        for index, (identifier, payload, spec) in enumerate(jobs):
            try:
                check_identifier(identifier)
                spec = rq.DEFAULT_SPEC if spec is None else spec
                rq.check_spec(spec)
                out.append(await self._before_schedule(identifier, payload, spec))
            except InvalidJobSpec as ex:
                raise InvalidJobSpec(f"job #{index} ({identifier!r}): {ex}") from None
        return out

    # ------------------------------------------------------------------ managing jobs

    async def remove_job(self, job_key: str) -> Job | None:
        """Cancel the job with ``job_key``.

        An unlocked job is deleted; a running one keeps running but will not
        be retried (its key is cleared). Returns the job, or None if no job
        had that key.
        """
        jobs = await self._jobs(self.queries.remove_job, {"key": rq.check_job_key(job_key)})
        return jobs[0] if jobs else None

    async def complete_jobs(self, ids: Iterable[int]) -> list[Job]:
        """Mark jobs as done (deletes them); locked jobs are left alone."""
        return await self._admin(self.queries.admin_complete_jobs, {"ids": rq.job_ids(ids)})

    async def permanently_fail_jobs(
        self, ids: Iterable[int], reason: str | None = None
    ) -> list[Job]:
        """Fail jobs for good: last_error = reason, attempts = max_attempts."""
        return await self._admin(
            self.queries.permanently_fail_jobs, {"ids": rq.job_ids(ids), "reason": reason or None}
        )

    async def reschedule_jobs(
        self,
        ids: Iterable[int],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
    ) -> list[Job]:
        """Change when/how jobs run; ``run_at=None`` means now, other None fields stay."""
        params = rq.reschedule_params(ids, run_at, priority, attempts, max_attempts)
        if run_at is None and self.use_local_time:
            params["run_at"] = self.clock.now()
        return await self._admin(self.queries.reschedule_jobs, params)

    async def cancel_jobs(
        self, ids: Iterable[int], reason: str | None = None
    ) -> list[CancelResult]:
        """Cancel jobs wherever they are, one :class:`~gw.CancelResult` per id.

        A waiting job is failed for good at once (``last_error = "cancelled:
        <reason>"``); one a gw worker runs is cancelled there within about a
        second (NOTIFY ``gw:cancel``, polled as a fallback) and recorded the
        same way; one a Node or Rust worker holds is left alone
        (``not_cancellable``).
        """
        params = rq.cancel_params(ids, reason)
        if not params["ids"]:
            return []
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(self.queries.prune_cancel_requests)
                cur = await conn.execute(self.queries.cancel_jobs, params)
                rows = await cur.fetchall()
        except psycopg.Error as ex:
            raise rq.database_error(self.queries.cancel_jobs, ex) from None
        return rq.cancel_results(params["ids"], rows)

    async def get_result(self, job_id: int) -> HistoryEntry | None:
        """The last finished attempt of a job (its ``outcome``, ``result``,
        ``error``, times), as recorded by workers run with ``gw.History``; None
        when none is recorded (yet, or any more)."""
        params = {"job_id": rq.job_ids([job_id])[0]}
        rows = await self._fetch_rows(self.queries.job_result, params)
        return rq.history_entry(rows[0]) if rows else None

    async def wait_for_result(
        self, job_id: int, *, timeout: float | timedelta = 30.0
    ) -> HistoryEntry:
        """Wait until the job ends for good and return its final attempt.

        Final means completed, permanently failed, cancelled or skipped (an
        attempt that will be retried is not). Woken by the history's NOTIFY,
        not by polling. Raises :class:`gw.ResultTimeout` when the job has not
        ended within ``timeout``, and :class:`gw.ResultUnavailable` when it
        ended without a history record (run by a worker without
        ``gw.History``, by Node or Rust, or pruned; such a worker sends no
        notification, so one that finishes the job during the wait ends it
        with ``ResultTimeout``).
        """
        (job_id,) = rq.job_ids([job_id])
        seconds = rq.duration("timeout", timeout, allow_zero=False)
        look = Notify()
        look.notify()  # look once LISTEN is on, then after each relevant NOTIFY

        def on_connect() -> None:
            look.notify()  # (re)connected: a completion may have gone unheard

        wanted = str(job_id)
        found: HistoryEntry | GwError | None = None
        with self.clock.move_on_after(seconds):
            async with (
                Listener(
                    self.pool.conninfo, [HISTORY_CHANNEL], on_connect=on_connect, clock=self.clock
                ) as listener,
                open_task_group() as tg,
            ):

                async def hear() -> None:
                    async for note in listener:
                        # An empty payload: too many ids for one notification.
                        if not note.payload or wanted in note.payload.split(","):
                            look.notify()

                tg.start_soon(hear)
                while found is None:
                    await look.wait()
                    try:
                        found = await self._final_result(job_id)
                    except GwError as ex:
                        found = ex  # raised below, not as a task group's exception group
                tg.cancel_scope.cancel()
        if isinstance(found, GwError):
            raise found
        if found is None:
            raise ResultTimeout(f"job {job_id} did not finish within {seconds:g} s")
        return found

    async def _final_result(self, job_id: int) -> HistoryEntry | None:
        """The job's final attempt; None while it can still run."""
        rows = await self._fetch_rows(self.queries.final_result, {"job_id": job_id})
        runnable, *history = rows[0]
        if runnable:
            return None
        if history[0] is None:
            raise ResultUnavailable(
                f"job {job_id} is not waiting to run and has no final history record: "
                "it ran on a worker without gw.History (or on Node or Rust), was deleted, "
                "or its history was pruned"
            )
        return rq.history_entry(history)

    async def list_history(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        outcome: str | None = None,
        job_id: int | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[HistoryEntry]:
        """Finished attempts, newest recorded first, filtered by task, queue, outcome,
        job and time (recorded by workers run with ``gw.History``).

        ``before_id`` pages: pass the ``id`` of the last entry of a page to get
        the entries recorded before it.
        """
        params = rq.history_params(task, queue, outcome, job_id, since, limit, before_id)
        rows = await self._fetch_rows(self.queries.list_history, params)
        return [rq.history_entry(row) for row in rows]

    # -- history stats (admin charts) ----------------------------------------------

    async def history_stats(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        bucket: float | timedelta | None = None,
        task: str | None = None,
        queue: str | None = None,
    ) -> HistoryStats:
        """Counts and timings of the recorded history over ``[since, until)``, per
        time bucket, for charts (recorded by workers run with ``gw.History``).

        Per bucket: completed, failed (failed and permanently failed) and other
        attempts, and the p50/p90/p99 of run time and of queue wait (run_at to
        start); per bucket of the 20 busiest tasks, the same counts; and the
        backlog samples (the latest of each bucket). ``until`` defaults to now;
        ``bucket`` (seconds or a timedelta, >= 1 s) is chosen for the range when
        None (60 to 120 buckets for most ranges; at most 1000 buckets).
        ``task`` and ``queue`` narrow the attempts (not the backlog).
        """
        window = stats.stats_window(since, until, bucket, now=self.clock.now())
        params = stats.stats_params(window, task, queue)
        rows = await self._fetch_rows(self.queries.history_stats, params)
        return stats.build_stats(window, rows[0])

    async def _fetch_rows(self, query: str, params: dict[str, Any]) -> list[Any]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except psycopg.Error as ex:
            raise rq.database_error(query, ex) from None

    async def list_limits(self) -> list[LimitUsage]:
        """The fleet-wide limits gw workers configured, with their current use."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(self.queries.limits_overview)
                rows = await cur.fetchall()
        except psycopg.Error as ex:
            raise rq.database_error(self.queries.limits_overview, ex) from None
        return [rq.limit_usage(row) for row in rows]

    async def force_unlock_workers(self, worker_ids: Iterable[str]) -> None:
        """Release every job and queue locked by these worker (or Node pool) ids."""
        ids = rq.worker_ids(worker_ids)
        if not ids:
            return
        await self._execute(self.queries.force_unlock_workers, {"worker_ids": ids})

    async def cleanup(
        self, tasks: Iterable[CleanupTask | str] = DEFAULT_CLEANUP
    ) -> list[CleanupTask]:
        """Run maintenance tasks (in Graphile's order); returns the tasks run.

        ``GC_TASK_IDENTIFIERS`` keeps the identifiers this utils' worker knows,
        so running workers keep finding their jobs.
        """
        wanted = {rq.cleanup_task(t) for t in tasks}
        order = (
            CleanupTask.DELETE_PERMAFAILED_JOBS,
            CleanupTask.GC_TASK_IDENTIFIERS,
            CleanupTask.GC_JOB_QUEUES,
        )
        done: list[CleanupTask] = []
        with rq.database_errors("cleanup"):
            async with self.pool.connection() as conn:
                for task in order:
                    if task not in wanted:
                        continue
                    if task is CleanupTask.DELETE_PERMAFAILED_JOBS:
                        await conn.execute(self.queries.cleanup_delete_permafailed_jobs)
                    elif task is CleanupTask.GC_TASK_IDENTIFIERS:
                        await conn.execute(
                            self.queries.cleanup_gc_task_identifiers,
                            {"keep": list(self.task_identifiers)},
                        )
                    else:
                        await conn.execute(self.queries.cleanup_gc_job_queues)
                    done.append(task)
        if CleanupTask.GC_TASK_IDENTIFIERS in done and self.on_task_identifiers_deleted:
            await self.on_task_identifiers_deleted()
        return done

    # ------------------------------------------------------------------ inspecting

    async def get_job(self, job_id: int) -> Job | None:
        """One job by id (with payload), or None."""
        jobs = await self._jobs(self.queries.get_job, {"id": rq.job_ids([job_id])[0]})
        return jobs[0] if jobs else None

    async def list_jobs(
        self,
        *,
        state: JobState = "all",
        identifier: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """Jobs newest first, filtered like the admin UI (limit 1..500)."""
        if state not in JOB_STATES:
            raise ConfigurationError(
                f"unknown state {state!r}; expected one of {', '.join(JOB_STATES)}"
            )
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise ConfigurationError(f"limit must be an integer between 1 and {MAX_LIST_LIMIT}")
        if not rq.is_int(offset) or offset < 0:
            raise ConfigurationError("offset must be an integer >= 0")
        query = self.queries.list_jobs(
            state, identifier=bool(identifier), queue=bool(queue), search=bool(search)
        )
        params: dict[str, Any] = {
            "identifier": identifier,
            "queue": queue,
            "search": search,
            "pattern": like_pattern(search) if search else None,
            "limit": limit + 1,  # one more tells whether there is a next page
            "offset": offset,
        }
        jobs = await self._jobs(query, params)
        return JobPage(jobs=jobs[:limit], limit=limit, offset=offset, has_more=len(jobs) > limit)

    async def stats(self) -> JobStats:
        """Counts of jobs by state."""
        rows = await self._fetch(self.queries.job_stats, None)
        return msgspec.convert(rows[0], JobStats)

    async def queues(self) -> list[QueueInfo]:
        """Named queues with their job counts and locks."""
        return [msgspec.convert(r, QueueInfo) for r in await self._fetch(self.queries.queues, None)]

    async def locked_workers(self) -> list[LockedWorker]:
        """Locker ids (gw/RS workers, Node pools) that hold jobs or queues now."""
        rows = await self._fetch(self.queries.locked_workers, None)
        return [msgspec.convert(r, LockedWorker) for r in rows]

    async def list_active_workers(self, threshold: float | None = None) -> list[ActiveWorker]:
        """Workers registered for recovery (heartbeat within ``threshold`` seconds, if given)."""
        if threshold is not None:
            rq.check_seconds("threshold", threshold)
        with rq.database_errors("list_active_workers"):
            return await recovery.list_active_workers(
                self.pool, self.queries, None if threshold is None else float(threshold)
            )

    async def sweep_stale_workers(
        self,
        *,
        sweep_threshold: float = 300.0,
        recovery_delay: float = 30.0,
        dry_run: bool = False,
    ) -> SweepResult:
        """Recover jobs of workers that stopped heartbeating (and of unregistered
        lockers) older than ``sweep_threshold`` seconds; ``dry_run`` only reports.

        When another sweeper holds the sweep lock, returns an empty result.
        """
        rq.check_seconds("sweep_threshold", sweep_threshold)
        rq.check_seconds("recovery_delay", recovery_delay)
        with rq.database_errors("sweep_stale_workers"):
            result = await recovery.sweep_stale_workers(
                self.pool,
                self.queries,
                sweep_threshold=float(sweep_threshold),
                recovery_delay=float(recovery_delay),
                dry_run=dry_run,
            )
        return result or SweepResult(dry_run=dry_run, worker_ids=[], job_ids=[])

    async def sweep_stale_workers_with_config(
        self, config: RecoveryConfig, *, dry_run: bool = False
    ) -> SweepResult:
        """Like :meth:`sweep_stale_workers`, with every setting taken from ``config``
        (threshold, delay, and the longer threshold for infrastructure-resilient jobs)."""
        from ..worker._config import RecoveryConfig

        if not isinstance(config, RecoveryConfig):
            raise ConfigurationError(
                f"config must be a gw.RecoveryConfig, got {type(config).__name__}"
            )
        result = await recovery.sweep_stale_workers(
            self.pool,
            self.queries,
            sweep_threshold=config.sweep_threshold,
            recovery_delay=config.recovery_delay,
            dry_run=dry_run,
            resilient_flags=tuple(config.resilient_job_flags),
            resilient_multiplier=config.resilient_sweep_threshold_multiplier,
        )
        return result or SweepResult(dry_run=dry_run, worker_ids=[], job_ids=[])

    async def known_task_identifiers(self) -> list[str]:
        """Every task identifier registered in the schema."""
        return [r["identifier"] for r in await self._fetch(self.queries.task_identifiers, None)]

    # ------------------------------------------------------------------ plumbing

    async def _fetch(self, query: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        try:
            return await self.pool.fetch(query, params)
        except psycopg.Error as ex:
            raise rq.database_error(query, ex) from None

    async def _execute(self, query: str, params: dict[str, Any] | None) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(query, params)
        except psycopg.Error as ex:
            raise rq.database_error(query, ex) from None

    async def _admin(self, query: str, params: dict[str, Any]) -> list[Job]:
        if not params["ids"]:
            return []
        return await self._jobs(query, params)

    async def _jobs(self, query: str, params: dict[str, Any]) -> list[Job]:
        """Run a statement returning rows in :class:`Job` field order."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query, params)
                rows = await cur.fetchall()
        except psycopg.Error as ex:
            raise rq.database_error(query, ex) from None
        return [Job(*row) for row in rows]


async def _add_jobs_pipeline(
    conn: Any,
    queries: Queries,
    calls: Iterator[rq.AddJobs],
    *,
    several: bool,
    trace: dict[str, Any] | None = None,
    lean: bool = False,
) -> list[Job]:
    """Run the add_jobs statements (each with the ids of its names) in one pipeline.

    Statement k + 1 is built and sent before the rows of statement k are read,
    so the client's encoding and decoding overlap the server's inserting.
    Several statements run in one transaction; after an error, the pool's
    release rolls it back. ``lean``: fresh jobs come back as id and times only
    (``Queries.lean_add_allowed`` said nothing can rewrite them).
    """
    query = queries.add_jobs_lean if lean else queries.add_jobs
    if trace is not None:  # gw.Tracing: also store the producer span's context
        query = queries.traced_add[query]
    added: list[Job] = []
    try:
        async with conn.pipeline():
            if several:
                await conn.execute("begin")
            pending: tuple[rq.AddJobs, Any, Any] | None = None
            for call in calls:
                # Binary rows: cheaper for the server to send and for us to parse.
                cur = conn.cursor(binary=True)
                await cur.execute(query, call.params if trace is None else call.params | trace)
                names_cur = conn.cursor()
                await names_cur.execute(queries.ids_for_names, call.names_params)
                if pending is not None:
                    added.extend(await _read_added(conn, queries, lean, *pending))
                pending = (call, cur, names_cur)
            if pending is not None:
                added.extend(await _read_added(conn, queries, lean, *pending))
            if several:
                await conn.execute("commit")
    except psycopg.Error as ex:
        raise rq.database_error("add_jobs", ex) from None
    except InvalidJobSpec:
        raise  # a later statement's job was refused; the pipeline's exit settled the protocol
    except BaseException:
        # Cancelled half-way through a pipeline: the connection's protocol
        # state is unknown, so it must not go back to the pool.
        await conn.close()
        raise
    return added


async def _read_added(
    conn: Any, queries: Queries, lean: bool, call: rq.AddJobs, cur: Any, names_cur: Any
) -> list[Job]:
    rows = await cur.fetchall()
    names = await names_cur.fetchall()
    if not lean:
        return call.jobs(rows, names)
    jobs = call.lean_jobs(rows, names)
    if jobs is None:
        # The rows did not line up with the jobs sent (a trigger of the
        # application's rewrote or skipped some): read them as stored.
        logger.debug("add_jobs rows did not match the jobs sent; reading them by id")
        by_id = conn.cursor(binary=True)
        await by_id.execute(queries.jobs_by_ids, {"ids": [row[0] for row in rows]})
        jobs = [Job(*row) for row in await by_id.fetchall()]
    return jobs
