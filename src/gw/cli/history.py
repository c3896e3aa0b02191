"""Job history commands: history, result.

Both read the attempts gw workers record when run with ``--history``
(``gw.Worker(history=gw.History(...))``); Node and Rust workers record none.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from cyclopts import Parameter

from ..errors import ConfigurationError, ResultTimeout, ResultUnavailable
from ..types import HistoryEntry, HistoryOutcome, Job
from ._app import CommandFailed, current, open_utils, run
from ._output import emit_json, fmt_relative, print_table, say, stdout
from ._params import BIGINT_MAX, Duration, JobId, Since, format_duration

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.text import Text

__all__ = ("EXIT_NOT_FINISHED", "EXIT_UNSUCCESSFUL", "history", "result")

EXIT_UNSUCCESSFUL: Final = 3
"""``gw result``: the job ended without completing (failed for good, cancelled, skipped)."""
EXIT_NOT_FINISHED: Final = 4
"""``gw result``: no final outcome yet (or not within ``--wait``)."""

# The outcomes after which a job never runs again; the others (failed with
# attempts left, rescheduled, interrupted) are followed by another attempt.
_FINAL: Final = frozenset({"completed", "permanently_failed", "cancelled", "skipped"})
_STYLE: Final = {
    "completed": "green",
    "failed": "yellow",
    "permanently_failed": "red",
    "cancelled": "red",
    "skipped": "dim",
    "rescheduled": "cyan",
    "interrupted": "yellow",
}
_HOW_TO_RECORD = (
    "gw workers record attempts only when run with --history, e.g. gw worker --history 7d "
    "(gw.Worker(history=gw.History()) in Python), and keep them that long"
)
_MAX_LIMIT: Final = 10_000


def history(
    *,
    task: Annotated[str | None, Parameter(metavar="IDENTIFIER")] = None,
    queue: Annotated[str | None, Parameter(metavar="NAME")] = None,
    outcome: HistoryOutcome | None = None,
    job: JobId | None = None,
    since: Since | None = None,
    limit: Annotated[int, Parameter(metavar="N")] = 50,
    before_id: Annotated[int | None, Parameter(metavar="ID")] = None,
) -> None:
    """List finished attempts, newest first (recorded by workers run with --history).

    One row per attempt that ended, most recently recorded first: when, job,
    task, queue, attempt, outcome, how long it ran, how long it waited past its
    run_at, the worker and the error.

    Example: gw history --outcome permanently_failed --since 1h

    Parameters
    ----------
    task
        Only attempts of this task.
    queue
        Only attempts of jobs in this named queue.
    outcome
        Only attempts that ended this way (failed: retried later;
        permanently_failed: out of attempts; rescheduled: by RetryAfter).
    job
        Only the attempts of this job (by id).
    since
        Only attempts finished since then: a duration ago such as 15m, 2h or 7d,
        or ISO 8601 with an offset such as 2026-01-02T03:04:05Z.
    limit
        Show at most this many attempts (1 to 10000).
    before_id
        Only attempts recorded before the one with this id: the next page
        (the last line of a full page names it; --json has each id).
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise ConfigurationError(f"--limit must be between 1 and {_MAX_LIMIT}, got {limit}")
    if before_id is not None and not 1 <= before_id <= BIGINT_MAX:
        raise ConfigurationError(
            f"--before-id must be a history entry's id (1 to {BIGINT_MAX}), got {before_id}"
        )
    for option, value in (("--task", task), ("--queue", queue)):
        if value is not None and not value.strip():
            raise ConfigurationError(f"{option} must not be empty; leave it out to list all")

    async def go() -> list[HistoryEntry]:
        async with open_utils() as utils:
            return await utils.list_history(
                task=task,
                queue=queue,
                outcome=outcome,
                job_id=job,
                since=since,
                limit=limit,
                before_id=before_id,
            )

    entries = run(go)
    if current().json:
        emit_json([_entry_json(e) for e in entries])
        return
    if not entries:
        filtered = any(v is not None for v in (task, queue, outcome, job, since))
        say("no recorded attempts" + (" match" if filtered else f" ({_HOW_TO_RECORD})"))
        return
    _history_table(entries)
    more = f"; older ones with --before-id {entries[-1].id}" if len(entries) == limit else ""
    say(f"{len(entries)} attempt(s), newest first{more}", style="dim")


def result(job_id: JobId, /, *, wait: Duration | None = None) -> None:
    """Show how a job ended: its latest recorded attempt and what it returned.

    Needs workers run with --history (gw worker --history 7d). The exit code
    says how the job ended: 0 completed; 3 failed for good, cancelled or
    skipped; 4 not finished yet (it has not run, will be retried, or --wait ran
    out); 2 nothing is recorded for the job (no such job, or its workers keep
    no history); 1 the database failed.

    Parameters
    ----------
    job_id
        The job's id.
    wait
        Wait up to this long for the job's final outcome, e.g. 30 (seconds),
        30s or 5m (default: answer at once with what is recorded).
    """
    if wait is not None and wait <= 0:
        raise ConfigurationError("--wait must be longer than 0; leave it out to answer at once")
    if wait is not None and not current().prepared_statements:
        raise ConfigurationError(
            "--wait LISTENs for the workers' notifications, which a transaction pooler does "
            "not deliver; give a --database-url that reaches PostgreSQL directly (without "
            "--transaction-pooler), or leave --wait out"
        )

    async def go() -> tuple[HistoryEntry | None, Job | None]:
        async with open_utils() as utils:
            if wait is None:
                entry = await utils.get_result(job_id)
            else:
                try:
                    entry = await utils.wait_for_result(job_id, timeout=wait)
                except ResultTimeout:
                    raise _timed_out(job_id, wait, await utils.get_result(job_id)) from None
                except ResultUnavailable:
                    entry = None
            # Nothing recorded: the job itself says whether it is still to run.
            return entry, None if entry is not None else await utils.get_job(job_id)

    entry, job = run(go)
    if entry is None:
        raise _nothing_recorded(job_id, job)
    if current().json:
        emit_json(_entry_json(entry))
    else:
        _show_entry(entry)
    if entry.outcome == "completed":
        return
    if entry.outcome in _FINAL:
        raise SystemExit(EXIT_UNSUCCESSFUL)
    say(
        f"job {job_id} has not finished: attempt {entry.attempt}/{entry.max_attempts} ended "
        f"{entry.outcome} and another follows; gw result {job_id} --wait 1m waits for the "
        "final outcome",
        style="yellow",
    )
    raise SystemExit(EXIT_NOT_FINISHED)


def _timed_out(job_id: int, wait: float, latest: HistoryEntry | None) -> CommandFailed:
    so_far = (
        f"its latest attempt, {latest.attempt}/{latest.max_attempts}, ended {latest.outcome}"
        if latest is not None
        else "no attempt of it has ended yet"
    )
    return CommandFailed(
        f"job {job_id} has no final outcome after waiting {format_duration(wait)} ({so_far}); "
        "wait longer with a larger --wait",
        exit_code=EXIT_NOT_FINISHED,
    )


def _nothing_recorded(job_id: int, job: Job | None) -> CommandFailed:
    """Why ``gw result`` has nothing to show, and the exit code that goes with it."""
    if job is None:
        return CommandFailed(
            f"no history for job {job_id}: no attempt of it is recorded and no such job is "
            f"waiting ({_HOW_TO_RECORD})",
            exit_code=2,
        )
    hint = f"gw result {job_id} --wait 1m waits for its outcome"
    if job.locked_at is not None:
        return CommandFailed(
            f"job {job_id} is running (attempt {job.attempts}/{job.max_attempts}) and no "
            f"attempt of it has ended yet; {hint}",
            exit_code=EXIT_NOT_FINISHED,
        )
    if job.attempts == 0:
        state = job.state(datetime.now(UTC))
        return CommandFailed(
            f"job {job_id} has not run yet (it is {state}); {hint}", exit_code=EXIT_NOT_FINISHED
        )
    return CommandFailed(
        f"no history for job {job_id}: it has run {job.attempts} time(s) but no attempt of it "
        f"is recorded ({_HOW_TO_RECORD})",
        exit_code=2,
    )


def _entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry's fields plus its ``duration`` and ``queue_wait`` (seconds)."""
    data = msgspec.structs.asdict(entry)
    data["duration"] = entry.duration
    data["queue_wait"] = entry.queue_wait
    return data


def _fmt_seconds(seconds: float | None) -> str | None:
    """``312µs``, ``12.3ms``, ``1.23s``, ``2m3s``: short, about three digits."""
    if seconds is None:
        return None
    if seconds < 0:
        # A worker clock a little behind the database's: started "before" run_at.
        return "-" + (_fmt_seconds(-seconds) or "")
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return format_duration(round(seconds))


def _outcome(outcome: str) -> Text:
    from rich.text import Text

    return Text(outcome, style=_STYLE.get(outcome, ""))


def _error_line(error: str | None, limit: int = 60) -> str | None:
    if not error:
        return None
    text = " / ".join(line.strip() for line in error.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _history_table(entries: Sequence[HistoryEntry]) -> None:
    now = datetime.now(UTC)
    # As gw list: people get relative times (narrow), pipes absolute UTC times.
    relative = stdout().is_terminal
    rows = [
        (
            fmt_relative(e.finished_at, now) if relative else e.finished_at,
            e.job_id,
            e.task_identifier,
            e.queue_name,
            f"{e.attempt}/{e.max_attempts}",
            _outcome(e.outcome),
            _fmt_seconds(e.duration),
            _fmt_seconds(e.queue_wait),
            e.worker_id,
            _error_line(e.error),
        )
        for e in entries
    ]
    print_table(
        (
            "FINISHED",
            "JOB",
            "TASK",
            "QUEUE",
            "ATTEMPT",
            "OUTCOME",
            "DURATION",
            "QUEUE WAIT",
            "WORKER",
            "ERROR",
        ),
        rows,
        wrap=("QUEUE", "WORKER", "ERROR"),
        optional=("QUEUE", "QUEUE WAIT", "ERROR"),
    )


def _show_entry(entry: HistoryEntry) -> None:
    rows: list[tuple[str, Any]] = [
        ("job", entry.job_id),
        ("task", entry.task_identifier),
        ("queue", entry.queue_name),
        ("outcome", _outcome(entry.outcome)),
        ("attempt", f"{entry.attempt}/{entry.max_attempts}"),
        ("worker", entry.worker_id),
        ("run at", entry.run_at),
        ("started at", entry.started_at),
        ("finished at", entry.finished_at),
        ("duration", _fmt_seconds(entry.duration)),
        ("queue wait", _fmt_seconds(entry.queue_wait)),
        ("error", entry.error),
    ]
    print_table(("FIELD", "VALUE"), rows, wrap=("VALUE",))
    blocks = [("result", entry.result)] if entry.outcome == "completed" else []
    if entry.payload is not None:
        blocks.append(("payload", entry.payload))
    for name, value in blocks:
        # Written as is: through rich, [brackets] in the JSON would read as markup.
        text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
        sys.stdout.write(f"{name}:\n{text}\n")
    sys.stdout.flush()
