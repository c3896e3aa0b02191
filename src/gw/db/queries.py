"""Every runtime SQL statement gw sends, named as in graphile/worker's ``src/sql``.

:class:`Queries` renders them once per schema, with the schema quoted by
``psycopg.sql.Identifier``; values are always bound parameters. The fetch,
complete, fail and return statements restate the contract in
``graphile-contract.md`` §4 so that gw, Node and Rust workers can share one
database.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from psycopg import sql

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = (
    "HISTORY_CHANNEL",
    "INTERRUPTED_JOB_MESSAGE",
    "JOB_ROW_COLUMNS",
    "Queries",
    "check_schema_name",
    "int_array",
    "like_pattern",
    "queries_for",
)

INTERRUPTED_JOB_MESSAGE = "Job recovered after worker interruption"


def check_schema_name(schema: object) -> str:
    """Validate a schema name (any text PostgreSQL accepts as a quoted identifier)."""
    if not isinstance(schema, str) or not schema:
        raise ConfigurationError(f"schema must be a non-empty string, got {schema!r}")
    if "\x00" in schema:
        raise ConfigurationError("schema name must not contain NUL characters")
    if len(schema.encode()) > 63:
        raise ConfigurationError(
            f"schema name {schema!r} is {len(schema.encode())} bytes; PostgreSQL allows 63"
        )
    return schema


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal for integers (cheaper to send than a list parameter)."""
    return "{" + ",".join(map(str, values)) + "}"


def _render(template: str, schema: str) -> str:
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(None)


@lru_cache(maxsize=32)
def queries_for(schema: str) -> Queries:
    """The rendered statements for ``schema`` (cached)."""
    return Queries(schema)


# ``{s}`` is the quoted schema; ``{now}`` in the fetch/reset statements is
# replaced by either now() or an application-supplied timestamp parameter.

_GET_JOBS = """
with j as (
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
  from {s}._private_jobs as jobs
  where jobs.is_available = true
    and jobs.run_at <= {now}
    and jobs.task_id = any(%(task_ids)s::int[])
    and (
      jobs.job_queue_id is null
      or jobs.job_queue_id in (
        select job_queues.id
        from {s}._private_job_queues as job_queues
        where job_queues.is_available = true{queue_clause}
        for update skip locked
      )
    )
    {flags_clause}{scope_clause}
  order by jobs.priority asc, jobs.run_at asc
  limit %(limit)s
  for update skip locked
){slots_cte}, q as (
  update {s}._private_job_queues as job_queues
  set locked_by = %(worker_id)s::text, locked_at = {now}
  from j
  where job_queues.id = j.job_queue_id
)
update {s}._private_jobs as jobs
set attempts = jobs.attempts + 1, locked_by = %(worker_id)s::text, locked_at = {now}
from j{trace_join}
where jobs.id = j.id
returning -- read by position in gw.worker._store (JobStore._entry): keep the order
  jobs.id, jobs.job_queue_id, jobs.task_id, jobs.payload, jobs.priority,
  jobs.run_at, jobs.attempts, jobs.max_attempts, jobs.last_error, jobs.created_at,
  jobs.updated_at, jobs.key, jobs.locked_at, jobs.locked_by, jobs.revision, jobs.flags,
  jobs.is_available{trace_columns}
"""

# gw.Tracing: the fetch also returns each job's stored W3C trace context
# (gw track 0004), null for jobs added without tracing.
_TRACE_JOIN = """
  left join {s}._private_gw_trace_context as trace on trace.job_id = j.id"""
_TRACE_COLUMNS = ", trace.traceparent, trace.tracestate"


# The columns of a ``_private_jobs`` row in gw.types.Job field order, without
# the two names (task_identifier, queue_name) that follow ``id`` in Job.
JOB_ROW_COLUMNS = (
    "id, payload, priority, run_at, attempts, max_attempts, last_error, created_at,"
    " updated_at, key, locked_at, locked_by, revision, flags, is_available, task_id,"
    " job_queue_id"
)


# The job_spec[] of an add_jobs call, in job order: the payloads as one JSON
# array, each distinct (identifier, spec) pair once as a job_spec without
# payload (%(kinds)s), and the pair of every job (%(kind_of)s: indexes into
# kinds; [] when there is one). Parsing a payload array is ~5x cheaper for
# the server than an object per job, and the client encodes each spec once.
_JOB_SPECS = """array(
              select row(k.identifier, p.payload, k.queue_name, k.run_at, k.max_attempts,
                         k.job_key, k.priority, k.flags)::{s}.job_spec
              from rows from (
                json_array_elements(%(payloads)s::json),
                json_array_elements_text(%(kind_of)s::json)
              ) with ordinality as p(payload, kind, n)
              join json_populate_recordset(null::{s}.job_spec, %(kinds)s::json)
                with ordinality as k on k.ordinality = coalesce(p.kind::bigint, 0) + 1
              order by p.n
            )"""


# add_jobs_lean's columns: JOB_ROW_COLUMNS, of which a freshly inserted job
# (revision 0) brings only what was not sent (id, run_at, created_at) and what
# lines rows up with jobs (key, revision); a row that replaced a keyed job is
# a full row.
_LEAN_ROW_COLUMNS = ", ".join(
    column
    if column in ("id", "run_at", "created_at", "key", "revision")
    else f"case when revision > 0 then {column} end"
    for column in (c.strip() for c in JOB_ROW_COLUMNS.split(","))
)


# The jobs of limit ``l``'s key that gw workers hold: a slot counts while its
# job is still locked by the worker that took it.
_LIMIT_RUNNING = """(
                     select count(*) from {s}._private_gw_slots as slot
                     join {s}._private_jobs as jobs
                       on jobs.id = slot.job_id and jobs.locked_by = slot.worker_id
                     where slot.key = l.key
                   )"""


HISTORY_CHANNEL = "gw:history"
"""NOTIFY channel of gw track 0004's history trigger: ids of jobs that ended for good."""


# A history record (gw.worker._executing.HistoryRecords): job id, task, queue,
# attempt, max attempts, run_at / started / finished as epoch seconds, outcome,
# result and payload. json_to_record(set) parses each record once (a ->> per
# field would parse it again for every field), and short keys and numbers
# instead of ISO times halve what is left of the parsing.
_HISTORY_RECORD = """(j bigint, t text, q text, a int, m int, r float8, s float8, f float8,
                     o text, v jsonb, p jsonb)"""


def _history_insert(record: str, outcome: str, error: str, source: str, where: str) -> str:
    """A CTE inserting one ``_private_gw_history`` row per ``record`` (the alias of
    a row typed as ``_HISTORY_RECORD``) from ``source`` where ``where``."""
    r = record
    return f"""history as (
              insert into {{s}}._private_gw_history (
                job_id, task_identifier, queue_name, attempt, max_attempts, worker_id, run_at,
                started_at, finished_at, outcome, error, result, payload
              )
              select {r}.j, {r}.t, {r}.q, {r}.a, {r}.m, %(worker_id)s::text,
                     to_timestamp({r}.r), to_timestamp({r}.s), to_timestamp({r}.f),
                     {outcome}, {error}, {r}.v, {r}.p
              from {source}
              where {where}
            )"""


def _named(call: str, more_columns: str = "") -> str:
    """A call returning ``_private_jobs`` rows, as rows in gw.types.Job order.

    The names are joined in the same statement; rows of a function returning
    one (possibly null) row are dropped when null.
    """
    return f"""
    select j.id, tasks.identifier, job_queues.queue_name, j.payload, j.priority, j.run_at,
           j.attempts, j.max_attempts, j.last_error, j.created_at, j.updated_at, j.key,
           j.locked_at, j.locked_by, j.revision, j.flags, j.is_available, j.task_id,
           j.job_queue_id{more_columns}
    from {call} as j
    left join {{s}}._private_tasks as tasks on tasks.id = j.task_id
    left join {{s}}._private_job_queues as job_queues on job_queues.id = j.job_queue_id
    where j.id is not null
    """


_JOB_SELECT = """
select jobs.id, tasks.identifier as task_identifier, job_queues.queue_name,
       jobs.payload, jobs.priority, jobs.run_at, jobs.attempts, jobs.max_attempts,
       jobs.last_error, jobs.created_at, jobs.updated_at, jobs.key, jobs.locked_at,
       jobs.locked_by, jobs.revision, jobs.flags, jobs.is_available, jobs.task_id,
       jobs.job_queue_id
from {s}._private_jobs as jobs
join {s}._private_tasks as tasks on tasks.id = jobs.task_id
left join {s}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
"""

# The admin job states (gw.types.JobState); stats() counts with the same rules.
_STATE_CLAUSES = {
    "all": "",
    "ready": "jobs.is_available and jobs.run_at <= now()",
    "scheduled": "jobs.is_available and jobs.run_at > now()",
    "locked": "jobs.locked_at is not null",
    "failed": "jobs.locked_at is null and jobs.attempts >= jobs.max_attempts",
}

_SEARCH_CLAUSE = (
    "(jobs.id::text = %(search)s::text or tasks.identifier ilike %(pattern)s::text"
    " or job_queues.queue_name ilike %(pattern)s::text or jobs.key ilike %(pattern)s::text"
    " or jobs.last_error ilike %(pattern)s::text or jobs.payload::text ilike %(pattern)s::text)"
)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % _ and \\ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Queries:
    """The SQL text of every named statement, for one schema."""

    def __init__(self, schema: str) -> None:
        self.schema = check_schema_name(schema)
        s = self.schema
        r = _render
        self.quoted_schema = sql.Identifier(s).as_string(None)

        # -- fetching (get_jobs): variants built on first use (see get_jobs)
        self._get_jobs: dict[tuple[bool, bool, bool, str | None, bool], str] = {}

        # -- completing, failing, returning
        # ``keep`` lists jobs whose queue must stay locked: another job of the
        # same queue is waiting in this worker (gw keeps named queues serial
        # even when a batch fetch returned several jobs of one queue).
        self.complete_jobs = r(
            """
            with j as (
              delete from {s}._private_jobs as jobs
              where jobs.id = any(%(ids)s::bigint[])
              returning jobs.id, jobs.job_queue_id
            )
            update {s}._private_job_queues as job_queues
            set locked_by = null, locked_at = null
            from j
            where job_queues.id = j.job_queue_id
              and job_queues.locked_by = %(worker_id)s::text
              and not (j.id = any(%(keep)s::bigint[]))
            """,
            s,
        )
        # With gw.History: the same, plus one history row per job deleted.
        self.complete_jobs_history = r(
            f"""
            with j as (
              delete from {{s}}._private_jobs as jobs
              where jobs.id = any(%(ids)s::bigint[])
              returning jobs.id, jobs.job_queue_id
            ), q as (
              update {{s}}._private_job_queues as job_queues
              set locked_by = null, locked_at = null
              from j
              where job_queues.id = j.job_queue_id
                and job_queues.locked_by = %(worker_id)s::text
                and not (j.id = any(%(keep)s::bigint[]))
            ), {
                _history_insert(
                    "el",
                    "el.o",
                    "null::text",
                    f"json_to_recordset(%(history)s::json) as el{_HISTORY_RECORD}",
                    "el.j in (select id from j)",
                )
            }
            select count(*) from j
            """,
            s,
        )
        fail_template = """
            with failures as (
              select (el->>'id')::bigint as id, el->>'message' as message, el->'h' as h,
                     el->'payload' as payload, coalesce((el->>'keep')::boolean, false) as keep,
                     (el->>'delay')::float8 as delay,
                     coalesce((el->>'final')::boolean, false) as final,
                     coalesce((el->>'snooze')::boolean, false) as snooze
              from json_array_elements(%(failures)s::json) as el
            ), cancels as (
              -- A cancel request this worker had not acted on yet: the
              -- attempt's own failure ends the job the way cancelling would.
              delete from {s}._private_gw_cancel_requests as c
              using failures
              where c.job_id = failures.id
              returning c.job_id, c.reason
            ), fail_jobs as (
              update {s}._private_jobs as jobs
              set last_error = coalesce('cancelled: ' || cancels.reason, failures.message),
                  -- Graphile's backoff unless gw's retry policy gave a delay.
                  run_at = greatest(coalesce(%(now)s::timestamptz, now()), jobs.run_at)
                           + coalesce(failures.delay, exp(least(jobs.attempts, 10)))
                             * interval '1 second',
                  -- final: out of attempts now (as permanently_fail_jobs does);
                  -- snooze: this attempt does not count.
                  attempts = case
                    when failures.final or cancels.job_id is not null
                      then greatest(jobs.attempts, jobs.max_attempts)
                    when failures.snooze then greatest(0, jobs.attempts - 1)
                    else jobs.attempts
                  end,
                  locked_by = null,
                  locked_at = null,
                  payload = coalesce(failures.payload, jobs.payload)
              from failures left join cancels on cancels.job_id = failures.id
              where jobs.id = failures.id and jobs.locked_by = %(worker_id)s::text
              returning jobs.id, jobs.job_queue_id, jobs.attempts, jobs.max_attempts,
                        jobs.run_at, failures.keep, jobs.last_error
            ), q as (
              update {s}._private_job_queues as job_queues
              set locked_by = null, locked_at = null
              from fail_jobs
              where job_queues.id = fail_jobs.job_queue_id
                and job_queues.locked_by = %(worker_id)s::text
                and not fail_jobs.keep
            )
            {history}select id, attempts, max_attempts, run_at from fail_jobs
            """
        self.fail_jobs = r(fail_template.replace("{history}", ""), s)
        # With gw.History: one history row per failed attempt recorded.
        history = _history_insert(
            "hr",
            """case when cancels.job_id is not null then 'cancelled'
                    when hr.o is not null then hr.o
                    when fail_jobs.attempts >= fail_jobs.max_attempts then 'permanently_failed'
                    else 'failed' end""",
            "fail_jobs.last_error",
            "fail_jobs join failures on failures.id = fail_jobs.id"
            " left join cancels on cancels.job_id = fail_jobs.id"
            f" cross join lateral json_to_record(failures.h) as hr{_HISTORY_RECORD}",
            "failures.h is not null",
        )
        self.fail_jobs_history = r(
            fail_template.replace("{history}", f", {history}\n            "), s
        )
        self.return_jobs = r(
            """
            with j as (
              update {s}._private_jobs as jobs
              set attempts = greatest(0, jobs.attempts - 1), locked_by = null, locked_at = null
              where jobs.id = any(%(ids)s::bigint[]) and jobs.locked_by = %(worker_id)s::text
              returning jobs.id, jobs.job_queue_id
            ), q as (
              update {s}._private_job_queues as job_queues
              set locked_by = null, locked_at = null
              from j
              where job_queues.id = j.job_queue_id
                and job_queues.locked_by = %(worker_id)s::text
                and not (j.id = any(%(keep)s::bigint[]))
            )
            select id from j
            """,
            s,
        )
        # Jobs and queues locked by this worker that it does not know about: a
        # fetch whose reply was lost (connection dropped after the commit).
        self.return_strays = r(
            """
            with j as (
              update {s}._private_jobs as jobs
              set attempts = greatest(0, jobs.attempts - 1), locked_by = null, locked_at = null
              where jobs.locked_by = %(worker_id)s::text
                and not (jobs.id = any(%(held)s::bigint[]))
              returning jobs.id
            ), q as (
              update {s}._private_job_queues as job_queues
              set locked_by = null, locked_at = null
              where job_queues.locked_by = %(worker_id)s::text
                and not (job_queues.id = any(%(held_queues)s::int[]))
            )
            select count(*) from j
            """,
            s,
        )
        # Jobs still running when the grace period ends (RS semantics): the
        # interrupted attempt does not count and the retry waits a while.
        release_template = """
            with j as (
              update {s}._private_jobs as jobs
              set attempts = greatest(0, jobs.attempts - 1),
                  locked_by = null,
                  locked_at = null,
                  run_at = greatest(jobs.run_at, now() + %(delay)s * interval '1 second'),
                  last_error = %(message)s::text,
                  updated_at = now()
              where jobs.id = any(%(ids)s::bigint[]) and jobs.locked_by = %(worker_id)s::text
              returning jobs.id, jobs.job_queue_id
            ), q as (
              update {s}._private_job_queues as job_queues
              set locked_by = null, locked_at = null
              from j
              where job_queues.id = j.job_queue_id and job_queues.locked_by = %(worker_id)s::text
            ){history}
            select id from j
            """
        self.release_interrupted_jobs = r(release_template.replace("{history}", ""), s)
        # With gw.History: an "interrupted" row per released job.
        history = _history_insert(
            "el",
            "'interrupted'",
            "%(message)s::text",
            f"json_to_recordset(%(history)s::json) as el{_HISTORY_RECORD}",
            "el.j in (select id from j)",
        )
        self.release_interrupted_jobs_history = r(
            release_template.replace("{history}", f", {history}"), s
        )
        self._reset_locked_at: dict[bool, str] = {}
        for local_time in (False, True):
            now = "%(now)s::timestamptz" if local_time else "now()"
            self._reset_locked_at[local_time] = r(
                """
                with j as (
                  update {s}._private_jobs as jobs
                  set locked_at = null, locked_by = null, run_at = greatest(jobs.run_at, {now})
                  where jobs.locked_at < {now} - interval '4 hours'
                )
                update {s}._private_job_queues as job_queues
                set locked_at = null, locked_by = null
                where job_queues.locked_at < {now} - interval '4 hours'
                """.replace("{now}", now),
                s,
            )

        # -- task identifiers
        self.register_task_identifiers = r(
            """
            insert into {s}._private_tasks (identifier)
            select ident from unnest(%(identifiers)s::text[]) as ident
            where not exists (
              select 1 from {s}._private_tasks as tasks where tasks.identifier = ident
            )
            on conflict do nothing
            """,
            s,
        )
        self.task_ids = r(
            "select id, identifier from {s}._private_tasks"
            " where identifier = any(%(identifiers)s::text[])",
            s,
        )

        # -- adding jobs (always through the SQL functions, for interop)
        add_job_call = """{s}.add_job(
              identifier => %(identifier)s::text,
              payload => %(payload)s::json,
              queue_name => %(queue_name)s::text,
              run_at => %(run_at)s::timestamptz,
              max_attempts => %(max_attempts)s::int,
              job_key => %(job_key)s::text,
              priority => %(priority)s::int,
              flags => %(flags)s::text[],
              job_key_mode => %(job_key_mode)s::text
            )"""
        # The *_checked variants add whether the identifier was registered
        # before this call (the statement's snapshot does not see add_job's
        # own insert into _private_tasks).
        known = (
            ", exists(select 1 from {s}._private_tasks as known"
            " where known.identifier = %(identifier)s::text)"
        )
        self.add_job = r(f"select {JOB_ROW_COLUMNS} from {add_job_call}", s)
        self.add_job_checked = r(f"select {JOB_ROW_COLUMNS}{known} from {add_job_call}", s)
        # unsafe_dedupe may return an existing job of another task or queue:
        # report the names stored with it (null for a task or queue this very
        # call created, which the statement's snapshot cannot see).
        self.add_job_named = r(_named(add_job_call), s)
        self.add_job_named_checked = r(_named(add_job_call, known), s)
        self.add_jobs = r(
            f"""
            select {JOB_ROW_COLUMNS} from {{s}}.add_jobs({_JOB_SPECS}, %(preserve_run_at)s::boolean)
            """,
            s,
        )
        # The same call, returning only what a freshly inserted job does not
        # already hold in what was sent (id, run_at, created_at; key and
        # revision to line rows up with jobs): a row that replaced a keyed job
        # comes back whole. Fewer columns to send and read: bulk adds ~1.2x.
        self.add_jobs_lean = r(
            f"""
            select {_LEAN_ROW_COLUMNS}
            from {{s}}.add_jobs({_JOB_SPECS}, %(preserve_run_at)s::boolean)
            """,
            s,
        )
        # Whether a fresh job's row is exactly what add_jobs makes of what was
        # sent, so that lean rows can be completed from it: the schema's
        # add_jobs returns rows in input order (gw's does; Node's has no ORDER
        # BY), and no trigger or rule of the application's rewrites the jobs.
        self.lean_add_allowed = """
            with jobs as (
              select c.oid, c.relhasrules from pg_catalog.pg_class as c
              join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
              where n.nspname = %(schema)s and c.relname = '_private_jobs'
            )
            select coalesce(
                     bool_and(
                       p.prosrc ~ 'order by s[.]ordinality[[:space:]]+on conflict [(]key[)]'
                     ),
                     false
                   )
               and not exists (
                     select from pg_catalog.pg_trigger as t
                     where t.tgrelid = (select oid from jobs) and not t.tgisinternal
                   )
               and not coalesce((select relhasrules from jobs), true)
            from pg_catalog.pg_proc as p
            join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
            where n.nspname = %(schema)s and p.proname = 'add_jobs'
            """
        self.jobs_by_ids = r(
            _JOB_SELECT + " where jobs.id = any(%(ids)s::bigint[]) order by jobs.id", s
        )
        # Sent in the same pipeline as add_jobs: the ids of the batch's task
        # identifiers and queue names (which add_jobs may just have created).
        self.ids_for_names = r(
            """
            select 't' as kind, id, identifier as name from {s}._private_tasks
            where identifier = any(%(identifiers)s::text[])
            union all
            select 'q', id, queue_name from {s}._private_job_queues
            where queue_name = any(%(queues)s::text[])
            """,
            s,
        )
        self.analyze_jobs = r("analyze {s}._private_jobs", s)

        # -- admin functions (rows in gw.types.Job order, names included)
        self.remove_job = r(_named("{s}.remove_job(job_key => %(key)s::text)"), s)
        self.admin_complete_jobs = r(_named("{s}.complete_jobs(job_ids => %(ids)s::bigint[])"), s)
        self.permanently_fail_jobs = r(
            _named(
                "{s}.permanently_fail_jobs("
                "job_ids => %(ids)s::bigint[], error_message => %(reason)s::text)"
            ),
            s,
        )
        # A null run_at means "now" (the SQL function would keep the old one).
        self.reschedule_jobs = r(
            _named(
                """{s}.reschedule_jobs(
                  job_ids => %(ids)s::bigint[],
                  run_at => coalesce(%(run_at)s::timestamptz, now()),
                  priority => %(priority)s::int,
                  attempts => %(attempts)s::int,
                  max_attempts => %(max_attempts)s::int
                )"""
            ),
            s,
        )
        # -- cancelling (gw track 0002)
        # Requests whose job is gone (completed, deleted) are dropped first.
        self.prune_cancel_requests = r(
            """
            delete from {s}._private_gw_cancel_requests as c
            where not exists (select 1 from {s}._private_jobs as jobs where jobs.id = c.job_id)
            """,
            s,
        )
        # Per job: 'cancelled' (was waiting: failed for good now), 'cancelling'
        # (a gw worker holds it: asked over NOTIFY gw:cancel), 'not_cancellable'
        # (held by a worker that is not gw) or 'finished' (already failed for good).
        self.cancel_jobs = r(
            """
            with target as (
              select jobs.id, jobs.locked_by, jobs.attempts, jobs.max_attempts,
                     exists(
                       select 1 from {s}._private_workers as w
                       where w.id = jobs.locked_by and w.metadata ? 'gw_version'
                     ) as gw_held
              from {s}._private_jobs as jobs
              where jobs.id = any(%(ids)s::bigint[])
              for update of jobs
            ), waiting as (
              update {s}._private_jobs as jobs
              set last_error = %(message)s::text,
                  attempts = greatest(jobs.attempts, jobs.max_attempts),
                  updated_at = now()
              from target
              where jobs.id = target.id and target.locked_by is null
                and target.attempts < target.max_attempts
              returning jobs.id
            ), requested as (
              insert into {s}._private_gw_cancel_requests (job_id, reason)
              select target.id, %(reason)s::text from target
              where target.locked_by is not null and target.gw_held
              on conflict (job_id) do update
                set reason = excluded.reason, requested_at = now()
              returning job_id
            ), notified as (
              select pg_notify('gw:cancel', json_build_object(
                       'worker_id', target.locked_by, 'ids', array_agg(target.id))::text)
              from target join requested on requested.job_id = target.id
              group by target.locked_by
            )
            select target.id,
                   case when waiting.id is not null then 'cancelled'
                        when target.locked_by is null then 'finished'
                        when target.gw_held then 'cancelling'
                        else 'not_cancellable' end,
                   target.locked_by,
                   (select count(*) from notified)
            from target left join waiting on waiting.id = target.id
            order by target.id
            """,
            s,
        )
        # The requests for jobs this worker holds: taken (deleted) to act on.
        self.claim_cancel_requests = r(
            """
            delete from {s}._private_gw_cancel_requests as c
            using {s}._private_jobs as jobs
            where jobs.id = c.job_id and jobs.locked_by = %(worker_id)s::text
            returning c.job_id, c.reason
            """,
            s,
        )

        # -- history (gw track 0003)
        # One pruner at a time across the fleet ("GWMG", "HIST"), in chunks.
        self.prune_history = r(
            """
            with pruner as (select pg_try_advisory_xact_lock(1196903751, 1212765012) as got),
            samples as (
              delete from {s}._private_gw_backlog_samples as b
              where b.sampled_at < %(before)s::timestamptz and (select got from pruner)
            )
            delete from {s}._private_gw_history as h
            where h.id in (
              select old.id from {s}._private_gw_history as old
              where old.finished_at < %(before)s::timestamptz
              limit %(chunk)s::int
            ) and (select got from pruner)
            """,
            s,
        )
        # One sample per slot for the whole fleet: a worker that finds the
        # slot taken skips the count (a one-time filter over the scan).
        self.sample_backlog = r(
            """
            insert into {s}._private_gw_backlog_samples as b
              (sampled_at, ready, scheduled, running, failed)
            select %(slot)s::timestamptz, counts.*
            from (
              select count(*) filter (
                       where j.locked_at is null and j.attempts < j.max_attempts
                         and j.run_at <= %(now)s::timestamptz
                     ),
                     count(*) filter (
                       where j.locked_at is null and j.attempts < j.max_attempts
                         and j.run_at > %(now)s::timestamptz
                     ),
                     count(*) filter (where j.locked_at is not null),
                     count(*) filter (
                       where j.locked_at is null and j.attempts >= j.max_attempts
                     )
              from {s}._private_jobs as j
            ) as counts
            where not exists (
              select 1 from {s}._private_gw_backlog_samples as taken
              where taken.sampled_at = %(slot)s::timestamptz
            )
            on conflict (sampled_at) do nothing
            """,
            s,
        )
        self.history_columns = (
            "h.id, h.job_id, h.task_identifier, h.queue_name, h.attempt, h.max_attempts,"
            " h.worker_id, h.run_at, h.started_at, h.finished_at, h.outcome, h.error,"
            " h.result, h.payload"
        )
        self.job_result = r(
            f"""
            select {self.history_columns} from {{s}}._private_gw_history as h
            where h.job_id = %(job_id)s::bigint
            order by h.finished_at desc, h.id desc
            limit 1
            """,
            s,
        )
        # The latest final attempt of a job, and whether the job can still run
        # or is running (then that attempt, if any, is not its final word).
        self.final_result = r(
            f"""
            select exists(
                     select 1 from {{s}}._private_jobs as jobs
                     where jobs.id = %(job_id)s::bigint
                       and (jobs.attempts < jobs.max_attempts or jobs.locked_at is not null)
                   ),
                   {self.history_columns}
            from (values (1)) as one
            left join lateral (
              select * from {{s}}._private_gw_history as final
              where final.job_id = %(job_id)s::bigint
                and final.outcome in ('completed', 'permanently_failed', 'cancelled', 'skipped')
              order by final.finished_at desc, final.id desc
              limit 1
            ) as h on true
            """,
            s,
        )
        self.list_history = r(
            f"""
            select {self.history_columns} from {{s}}._private_gw_history as h
            where (%(task)s::text is null or h.task_identifier = %(task)s::text)
              and (%(queue)s::text is null or h.queue_name = %(queue)s::text)
              and (%(outcome)s::text is null or h.outcome = %(outcome)s::text)
              and (%(job_id)s::bigint is null or h.job_id = %(job_id)s::bigint)
              and (%(since)s::timestamptz is null or h.finished_at >= %(since)s::timestamptz)
              and (%(before_id)s::bigint is null or h.id < %(before_id)s::bigint)
            -- Newest recorded first, by id: pages that continue from the last id
            -- seen (before_id) neither skip nor repeat rows, whatever the
            -- workers' clocks wrote into finished_at.
            order by h.id desc
            limit %(limit)s::int
            """,
            s,
        )

        # -- history stats (admin charts)
        # One statement, one snapshot. Attempts that finished in [start, end)
        # fall in buckets numbered from 0 (every %(bucket)s seconds from
        # start); empty buckets have no row (the caller fills them in). It
        # returns, as JSON arrays: per bucket [b, completed, failed, other,
        # run-time percentiles, queue-wait percentiles]; per bucket of the
        # %(top)s busiest tasks [task, b, completed, failed, other]; the number
        # of tasks; and the latest backlog sample of each bucket [sampled_at,
        # ready, scheduled, running, failed]. The range predicate uses the
        # finished_at index.
        self.history_stats = r(
            """
            with h as materialized (
              select floor(extract(epoch from h.finished_at - %(start)s::timestamptz)::float8
                           / %(bucket)s::float8)::int as b,
                     h.task_identifier as task,
                     case when h.outcome = 'completed' then 0
                          when h.outcome in ('failed', 'permanently_failed') then 1
                          else 2 end as kind,
                     extract(epoch from h.finished_at - h.started_at)::float8 as run,
                     -- A retry's run_at is when it was due; a worker clock a
                     -- little ahead of the database's must not make it negative.
                     greatest(extract(epoch from h.started_at - h.run_at)::float8, 0) as wait
              from {s}._private_gw_history as h
              where h.finished_at >= %(start)s::timestamptz
                and h.finished_at < %(end)s::timestamptz
                and (%(task)s::text is null or h.task_identifier = %(task)s::text)
                and (%(queue)s::text is null or h.queue_name = %(queue)s::text)
            ),
            per_task as (
              select task, b,
                     count(*) filter (where kind = 0) as completed,
                     count(*) filter (where kind = 1) as failed,
                     count(*) filter (where kind = 2) as other
              from h
              group by task, b
            ),
            top as (
              select task, sum(completed + failed + other) as total,
                     count(*) over () as tasks
              from per_task
              group by task
              order by total desc, task
              limit %(top)s::int
            )
            select
              (select coalesce(json_agg(json_build_array(
                        x.b, x.completed, x.failed, x.other, x.runs, x.waits) order by x.b),
                      '[]'::json)
               from (
                 select b,
                        count(*) filter (where kind = 0) as completed,
                        count(*) filter (where kind = 1) as failed,
                        count(*) filter (where kind = 2) as other,
                        percentile_cont(array[0.5, 0.9, 0.99]) within group (order by run)
                          as runs,
                        percentile_cont(array[0.5, 0.9, 0.99]) within group (order by wait)
                          as waits
                 from h
                 group by b
               ) as x),
              (select coalesce(json_agg(json_build_array(
                        p.task, p.b, p.completed, p.failed, p.other)
                        order by t.total desc, p.task, p.b),
                      '[]'::json)
               from per_task as p join top as t on t.task = p.task),
              coalesce((select max(tasks) from top), 0),
              (select coalesce(json_agg(json_build_array(
                        y.sampled_at, y.ready, y.scheduled, y.running, y.failed)
                        order by y.sampled_at),
                      '[]'::json)
               from (
                 select distinct on (
                          floor(extract(epoch from bs.sampled_at - %(start)s::timestamptz)::float8
                                / %(bucket)s::float8))
                        bs.sampled_at, bs.ready, bs.scheduled, bs.running, bs.failed
                 from {s}._private_gw_backlog_samples as bs
                 where bs.sampled_at >= %(start)s::timestamptz
                   and bs.sampled_at < %(end)s::timestamptz
                 order by floor(extract(epoch from bs.sampled_at - %(start)s::timestamptz)::float8
                                / %(bucket)s::float8),
                          bs.sampled_at desc
               ) as y)
            """,
            s,
        )

        # -- fleet-wide limits (gw track 0002)
        self.limit_configure = r(
            """
            insert into {s}._private_gw_limits as l (key, rate, burst, max_concurrency, tokens)
            select el->>'key', (el->>'rate')::float8, (el->>'burst')::float8,
                   (el->>'max_concurrency')::int, coalesce((el->>'burst')::float8, 0)
            from json_array_elements(%(limits)s::json) as el
            on conflict (key) do update
              set rate = excluded.rate, burst = excluded.burst,
                  max_concurrency = excluded.max_concurrency,
                  tokens = least(l.tokens, coalesce(excluded.burst, 0))
            """,
            s,
        )
        # Serialises the limited fetches of one key across the fleet; the
        # statements after it see what the previous holder committed. A worker
        # that finds it taken skips the key for a moment rather than wait: the
        # holder takes what the limit allows, and waiting would stall the
        # worker's other fetches on the same connection.
        self.limit_lock = "select pg_try_advisory_xact_lock(1197952077, hashtext(%(key)s::text))"
        # clock_timestamp(), not now(): the time the lock was taken, so the
        # bucket's clock only moves forward from one holder to the next.
        self.limit_state = r(
            """
            select l.tokens + greatest(0, extract(epoch from clock_timestamp() - l.updated_at))
                              * coalesce(%(rate)s::float8, 0),
                   case when %(slots)s::boolean then """
            + _LIMIT_RUNNING
            + """ else 0 end,
                   clock_timestamp()
            from {s}._private_gw_limits as l
            where l.key = %(key)s::text
            """,
            s,
        )
        self.limit_store = r(
            """
            with freed as (
              delete from {s}._private_gw_slots as slot
              where slot.key = %(key)s::text and %(slots)s::boolean and not exists (
                select 1 from {s}._private_jobs as jobs
                where jobs.id = slot.job_id and jobs.locked_by = slot.worker_id
              )
            )
            update {s}._private_gw_limits as l
            set tokens = %(tokens)s::float8, updated_at = %(at)s::timestamptz
            where l.key = %(key)s::text
            """,
            s,
        )
        self.limits_overview = r(
            """
            select l.key, l.rate, l.burst, l.max_concurrency,
                   case when l.rate is null then null else least(
                     l.burst,
                     l.tokens
                     + greatest(0, extract(epoch from clock_timestamp() - l.updated_at)) * l.rate
                   ) end,
                   """
            + _LIMIT_RUNNING
            + """,
                   l.updated_at
            from {s}._private_gw_limits as l
            order by l.key
            """,
            s,
        )

        self.force_unlock_workers = r(
            "select {s}.force_unlock_workers(worker_ids => %(worker_ids)s::text[])", s
        )

        # -- cleanup (Node semantics)
        self.cleanup_delete_permafailed_jobs = r(
            "delete from {s}._private_jobs as jobs"
            " where jobs.attempts = jobs.max_attempts and jobs.locked_at is null",
            s,
        )
        self.cleanup_gc_task_identifiers = r(
            """
            delete from {s}._private_tasks as tasks
            where tasks.id not in (select jobs.task_id from {s}._private_jobs as jobs)
              and tasks.identifier <> all(%(keep)s::text[])
            """,
            s,
        )
        self.cleanup_gc_job_queues = r(
            """
            delete from {s}._private_job_queues as job_queues
            where job_queues.locked_at is null
              and job_queues.id not in (
                select jobs.job_queue_id from {s}._private_jobs as jobs
                where jobs.job_queue_id is not null
              )
            """,
            s,
        )

        # -- inspection (rows in gw.types.Job order)
        self.get_job = r(_JOB_SELECT + " where jobs.id = %(id)s", s)
        self._list_jobs: dict[tuple[str, bool, bool, bool], str] = {}
        self.job_stats = r(
            """
            select count(*) as total,
              count(*) filter (where locked_at is null and attempts < max_attempts
                               and run_at <= now()) as ready,
              count(*) filter (where locked_at is null and attempts < max_attempts
                               and run_at > now()) as scheduled,
              count(*) filter (where locked_at is not null) as locked,
              count(*) filter (where locked_at is null and attempts >= max_attempts) as failed
            from {s}._private_jobs
            """,
            s,
        )
        self.queues = r(
            """
            select job_queues.queue_name, count(jobs.id) as job_count,
                   job_queues.locked_at, job_queues.locked_by
            from {s}._private_job_queues as job_queues
            left join {s}._private_jobs as jobs on jobs.job_queue_id = job_queues.id
            group by job_queues.id
            order by job_queues.queue_name
            """,
            s,
        )
        self.locked_workers = r(
            """
            select worker_id, sum(locked_jobs)::int as locked_jobs,
                   sum(locked_queues)::int as locked_queues,
                   min(oldest_locked_at) as oldest_locked_at
            from (
              select locked_by as worker_id, count(*) as locked_jobs, 0 as locked_queues,
                     min(locked_at) as oldest_locked_at
              from {s}._private_jobs where locked_by is not null group by locked_by
              union all
              select locked_by, 0, count(*), min(locked_at)
              from {s}._private_job_queues where locked_by is not null group by locked_by
            ) as l
            group by worker_id
            order by worker_id
            """,
            s,
        )
        self.queue_names = r(
            "select id, queue_name from {s}._private_job_queues where id = any(%(ids)s::int[])", s
        )
        self.task_identifiers = r(
            "select identifier from {s}._private_tasks order by identifier", s
        )

        # -- recovery (gw track / RS migration 20 objects)
        self.workers_table_exists = r("select to_regclass(%(name)s) is not null as exists", s)
        self.worker_heartbeat = r(
            "select {s}.worker_heartbeat(worker_id => %(worker_id)s::text,"
            " metadata => %(metadata)s::json)",
            s,
        )
        self.worker_deregister = r(
            "select {s}.worker_deregister(worker_id => %(worker_id)s::text)", s
        )
        self.active_workers = r(
            """
            select id as worker_id, last_heartbeat_at, started_at, metadata
            from {s}._private_workers
            where %(threshold)s::float8 is null
               or last_heartbeat_at >= now() - %(threshold)s::float8 * interval '1 second'
            order by id
            """,
            s,
        )
        self.sweep_lock = "select pg_try_advisory_xact_lock(1196905043, 1398228304)"
        self.stale_workers = r(
            "select worker_id from {s}.list_stale_workers("
            "%(threshold)s::float8 * interval '1 second')",
            s,
        )
        # Stale workers that still hold an infrastructure-resilient job and
        # heartbeated within threshold x multiplier are given more time.
        self.resilient_holders = r(
            """
            select distinct jobs.locked_by as worker_id
            from {s}._private_jobs as jobs
            join {s}._private_workers as workers on workers.id = jobs.locked_by
            where jobs.locked_by = any(%(worker_ids)s::text[])
              and jobs.flags ?| %(flags)s::text[]
              and workers.last_heartbeat_at >= now() - %(threshold)s::float8 * interval '1 second'
            """,
            s,
        )
        self.orphan_locked_workers = r(
            "select worker_id from {s}.list_orphan_locked_workers("
            "%(threshold)s::float8 * interval '1 second')",
            s,
        )
        self.jobs_locked_by = r(
            "select id from {s}._private_jobs where locked_by = any(%(worker_ids)s::text[])"
            " order by id",
            s,
        )
        self.recover_dead_worker_jobs = r(
            "select {s}.recover_dead_worker_jobs(worker_ids => %(worker_ids)s::text[],"
            " recovery_delay => %(delay)s::float8 * interval '1 second') as recovered",
            s,
        )
        self.delete_stale_workers = r(
            "select {s}.delete_stale_workers(worker_ids => %(worker_ids)s::text[])", s
        )
        # Per-job recovery (when a JobRecovery hook decides): the rows are
        # locked for the rest of the sweep transaction.
        self.jobs_for_recovery = r(
            """
            select jobs.id, tasks.identifier as task_identifier, job_queues.queue_name,
                   jobs.payload, jobs.priority, jobs.run_at, jobs.attempts, jobs.max_attempts,
                   jobs.last_error, jobs.created_at, jobs.updated_at, jobs.key, jobs.locked_at,
                   jobs.locked_by, jobs.revision, jobs.flags, jobs.is_available, jobs.task_id,
                   jobs.job_queue_id
            from {s}._private_jobs as jobs
            join {s}._private_tasks as tasks on tasks.id = jobs.task_id
            left join {s}._private_job_queues as job_queues on job_queues.id = jobs.job_queue_id
            where jobs.locked_by = any(%(worker_ids)s::text[])
            order by jobs.id
            for update of jobs
            """,
            s,
        )
        # Same effect as recover_dead_worker_jobs, restricted to chosen jobs.
        self.recover_jobs = r(
            """
            update {s}._private_jobs as jobs
            set attempts = greatest(0, jobs.attempts - 1),
                locked_by = null,
                locked_at = null,
                run_at = greatest(jobs.run_at, now() + %(delay)s::float8 * interval '1 second'),
                last_error = %(message)s::text,
                updated_at = now()
            where jobs.id = any(%(ids)s::bigint[]) and jobs.locked_by = any(%(worker_ids)s::text[])
            """,
            s,
        )
        # JobRecovery -> Reschedule: unlock with the hook's run_at; attempts
        # given, or the interrupted attempt given back.
        self.reschedule_recovered_job = r(
            """
            update {s}._private_jobs as jobs
            set attempts = coalesce(%(attempts)s::int, greatest(0, jobs.attempts - 1)),
                locked_by = null,
                locked_at = null,
                run_at = %(run_at)s::timestamptz,
                last_error = %(message)s::text,
                updated_at = now()
            where jobs.id = %(id)s::bigint and jobs.locked_by = %(worker_id)s::text
            """,
            s,
        )
        # Queues of dead lockers, except those whose job a hook left locked.
        self.unlock_dead_queues = r(
            """
            update {s}._private_job_queues as job_queues
            set locked_by = null, locked_at = null
            where job_queues.locked_by = any(%(worker_ids)s::text[])
              and not (job_queues.id = any(%(keep)s::int[]))
            """,
            s,
        )

        # -- tracing (gw.Tracing; gw track 0004)
        # Each add statement as a CTE that also stores the producer span's W3C
        # context for every job it returns, by job id: the same round trip.
        # A replaced job takes the new context; unsafe_dedupe (the *_named
        # statements) keeps the existing job's own.
        trace_insert = """
            ), traced as (
              insert into {s}._private_gw_trace_context (job_id, traceparent, tracestate)
              select added.id, %(traceparent)s::text, %(tracestate)s::text
              from added where added.id is not null
              on conflict (job_id) do {conflict}
            )
            select * from added
            """
        replace = r(
            trace_insert.replace(
                "{conflict}",
                "update set traceparent = excluded.traceparent,"
                " tracestate = excluded.tracestate, created_at = excluded.created_at",
            ),
            s,
        )
        keep = r(trace_insert.replace("{conflict}", "nothing"), s)
        self.traced_add: dict[str, str] = {
            query: f"with added as ({query}{keep if dedupe else replace}"
            for query, dedupe in (
                (self.add_job, False),
                (self.add_job_checked, False),
                (self.add_job_named, True),
                (self.add_job_named_checked, True),
                (self.add_jobs, False),
                (self.add_jobs_lean, False),
            )
        }
        """The traced variant of each add statement (its parameters plus
        ``traceparent`` and ``tracestate``)."""
        # Contexts whose job is gone, one chunk in job id order after
        # %(after)s; returns the chunk's last id (null: nothing left, or
        # another pruner holds the lock: "GWMG", "TRCE") and the rows deleted.
        self.prune_trace_contexts = r(
            """
            with pruner as (select pg_try_advisory_xact_lock(1196903751, 1414677317) as got),
            chunk as (
              select t.job_id from {s}._private_gw_trace_context as t
              where t.job_id > %(after)s::bigint and (select got from pruner)
              order by t.job_id
              limit %(chunk)s::int
            ), gone as (
              delete from {s}._private_gw_trace_context as t
              using chunk
              where t.job_id = chunk.job_id
                and not exists (
                  select 1 from {s}._private_jobs as jobs where jobs.id = chunk.job_id
                )
              returning t.job_id
            )
            select (select max(job_id) from chunk), (select count(*) from gone)
            """,
            s,
        )

    def list_jobs(self, state: str, *, identifier: bool, queue: bool, search: bool) -> str:
        """A page of jobs, newest first, for the admin filters.

        Parameters: ``identifier``, ``queue``, ``search`` and ``pattern`` (a
        LIKE pattern, see :func:`like_pattern`) when enabled, ``limit`` and
        ``offset``.
        """
        key = (state, identifier, queue, search)
        text = self._list_jobs.get(key)
        if text is None:
            clauses = [_STATE_CLAUSES[state]] if _STATE_CLAUSES[state] else []
            if identifier:
                clauses.append("tasks.identifier = %(identifier)s::text")
            if queue:
                clauses.append("job_queues.queue_name = %(queue)s::text")
            if search:
                clauses.append(_SEARCH_CLAUSE)
            where = (" where " + " and ".join(clauses)) if clauses else ""
            text = _render(
                _JOB_SELECT
                + where
                + " order by jobs.id desc limit %(limit)s::int offset %(offset)s::bigint",
                self.schema,
            )
            self._list_jobs[key] = text
        return text

    def get_jobs(
        self,
        *,
        local_time: bool,
        with_flags: bool,
        skip_queues: bool = False,
        scope: Literal["task", "queue"] | None = None,
        traced: bool = False,
    ) -> str:
        """The fetch statement (see contract §4.2).

        gw's fleet-wide limits add variants: ``skip_queues`` leaves out the
        named queues in ``%(limited_queues)s`` (fetched only under their
        limit); ``scope`` restricts a limited fetch to the tasks in
        ``%(task_ids)s`` outside limited queues ("task") or to the queue named
        ``%(queue)s`` ("queue"), and records a slot per job in
        ``_private_gw_slots`` under ``%(key)s`` when ``%(slots)s`` is true.
        ``traced`` (gw.Tracing) adds each job's stored traceparent and
        tracestate after the job's columns.
        """
        key = (local_time, with_flags, skip_queues, scope, traced)
        text = self._get_jobs.get(key)
        if text is None:
            now = "%(now)s::timestamptz" if local_time else "now()"
            flags = (
                "and (jobs.flags ?| %(forbidden_flags)s::text[]) is not true" if with_flags else ""
            )
            queue_clause = scope_clause = slots_cte = ""
            if skip_queues:
                queue_clause = (
                    "\n          and job_queues.queue_name <> all(%(limited_queues)s::text[])"
                )
            if scope == "queue":
                scope_clause = (
                    "\n    and jobs.job_queue_id = (select named.id from"
                    " {s}._private_job_queues as named where named.queue_name = %(queue)s::text)"
                )
            if scope is not None:
                slots_cte = """, slots as (
  insert into {s}._private_gw_slots (key, job_id, worker_id)
  select %(key)s::text, j.id, %(worker_id)s::text from j where %(slots)s::boolean
  on conflict (key, job_id) do update set worker_id = excluded.worker_id
)"""
            text = (
                _GET_JOBS.replace("{now}", now)
                .replace("{flags_clause}", flags)
                .replace("{queue_clause}", queue_clause)
                .replace("{scope_clause}", scope_clause)
                .replace("{slots_cte}", slots_cte)
                .replace("{trace_join}", _TRACE_JOIN if traced else "")
                .replace("{trace_columns}", _TRACE_COLUMNS if traced else "")
            )
            text = _render(text, self.schema)
            self._get_jobs[key] = text
        return text

    def reset_locked_at(self, *, local_time: bool) -> str:
        """Unlock jobs and queues locked more than 4 hours ago (Node's resetLockedAt)."""
        return self._reset_locked_at[local_time]

    # ------------------------------------------------------------------ cron
    # (section owned by the cron runner; contract §6.3-§6.4)

    @property
    def cron(self) -> CronQueries:
        """The cron runner's statements."""
        return _cron_queries(self.schema)


# ============================================================================ cron


class CronQueries:
    """Statements of :mod:`gw.cron.runner`, for one schema.

    ``schedule_cron_jobs`` is the statement graphile-worker's cron uses (same
    semantics, same JSON parameter shape), so gw, Node and Rust workers
    de-duplicate each other's ticks through ``_private_known_crontabs``.
    """

    def __init__(self, schema: str) -> None:
        s = check_schema_name(schema)
        r = _render
        self.known_crontabs = r(
            """
            select identifier, known_since, last_execution
            from {s}._private_known_crontabs
            where identifier = any(%(identifiers)s::text[])
            """,
            s,
        )
        # New identifiers become known now and are not backfilled (Node's rule).
        self.register_crontabs = r(
            """
            insert into {s}._private_known_crontabs as known_crontabs (identifier, known_since)
            select identifier, %(start)s::timestamptz
            from unnest(%(identifiers)s::text[]) as unnest (identifier)
            on conflict do nothing
            """,
            s,
        )
        # One statement per minute. The upsert takes a row lock per identifier
        # and only returns identifiers whose last_execution it advanced to
        # %(ts)s; add_job runs for those alone. A concurrent worker (gw, Node
        # or Rust) doing the same minute waits on the lock, then sees
        # last_execution = ts and schedules nothing.
        self.schedule_cron_jobs = r(
            """
            with specs as (
              select
                entries.index,
                (entries.spec->>'identifier')::text as identifier,
                (entries.spec->'job'->>'task')::text as task,
                (entries.spec->'job'->'payload')::json as payload,
                (entries.spec->'job'->>'queueName')::text as queue_name,
                (entries.spec->'job'->>'runAt')::timestamptz as run_at,
                (entries.spec->'job'->>'maxAttempts')::int as max_attempts,
                (entries.spec->'job'->>'priority')::int as priority,
                (entries.spec->'job'->>'jobKey')::text as job_key,
                (entries.spec->'job'->>'jobKeyMode')::text as job_key_mode
              from json_array_elements(%(specs)s::json) with ordinality as entries (spec, index)
            ),
            locks as (
              insert into {s}._private_known_crontabs as known_crontabs
                (identifier, known_since, last_execution)
              select specs.identifier, %(ts)s::timestamptz, %(ts)s::timestamptz
              from specs
              on conflict (identifier) do update
                set last_execution = excluded.last_execution
                where known_crontabs.last_execution is null
                   or known_crontabs.last_execution < excluded.last_execution
              returning known_crontabs.identifier
            )
            select specs.identifier, ({s}.add_job(
              identifier => specs.task,
              payload => specs.payload,
              queue_name => specs.queue_name,
              run_at => coalesce(specs.run_at, %(now)s::timestamptz, now()),
              max_attempts => specs.max_attempts,
              job_key => specs.job_key,
              priority => specs.priority,
              flags => null::text[],
              job_key_mode => specs.job_key_mode
            )).id as job_id
            from specs
            inner join locks on locks.identifier = specs.identifier
            order by specs.index asc
            """,
            s,
        )


@lru_cache(maxsize=32)
def _cron_queries(schema: str) -> CronQueries:
    return CronQueries(schema)
