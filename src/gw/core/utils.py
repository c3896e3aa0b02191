"""WorkerUtils: add, manage and maintain jobs without running a worker.

Every job goes in through the schema's ``add_job``/``add_jobs`` SQL functions
(never a raw INSERT) so that task and queue rows, job-key semantics and the
``jobs:insert`` NOTIFY behave exactly as for Node and Rust producers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, Self

import msgspec
import psycopg

from ..db.embedded import open_database_url
from ..db.migrate import MigrationReport, migrate
from ..db.pool import Pool
from ..db.queries import Queries, like_pattern, queries_for
from ..errors import ConfigurationError, DatabaseError, GwError, InvalidJobSpec
from ..runtime import Clock, SystemClock
from ..types import (
    JOB_STATES,
    ActiveWorker,
    CleanupTask,
    Job,
    JobPage,
    JobSpec,
    JobState,
    JobStats,
    LockedWorker,
    QueueInfo,
    RawJobSpec,
    SweepResult,
    check_identifier,
)
from . import recovery
from ._json import encode_payload, json_loads

if TYPE_CHECKING:
    from datetime import datetime

    from ..worker._config import RecoveryConfig

__all__ = ("TaskLike", "WorkerUtils", "open_pool")

logger = logging.getLogger("gw.utils")

ANALYZE_THRESHOLD = 10_000
MAX_LIST_LIMIT = 500
_DEFAULT_SPEC = JobSpec()
DEFAULT_CLEANUP: tuple[CleanupTask, ...] = (
    CleanupTask.GC_JOB_QUEUES,
    CleanupTask.GC_TASK_IDENTIFIERS,
)


class TaskLike(Protocol):
    """Anything with a task identifier (gw task objects, or your own)."""

    @property
    def identifier(self) -> str: ...


BeforeSchedule = Callable[[str, Any, JobSpec], Awaitable[tuple[str, Any, JobSpec]]]


async def _configure_connection(conn: Any) -> None:
    # msgspec decodes json/jsonb columns several times faster than json.loads.
    from psycopg.types.json import set_json_loads

    set_json_loads(json_loads, conn)


def open_pool(database_url: str, *, max_size: int = 10, **kwargs: Any) -> Pool:
    """A :class:`~gw.db.pool.Pool` configured the way gw's queries expect."""
    return Pool(database_url, max_size=max_size, configure=_configure_connection, **kwargs)


def _identifier_of(task: str | TaskLike) -> str:
    if isinstance(task, str):
        return check_identifier(task)
    identifier = getattr(task, "identifier", None)
    if not isinstance(identifier, str):
        raise InvalidJobSpec(
            f"expected a task identifier string or a gw task, got {type(task).__name__}"
        )
    return check_identifier(identifier)


def _spec_fields(spec: JobSpec, now: datetime | None) -> dict[str, Any]:
    """The ``job_spec`` fields a JobSpec sets (absent keys are null in SQL)."""
    _check_spec(spec)
    if spec.job_key_mode == "unsafe_dedupe":
        raise InvalidJobSpec(
            "job_key_mode 'unsafe_dedupe' is not supported when adding jobs in a "
            "batch; add that job with add_job/add_raw_job instead"
        )
    fields = {
        "queue_name": spec.queue_name,
        "run_at": spec.run_at or now,
        "max_attempts": spec.max_attempts,
        "job_key": spec.job_key or None,
        "priority": spec.priority,
        "flags": list(spec.flags) if spec.flags else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


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
        use_local_time: bool = False,
        clock: Clock | None = None,
        before_schedule: BeforeSchedule | None = None,
    ) -> None:
        self.pool = pool
        self.queries: Queries = queries_for(schema)
        self.schema = schema
        self.task_identifiers = tuple(task_identifiers)
        self.use_local_time = use_local_time
        self.clock = clock or SystemClock()
        self._before_schedule = before_schedule
        self.on_task_identifiers_deleted: Callable[[], Awaitable[None]] | None = None

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        database_url: str | None = None,
        *,
        schema: str = "graphile_worker",
        max_pg_conn: int = 10,
        migrate: bool = True,
    ) -> AsyncIterator[Self]:
        """Open the database (``database_url``, ``DATABASE_URL`` or embedded) and a pool."""
        async with (
            open_database_url(database_url) as url,
            open_pool(url, max_size=max_pg_conn) as pool,
        ):
            utils = cls(pool, schema)
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
        JSON-able value (None means ``{}``).
        """
        return await self.add_raw_job(_identifier_of(task), payload, spec)

    async def add_raw_job(
        self, identifier: str, payload: Any = None, spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job by identifier with a JSON-able payload."""
        return await self._add_one(identifier, payload, spec, batch=False)

    async def add_batch_job(
        self, task: str | TaskLike, items: Sequence[Any], spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job whose payload is the JSON array ``items`` (for batch tasks)."""
        _check_batch_items(items)
        return await self._add_one(_identifier_of(task), list(items), spec, batch=True)

    async def _add_one(
        self, identifier: str, payload: Any, spec: JobSpec | None, *, batch: bool
    ) -> Job:
        identifier = check_identifier(identifier)
        if spec is None:
            spec = _DEFAULT_SPEC
        elif spec is not _DEFAULT_SPEC:
            _check_spec(spec)
        if self._before_schedule is not None:
            identifier, payload, spec = await self._before_schedule(identifier, payload, spec)
            identifier = check_identifier(identifier)
            _check_spec(spec)
            if batch:
                _check_batch_items(payload, from_hook=True)
        payload_json = encode_payload(payload)
        run_at = spec.run_at
        if run_at is None and self.use_local_time:
            run_at = self.clock.now()
        job_key = spec.job_key or None
        dedupe = spec.job_key_mode == "unsafe_dedupe"
        params = {
            "identifier": identifier,
            "payload": payload_json.decode(),
            "queue_name": spec.queue_name,
            "run_at": run_at,
            "max_attempts": spec.max_attempts,
            "job_key": job_key,
            "priority": spec.priority,
            "flags": list(spec.flags) if spec.flags else None,
            "job_key_mode": spec.job_key_mode or ("replace" if job_key else None),
        }
        query = self.queries.add_job_named if dedupe else self.queries.add_job
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query, params)
                row = await cur.fetchone()
        except psycopg.Error as ex:
            raise _database_error("add_job", ex) from None
        if row is None or row[0] is None:
            raise DatabaseError(
                f"the database did not schedule the job for key {job_key!r} "
                "(it was locked by a worker at that moment); try again"
            )
        if dedupe:
            job = Job(*row)
            if job.revision > 0:
                # The existing job, with its own task and queue names.
                return job
            # A new job: its task or queue may be new too, which the
            # statement's own snapshot cannot see.
            return Job(row[0], identifier, spec.queue_name, *row[3:])
        return Job(row[0], identifier, spec.queue_name, *row[1:])

    async def add_jobs(
        self,
        jobs: Sequence[tuple[str | TaskLike, Any] | tuple[str | TaskLike, Any, JobSpec | None]],
    ) -> list[Job]:
        """Schedule many jobs in one round trip: ``[(task, payload[, spec]), ...]``."""
        triples = []
        for index, entry in enumerate(jobs):
            if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                raise InvalidJobSpec(
                    f"job #{index}: expected a (task, payload) or (task, payload, spec) tuple, "
                    f"got {entry!r}"
                )
            try:
                identifier = _identifier_of(entry[0])
            except InvalidJobSpec as ex:
                raise InvalidJobSpec(f"job #{index}: {ex}") from None
            triples.append((identifier, entry[1], entry[2] if len(entry) == 3 else None))
        return await self._add_many(triples)

    async def add_raw_jobs(self, jobs: Sequence[RawJobSpec]) -> list[Job]:
        """Schedule many raw jobs in one statement (``add_jobs``); [] for no input.

        ``unsafe_dedupe`` is not allowed here; if any job asks for
        ``preserve_run_at`` the whole batch preserves run_at (Graphile's rule).
        """
        return await self._add_many([(j.identifier, j.payload, j.spec) for j in jobs])

    async def _add_many(self, jobs: Sequence[tuple[str, Any, JobSpec | None]]) -> list[Job]:
        if not jobs:
            return []
        specs: list[dict[str, Any]] = []
        preserve = False
        now = self.clock.now() if self.use_local_time else None
        # Jobs usually share a few JobSpec objects: validate and convert each once.
        spec_fields: dict[int, tuple[JobSpec, dict[str, Any]]] = {}
        identifiers: set[str] = set()
        queues: set[str] = set()
        keys: set[str] = set()
        hook = self._before_schedule
        for index, (identifier, payload, spec) in enumerate(jobs):
            asked = identifier
            try:
                if type(identifier) is not str or identifier not in identifiers:
                    check_identifier(identifier)
                if spec is None:
                    spec = _DEFAULT_SPEC
                if hook is not None:
                    _check_spec(spec)
                    identifier, payload, spec = await hook(identifier, payload, spec)
                    check_identifier(identifier)
                cached = spec_fields.get(id(spec))
                if cached is None:
                    cached = spec_fields[id(spec)] = (spec, _spec_fields(spec, now))
                fields = cached[1]
                payload_json = encode_payload(payload)
            except InvalidJobSpec as ex:
                raise InvalidJobSpec(f"job #{index} ({asked!r}): {ex}") from None
            identifiers.add(identifier)
            key = fields.get("job_key")
            if key is not None:
                if key in keys:
                    raise InvalidJobSpec(
                        f"job_key {key!r} appears more than once in one batch; "
                        "each key may be used once per add_jobs call"
                    )
                keys.add(key)
                preserve = preserve or spec.job_key_mode == "preserve_run_at"
            queue = fields.get("queue_name")
            if queue is not None:
                queues.add(queue)
            specs.append({"identifier": identifier, "payload": msgspec.Raw(payload_json), **fields})
        params = {"specs": msgspec.json.encode(specs).decode(), "preserve_run_at": preserve}
        names_params = {"identifiers": sorted(identifiers), "queues": sorted(queues)}
        async with self.pool.connection() as conn:
            rows, names = await _add_jobs_pipeline(conn, self.queries, params, names_params)
            if len(specs) >= ANALYZE_THRESHOLD:
                try:
                    await conn.execute(self.queries.analyze_jobs)
                except psycopg.Error as ex:  # only a planner hint; never fail the add
                    logger.warning("ANALYZE after a large batch failed: %s", ex)
        task_names = {n[1]: n[2] for n in names if n[0] == "t"}
        queue_names = {n[1]: n[2] for n in names if n[0] == "q"}
        return [
            Job(r[0], task_names[r[15]], None if r[16] is None else queue_names[r[16]], *r[1:])
            for r in rows
        ]

    # ------------------------------------------------------------------ managing jobs

    async def remove_job(self, job_key: str) -> Job | None:
        """Cancel the job with ``job_key``.

        An unlocked job is deleted; a running one keeps running but will not
        be retried (its key is cleared). Returns the job, or None if no job
        had that key.
        """
        if not isinstance(job_key, str) or not job_key:
            raise InvalidJobSpec("remove_job needs a non-empty job key")
        jobs = await self._jobs(self.queries.remove_job, {"key": job_key})
        return jobs[0] if jobs else None

    async def complete_jobs(self, ids: Iterable[int]) -> list[Job]:
        """Mark jobs as done (deletes them); locked jobs are left alone."""
        return await self._admin(self.queries.admin_complete_jobs, {"ids": _ids(ids)})

    async def permanently_fail_jobs(
        self, ids: Iterable[int], reason: str | None = None
    ) -> list[Job]:
        """Fail jobs for good: last_error = reason, attempts = max_attempts."""
        return await self._admin(
            self.queries.permanently_fail_jobs, {"ids": _ids(ids), "reason": reason or None}
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
        if run_at is not None and (run_at.tzinfo is None or run_at.utcoffset() is None):
            raise InvalidJobSpec(
                f"run_at {run_at.isoformat()} has no timezone; pass an aware datetime"
            )
        if priority is not None or max_attempts is not None:
            JobSpec(priority=priority, max_attempts=max_attempts).validate()
        if attempts is not None and (not _is_int(attempts) or not 0 <= attempts <= 32767):
            raise InvalidJobSpec(f"attempts must be between 0 and 32767, got {attempts!r}")
        if run_at is None and self.use_local_time:
            run_at = self.clock.now()
        return await self._admin(
            self.queries.reschedule_jobs,
            {
                "ids": _ids(ids),
                "run_at": run_at,
                "priority": priority,
                "attempts": attempts,
                "max_attempts": max_attempts,
            },
        )

    async def force_unlock_workers(self, worker_ids: Iterable[str]) -> None:
        """Release every job and queue locked by these worker (or Node pool) ids."""
        ids = list(worker_ids)
        if not all(isinstance(w, str) and w for w in ids):
            raise ConfigurationError("worker ids must be non-empty strings")
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
        wanted = {_cleanup_task(t) for t in tasks}
        order = (
            CleanupTask.DELETE_PERMAFAILED_JOBS,
            CleanupTask.GC_TASK_IDENTIFIERS,
            CleanupTask.GC_JOB_QUEUES,
        )
        done: list[CleanupTask] = []
        with _database_errors("cleanup"):
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
        jobs = await self._jobs(self.queries.get_job, {"id": _ids([job_id])[0]})
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
        if not _is_int(offset) or offset < 0:
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
            _check_seconds("threshold", threshold)
        with _database_errors("list_active_workers"):
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
        _check_seconds("sweep_threshold", sweep_threshold)
        _check_seconds("recovery_delay", recovery_delay)
        with _database_errors("sweep_stale_workers"):
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
            raise _database_error(query, ex) from None

    async def _execute(self, query: str, params: dict[str, Any] | None) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(query, params)
        except psycopg.Error as ex:
            raise _database_error(query, ex) from None

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
            raise _database_error(query, ex) from None
        return [Job(*row) for row in rows]


async def _add_jobs_pipeline(
    conn: Any, queries: Queries, params: dict[str, Any], names_params: dict[str, Any]
) -> tuple[list[Any], list[Any]]:
    """add_jobs and the ids of the batch's names, in one round trip."""
    try:
        async with conn.pipeline():
            # Binary rows: cheaper for the server to send and for us to parse.
            cur = conn.cursor(binary=True)
            await cur.execute(queries.add_jobs, params)
            names_cur = conn.cursor()
            await names_cur.execute(queries.ids_for_names, names_params)
            rows = await cur.fetchall()
            names = await names_cur.fetchall()
    except psycopg.Error as ex:
        raise _database_error("add_jobs", ex) from None
    except BaseException:
        # Cancelled half-way through a pipeline: the connection's protocol
        # state is unknown, so it must not go back to the pool.
        await conn.close()
        raise
    return rows, names


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, JobSpec):
        raise InvalidJobSpec(f"spec must be a gw.JobSpec (or None), got {type(spec).__name__}")
    spec.validate()


def _check_batch_items(items: Any, *, from_hook: bool = False) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        if from_hook:
            raise InvalidJobSpec(
                "the before_job_schedule hook must return a non-empty list as the payload "
                f"of a batch job, got {items!r}"
            )
        if not isinstance(items, (str, bytes)) and isinstance(items, Sequence):
            raise InvalidJobSpec("a batch job needs at least one item")
        raise InvalidJobSpec("a batch job's items must be a list")


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")


@contextmanager
def _database_errors(what: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as ex:
        raise _database_error(what, ex) from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(ids: Iterable[int]) -> list[int]:
    out = list(ids)
    for value in out:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"job ids must be positive integers, got {value!r}")
    return out


def _cleanup_task(task: CleanupTask | str) -> CleanupTask:
    if isinstance(task, CleanupTask):
        return task
    normalised = str(task).strip().lower().replace("_", "-")
    aliases = {"delete-permafailed-jobs": CleanupTask.DELETE_PERMAFAILED_JOBS}
    try:
        return aliases.get(normalised) or CleanupTask(normalised)
    except ValueError:
        raise ConfigurationError(
            f"unknown cleanup task {task!r}; expected one of "
            + ", ".join(t.value for t in CleanupTask)
        ) from None


def _database_error(what: str, ex: psycopg.Error) -> GwError:
    first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
    if ex.sqlstate == "23514":
        return InvalidJobSpec(f"the database rejected the job: {first}")
    if ex.sqlstate == "22003":
        return InvalidJobSpec(f"a number is out of range: {first}")
    if ex.sqlstate == "21000":
        return InvalidJobSpec(f"the same job_key appears twice in one batch: {first}")
    if ex.sqlstate in ("42P01", "3F000", "42883"):
        return DatabaseError(
            f"the gw schema is missing or out of date ({first}); run `gw migrate` "
            "or WorkerUtils.migrate() first"
        )
    return DatabaseError(f"database error: {first}")
