"""Output: JSON for machines (``--json``), rich tables and lines for people.

On a terminal tables get borders and colour; otherwise they are plain
space-aligned columns that never wrap, so ``grep``/``awk`` work on them.
Progress (spinners) goes to stderr and only appears on a terminal. rich is
imported only when something is drawn with it (start-up of ``gw worker``).
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ._app import current

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from rich.console import Console
    from rich.text import Text

    from ..types import Job

__all__ = (
    "emit_json",
    "fmt_time",
    "job_state",
    "jobs_table",
    "print_table",
    "say",
    "status",
    "stdout",
    "warn",
)

_encoder = msgspec.json.Encoder()


def _console(file: Any) -> Console:
    from rich.console import Console

    tty = file.isatty()
    # Not a terminal: never wrap or truncate, no colour, no markup surprises.
    return Console(
        file=file,
        highlight=False,
        width=None if tty else 100_000,
        color_system="auto" if tty else None,
        soft_wrap=not tty,
    )


def stdout() -> Console:
    return _console(sys.stdout)


def _in_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _in_utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_utc(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """One JSON document on one line of stdout; timestamps in UTC (``...Z``)."""
    # The session time zone decides the offsets PostgreSQL hands back; make
    # the output independent of it.
    plain = _in_utc(msgspec.to_builtins(value, builtin_types=(datetime,)))
    sys.stdout.write(_encoder.encode(plain).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def say(message: str, *, style: str | None = None) -> None:
    """A line for people (suppressed by --json, where the JSON says it all)."""
    if current().json:
        return
    if style is None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
        return
    from rich.text import Text

    stdout().print(Text(message, style=style))


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (shown with --json too: stdout stays JSON)."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def status(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long operation runs (terminals only)."""
    err = _console(sys.stderr)
    if current().json or not err.is_terminal:
        return nullcontext()
    return err.status(message)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    wrap: Collection[str] = (),
    optional: Collection[str] = (),
) -> None:
    """A table. On a terminal, ``wrap`` columns may wrap (the others never do)
    and ``optional`` columns with no value in any row are left out."""
    from rich.table import Table

    console = stdout()
    tty = console.is_terminal
    data = [list(row) for row in rows]
    keep = [
        i
        for i, name in enumerate(columns)
        if not (tty and name in optional and all(row[i] is None for row in data))
    ]
    table = Table(
        title=title if tty else None,
        title_justify="left",
        box=None,
        padding=(0, 2, 0, 0),
        pad_edge=False,
        header_style="bold underline" if tty else "",
    )
    for i in keep:
        wraps = tty and columns[i] in wrap
        table.add_column(columns[i], overflow="fold" if wraps else "ignore", no_wrap=not wraps)
    for row in data:
        table.add_row(*(_cell(row[i]) for i in keep))
    if tty:
        console.print(table)
        return
    # Plain columns: rich pads every cell to its column's width; drop the
    # trailing blanks so lines end with their last value.
    with console.capture() as capture:
        console.print(table)
    lines = [line.rstrip() for line in capture.get().splitlines()]
    if title:
        lines.insert(0, title)
    sys.stdout.write("\n".join(lines) + "\n")


def _cell(value: Any) -> Text:
    from rich.text import Text

    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, datetime):
        return Text(fmt_time(value))
    # Text, not str: a cell is data, and rich would read "[/x]" in a task name,
    # job key or error as markup (and refuse an unmatched closing tag).
    return Text(str(value))


def fmt_time(value: datetime | None) -> str:
    """``2026-01-02 03:04:05Z`` (UTC, to the second)."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def job_state(job: Job, now: datetime | None = None) -> str:
    return job.state(now or datetime.now(UTC))


_STATE_STYLE = {"ready": "green", "scheduled": "cyan", "locked": "yellow", "failed": "red"}


def fmt_relative(value: datetime, now: datetime) -> str:
    """``in 5m``, ``2h ago``, ``now``: one unit, rounded down."""
    seconds = (value - now).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if size >= span:
            amount = f"{int(size // span)}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def jobs_table(jobs: Sequence[Job], *, title: str | None = None) -> None:
    from rich.text import Text

    now = datetime.now(UTC)
    # People get relative run times (narrow); pipes get absolute UTC times.
    relative = stdout().is_terminal
    rows = []
    for job in jobs:
        state = job_state(job, now)
        error = " / ".join(ln.strip() for ln in (job.last_error or "").splitlines() if ln.strip())
        rows.append(
            (
                job.id,
                job.task_identifier,
                job.queue_name,
                Text(state, style=_STATE_STYLE.get(state, "")),
                fmt_relative(job.run_at, now) if relative else job.run_at,
                f"{job.attempts}/{job.max_attempts}",
                job.priority,
                job.key,
                job.locked_by,
                _shorten(error) if error else None,
            )
        )
    print_table(
        (
            "ID",
            "TASK",
            "QUEUE",
            "STATE",
            "RUN AT",
            "ATTEMPTS",
            "PRIORITY",
            "KEY",
            "LOCKED BY",
            "LAST ERROR",
        ),
        rows,
        title=title,
        wrap=("QUEUE", "KEY", "LOCKED BY", "LAST ERROR"),
        optional=("QUEUE", "KEY", "LOCKED BY", "LAST ERROR"),
    )


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
