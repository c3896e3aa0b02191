"""Fuzz the ``gw`` command line: generated bad arguments for each command exit
2 with one ``gw: error:`` line on stderr, print nothing on stdout, and leave
the database exactly as it was (a hash of the jobs, tasks and queues)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from gw.cli import main
from gw.cli._params import parse_duration, parse_job_id, parse_time

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.faults

STATE = """
select md5(coalesce((select string_agg(row_to_json(j)::text, ',' order by id)
                     from graphile_worker._private_jobs j), '')
         || coalesce((select string_agg(identifier, ',' order by id)
                      from graphile_worker._private_tasks), '')
         || coalesce((select string_agg(queue_name, ',' order by id)
                      from graphile_worker._private_job_queues), ''))
"""


def _fails(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return True
        return False

    return check


def _not_json(text: str) -> bool:
    if text.startswith("@"):
        return False  # a file name, not a value
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        return True
    return False


any_text = st.text(max_size=30)
numbers = st.integers().map(str) | st.floats(allow_nan=True).map(str)
bad_ids = (any_text | numbers | st.integers(2**63, 2**80).map(str)).filter(_fails(parse_job_id))
bad_durations = (any_text | numbers | st.sampled_from(["-5s", "1h-", "5m5m", "-.5"])).filter(
    _fails(parse_duration)
)
bad_times = any_text.filter(_fails(parse_time))
bad_json = any_text.filter(_not_json)
out_of_smallint = st.integers(32768, 10**12) | st.integers(-(10**12), -32769)

TEMPLATES: list[tuple[list[str], st.SearchStrategy[str]]] = [
    (["show", "{}"], bad_ids),
    (["complete", "{}"], bad_ids),
    (["fail", "{}", "--reason", "r"], bad_ids),
    (["reschedule", "{}", "--priority", "1"], bad_ids),
    (["sweep-stale-workers", "--sweep-threshold", "{}"], bad_durations),
    (["sweep-stale-workers", "--recovery-delay", "{}"], bad_durations),
    (["worker", "--tasks", "examples.tasks", "--poll-interval", "{}"], bad_durations),
    (["add", "t", "--payload", "{}"], bad_json),
    (["add", "t", "--run-at", "{}"], bad_times),
    (
        ["add", "t", "--priority", "{}"],
        out_of_smallint.map(str) | any_text.filter(lambda t: not t.strip().lstrip("+-").isdigit()),
    ),
    (["add", "t", "--max-attempts", "{}"], st.integers(-(10**6), 0).map(str)),
    (["add", "{}"], st.text(min_size=129, max_size=200).filter(lambda t: not t.startswith("-"))),
    (["list", "--limit", "{}"], (st.integers(501, 10**9) | st.integers(-(10**9), 0)).map(str)),
    (
        ["list", "--state", "{}"],
        any_text.filter(
            lambda t: t.strip() not in ("all", "ready", "scheduled", "locked", "failed")
        ),
    ),
]


@st.composite
def bad_invocations(draw: st.DrawFn) -> list[str]:
    template, values = draw(st.sampled_from(TEMPLATES))
    value = draw(values)
    assume("\x00" not in value)  # the OS cannot pass NUL in an argument
    return [value if part == "{}" else part for part in template]


@pytest.fixture
def seeded(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select graphile_worker.add_job('t', '{\"keep\": true}', queue_name => 'q')")
        conn.execute("select graphile_worker.add_job('u', '{}')")
    return db_url


def state(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(STATE).fetchone()
    assert row is not None
    return str(row[0])


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=bad_invocations())
def test_bad_arguments_exit_2_with_one_line_and_change_nothing(
    seeded: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    before = state(seeded)
    capsys.readouterr()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as exited:
            main(["--database-url", seeded, *args])
    finally:
        # The CLI points logging at this (captured) stderr: put pytest's back.
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    event(args[0])
    assert exited.value.code == 2, (args, err)
    assert out == "", args
    lines = err.splitlines()
    assert len(lines) == 1, (args, err)
    assert lines[0].startswith("gw: error: "), (args, err)
    assert "Traceback" not in err
    assert state(seeded) == before
