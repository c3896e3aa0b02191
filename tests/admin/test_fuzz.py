"""Fuzz the JSON API from its own OpenAPI document with hypothesis.

Request bodies and query parameters are drawn from the schemas the server
publishes (mostly valid values, mixed with arbitrary JSON in any place), and
sent through the app's test client. Properties: no answer is ever a 5xx, and
a write sent without the right CSRF token is refused and changes nothing.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from gw.admin import AdminAuth
from gw.admin.openapi import build_openapi
from tests.history_rows import Attempt, insert_history

from .conftest import Admin, snapshot

if TYPE_CHECKING:
    import gw

DOC = build_openapi(AdminAuth.basic(password="x"))
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
WRITE_ROUTES = sorted(
    (path, op["requestBody"]["content"]["application/json"]["schema"])
    for path, item in DOC["paths"].items()
    for method, op in item.items()
    if method == "post"
)
LIST_PARAMS = DOC["paths"]["/api/jobs"]["get"]["parameters"]
# Every read route that takes query parameters, with them.
QUERY_ROUTES = {
    path: item["get"]["parameters"]
    for path, item in DOC["paths"].items()
    if "get" in item and any(p["in"] == "query" for p in item["get"].get("parameters", ()))
}

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=60)


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for the JSON Schema subset msgspec emits, now and then swapped for any JSON."""
    return st.one_of(_valid(schema, depth), _valid(schema, depth), any_json)


def _valid(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return from_schema(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], depth + 1)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of(
            [from_schema(s, depth + 1) for s in schema.get("anyOf", schema.get("oneOf"))]
        )
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=12)
    kind = schema.get("type")
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(from_schema(items, depth + 1), max_size=min(schema.get("maxItems", 5), 5))
    if kind == "string":
        if "examples" in schema:  # e.g. "15m": a pattern the text below rarely hits
            return st.sampled_from(schema["examples"]) | _valid({"type": "string"}, depth)
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40)
        )
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(min_value=low, max_value=high) | st.integers()
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10, 10**6)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return any_json


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, prop in properties.items():
            if name in required or draw(st.booleans()):
                out[name] = draw(from_schema(prop, depth + 1))
        if draw(st.integers(0, 9)) == 9:  # hypothesis favours small numbers: 9 is rare
            out[draw(st.text(min_size=1, max_size=8))] = draw(any_json)
        return out

    return build()


@st.composite
def write_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    path, schema = draw(st.sampled_from(WRITE_ROUTES))
    body = draw(any_json if draw(st.integers(0, 9)) == 9 else _valid(schema, 0))
    raw = msgspec.json.encode(body)
    if draw(st.integers(0, 19)) == 19:
        raw = raw[: draw(st.integers(0, len(raw)))]  # truncated: malformed JSON
    return path, raw


@st.composite
def list_queries(draw: st.DrawFn, params: list[dict[str, Any]] = LIST_PARAMS) -> dict[str, str]:
    query: dict[str, str] = {}
    for param in params:
        if draw(st.booleans()):
            value = draw(from_schema(param["schema"]))
            query[param["name"]] = (
                value if isinstance(value, str) else msgspec.json.encode(value).decode()
            )
    return query


async def seed(utils: gw.WorkerUtils) -> None:
    import gw

    for n in range(3):
        await utils.add_raw_job("fuzz", {"n": n}, gw.JobSpec(job_key=f"k{n}", queue_name="q"))


@pytest.mark.slow
@FUZZ
@given(request=write_requests())
async def test_writes_never_answer_5xx(admin: Admin, request: tuple[str, bytes]) -> None:
    path, raw = request
    reply = await admin.post(path, raw=raw)
    event(f"{path} -> {reply.status}")
    assert reply.status < 500, (path, raw, reply.body)
    assert reply.status in (200, 201, 400, 404, 409, 422), (path, raw, reply.body)
    if reply.status >= 400:
        assert reply.error["code"] in ("validation", "not_found", "conflict"), reply.body


@pytest.mark.slow
@FUZZ
@given(request=write_requests(), token=st.none() | header_text)
async def test_no_write_without_the_csrf_token(
    admin: Admin, utils: gw.WorkerUtils, request: tuple[str, bytes], token: str | None
) -> None:
    if not (await utils.list_jobs(limit=1)).jobs:
        await seed(utils)
    path, raw = request
    before = await snapshot(utils)
    headers = {} if token is None else {"x-graphile-worker-admin-csrf": token}
    reply = await admin.post(path, raw=raw, csrf=False, headers=headers)
    assert reply.status == 403, (path, raw, reply.body)
    assert reply.error["code"] == "csrf"
    assert await snapshot(utils) == before


@pytest.mark.slow
@FUZZ
@given(query=list_queries(), job_id=st.text(max_size=25) | st.integers().map(str))
async def test_reads_never_answer_5xx(admin: Admin, query: dict[str, str], job_id: str) -> None:
    listed = await admin.get("/api/jobs", query=query)
    event(f"list -> {listed.status}")
    assert listed.status in (200, 400), (query, listed.body)
    limits = await admin.get("/api/limits", query=query)  # takes no parameters: ignored
    assert limits.status == 200, (query, limits.body)
    path = "/api/jobs/" + quote(job_id, safe="")
    detail = await admin.get(path)
    assert detail.status < 500, (path, detail.body)
    if job_id:
        assert detail.status in (200, 400, 404, 405), (path, detail.body)


@st.composite
def history_queries(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    path = draw(st.sampled_from(sorted(QUERY_ROUTES)))
    return path, draw(list_queries(QUERY_ROUTES[path]))


@pytest.mark.slow
@FUZZ
@given(request=history_queries())
async def test_query_reads_never_answer_5xx(
    admin: Admin, utils: gw.WorkerUtils, request: tuple[str, dict[str, str]]
) -> None:
    # Drawn up front (not with st.data() inside the test): hypothesis must not
    # stop a test from inside the event loop.
    assert {"/api/history", "/api/history/stats"} <= set(QUERY_ROUTES)
    if not await utils.list_history(limit=1):
        now = datetime.now(UTC)
        await insert_history(utils, [Attempt("fuzz", now), Attempt("fuzz", now, "failed")])
    path, query = request
    reply = await admin.get(path, query=query)
    event(f"{path} -> {reply.status}")
    assert reply.status in (200, 400), (path, query, reply.body)
    if reply.status == 400:
        assert reply.error["code"] == "validation"
        assert reply.error["field"] in {p["name"] for p in QUERY_ROUTES[path]}, reply.body
