"""Job commands: add, list, show, complete, fail, reschedule, cancel, remove."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from cyclopts import Parameter

from ..errors import ConfigurationError, GwError
from ..types import CancelResult, Job, JobPage, JobSpec
from ._app import current, open_utils, run
from ._output import emit_json, fmt_time, jobs_table, print_table, say, stdout, warn
from ._params import (
    Duration,
    JobId,
    JobIds,
    JobKeyModeName,
    JsonPayload,
    Time,
    format_duration,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..core.tasks import Task

__all__ = ("add", "cancel", "complete", "fail", "list_jobs", "remove", "reschedule", "show")

State = Literal["all", "ready", "scheduled", "locked", "failed"]


class JobNotFound(GwError):
    """No job has that id."""


def add(
    identifier: Annotated[str, Parameter(metavar="IDENTIFIER")],
    /,
    *,
    payload: JsonPayload = None,
    queue: Annotated[str | None, Parameter(metavar="NAME")] = None,
    run_at: Time | None = None,
    max_attempts: Annotated[int | None, Parameter(metavar="N")] = None,
    priority: Annotated[int | None, Parameter(metavar="N")] = None,
    job_key: Annotated[str | None, Parameter(metavar="KEY")] = None,
    job_key_mode: JobKeyModeName | None = None,
    flag: Annotated[list[str] | None, Parameter(metavar="FLAG", negative="")] = None,
    delay: Duration | None = None,
    tasks: Annotated[list[str] | None, Parameter(metavar="MODULE[:ATTR]", negative="")] = None,
) -> None:
    """Schedule a job for a task.

    Example: gw add send_email --payload '{"to": "user@example.com"}' --delay 5m

    Parameters
    ----------
    identifier
        The task identifier, e.g. send_email.
    payload
        The job's JSON payload (default {}), or @FILE to read it from a file.
    queue
        Named queue: its jobs run one at a time, in order.
    run_at
        When to run it: ISO 8601 with an offset, e.g. 2026-01-02T03:04:05Z, or +DURATION
        from now, e.g. +1h (default: now).
    max_attempts
        How many times to try it (default 25, or the task's).
    priority
        Lower numbers run first (default 0, or the task's).
    job_key
        Deduplication key: adding a job with an existing key updates that job.
    job_key_mode
        With --job-key: replace (default), preserve_run_at or unsafe_dedupe.
    flag
        A flag for the job (repeat for more); workers can refuse flagged jobs.
    delay
        Run it this long from now, e.g. 30s, 5m or 1h30m (instead of --run-at).
    tasks
        Python modules whose @gw.task defaults (queue, max attempts, priority, job key
        mode) apply to this job, as for gw worker --tasks.
    """
    run_at = _when(run_at, delay)
    spec = JobSpec(
        queue_name=queue,
        run_at=run_at,
        max_attempts=max_attempts,
        priority=priority,
        flags=tuple(flag) if flag else None,
        job_key=job_key,
        job_key_mode=job_key_mode,  # type: ignore[arg-type]  # checked by the converter
    )
    from ..types import check_identifier

    check_identifier(identifier)
    spec.validate()

    registry: Iterable[Task[..., Any]] = ()
    if tasks:
        from .worker import load_tasks

        registry = load_tasks(tasks)

    async def go() -> tuple[Job, str | None]:
        async with open_utils(tasks=registry) as utils:
            return await utils.add_raw_job_noting(identifier, payload, spec)

    job, notice = run(go)
    if notice is not None:
        warn(notice)
    if current().json:
        emit_json(job)
        return
    when = "now" if job.run_at <= datetime.now(UTC) else f"at {fmt_time(job.run_at)}"
    extra = f", queue {job.queue_name}" if job.queue_name else ""
    extra += f", key {job.key}" if job.key else ""
    say(f"added job {job.id} ({job.task_identifier}{extra}); runs {when}")


def _when(run_at: datetime | None, delay: float | None) -> datetime | None:
    """The run time from --run-at or --delay (at most one of them)."""
    if delay is None:
        return run_at
    if run_at is not None:
        raise ConfigurationError(
            "--delay and --run-at both say when the job runs; give one of them"
        )
    try:
        return datetime.now(UTC) + timedelta(seconds=delay)
    except OverflowError:
        raise ConfigurationError(
            f"--delay {format_duration(delay)} is too far in the future"
        ) from None


def list_jobs(
    *,
    state: State = "all",
    identifier: Annotated[str | None, Parameter(metavar="IDENTIFIER")] = None,
    queue: Annotated[str | None, Parameter(metavar="NAME")] = None,
    search: Annotated[str | None, Parameter(metavar="TEXT")] = None,
    limit: Annotated[int, Parameter(metavar="N")] = 50,
    offset: Annotated[int, Parameter(metavar="N")] = 0,
) -> None:
    """List jobs, newest first.

    Parameters
    ----------
    state
        ready: runnable now; scheduled: run_at in the future; locked: running;
        failed: out of attempts.
    identifier
        Only jobs of this task.
    queue
        Only jobs in this queue.
    search
        Text to find in the id, task, queue, key, last error or payload.
    limit
        Page size (1 to 500).
    offset
        Skip this many jobs (for paging).
    """

    async def go() -> JobPage:
        async with open_utils() as utils:
            return await utils.list_jobs(
                state=state,
                identifier=identifier,
                queue=queue,
                search=search,
                limit=limit,
                offset=offset,
            )

    _check_page(limit, offset)
    page = run(go)
    if current().json:
        emit_json(page)
        return
    if not page.jobs:
        say("no jobs" + ("" if state == "all" else f" in state {state}"))
        return
    jobs_table(page.jobs)
    first, last = page.offset + 1, page.offset + len(page.jobs)
    more = f"; more with --offset {last}" if page.has_more else ""
    say(f"jobs {first}-{last}{more}", style="dim")


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= 500:
        raise ConfigurationError(f"--limit must be between 1 and 500, got {limit}")
    if offset < 0:
        raise ConfigurationError(f"--offset must be >= 0, got {offset}")


def show(job_id: JobId, /) -> None:
    """Show one job in full, payload included.

    Parameters
    ----------
    job_id
        The job's id.
    """

    async def go() -> Job | None:
        async with open_utils() as utils:
            return await utils.get_job(job_id)

    job = run(go)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    if current().json:
        emit_json(job)
        return
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("task", job.task_identifier),
        ("queue", job.queue_name),
        ("state", job.state(datetime.now(UTC))),
        ("run at", job.run_at),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("priority", job.priority),
        ("key", job.key),
        ("revision", job.revision),
        ("flags", ", ".join(job.flag_names) or None),
        ("locked by", job.locked_by),
        ("locked at", job.locked_at),
        ("created at", job.created_at),
        ("updated at", job.updated_at),
        ("last error", job.last_error),
    ]
    print_table(("FIELD", "VALUE"), rows, wrap=("VALUE",))
    console = stdout()
    console.print("payload:")
    payload = msgspec.json.format(msgspec.json.encode(job.payload), indent=2).decode()
    console.print(payload, markup=False)  # data: "[bold]" in a payload is text


def _report(verb: str, asked: Sequence[int], jobs: Sequence[Job]) -> None:
    if current().json:
        emit_json(list(jobs))
        return
    done = {j.id for j in jobs}
    if jobs:
        say(f"{verb} {len(jobs)} job(s): {', '.join(str(j.id) for j in jobs)}")
    skipped = [i for i in dict.fromkeys(asked) if i not in done]
    if skipped:
        say(
            f"not {verb} (no such job, or locked by a worker): "
            + ", ".join(str(i) for i in skipped),
            style="yellow",
        )


def complete(job_ids: JobIds, /) -> None:
    """Mark jobs as done (deletes them). Locked (running) jobs are left alone.

    Parameters
    ----------
    job_ids
        One or more job ids.
    """

    async def go() -> list[Job]:
        async with open_utils() as utils:
            return await utils.complete_jobs(job_ids)

    _report("completed", job_ids, run(go))


def fail(
    job_ids: JobIds, /, *, reason: Annotated[str | None, Parameter(metavar="TEXT")] = None
) -> None:
    """Fail jobs permanently: attempts = max_attempts, last_error = reason.

    Parameters
    ----------
    job_ids
        One or more job ids.
    reason
        Stored as the jobs' last error.
    """

    async def go() -> list[Job]:
        async with open_utils() as utils:
            return await utils.permanently_fail_jobs(job_ids, reason)

    _report("failed", job_ids, run(go))


def reschedule(
    job_ids: JobIds,
    /,
    *,
    run_at: Time | None = None,
    delay: Duration | None = None,
    priority: Annotated[int | None, Parameter(metavar="N")] = None,
    attempts: Annotated[int | None, Parameter(metavar="N")] = None,
    max_attempts: Annotated[int | None, Parameter(metavar="N")] = None,
) -> None:
    """Change when and how jobs run (unlocked jobs only).

    Parameters
    ----------
    job_ids
        One or more job ids.
    run_at
        New run time, ISO 8601 with an offset, or +DURATION from now (default: now).
    delay
        Run them this long from now, e.g. 10m (instead of --run-at).
    priority
        New priority (unchanged if omitted).
    attempts
        New attempt count, e.g. 0 to give a failed job all its attempts again.
    max_attempts
        New maximum number of attempts.
    """
    run_at = _when(run_at, delay)
    if priority is not None or max_attempts is not None:
        JobSpec(priority=priority, max_attempts=max_attempts).validate()
    if attempts is not None and not 0 <= attempts <= 32767:
        raise ConfigurationError(f"--attempts must be between 0 and 32767, got {attempts}")

    async def go() -> list[Job]:
        async with open_utils() as utils:
            return await utils.reschedule_jobs(
                job_ids,
                # The SQL function keeps run_at when given null; the CLI's
                # (and RS's) documented default is "run now".
                run_at=run_at or datetime.now(UTC),
                priority=priority,
                attempts=attempts,
                max_attempts=max_attempts,
            )

    _report("rescheduled", job_ids, run(go))


def cancel(
    job_ids: JobIds, /, *, reason: Annotated[str | None, Parameter(metavar="TEXT")] = None
) -> None:
    """Cancel jobs, waiting or running on a gw worker: they fail for good.

    A waiting job fails at once (last_error "cancelled: REASON", no attempts
    left). A job a gw worker runs is stopped there within about a second and
    recorded the same way. A job held by a Node or Rust worker is left alone.

    Parameters
    ----------
    job_ids
        One or more job ids. One line per job says what happened; the exit code
        is 0 even when some were not cancelled (as for gw complete and gw fail).
    reason
        Why: stored as "cancelled: REASON" in the jobs' last error (default: no reason given).
    """

    async def go() -> list[CancelResult]:
        async with open_utils() as utils:
            return await utils.cancel_jobs(job_ids, reason)

    results = run(go)
    if current().json:
        emit_json(results)
        return
    for result in results:
        text, style = _cancel_outcome(result)
        say(f"job {result.job_id}: {text}", style=style)


def _cancel_outcome(result: CancelResult) -> tuple[str, str | None]:
    """What ``gw cancel`` did to one job, in words, and the line's style."""
    worker = result.worker_id or "a worker"
    if result.outcome == "cancelled":
        return "cancelled", None
    if result.outcome == "cancelling":
        return f"cancelling (running on {worker}, which was asked to stop it)", None
    if result.outcome == "not_cancellable":
        return f"not cancellable: held by {worker}, which is not a gw worker", "yellow"
    if result.outcome == "finished":
        return "not cancelled: it has already failed permanently", "yellow"
    return "not found", "yellow"


def remove(job_key: Annotated[str, Parameter(metavar="KEY")], /) -> None:
    """Cancel the job with this job key.

    An unlocked job is deleted; a running one finishes but is not retried.

    Parameters
    ----------
    job_key
        The job's key (set with gw add --job-key).
    """
    if not job_key:
        raise ConfigurationError("the job key must not be empty")

    async def go() -> Job | None:
        async with open_utils() as utils:
            return await utils.remove_job(job_key)

    job = run(go)
    if current().json:
        emit_json(job)
    elif job is None:
        say(f"no job has key {job_key!r}; nothing removed", style="yellow")
    elif job.locked_at is not None:
        say(f"job {job.id} ({job.task_identifier}) is running; it will not be retried")
    else:
        say(f"removed job {job.id} ({job.task_identifier})")
