"""Where a worker's cron items come from: ``crontab=`` (text or file) and ``cron=[...]``.

``crontab`` is crontab **text** or the path of a crontab **file**, decided
without guessing at run time:

- a :class:`pathlib.Path` (any ``os.PathLike``) is always a file;
- a ``str`` containing a line break is text;
- a one-line ``str`` is text when it is blank, starts with ``#`` or ``@``, or
  starts with a time field followed by whitespace (``* * * * * task``,
  ``0 8 * * 1-5 report``); any other one-line ``str`` is a file path, which
  must exist.

So ``crontab="crontab"`` and ``crontab="/etc/gw/crontab"`` read files, and
``crontab="*/5 * * * * poll"`` is a one-item crontab. Pass a ``Path`` when a
file name itself looks like a crontab line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from gw.cron._types import CronItem
from gw.cron.builder import Cron
from gw.cron.parser import parse_crontab
from gw.errors import ConfigurationError, CrontabError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from gw.types import JobSpec

__all__ = ("cron_items", "crontab_items", "with_task_defaults")

# A time field (digits, '*', '/', ',', '-') followed by whitespace.
_LOOKS_LIKE_CRON_LINE: Final = re.compile(r"\s*[0-9*][0-9*/,-]*\s")


def crontab_items(crontab: str | os.PathLike[str] | None) -> list[CronItem]:
    """Parse ``crontab`` (text or a file path, see the module docstring).

    Raises:
        CrontabError: the text is invalid (a file's errors also name the file).
        ConfigurationError: the file cannot be read, or the value has the wrong type.
    """
    if crontab is None:
        return []
    if isinstance(crontab, os.PathLike):
        return _read_file(Path(crontab))
    if not isinstance(crontab, str):
        raise ConfigurationError(
            f"crontab must be crontab text, a file path or None, got {type(crontab).__name__}"
        )
    if _is_text(crontab):
        return parse_crontab(crontab)
    path = Path(crontab)
    if not path.exists():
        raise ConfigurationError(
            f"crontab file {crontab!r} does not exist (a one-line crontab= string that does not "
            "start with five time fields is taken as a file path)"
        )
    return _read_file(path)


def _is_text(value: str) -> bool:
    if "\n" in value or "\r" in value:
        return True
    stripped = value.strip()
    if not stripped or stripped[0] in "#@":
        return True
    return _LOOKS_LIKE_CRON_LINE.match(value) is not None


def _read_file(path: Path) -> list[CronItem]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as ex:
        reason = ex.strerror if isinstance(ex, OSError) and ex.strerror else str(ex)
        raise ConfigurationError(f"cannot read crontab file {str(path)!r}: {reason}") from None
    try:
        return parse_crontab(text)
    except CrontabError as ex:
        where = f"line {ex.line}, column {ex.column}: " if ex.line else ""
        detail = str(ex).removeprefix("invalid crontab: ").removeprefix(where)
        raise CrontabError(f"{detail} (in {str(path)!r})", line=ex.line, column=ex.column) from None


def cron_items(
    crontab: str | os.PathLike[str] | None,
    cron: Iterable[Any],
    task_identifiers: Collection[str],
) -> list[CronItem]:
    """All of a worker's cron items, validated.

    Identifiers must be unique across ``crontab`` and ``cron``, and every
    item's task must be one of ``task_identifiers`` (the worker's tasks).

    Raises:
        CrontabError, ConfigurationError: naming the offending item.
    """
    items = [(item, f"crontab line for {item.identifier!r}") for item in crontab_items(crontab)]
    if isinstance(cron, (str, bytes, CronItem, Cron)):
        raise ConfigurationError(
            "cron must be a list of Cron builders or CronItems (use crontab= for crontab text)"
        )
    for index, entry in enumerate(cron):
        if isinstance(entry, Cron):
            entry = entry.build()
        elif not isinstance(entry, CronItem):
            raise ConfigurationError(
                f"cron[{index}] must be a gw.Cron builder or a CronItem, got {type(entry).__name__}"
            )
        items.append((entry, f"cron[{index}]"))
    first: dict[str, str] = {}
    for item, where in items:
        if item.identifier in first:
            raise ConfigurationError(
                f"cron identifier {item.identifier!r} is used twice ({first[item.identifier]} "
                f"and {where}); give one of them a different id (crontab '?id=...', "
                "Cron(...).id(...))"
            )
        first[item.identifier] = where
    known = set(task_identifiers)
    for item, where in items:
        if item.task not in known:
            raise ConfigurationError(
                f"{where} schedules task {item.task!r}, which this worker does not have; "
                f"its tasks are: {', '.join(sorted(known)) or '(none)'}"
            )
    return [item for item, _ in items]


def with_task_defaults(items: list[CronItem], defaults: Mapping[str, JobSpec]) -> list[CronItem]:
    """``items`` with the job defaults of their tasks filled in where the item sets none."""
    if not defaults:
        return items
    from gw.core._requests import with_defaults
    from gw.types import JobSpec

    out = []
    for item in items:
        own = JobSpec(
            queue_name=item.queue,
            max_attempts=item.max_attempts,
            priority=item.priority,
            job_key=item.job_key,
            job_key_mode=item.job_key_mode,
        )
        spec = with_defaults(own, defaults.get(item.task)) or own
        # unsafe_dedupe is not a cron mode (Graphile's cron allows only the other two).
        mode = spec.job_key_mode if spec.job_key_mode != "unsafe_dedupe" else item.job_key_mode
        out.append(
            msgspec.structs.replace(
                item,
                queue=spec.queue_name,
                max_attempts=spec.max_attempts,
                priority=spec.priority,
                job_key_mode=mode,
            )
        )
    return out
