"""Sans-I/O halves of the WorkerUtils operations: validation, statement
parameters and row decoding, shared by the async ``gw.WorkerUtils`` and the
blocking ``gw.sync.WorkerUtils`` so both behave exactly alike.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, get_args

import msgspec
import psycopg

from ..db._errors import database_error as generic_database_error, first_line
from ..errors import (
    ConfigurationError,
    DatabaseError,
    GwError,
    InvalidJobSpec,
    UnknownTaskWarning,
)
from ..types import (
    CancelResult,
    CleanupTask,
    HistoryEntry,
    HistoryOutcome,
    Job,
    JobSpec,
    LimitUsage,
    check_identifier,
)
from ._json import encode_payload, storable_text

if TYPE_CHECKING:
    from datetime import datetime

    from ..db.queries import Queries

DEFAULT_SPEC = JobSpec()
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class TaskLike(Protocol):
    """Anything with a task identifier (gw task objects, or your own)."""

    @property
    def identifier(self) -> str: ...


# --------------------------------------------------------------------------- adding one job


@dataclass(frozen=True, slots=True)
class AddJob:
    """One ``add_job`` call: the statement, its parameters, how to read the row."""

    query: str
    params: dict[str, Any]
    identifier: str
    queue_name: str | None
    job_key: str | None
    dedupe: bool
    checks_known: bool = False
    """The row ends with a flag: was the identifier registered before this add?"""

    def is_unknown(self, row: Any) -> bool:
        """The identifier was not registered before this add (checked calls only)."""
        return self.checks_known and row is not None and not row[-1]

    def job(self, row: Any) -> Job:
        """The Job for the statement's row (see ``Queries.add_job``)."""
        if row is None or row[0] is None:
            raise DatabaseError(
                f"the database did not schedule the job for key {self.job_key!r} "
                "(it was locked by a worker at that moment); try again"
            )
        if self.checks_known:
            row = row[:-1]
        if self.dedupe:
            job = Job(*row)
            if job.revision > 0:
                # The existing job, with its own task and queue names.
                return job
            # A new job: its task or queue may be new too, which the
            # statement's own snapshot cannot see.
            return Job(row[0], self.identifier, self.queue_name, *row[3:])
        return Job(row[0], self.identifier, self.queue_name, *row[1:])


def add_job_request(
    queries: Queries,
    identifier: str,
    payload: Any,
    spec: JobSpec,
    now: datetime | None,
    *,
    check_known: bool = False,
) -> AddJob:
    """Build the ``add_job`` call (identifier and spec already validated)."""
    payload_json = encode_payload(payload)
    run_at = spec.run_at if spec.run_at is not None else now
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
    if check_known:
        query = queries.add_job_named_checked if dedupe else queries.add_job_checked
    else:
        query = queries.add_job_named if dedupe else queries.add_job
    return AddJob(
        query=query,
        params=params,
        identifier=identifier,
        queue_name=spec.queue_name,
        job_key=job_key,
        dedupe=dedupe,
        checks_known=check_known,
    )


# --------------------------------------------------------------------------- adding many


ADD_JOBS_STATEMENT_SIZE = 5_000
"""Jobs per ``add_jobs`` statement: a larger batch is sent as several, in one transaction."""


class _Sent(msgspec.Struct, frozen=True):
    """What one JobSpec makes of a job: its ``job_spec`` fields as sent, and
    what the database makes of them for a job it inserts fresh (the columns a
    lean ``add_jobs`` row leaves out)."""

    spec: JobSpec  # kept so that id(spec), the cache key, stays this spec's own
    fields: dict[str, Any]
    queue_name: str | None
    priority: int
    max_attempts: int
    key: str | None
    flags: dict[str, bool] | None


@dataclass(frozen=True, slots=True)
class AddJobs:
    """One ``add_jobs`` statement plus the lookup of the names its rows refer to,
    and what was sent for each job (to complete lean rows)."""

    params: dict[str, Any]
    names_params: dict[str, Any]
    identifiers: list[str]
    payloads: bytes
    """The jobs' payloads as one JSON array, as sent."""
    sent: list[_Sent]

    @staticmethod
    def jobs(rows: Sequence[Any], names: Sequence[Any]) -> list[Job]:
        """The Jobs of the statement's full rows (``Queries.add_jobs``).

        Payloads are read from the rows, not taken from what was sent: a
        keyed batch job merges its array into the existing one, and an
        ``add_jobs`` installed by another implementation need not return
        rows in input order.
        """
        task_names = {n[1]: n[2] for n in names if n[0] == "t"}
        queue_names = {n[1]: n[2] for n in names if n[0] == "q"}
        return [_full_job(r, task_names, queue_names) for r in rows]

    def lean_jobs(self, rows: Sequence[Any], names: Sequence[Any]) -> list[Job] | None:
        """The Jobs of the statement's lean rows (``Queries.add_jobs_lean``), or
        None when the rows do not line up with what was sent (then read them
        in full by id).

        Only for an ``add_jobs`` that returns rows in input order (gw's own).
        A freshly inserted row (revision 0) holds exactly what was sent, so
        only its id and times come back; a row that replaced a keyed job comes
        back whole. Each job yields one row or, keyed, none (a job with its
        key running concurrently is left alone): rows are matched in order by
        key, so a missing unkeyed row or a key that differs is noticed.
        """
        task_names = {n[1]: n[2] for n in names if n[0] == "t"}
        queue_names = {n[1]: n[2] for n in names if n[0] == "q"}
        task_ids = {name: id_ for id_, name in task_names.items()}
        queue_ids = {name: id_ for id_, name in queue_names.items()}
        try:
            payloads = _decoder.decode(self.payloads)
        except (msgspec.DecodeError, RecursionError):
            return None
        out: list[Job] = []
        count = len(rows)
        at = 0
        try:
            for index, sent in enumerate(self.sent):
                # JOB_ROW_COLUMNS order: id 0, run_at 3, created_at 7, key 9, revision 12.
                row = rows[at] if at < count else None
                if row is None or row[9] != sent.key:
                    if sent.key is None:
                        return None
                    continue  # a keyed job the database left alone
                at += 1
                if row[12] != 0:
                    out.append(_full_job(row, task_names, queue_names))
                    continue
                identifier = self.identifiers[index]
                queue = sent.queue_name
                out.append(
                    Job(
                        row[0],
                        identifier,
                        queue,
                        payloads[index],
                        sent.priority,
                        row[3],
                        0,
                        sent.max_attempts,
                        None,
                        row[7],
                        row[7],
                        sent.key,
                        None,
                        None,
                        0,
                        sent.flags,
                        True,
                        task_ids[identifier],
                        None if queue is None else queue_ids[queue],
                    )
                )
        except KeyError:
            return None  # a name the lookup did not return: read the rows in full
        return out if at == count else None


def _full_job(row: Sequence[Any], task_names: dict[int, str], queue_names: dict[int, str]) -> Job:
    """A Job from a row of JOB_ROW_COLUMNS and the names of its task and queue ids."""
    queue_id = row[16]
    return Job(
        row[0], task_names[row[15]], None if queue_id is None else queue_names[queue_id], *row[1:]
    )


def batch_preserves_run_at(jobs: Sequence[tuple[str, Any, JobSpec | None]]) -> bool:
    """Graphile's batch rule: one job asking for ``preserve_run_at`` (with a key)
    makes the whole batch preserve run_at. Also refuses a key used twice."""
    preserve = False
    keys: set[str] = set()
    for _, _, spec in jobs:
        if not isinstance(spec, JobSpec) or not spec.job_key:
            continue  # a wrong spec is reported in job order by add_jobs_requests
        if spec.job_key in keys:
            raise InvalidJobSpec(
                f"job_key {spec.job_key!r} appears more than once in one batch; "
                "each key may be used once per add_jobs call"
            )
        keys.add(spec.job_key)
        preserve = preserve or spec.job_key_mode == "preserve_run_at"
    return preserve


def add_jobs_requests(
    jobs: Sequence[tuple[str, Any, JobSpec | None]], now: datetime | None
) -> Iterator[AddJobs]:
    """The ``add_jobs`` statements for (identifier, payload, spec) triples,
    ``ADD_JOBS_STATEMENT_SIZE`` jobs each, built one at a time (memory stays flat
    however many jobs).

    Applies Graphile's batch rules: no ``unsafe_dedupe``, each key once, and
    ``preserve_run_at`` for the whole batch when any job asks for it.
    """
    preserve = batch_preserves_run_at(jobs)
    # Jobs usually share a few identifiers and JobSpec objects: each is checked
    # and encoded once. A statement sends the payloads as one JSON array and
    # each distinct (identifier, spec) pair once, with the pair of every job.
    checked: set[str] = set()
    specs: dict[int, _Sent] = {}
    for first, last in statement_bounds(len(jobs)):
        identifiers: list[str] = []
        payloads: list[bytes] = []
        sent: list[_Sent] = []
        kinds: dict[tuple[str, int], int] = {}
        kind_of: list[int] = []
        for index in range(first, last):
            identifier, payload, spec = jobs[index]
            try:
                if type(identifier) is not str or identifier not in checked:
                    checked.add(check_identifier(identifier))
                if spec is None:
                    spec = DEFAULT_SPEC
                cached = specs.get(id(spec))
                if cached is None:
                    cached = specs[id(spec)] = _sent(spec, now)
                payload_json = encode_payload(payload)
            except InvalidJobSpec as ex:
                raise InvalidJobSpec(f"job #{index} ({identifier!r}): {ex}") from None
            kind = kinds.setdefault((identifier, id(spec)), len(kinds))
            identifiers.append(identifier)
            payloads.append(payload_json)
            sent.append(cached)
            kind_of.append(kind)
        kind_specs = [
            {"identifier": identifier, **specs[spec_id].fields} for identifier, spec_id in kinds
        ]
        payload_array = b"[" + b",".join(payloads) + b"]"
        yield AddJobs(
            params={
                "payloads": payload_array.decode(),
                "kinds": _encoder.encode(kind_specs).decode(),
                # One kind (the usual batch): every job is of it.
                "kind_of": _encoder.encode(kind_of).decode() if len(kinds) > 1 else "[]",
                "preserve_run_at": preserve,
            },
            names_params={
                "identifiers": sorted(set(identifiers)),
                "queues": sorted({c.queue_name for c in sent if c.queue_name is not None}),
            },
            identifiers=identifiers,
            payloads=payload_array,
            sent=sent,
        )


FIRST_STATEMENT_SIZE = 1_000
"""Jobs in the first statement of a batch sent as several."""


def statement_bounds(count: int) -> list[tuple[int, int]]:
    """How a batch of ``count`` jobs is cut into statements: [first, last) ranges.

    Several statements go through one pipeline, so the client encodes the
    next statement while the server inserts the previous one; only the first
    statement's encoding keeps the server waiting, so it is a small one. The
    rest is split evenly into statements of at most ``ADD_JOBS_STATEMENT_SIZE``.
    """
    size = ADD_JOBS_STATEMENT_SIZE
    if count <= size:
        return [(0, count)] if count else []
    first = FIRST_STATEMENT_SIZE
    rest = count - first
    parts = -(-rest // size)  # the fewest statements of at most ``size``
    bounds = [(0, first)]
    for part in range(parts):
        last = first + rest * (part + 1) // parts
        bounds.append((bounds[-1][1], last))
    return bounds


def _sent(spec: JobSpec, now: datetime | None) -> _Sent:
    """Check and encode a JobSpec once for all the jobs that share it."""
    fields = _spec_fields(spec, now)
    flags = fields.get("flags")
    return _Sent(
        spec=spec,
        fields=fields,
        queue_name=fields.get("queue_name"),
        priority=fields.get("priority", 0),
        max_attempts=fields.get("max_attempts", 25),
        key=fields.get("job_key"),
        flags=dict.fromkeys(flags, True) if flags else None,
    )


def _spec_fields(spec: JobSpec, now: datetime | None) -> dict[str, Any]:
    """The ``job_spec`` fields a JobSpec sets (absent keys are null in SQL)."""
    check_spec(spec)
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


def job_tuples(jobs: Sequence[Any]) -> list[tuple[str, Any, JobSpec | None]]:
    """Check ``add_jobs`` input: ``(task, payload)`` or ``(task, payload, spec)`` tuples."""
    triples = []
    for index, entry in enumerate(jobs):
        if not isinstance(entry, tuple) or len(entry) not in (2, 3):
            raise InvalidJobSpec(
                f"job #{index}: expected a (task, payload) or (task, payload, spec) tuple, "
                f"got {entry!r}"
            )
        try:
            identifier = identifier_of(entry[0])
        except InvalidJobSpec as ex:
            raise InvalidJobSpec(f"job #{index}: {ex}") from None
        spec = with_defaults(entry[2] if len(entry) == 3 else None, defaults_of(entry[0]))
        triples.append((identifier, entry[1], spec))
    return triples


def defaults_of(task: object) -> JobSpec | None:
    """The job defaults a gw task carries (None for an identifier or other objects)."""
    defaults = getattr(task, "defaults", None)
    return defaults if isinstance(defaults, JobSpec) else None


def with_defaults(spec: JobSpec | None, defaults: JobSpec | None) -> JobSpec | None:
    """``spec`` with a task's job defaults filled in where it sets nothing.

    A default ``job_key_mode`` applies only to a job that has a key.
    """
    if defaults is None:
        return spec
    if spec is None or spec is DEFAULT_SPEC:
        if defaults.job_key_mode is None:
            return defaults
        return msgspec.structs.replace(defaults, job_key_mode=None)
    changes: dict[str, Any] = {}
    if spec.queue_name is None and defaults.queue_name is not None:
        changes["queue_name"] = defaults.queue_name
    if spec.max_attempts is None and defaults.max_attempts is not None:
        changes["max_attempts"] = defaults.max_attempts
    if spec.priority is None and defaults.priority is not None:
        changes["priority"] = defaults.priority
    if spec.job_key and spec.job_key_mode is None and defaults.job_key_mode is not None:
        changes["job_key_mode"] = defaults.job_key_mode
    return msgspec.structs.replace(spec, **changes) if changes else spec


def prepare_add(
    task: str | TaskLike,
    spec: JobSpec | None,
    task_defaults: Mapping[str, JobSpec],
    local_identifiers: Iterable[str] = (),
) -> tuple[str, JobSpec, bool]:
    """Identifier, spec with the task's defaults, and whether to ask the database
    if the identifier is known (only for a raw identifier the caller does not run)."""
    identifier = identifier_of(task)
    if spec is not None and spec is not DEFAULT_SPEC:
        check_spec(spec)
    spec = with_defaults(spec, defaults_of(task))
    if task_defaults:
        spec = with_defaults(spec, task_defaults.get(identifier))
    check_known = isinstance(task, str) and identifier not in local_identifiers
    return identifier, spec or DEFAULT_SPEC, check_known


def unknown_task_notice(identifier: str, known: Iterable[str]) -> str:
    """The warning for an identifier no worker registered, with the closest known one."""
    match = difflib.get_close_matches(identifier, [k for k in known if k != identifier], n=1)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    return (
        f"no worker has registered task {identifier!r} on this database{hint} "
        "(the job was added; it waits until a worker runs that task)"
    )


def warn_unknown_task(notice: str | None, stacklevel: int) -> None:
    """Warn :class:`gw.UnknownTaskWarning` (``stacklevel`` counted from the caller)."""
    if notice is not None:
        warnings.warn(notice, UnknownTaskWarning, stacklevel=stacklevel + 1)


# --------------------------------------------------------------------------- managing


def reschedule_params(
    ids: Iterable[int],
    run_at: datetime | None,
    priority: int | None,
    attempts: int | None,
    max_attempts: int | None,
) -> dict[str, Any]:
    """Validated parameters of ``reschedule_jobs``."""
    if run_at is not None and (run_at.tzinfo is None or run_at.utcoffset() is None):
        raise InvalidJobSpec(f"run_at {run_at.isoformat()} has no timezone; pass an aware datetime")
    if priority is not None or max_attempts is not None:
        JobSpec(priority=priority, max_attempts=max_attempts).validate()
    if attempts is not None and (not is_int(attempts) or not 0 <= attempts <= 32767):
        raise InvalidJobSpec(f"attempts must be between 0 and 32767, got {attempts!r}")
    return {
        "ids": job_ids(ids),
        "run_at": run_at,
        "priority": priority,
        "attempts": attempts,
        "max_attempts": max_attempts,
    }


def worker_ids(ids: Iterable[str]) -> list[str]:
    out = list(ids)
    if not all(isinstance(w, str) and w for w in out):
        raise ConfigurationError("worker ids must be non-empty strings")
    return out


def check_job_key(job_key: object) -> str:
    if not isinstance(job_key, str) or not job_key:
        raise InvalidJobSpec("remove_job needs a non-empty job key")
    return job_key


# --------------------------------------------------------------------------- checks


def identifier_of(task: str | TaskLike) -> str:
    if isinstance(task, str):
        return check_identifier(task)
    identifier = getattr(task, "identifier", None)
    if not isinstance(identifier, str):
        raise InvalidJobSpec(
            f"expected a task identifier string or a gw task, got {type(task).__name__}"
        )
    return check_identifier(identifier)


def check_spec(spec: Any) -> None:
    if not isinstance(spec, JobSpec):
        raise InvalidJobSpec(f"spec must be a gw.JobSpec (or None), got {type(spec).__name__}")
    spec.validate()


def check_batch_items(items: Any, *, from_hook: bool = False) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        if from_hook:
            raise InvalidJobSpec(
                "the before_job_schedule hook must return a non-empty list as the payload "
                f"of a batch job, got {items!r}"
            )
        if not isinstance(items, (str, bytes)) and isinstance(items, Sequence):
            raise InvalidJobSpec("a batch job needs at least one item")
        raise InvalidJobSpec("a batch job's items must be a list")


def check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")


def duration(name: str, value: float | timedelta | None, *, allow_zero: bool = True) -> float:
    """Seconds from a number or timedelta; a ConfigurationError naming ``name`` otherwise."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}"
        )
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds != seconds:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be {bound} seconds, got {value!r}")
    return seconds


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def job_ids(ids: Iterable[int]) -> list[int]:
    out = list(ids)
    for value in out:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"job ids must be positive integers, got {value!r}")
    return out


MAX_CANCEL_REASON = 1000


def cancel_params(ids: Iterable[int], reason: str | None) -> dict[str, Any]:
    """Parameters of the cancel statement; a missing reason reads "no reason given"."""
    if reason is not None and not isinstance(reason, str):
        raise ConfigurationError(f"the cancel reason must be text, got {reason!r}")
    text = storable_text((reason or "").strip() or "no reason given", MAX_CANCEL_REASON)
    return {"ids": job_ids(ids), "reason": text, "message": f"cancelled: {text}"}


def cancel_results(ids: list[int], rows: Iterable[Sequence[Any]]) -> list[CancelResult]:
    """One result per distinct requested id, in the order asked (missing: not_found)."""
    found = {row[0]: CancelResult(job_id=row[0], outcome=row[1], worker_id=row[2]) for row in rows}
    results = []
    for job_id in dict.fromkeys(ids):
        results.append(found.get(job_id) or CancelResult(job_id=job_id, outcome="not_found"))
    return results


_HISTORY_OUTCOMES: tuple[str, ...] = get_args(HistoryOutcome)


def history_params(
    task: str | None,
    queue: str | None,
    outcome: str | None,
    job_id: int | None,
    since: datetime | None,
    limit: int,
    before_id: int | None = None,
) -> dict[str, Any]:
    """Parameters of the history query, each filter checked."""
    if before_id is not None and (not is_int(before_id) or not 1 <= before_id < 2**63):
        raise ConfigurationError(
            f"before_id must be a positive 64-bit integer (a history entry's id), got {before_id!r}"
        )
    if outcome is not None and outcome not in _HISTORY_OUTCOMES:
        raise ConfigurationError(
            f"unknown outcome {outcome!r}; expected one of {', '.join(_HISTORY_OUTCOMES)}"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
        raise ConfigurationError(f"limit must be an integer from 1 to 10000, got {limit!r}")
    if since is not None and since.tzinfo is None:
        raise ConfigurationError("since must be an aware datetime (with a time zone)")
    for name, value in (("task", task), ("queue", queue)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{name} must be text, got {value!r}")
    return {
        "task": task,
        "queue": queue,
        "outcome": outcome,
        "job_id": None if job_id is None else job_ids([job_id])[0],
        "since": since,
        "limit": limit,
        "before_id": before_id,
    }


def history_entry(row: Sequence[Any]) -> HistoryEntry:
    (id_, job_id, task, queue, attempt, max_attempts, worker_id, run_at, started_at,
     finished_at, outcome, error, result, payload) = row  # fmt: skip
    return HistoryEntry(
        id=id_,
        job_id=job_id,
        task_identifier=task,
        queue_name=queue,
        attempt=attempt,
        max_attempts=max_attempts,
        worker_id=worker_id,
        run_at=run_at,
        started_at=started_at,
        finished_at=finished_at,
        outcome=outcome,
        error=error,
        result=result,
        payload=payload,
    )


def limit_usage(row: Sequence[Any]) -> LimitUsage:
    key, rate, burst, max_concurrency, tokens, running, updated_at = row
    return LimitUsage(
        key=key,
        rate=rate,
        burst=burst,
        max_concurrency=max_concurrency,
        tokens=tokens,
        running=int(running),
        updated_at=updated_at,
    )


def cleanup_task(task: CleanupTask | str) -> CleanupTask:
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


# --------------------------------------------------------------------------- errors


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Turn psycopg errors raised inside the block into gw errors."""
    try:
        yield
    except psycopg.Error as ex:
        raise database_error(what, ex) from None


def database_error(what: str, ex: psycopg.Error) -> GwError:
    """The gw error for a psycopg error: job-spec mistakes as InvalidJobSpec, the
    rest as gw.db's DatabaseError (``transient`` set for connection trouble)."""
    first = first_line(ex)
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
    return generic_database_error(ex, "database error")
