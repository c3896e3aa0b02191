"""Blocking WorkerUtils for synchronous code (Django, Flask, scripts, migrations).

Give it your own ``psycopg.Connection`` and jobs are added *inside your
transaction*: they become visible (and wake workers) only if your
transaction commits, so a job can never refer to a row that was rolled back::

    import psycopg, gw.sync

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("insert into orders (id) values (%s)", (order_id,))
        gw.sync.WorkerUtils(conn).add_raw_job("send_receipt", {"order_id": order_id})

Or give it a URL (``DATABASE_URL`` when omitted, else the embedded server)
and it uses one autocommit connection of its own; close it with ``close()``
or a ``with`` block. The
operations and their validation are exactly those of the async
:class:`gw.WorkerUtils`.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Self

import psycopg

from .core import _requests as rq
from .core._json import json_loads
from .core.tracing import Tracing
from .db.queries import queries_for
from .errors import ConfigurationError
from .types import CancelResult, HistoryEntry, Job, JobSpec, LimitUsage, RawJobSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from .core._requests import TaskLike
    from .db.migrate import MigrationReport

__all__ = ("WorkerUtils",)


class WorkerUtils:
    """Add and manage jobs from blocking code; see the module docstring."""

    def __init__(
        self,
        conn_or_url: psycopg.Connection[Any] | str | None = None,
        schema: str = "graphile_worker",
        *,
        tracing: Tracing | None = None,
    ) -> None:
        if tracing is not None and not isinstance(tracing, Tracing):
            raise ConfigurationError(f"tracing must be a gw.Tracing(...), got {tracing!r}")
        self.tracing = tracing
        """gw.Tracing: each add is a producer span whose context the job keeps."""
        self.queries = queries_for(schema)
        self.schema = schema
        self._url: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._owns_conn = False
        self._embedded: Any = None
        if isinstance(conn_or_url, psycopg.Connection):
            self._conn = conn_or_url
        else:
            url = conn_or_url or os.environ.get("DATABASE_URL", "").strip()
            if not url:
                # No URL: the embedded server, as for the async API (released by close()).
                from .db.embedded import EmbeddedPostgres

                self._embedded = EmbeddedPostgres()
                url = self._embedded.start()
            self._url = url

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection this object opened (a connection you passed stays open),
        and release the embedded server if it started one."""
        if self._owns_conn and self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    @property
    def url(self) -> str | None:
        """The database URL this object connects to (the embedded server's when it
        started one; None for a connection you passed)."""
        return self._url

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or (self._owns_conn and self._conn.closed):
            assert self._url is not None
            from .db.connection import describe_conninfo
            from .errors import ConnectionFailed

            try:
                self._conn = psycopg.connect(self._url, autocommit=True)
            except psycopg.Error as ex:
                first = str(ex).strip().splitlines()[0] if str(ex).strip() else repr(ex)
                raise ConnectionFailed(
                    f"could not connect to PostgreSQL at {describe_conninfo(self._url)}: {first}"
                ) from None
            from psycopg.types.json import set_json_loads

            set_json_loads(json_loads, self._conn)
            self._owns_conn = True
        return self._conn

    # -- schema

    def migrate(self) -> MigrationReport:
        """Install or upgrade the schema (needs a URL, not a borrowed connection)."""
        if self._url is None:
            raise ConfigurationError(
                "migrate() needs a database URL: use gw.sync.WorkerUtils(url).migrate() "
                "or `gw migrate`"
            )
        from .db.migrate import migrate_sync

        return migrate_sync(self._url, self.schema)

    # -- adding jobs

    def add_job(
        self, task: str | TaskLike, payload: Any = None, spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job for ``task`` (a gw task or an identifier); as the async
        :meth:`gw.WorkerUtils.add_job` (task defaults, unknown-task warning)."""
        job, notice = self._add_one(task, payload, spec)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    def add_raw_job(self, identifier: str, payload: Any = None, spec: JobSpec | None = None) -> Job:
        """Schedule one job by identifier with a JSON-able payload."""
        job, notice = self._add_one(identifier, payload, spec)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    def add_batch_job(
        self, task: str | TaskLike, items: Sequence[Any], spec: JobSpec | None = None
    ) -> Job:
        """Schedule one job whose payload is the JSON array ``items``."""
        rq.check_batch_items(items)
        job, notice = self._add_one(task, list(items), spec)
        rq.warn_unknown_task(notice, stacklevel=2)
        return job

    def _add_one(
        self, task: str | TaskLike, payload: Any, spec: JobSpec | None
    ) -> tuple[Job, str | None]:
        identifier, spec, check_known = rq.prepare_add(task, spec, {})
        call = rq.add_job_request(
            self.queries, identifier, payload, spec, None, check_known=check_known
        )
        if self.tracing is None:
            return self._add_call(identifier, call)
        with self.tracing.send(identifier, spec.queue_name) as send:
            job, notice = self._add_call(identifier, send.traced_call(call, self.queries))
            send.added(job.id)
        return job, notice

    def _add_call(self, identifier: str, call: rq.AddJob) -> tuple[Job, str | None]:
        conn = self.connection
        with rq.database_errors("add_job"):
            row = conn.execute(call.query, call.params).fetchone()
            job = call.job(row)
            if call.is_unknown(row):
                known = [r[0] for r in conn.execute(self.queries.task_identifiers).fetchall()]
                return job, rq.unknown_task_notice(identifier, known)
        return job, None

    def add_jobs(self, jobs: Sequence[tuple[Any, ...]]) -> list[Job]:
        """Schedule many jobs in one round trip: ``[(task, payload[, spec]), ...]``."""
        return self._add_many(rq.job_tuples(jobs))

    def add_raw_jobs(self, jobs: Sequence[RawJobSpec]) -> list[Job]:
        """Schedule many raw jobs in one statement; [] for no input."""
        return self._add_many([(j.identifier, j.payload, j.spec) for j in jobs])

    def _add_many(self, jobs: Sequence[tuple[str, Any, JobSpec | None]]) -> list[Job]:
        if not jobs:
            return []
        if self.tracing is None:
            return self._insert_many(jobs)
        with self.tracing.send_batch(jobs) as send:
            return self._insert_many(jobs, send.params)

    def _insert_many(
        self, jobs: Sequence[tuple[str, Any, JobSpec | None]], trace: dict[str, Any] | None = None
    ) -> list[Job]:
        conn = self.connection
        query, extra = self.queries.add_jobs, {}
        if trace is not None:  # gw.Tracing: also store the producer span's context
            query, extra = self.queries.traced_add[query], trace
        added: list[Job] = []
        # Several statements commit together (a savepoint inside the caller's
        # own transaction).
        several = len(jobs) > rq.ADD_JOBS_STATEMENT_SIZE
        with rq.database_errors("add_jobs"), conn.transaction() if several else nullcontext():
            for call in rq.add_jobs_requests(jobs, None):
                with conn.pipeline():
                    cur = conn.cursor(binary=True)
                    cur.execute(query, call.params | extra if extra else call.params)
                    names_cur = conn.cursor()
                    names_cur.execute(self.queries.ids_for_names, call.names_params)
                    rows = cur.fetchall()
                    names = names_cur.fetchall()
                added.extend(call.jobs(rows, names))
        return added

    # -- managing jobs

    def remove_job(self, job_key: str) -> Job | None:
        """Cancel the job with ``job_key`` (see gw.WorkerUtils.remove_job)."""
        jobs = self._jobs(self.queries.remove_job, {"key": rq.check_job_key(job_key)})
        return jobs[0] if jobs else None

    def complete_jobs(self, ids: Iterable[int]) -> list[Job]:
        """Mark unlocked jobs as done (deletes them)."""
        return self._jobs(self.queries.admin_complete_jobs, {"ids": rq.job_ids(ids)})

    def permanently_fail_jobs(self, ids: Iterable[int], reason: str | None = None) -> list[Job]:
        """Fail unlocked jobs for good: last_error = reason, attempts = max_attempts."""
        return self._jobs(
            self.queries.permanently_fail_jobs, {"ids": rq.job_ids(ids), "reason": reason or None}
        )

    def cancel_jobs(self, ids: Iterable[int], reason: str | None = None) -> list[CancelResult]:
        """Cancel jobs wherever they are (see gw.WorkerUtils.cancel_jobs); inside
        your transaction, the request reaches workers when it commits."""
        params = rq.cancel_params(ids, reason)
        if not params["ids"]:
            return []
        conn = self.connection
        with rq.database_errors(self.queries.cancel_jobs), conn.transaction():
            conn.execute(self.queries.prune_cancel_requests)
            rows = conn.execute(self.queries.cancel_jobs, params).fetchall()
        return rq.cancel_results(params["ids"], rows)

    def list_limits(self) -> list[LimitUsage]:
        """The fleet-wide limits gw workers configured, with their current use."""
        with rq.database_errors(self.queries.limits_overview):
            rows = self.connection.execute(self.queries.limits_overview).fetchall()
        return [rq.limit_usage(row) for row in rows]

    def get_result(self, job_id: int) -> HistoryEntry | None:
        """The job's latest recorded attempt (see gw.WorkerUtils.get_result), or None."""
        rows = self._rows(self.queries.job_result, {"job_id": rq.job_ids([job_id])[0]})
        return rq.history_entry(rows[0]) if rows else None

    def list_history(
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
        """Finished attempts, newest recorded first (see gw.WorkerUtils.list_history)."""
        params = rq.history_params(task, queue, outcome, job_id, since, limit, before_id)
        return [rq.history_entry(row) for row in self._rows(self.queries.list_history, params)]

    def _rows(self, query: str, params: dict[str, Any]) -> list[Any]:
        with rq.database_errors(query):
            return self.connection.execute(query, params).fetchall()

    def reschedule_jobs(
        self,
        ids: Iterable[int],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        max_attempts: int | None = None,
    ) -> list[Job]:
        """Change when/how unlocked jobs run; ``run_at=None`` means now."""
        params = rq.reschedule_params(ids, run_at, priority, attempts, max_attempts)
        return self._jobs(self.queries.reschedule_jobs, params)

    def force_unlock_workers(self, worker_ids: Iterable[str]) -> None:
        """Release every job and queue locked by these worker ids."""
        ids = rq.worker_ids(worker_ids)
        if ids:
            with rq.database_errors("force_unlock_workers"):
                self.connection.execute(self.queries.force_unlock_workers, {"worker_ids": ids})

    def get_job(self, job_id: int) -> Job | None:
        """One job by id (with payload), or None."""
        jobs = self._jobs(self.queries.get_job, {"id": rq.job_ids([job_id])[0]})
        return jobs[0] if jobs else None

    def _jobs(self, query: str, params: dict[str, Any]) -> list[Job]:
        if "ids" in params and not params["ids"]:
            return []
        with rq.database_errors(query):
            rows = self.connection.execute(query, params).fetchall()
        return [Job(*row) for row in rows]
