"""Fuzz: payloads added through SQL ``add_job`` never crash a worker or strand
another job.

The strategy writes JSON *text* (not Python values), so it reaches what only
another producer can send: nesting far deeper than Python recurses, numbers
beyond float and integer range, unpaired surrogate escapes, NUL escapes,
long strings. PostgreSQL's ``json`` type takes any of it that is syntactically
JSON; each example then runs a worker once over that job and three good ones.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import psycopg
import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

import gw
from gw.db.connection import connect

pytestmark = pytest.mark.faults

EXAMPLES = 60

_ESCAPES = st.sampled_from(
    ["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u0000", "\\n", '\\"', "\\\\", "\\u00e9", "\\/"]
)
# Control characters must be escaped in JSON text: PostgreSQL would refuse them.
_plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
    max_size=20,
)
strings = st.lists(_plain_text | _ESCAPES, max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=20, max_value=6000).map(lambda digits: "9" * digits),
    st.sampled_from(["1e400", "-1e400", "1e-400", "0.1e309", "123456789012345678901234567890.5"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
scalars = st.one_of(strings, numbers, st.sampled_from(["true", "false", "null"]))


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


json_texts = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4).map(_array)
        | st.lists(st.tuples(strings, inner), max_size=4).map(_object)
    ),
    max_leaves=10,
)


@st.composite
def payloads(draw: st.DrawFn) -> str:
    text = draw(json_texts)
    # Now and then, deeper than Python recurses by default (hypothesis raises the
    # recursion limit while it runs, so the worker may still decode some).
    if draw(st.sampled_from([False, False, True])):
        levels = draw(st.integers(900, 1600))
        text = "[" * levels + text + "]" * levels
    return text


@pytest.fixture
async def conn(db_url: str) -> Any:
    async with await connect(db_url) as c:
        yield c


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=payloads())
async def test_any_payload_postgres_accepts_fails_alone_or_runs(
    db_url: str, conn: Any, text: str
) -> None:
    await conn.execute("delete from graphile_worker._private_jobs")
    try:
        cur = await conn.execute(
            "select id from graphile_worker.add_job('fuzz', %s::json)", (text,)
        )
    except psycopg.DataError:
        assume(False)  # not JSON to PostgreSQL either: nothing to test
    row = await cur.fetchone()
    assert row is not None
    fuzz_id = int(row[0])
    seen: list[Any] = []

    @gw.task("fuzz")
    async def fuzz(payload: Any) -> None:
        seen.append(payload)

    for n in range(3):
        await conn.execute(
            "select graphile_worker.add_job('fuzz', %s::json)", (json.dumps({"good": n}),)
        )
    worker = gw.Worker(
        [fuzz],
        database_url=db_url,
        concurrency=4,
        migrate=False,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
    )
    with anyio.fail_after(30):
        processed = await worker.run_once()
    assert processed == 4
    good = {p["good"] for p in seen if isinstance(p, dict) and set(p) == {"good"}}
    assert {0, 1, 2} <= good  # every good job ran
    cur = await conn.execute(
        "select id, attempts, locked_by, last_error from graphile_worker._private_jobs"
    )
    left = await cur.fetchall()
    if left:  # the fuzzed job could not run: it failed alone, with the reason
        ((job_id, attempts, locked_by, error),) = left
        assert (job_id, attempts, locked_by) == (fuzz_id, 25, None)  # final at once
        assert error.startswith("payload cannot be decoded: "), error
        event(error.split(":")[1].strip()[:40])
    else:
        event("ran")
