"""Output: JSON for machines (``--json``), rich tables and lines for people.

On a terminal tables get borders and colour; otherwise they are plain
space-aligned columns that never wrap, so ``grep``/``awk`` work on them.
Progress (spinners) goes to stderr and only appears on a terminal.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._app import current

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

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
)

_encoder = msgspec.json.Encoder()


def _console(file: Any) -> Console:
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
    stdout().print(Text(message, style=style or ""))


def status(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long operation runs (terminals only)."""
    err = _console(sys.stderr)
    if current().json or not err.is_terminal:
        return nullcontext()
    return err.status(message)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    console = stdout()
    tty = console.is_terminal
    table = Table(
        title=title if tty else None,
        box=box.SIMPLE_HEAD if tty else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if tty else "",
    )
    for name in columns:
        table.add_column(name, overflow="fold" if tty else "ignore", no_wrap=not tty)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
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


def _cell(value: Any) -> str | Text:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, datetime):
        return fmt_time(value)
    return str(value)


def fmt_time(value: datetime | None) -> str:
    """``2026-01-02 03:04:05Z`` (UTC, to the second)."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def job_state(job: Job, now: datetime | None = None) -> str:
    return job.state(now or datetime.now(UTC))


_STATE_STYLE = {"ready": "green", "scheduled": "cyan", "locked": "yellow", "failed": "red"}


def jobs_table(jobs: Sequence[Job], *, title: str | None = None) -> None:
    now = datetime.now(UTC)
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
                job.run_at,
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
    )


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
