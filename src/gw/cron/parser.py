"""Crontab text -> CronItem. Port of graphile/worker src/crontab.ts and cronMatcher.ts.

A line is ``MIN HOUR DOM MONTH DOW TASK [?OPTIONS] [{PAYLOAD}]``. Lines are
split on ``\\n`` (a trailing ``\\r`` is dropped) and trimmed; blank lines and
lines starting with ``#`` are skipped. There are no inline comments.

The parser is a hand-written scanner rather than Graphile's regexes so that
every error can name the 1-based line and column and say what was expected.
Differences from Node, all in the direction of rejecting early what the
database or the calendar would reject later: option values are range-checked
against the schema (``max`` 1-32767, ``priority`` smallint, queue and task
names up to 128 characters, job keys 1-512), an empty ``jobKey`` is refused,
schedules that can never run (``0 0 30 2 *``) are refused, and JSON5 payloads
may not contain Infinity/NaN. Both Node (``jobKey``, ``jobKeyMode``) and RS
(``job_key``, ``job_key_mode``) option spellings are accepted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import unquote_plus

from gw.cron._json5 import Json5Error, loads
from gw.cron._types import (
    DAY_OF_WEEK,
    FIELDS,
    MAX_JOB_KEY_LENGTH,
    MAX_QUEUE_NAME_LENGTH,
    MAX_TASK_IDENTIFIER_LENGTH,
    SMALLINT_MAX,
    SMALLINT_MIN,
    CronItem,
    CronTimer,
    FieldSpec,
    parse_time_phrase,
)
from gw.errors import ConfigurationError, CrontabError

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ("parse_cron_line", "parse_crontab", "parse_timer")

_DIGITS: Final = re.compile(r"[0-9]+")
_TASK_START: Final = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Node's regex also allows '/', which tasks loaded from sub-directories use.
_TASK_CHARS: Final = _TASK_START | frozenset("0123456789:-/")
_LOOKS_LIKE_TASK: Final = re.compile(r"[_a-zA-Z][_a-zA-Z0-9:/-]*")
_ID: Final = re.compile(r"[_a-zA-Z][-_a-zA-Z0-9]*")
_QUEUE: Final = re.compile(r"[-a-zA-Z0-9_:]+")
_INTEGER: Final = re.compile(r"-?[0-9]+")
# Both spellings map to one canonical option; giving both counts as a repeat.
_OPTION_NAMES: Final = {
    "id": "id",
    "fill": "fill",
    "max": "max",
    "queue": "queue",
    "priority": "priority",
    "jobKey": "job_key",
    "job_key": "job_key",
    "jobKeyMode": "job_key_mode",
    "job_key_mode": "job_key_mode",
}
_SUPPORTED: Final = (
    "id, fill, max, queue, priority, jobKey (or job_key), jobKeyMode (or job_key_mode)"
)


def parse_crontab(text: str) -> list[CronItem]:
    """Parse a whole crontab.

    Raises:
        CrontabError: on the first invalid line, or when two items share an
            identifier; ``line``/``column`` locate the problem.
    """
    items: list[CronItem] = []
    first_seen: dict[str, int] = {}
    # A byte-order mark is not whitespace to str.strip(); drop it but keep columns right.
    bom = 1 if text.startswith("\ufeff") else 0
    for number, raw in enumerate(text[bom:].split("\n"), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        offset = len(raw) - len(raw.lstrip()) + (bom if number == 1 else 0)
        item, id_pos = _parse_line(_Cursor(stripped, number, offset))
        if item.identifier in first_seen:
            raise CrontabError(
                f"duplicate identifier {item.identifier!r} (first used on line "
                f"{first_seen[item.identifier]}); "
                "add '?id=...' to give each item a unique identifier",
                line=number,
                column=offset + id_pos + 1,
            )
        first_seen[item.identifier] = number
        items.append(item)
    return items


def parse_cron_line(text: str, *, line: int = 1) -> CronItem:
    """Parse one crontab line (``line`` is only used in error positions)."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        raise CrontabError("expected a cron line, got a blank or comment line", line=line, column=1)
    offset = len(text) - len(text.lstrip())
    return _parse_line(_Cursor(stripped, line, offset))[0]


def parse_timer(expression: str) -> CronTimer:
    """Parse the five time fields alone, e.g. ``"*/5 * * * *"``."""
    stripped = expression.strip()
    cur = _Cursor(stripped, 1, len(expression) - len(expression.lstrip()))
    timer = _read_timer(cur)
    cur.skip_space()
    if not cur.at_end():
        cur.fail(f"unexpected {cur.peek()!r} after the five time fields")
    return timer


class _Cursor:
    """Position in one trimmed line; ``offset`` is the trimmed-off leading width."""

    def __init__(self, text: str, line: int, offset: int) -> None:
        self.text = text
        self.line = line
        self.offset = offset
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> CrontabError:
        column = self.offset + (self.pos if pos is None else pos) + 1
        return CrontabError(message, line=self.line, column=column)

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise self.error(message, pos)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos > start

    def token(self) -> tuple[str, int]:
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace():
            self.pos += 1
        return self.text[start : self.pos], start


def _parse_line(cur: _Cursor) -> tuple[CronItem, int]:
    """Parse a trimmed, non-comment line; return the item and where its identifier is."""
    timer = _read_timer(cur)
    cur.skip_space()
    if cur.at_end():
        cur.fail("expected a task identifier after the five time fields")
    task, task_pos = _read_task(cur)
    options: dict[str, Any] = {}
    id_pos = task_pos
    expected = "'?options', a '{...}' payload or the end of the line"
    if cur.peek() == "?":
        options, id_pos = _read_options(cur, default_id_pos=task_pos)
        cur.skip_space()
        expected = "a '{...}' payload or the end of the line"
    payload: dict[str, Any] | None = None
    if cur.peek() == "{":
        payload = _read_payload(cur)
    elif not cur.at_end():
        hint = "; inline comments are not supported" if cur.peek() == "#" else ""
        cur.fail(f"unexpected {cur.peek()!r}: expected {expected}{hint}")
    identifier = options.pop("id", task)
    try:
        item = CronItem(identifier=identifier, task=task, timer=timer, payload=payload, **options)
    except ConfigurationError as exc:  # pragma: no cover - the checks above come first
        raise cur.error(exc.message, task_pos) from None
    return item, id_pos


def _read_timer(cur: _Cursor) -> CronTimer:
    if cur.peek() == "@":
        cur.fail("macros like '@daily' are not supported; write the five time fields instead")
    fields: list[tuple[int, ...]] = []
    dom_pos = 0
    for index, spec in enumerate(FIELDS):
        cur.skip_space()
        if cur.at_end():
            cur.fail(f"expected the {spec.name} field (a line starts with five time fields)")
        token, start = cur.token()
        if index == 2:
            dom_pos = start
        fields.append(_parse_field(cur, token, start, spec))
    try:
        return CronTimer(
            minutes=fields[0], hours=fields[1], days=fields[2], months=fields[3], dows=fields[4]
        )
    except ConfigurationError as exc:  # a schedule that can never fire
        raise cur.error(exc.message, dom_pos) from None


def _parse_field(cur: _Cursor, token: str, start: int, spec: FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    pos = start
    for part in token.split(","):
        values.update(_parse_part(cur, part, pos, spec))
        pos += len(part) + 1
    return tuple(sorted(values))


def _parse_part(cur: _Cursor, part: str, at: int, spec: FieldSpec) -> range | set[int]:
    name = spec.name
    if not part:
        cur.fail(f"empty value in the {name} field (stray comma?)", at)
    if part[0] == "*":
        if part == "*":
            return range(spec.low, spec.high + 1)
        if part[1] != "/":
            cur.fail(
                f"unexpected {part[1]!r} after '*' in the {name} field; expected '*/n'", at + 1
            )
        step_text = part[2:]
        if not _DIGITS.fullmatch(step_text):
            got = repr(step_text) if step_text else "nothing"
            cur.fail(f"expected a step number after '*/' in the {name} field, got {got}", at + 2)
        if _number(step_text) < 1:
            cur.fail(f"the step in the {name} field must be at least 1, got {step_text}", at + 2)
        return range(spec.low, spec.high + 1, _number(step_text))
    first = _DIGITS.match(part)
    if first is None:
        cur.fail(_unsupported_message(part, spec), at)
    low = _check_value(cur, first.group(), at, spec)
    rest_at = first.end()
    if rest_at == len(part):
        return {low}
    if part[rest_at] == "/":
        cur.fail(f"steps like 'n/m' are not supported in the {name} field; use '*/m'", at + rest_at)
    if part[rest_at] != "-":
        cur.fail(f"unexpected {part[rest_at]!r} in the {name} field", at + rest_at)
    second = _DIGITS.match(part, rest_at + 1)
    if second is None:
        cur.fail(f"expected a number after '-' in the {name} field", at + rest_at + 1)
    if second.end() < len(part):
        bad = part[second.end()]
        if bad == "/":
            cur.fail(
                f"steps on ranges like 'a-b/n' are not supported in the {name} field; "
                "list the values or use '*/n'",
                at + second.end(),
            )
        cur.fail(f"unexpected {bad!r} in the {name} field", at + second.end())
    high = _check_value(cur, second.group(), at + second.start(), spec)
    # Compare the numbers as written: '5-7' is a valid day-of-week range
    # even though 7 is stored as 0.
    if _number(second.group()) <= _number(first.group()):
        cur.fail(
            f"range {part!r} in the {name} field is invalid: "
            "the end must be greater than the start",
            at,
        )
    if spec is DAY_OF_WEEK and high == 0:
        return {*range(low, spec.high + 1), 0}
    return range(low, high + 1)


def _number(digits: str) -> int:
    significant = digits.lstrip("0")
    # Anything this long is out of every range; skip int() on huge strings.
    return int(significant or "0") if len(significant) <= 9 else 10**9


def _check_value(cur: _Cursor, digits: str, at: int, spec: FieldSpec) -> int:
    value = _number(digits)
    # Day of week also accepts 7 for Sunday, stored as 0.
    high = spec.high + 1 if spec is DAY_OF_WEEK else spec.high
    if not spec.low <= value <= high:
        cur.fail(f"{spec.name} value {digits} is out of range {spec.low}-{high}", at)
    return 0 if spec is DAY_OF_WEEK and value == 7 else value


def _unsupported_message(part: str, spec: FieldSpec) -> str:
    message = (
        f"unsupported value {part!r} in the {spec.name} field: "
        "expected a number, a range like 1-5, '*' or '*/n'"
    )
    if len(part) == 3 and part.isascii() and part.isalpha():
        return message + "; names like JAN or MON are not supported"
    if _LOOKS_LIKE_TASK.fullmatch(part):
        return message + "; is a field missing? A line needs five time fields before the task"
    return message


def _read_task(cur: _Cursor) -> tuple[str, int]:
    start = cur.pos
    if cur.peek() not in _TASK_START:
        cur.fail(f"expected a task identifier (a letter or '_' first), got {cur.peek()!r}")
    while not cur.at_end() and cur.peek() in _TASK_CHARS:
        cur.pos += 1
    task = cur.text[start : cur.pos]
    if not cur.at_end() and not cur.peek().isspace():
        hint = ""
        if cur.peek() in "?{":
            hint = f"; put a space before {cur.peek()!r}"
        cur.fail(
            f"unexpected {cur.peek()!r} in task identifier {task!r}: "
            f"expected letters, digits, '_', ':', '-' or '/'{hint}"
        )
    if len(task) > MAX_TASK_IDENTIFIER_LENGTH:
        cur.fail(
            f"task identifier is {len(task)} characters long; "
            f"the maximum is {MAX_TASK_IDENTIFIER_LENGTH}",
            start,
        )
    cur.skip_space()
    return task, start


def _read_options(cur: _Cursor, *, default_id_pos: int) -> tuple[dict[str, Any], int]:
    cur.pos += 1  # the '?'
    raw, start = cur.token()
    if not raw:
        cur.fail("expected options after '?', like '?fill=1h&max=3'")
    options: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    id_pos = default_id_pos
    pos = start
    for chunk in raw.split("&"):
        chunk_at, pos = pos, pos + len(chunk) + 1
        if not chunk:
            continue  # like Node's querystring, 'a=1&&b=2' is fine
        raw_key, eq, raw_value = chunk.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        value_at = chunk_at + len(raw_key) + len(eq)
        canonical = _OPTION_NAMES.get(key)
        if canonical is None:
            if not key:
                cur.fail("expected an option name before '='", chunk_at)
            cur.fail(f"unknown option {key!r}; supported options are {_SUPPORTED}", chunk_at)
        if canonical in spelled:
            also = (
                "" if spelled[canonical] == key else f" (already given as {spelled[canonical]!r})"
            )
            cur.fail(f"option {key!r} is given more than once{also}", chunk_at)
        spelled[canonical] = key
        if canonical == "id":
            id_pos = value_at
        options[_FIELD_FOR[canonical]] = _option_value(cur, canonical, key, value, value_at)
    return options, id_pos


_FIELD_FOR: Final = {
    "id": "id",
    "fill": "fill",
    "max": "max_attempts",
    "queue": "queue",
    "priority": "priority",
    "job_key": "job_key",
    "job_key_mode": "job_key_mode",
}


def _option_value(cur: _Cursor, option: str, key: str, value: str, at: int) -> object:
    if option == "id":
        if not _ID.fullmatch(value):
            cur.fail(
                f"id {value!r} is not valid: expected a letter or '_' followed by "
                "letters, digits, '_' or '-'",
                at,
            )
        return value
    if option == "fill":
        return _fill_value(cur, value, at)
    if option in ("max", "priority"):
        pattern, low = (_DIGITS, 1) if option == "max" else (_INTEGER, SMALLINT_MIN)
        digits = value.lstrip("-").lstrip("0")
        if not pattern.fullmatch(value) or len(digits) > 9:
            cur.fail(
                f"{key} must be a whole number between {low} and {SMALLINT_MAX}, got {value!r}",
                at,
            )
        number = int(value)
        if not low <= number <= SMALLINT_MAX:
            cur.fail(f"{key} must be between {low} and {SMALLINT_MAX}, got {number}", at)
        return number
    if option == "queue":
        if not _QUEUE.fullmatch(value) or len(value) > MAX_QUEUE_NAME_LENGTH:
            cur.fail(
                f"queue {value!r} is not valid: expected 1 to {MAX_QUEUE_NAME_LENGTH} "
                "letters, digits, '_', ':' or '-'",
                at,
            )
        return value
    if option == "job_key":
        if not 1 <= len(value) <= MAX_JOB_KEY_LENGTH:
            cur.fail(f"{key} must be 1 to {MAX_JOB_KEY_LENGTH} characters long", at)
        return value
    if value == "unsafe_dedupe":
        cur.fail(
            f"{key} 'unsafe_dedupe' is not allowed in a crontab; "
            "use 'replace' or 'preserve_run_at'",
            at,
        )
    if value not in ("replace", "preserve_run_at"):
        cur.fail(f"{key} must be 'replace' or 'preserve_run_at', got {value!r}", at)
    return value


def _fill_value(cur: _Cursor, value: str, at: int) -> timedelta:
    try:
        return parse_time_phrase(value)
    except ValueError as exc:
        raise cur.error(
            f"fill {value!r} is not a time phrase like '4w3d2h1m30s' (units s, m, h, d, w): {exc}",
            at,
        ) from None


def _read_payload(cur: _Cursor) -> dict[str, Any]:
    start = cur.pos
    try:
        payload = loads(cur.text[start:])
    except Json5Error as exc:
        raise cur.error(f"invalid JSON5 payload: {exc.message}", start + exc.pos) from None
    if not isinstance(payload, dict):  # pragma: no cover - a '{' always opens an object
        cur.fail("the payload must be a JSON5 object", start)
    cur.pos = len(cur.text)
    return payload
