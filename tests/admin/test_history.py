"""GET /api/history and GET /api/history/stats: answers, paging, filters, bad
input (a 400 naming the parameter) and databases without any history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

import gw
from gw.admin import AdminAuth
from gw.admin.openapi import build_openapi
from tests.history_rows import Attempt, insert_backlog, insert_history

from .conftest import Admin, snapshot

if TYPE_CHECKING:
    from .conftest import Reply

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HISTORY_FIELDS = {
    "id", "job_id", "task_identifier", "queue_name", "attempt", "max_attempts", "worker_id",
    "run_at", "started_at", "finished_at", "outcome", "error", "result", "payload",
    "duration", "queue_wait",
}  # fmt: skip


def iso(value: datetime) -> str:
    return value.isoformat()


async def ok(admin: Admin, path: str, **query: Any) -> Any:
    reply = await admin.get(path, query=query)
    assert reply.status == 200, (path, query, reply.body)
    return reply.json


# --------------------------------------------------------------------------- empty


async def test_an_empty_history_answers_empty_lists(admin: Admin) -> None:
    assert await ok(admin, "/api/history") == {
        "entries": [],
        "limit": 50,
        "has_more": False,
        "next_before_id": None,
    }
    stats = await ok(admin, "/api/history/stats")
    assert stats["bucket"] == 30.0
    assert len(stats["buckets"]) in (120, 121)  # 1h: one more unless now is on an edge
    assert all(
        (b["completed"], b["failed"], b["other"], b["duration"], b["queue_wait"])
        == (0, 0, 0, None, None)
        for b in stats["buckets"]
    )
    assert (stats["tasks"], stats["task_count"], stats["backlog"]) == ([], 0, [])
    now = datetime.fromisoformat(stats["now"])
    assert abs(now - datetime.now(UTC)) < MINUTE
    assert datetime.fromisoformat(stats["until"]) >= now
    assert datetime.fromisoformat(stats["until"]) - now <= timedelta(seconds=30)


@pytest.mark.parametrize("table", ["_private_gw_history", "_private_gw_backlog_samples"])
async def test_without_gw_history_tables_the_answer_says_migrate(
    admin: Admin, utils: gw.WorkerUtils, table: str
) -> None:
    await utils.pool.execute(f"drop table graphile_worker.{table}")
    paths = ["/api/history/stats"]
    if table == "_private_gw_history":
        paths.append("/api/history")
    for path in paths:
        reply = await admin.get(path)
        assert reply.status == 503, (path, reply.body)
        assert reply.error["code"] == "database"
        assert "run `gw migrate`" in reply.error["message"]


# --------------------------------------------------------------------------- listing


async def test_history_lists_attempts_with_duration_and_wait(
    admin: Admin, utils: gw.WorkerUtils
) -> None:
    done, failed, no_run_at = await insert_history(
        utils,
        [
            Attempt("send_email", T0, duration=2.5, wait=4.0, queue="mail", job_id=7,
                    result={"sent": True}, payload={"to": "ann"}),
            Attempt("resize", T0 + MINUTE, "failed", duration=0.25, job_id=8, attempt=2,
                    max_attempts=5, error="disk full\nat line 3"),
            Attempt("resize", T0 + 2 * MINUTE, "cancelled", wait=None, job_id=9),
        ],
    )  # fmt: skip
    page = await ok(admin, "/api/history")
    entries = page["entries"]
    assert [e["id"] for e in entries] == [no_run_at, failed, done]
    assert set(entries[0]) == HISTORY_FIELDS
    email = entries[2]
    assert email == {
        "id": done, "job_id": 7, "task_identifier": "send_email", "queue_name": "mail",
        "attempt": 1, "max_attempts": 25, "worker_id": "gw_worker_test",
        "run_at": "2026-06-01T11:59:53.500000Z", "started_at": "2026-06-01T11:59:57.500000Z",
        "finished_at": "2026-06-01T12:00:00Z", "outcome": "completed", "error": None,
        "result": {"sent": True}, "payload": {"to": "ann"}, "duration": 2.5, "queue_wait": 4.0,
    }  # fmt: skip
    assert (entries[1]["error"], entries[1]["attempt"], entries[1]["max_attempts"]) == (
        "disk full\nat line 3",
        2,
        5,
    )
    assert entries[0]["queue_wait"] is None


async def test_history_filters(admin: Admin, utils: gw.WorkerUtils) -> None:
    a, b, c, d = await insert_history(
        utils,
        [
            Attempt("send_email", T0, queue="mail", job_id=1),
            Attempt("send_email", T0 + MINUTE, "failed", job_id=2),
            Attempt("resize", T0 + 2 * MINUTE, "permanently_failed", queue="mail", job_id=3),
            Attempt("resize", T0 + 3 * MINUTE, job_id=3, attempt=2),
        ],
    )

    async def ids(**query: Any) -> list[int]:
        return [e["id"] for e in (await ok(admin, "/api/history", **query))["entries"]]

    assert await ids() == [d, c, b, a]
    assert await ids(task="resize") == [d, c]
    assert await ids(queue="mail") == [c, a]
    assert await ids(outcome="failed") == [b]
    assert await ids(outcome="permanently_failed") == [c]
    assert await ids(job_id="3") == [d, c]
    assert await ids(since=iso(T0 + MINUTE)) == [d, c, b]
    assert await ids(since="2026-06-01T14:00:00+02:00") == [d, c, b, a]
    assert await ids(since="2026-06-01T12:02:00Z") == [d, c]
    assert await ids(task="resize", queue="mail", outcome="permanently_failed") == [c]
    assert await ids(task=" ", queue="", outcome="") == [d, c, b, a]  # blank: no filter
    assert await ids(task="nothing") == []


async def test_history_pages_with_before_id(admin: Admin, utils: gw.WorkerUtils) -> None:
    ids = await insert_history(
        utils, [Attempt("bulk", T0 + n * MINUTE, job_id=n + 1) for n in range(5)]
    )
    seen: list[int] = []
    query: dict[str, Any] = {"limit": "2"}
    pages = []
    while True:
        page = await ok(admin, "/api/history", **query)
        pages.append((len(page["entries"]), page["has_more"]))
        seen += [e["id"] for e in page["entries"]]
        if not page["has_more"]:
            assert page["next_before_id"] is None
            break
        assert page["next_before_id"] == page["entries"][-1]["id"]
        query["before_id"] = str(page["next_before_id"])
    assert seen == ids[::-1]
    assert pages == [(2, True), (2, True), (1, False)]
    # A full last page says there is no more.
    exact = await ok(admin, "/api/history", limit="5")
    assert (len(exact["entries"]), exact["has_more"], exact["next_before_id"]) == (5, False, None)


async def test_history_limit_is_capped_at_500(admin: Admin, utils: gw.WorkerUtils) -> None:
    await insert_history(utils, [Attempt("bulk", T0, job_id=n + 1) for n in range(502)])
    for limit in ("501", "99999999999999999999"):
        page = await ok(admin, "/api/history", limit=limit)
        assert (len(page["entries"]), page["limit"], page["has_more"]) == (500, 500, True)


# --------------------------------------------------------------------------- stats


async def test_stats_of_a_range(admin: Admin, utils: gw.WorkerUtils) -> None:
    await insert_history(
        utils,
        [
            *[Attempt("send_email", T0 + timedelta(seconds=10), duration=n) for n in (1, 2, 3)],
            Attempt("send_email", T0 + timedelta(seconds=70), "failed", duration=5.0),
            Attempt("resize", T0 + timedelta(seconds=70), "skipped", queue="media"),
        ],
    )
    await insert_backlog(utils, [(T0 + timedelta(seconds=65), 4, 3, 2, 1)])
    stats = await ok(
        admin, "/api/history/stats", since=iso(T0), until=iso(T0 + 3 * MINUTE), bucket="60"
    )
    assert (stats["since"], stats["until"], stats["bucket"]) == (
        "2026-06-01T12:00:00Z",
        "2026-06-01T12:03:00Z",
        60.0,
    )
    first, second, third = stats["buckets"]
    assert first == {
        "start": "2026-06-01T12:00:00Z",
        "completed": 3,
        "failed": 0,
        "other": 0,
        "duration": {"p50": 2.0, "p90": 2.8, "p99": pytest.approx(2.98)},
        "queue_wait": {"p50": 0.5, "p90": 0.5, "p99": 0.5},
    }
    assert (second["completed"], second["failed"], second["other"]) == (0, 1, 1)
    assert (third["completed"], third["duration"]) == (0, None)
    assert stats["task_count"] == 2
    assert stats["tasks"] == [
        {"task_identifier": "send_email", "total": 4, "completed": [3, 0, 0],
         "failed": [0, 1, 0], "other": [0, 0, 0]},
        {"task_identifier": "resize", "total": 1, "completed": [0, 0, 0],
         "failed": [0, 0, 0], "other": [0, 1, 0]},
    ]  # fmt: skip
    assert stats["backlog"] == [
        {"sampled_at": "2026-06-01T12:01:05Z", "ready": 4, "scheduled": 3, "running": 2,
         "failed": 1},
    ]  # fmt: skip

    # The same range as a duration back from until, in 5-minute words.
    same = await ok(
        admin, "/api/history/stats", range="3m", until=iso(T0 + 3 * MINUTE), bucket="1m"
    )
    assert same["buckets"] == stats["buckets"]
    media = await ok(
        admin, "/api/history/stats", since=iso(T0), until=iso(T0 + 3 * MINUTE), queue="media"
    )
    assert [t["task_identifier"] for t in media["tasks"]] == ["resize"]
    assert len(media["backlog"]) == 1  # the backlog is fleet-wide
    email = await ok(
        admin, "/api/history/stats", since=iso(T0), until=iso(T0 + 3 * MINUTE), task="send_email"
    )
    assert email["task_count"] == 1
    assert sum(b["completed"] + b["failed"] for b in email["buckets"]) == 4


@pytest.mark.parametrize(
    ("span", "bucket", "count"),
    [
        ("15m", 10.0, 91),
        ("1h", 30.0, 121),
        ("6h", 300.0, 73),
        ("24h", 900.0, 97),
        ("7d", 7200.0, 85),
    ],
)
async def test_each_range_gives_a_chart_of_60_to_120_buckets(
    admin: Admin, span: str, bucket: float, count: int
) -> None:
    stats = await ok(admin, "/api/history/stats", range=span)
    # Unaligned to now: one bucket more than the range holds (or exactly).
    assert stats["bucket"] == bucket
    assert len(stats["buckets"]) in (count - 1, count)


# --------------------------------------------------------------------------- bad input


BAD_LIST = [
    ({"limit": "0"}, "limit", "limit must be an integer between 1 and 500"),
    ({"limit": "ten"}, "limit", "limit must be an integer, got 'ten'"),
    (
        {"outcome": "exploded"},
        "outcome",
        "outcome must be one of completed, failed, permanently_failed, cancelled, skipped, "
        "rescheduled, interrupted, got 'exploded'",
    ),
    ({"job_id": "0"}, "job_id", "job_id must be a job id (a positive integer), got '0'"),
    ({"job_id": "-4"}, "job_id", "job_id must be a job id (a positive integer), got '-4'"),
    ({"job_id": "x1"}, "job_id", "job_id must be a job id (a positive integer), got 'x1'"),
    ({"job_id": "9" * 20}, "job_id", "job_id must be a job id (a positive integer)"),
    (
        {"before_id": "0"},
        "before_id",
        "before_id must be a history entry id (a positive integer), got '0'",
    ),
    (
        {"since": "yesterday"},
        "since",
        "since must be an ISO 8601 date and time with an offset, e.g. 2026-01-01T09:30:00Z "
        "or 2026-01-01T10:30:00+01:00, got 'yesterday'",
    ),
    ({"since": "2026-06-01T12:00:00"}, "since", "since must be an ISO 8601 date and time"),
    ({"since": "2026-13-01T12:00:00Z"}, "since", "since must be an ISO 8601 date and time"),
    ({"task": "x" * 1001}, "task", "task is longer than 1000 characters"),
    ({"queue": "a\x00b"}, "queue", "queue must not contain NUL (\\u0000) characters"),
]

BAD_STATS = [
    (
        {"range": "1x"},
        "range",
        "range must be a count and a unit (s, m, h, d or w), e.g. 15m, 1h, 24h or 7d; got '1x'",
    ),
    ({"range": "90"}, "range", "range must be a count and a unit"),
    ({"range": "0m"}, "range", "range must be longer than 0, got '0m'"),
    ({"range": "999999w"}, "range", "range must be at most 3660d, got '999999w'"),
    (
        {"range": "1h", "since": "2026-06-01T12:00:00Z"},
        "range",
        "give either range (ending at until, or now) or since (to until, or now), not both",
    ),
    (
        {"since": "2026-06-01T12:00:00Z", "until": "2026-06-01T11:00:00Z"},
        "until",
        "until (2026-06-01T11:00:00+00:00) must be after since (2026-06-01T12:00:00+00:00)",
    ),
    ({"until": "soon"}, "until", "until must be an ISO 8601 date and time with an offset"),
    (
        {"since": "2999-01-01T00:00:00Z"},
        "since",
        "since (2999-01-01T00:00:00+00:00) must be in the past: before now (",
    ),
    (
        {"until": "0001-01-01T00:30:00Z"},
        "until",
        "until 0001-01-01T00:30:00+00:00 minus the range is before the year 1",
    ),
    (
        {"since": "0001-01-01T00:00:00+14:00"},
        "since",
        "since 0001-01-01T00:00:00+14:00 and until",
    ),
    ({"bucket": "0"}, "bucket", "bucket must be longer than 0, got '0'"),
    (
        {"bucket": "0.5"},
        "bucket",
        "bucket must be a number of seconds >= 1 or a timedelta, got 0.5",
    ),
    (
        {"bucket": "fast"},
        "bucket",
        "bucket must be a count and a unit (s, m, h, d or w), e.g. 15m, 1h, 24h or 7d or a "
        "number of seconds; got 'fast'",
    ),
    (
        {"since": "2026-06-01T12:00:00Z", "until": "2026-06-08T12:00:00Z", "bucket": "1"},
        "bucket",
        "bucket of 1 s over 604800 s of history gives 604800 buckets; at most 1000 are "
        "allowed: use a bucket of at least 605 s",
    ),
    ({"task": "t\x00"}, "task", "task must not contain NUL (\\u0000) characters"),
]


async def expect_400(
    admin: Admin, path: str, query: dict[str, str], field: str, text: str
) -> Reply:
    before = await snapshot(admin.utils)
    reply = await admin.get(path, query=query)
    assert reply.status == 400, (path, query, reply.body)
    error = reply.error
    assert (error["code"], error["field"]) == ("validation", field), error
    assert error["message"].startswith(text), error
    assert await snapshot(admin.utils) == before
    return reply


@pytest.mark.parametrize(("query", "field", "message"), BAD_LIST)
async def test_bad_history_queries_are_400s_that_say_why(
    admin: Admin, query: dict[str, str], field: str, message: str
) -> None:
    await expect_400(admin, "/api/history", query, field, message)


@pytest.mark.parametrize(("query", "field", "message"), BAD_STATS)
async def test_bad_stats_queries_are_400s_that_say_why(
    admin: Admin, query: dict[str, str], field: str, message: str
) -> None:
    await expect_400(admin, "/api/history/stats", query, field, message)


async def test_an_unencoded_plus_in_a_time_is_read_as_meant(
    admin: Admin, utils: gw.WorkerUtils
) -> None:
    (entry,) = await insert_history(utils, [Attempt("x", T0)])
    page = await ok(admin, "/api/history", since="2026-06-01T13:00:00 01:00")
    assert [e["id"] for e in page["entries"]] == [entry]


async def test_history_routes_only_answer_get(admin: Admin) -> None:
    for path in ("/api/history", "/api/history/stats"):
        reply = await admin.post(path, {})
        assert reply.status == 405, (path, reply.body)
        assert reply.error["code"] == "method_not_allowed"


def test_the_openapi_document_describes_both_routes() -> None:
    doc = build_openapi(AdminAuth.basic(password="x"))
    listing = doc["paths"]["/api/history"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "task", "queue", "outcome", "job_id", "since", "before_id", "limit",
    ]  # fmt: skip
    assert set(listing["responses"]) == {"200", "400", "401", "503"}
    stats = doc["paths"]["/api/history/stats"]["get"]
    assert [p["name"] for p in stats["parameters"]] == [
        "range", "since", "until", "bucket", "task", "queue",
    ]  # fmt: skip
    assert all(p["description"] for p in stats["parameters"])
    schemas = doc["components"]["schemas"]
    assert {"HistoryItem", "HistoryStatsResponse", "HistoryBucket", "TaskThroughput"} <= set(
        schemas
    )


# --------------------------------------------------------------------------- a real worker


async def test_a_worker_with_history_shows_up_in_both_routes(
    admin: Admin, utils: gw.WorkerUtils, db_url: str
) -> None:
    from gw.testing import running, wait_for

    @gw.task("double")
    async def double(payload: dict[str, int]) -> dict[str, int]:
        return {"twice": payload["n"] * 2}

    @gw.task("explode", retry=gw.Retry(backoff=3600))
    async def explode(payload: Any) -> None:
        raise RuntimeError("kaboom")

    worker = gw.Worker(
        [double, explode],
        database_url=db_url,
        concurrency=2,
        poll_interval=0.2,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
        history=gw.History(),
    )
    jobs = [await utils.add_raw_job("double", {"n": n}) for n in range(3)]
    boom = await utils.add_raw_job("explode", {})
    async with running(worker):

        async def all_recorded() -> bool:
            return len((await ok(admin, "/api/history"))["entries"]) == 4

        await wait_for(all_recorded, message="4 attempts recorded")

    entries = (await ok(admin, "/api/history"))["entries"]
    by_job = {e["job_id"]: e for e in entries}
    assert by_job[jobs[1].id]["result"] == {"twice": 2}
    assert by_job[jobs[1].id]["outcome"] == "completed"
    assert (by_job[boom.id]["outcome"], by_job[boom.id]["error"]) == ("failed", "kaboom")
    assert by_job[boom.id]["worker_id"] == worker.worker_id
    assert all(e["duration"] >= 0 for e in entries)

    stats = await ok(admin, "/api/history/stats", range="15m")
    totals = {t["task_identifier"]: t["total"] for t in stats["tasks"]}
    assert totals == {"double": 3, "explode": 1}
    assert sum(b["completed"] for b in stats["buckets"]) == 3
    assert sum(b["failed"] for b in stats["buckets"]) == 1
