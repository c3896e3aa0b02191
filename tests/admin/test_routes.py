"""Every admin route: what it answers, what it changes in the database, and
the validation errors (status, code and field) for bad input, which change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import gw

from .conftest import Admin, snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    MakeAdmin = Callable[..., Awaitable[Admin]]

DEFAULT_REASON = "Manually marked as failed from the gw admin UI"


async def sql(utils: gw.WorkerUtils, query: str, *params: Any) -> None:
    await utils.pool.execute(query.replace("{s}", utils.schema), params or None)


async def lock(utils: gw.WorkerUtils, job_id: int, worker: str, age: str = "1 hour") -> None:
    await sql(
        utils,
        "update {s}._private_jobs set locked_at = now() - %s::interval, locked_by = %s "
        "where id = %s",
        age,
        worker,
        job_id,
    )


async def add(utils: gw.WorkerUtils, identifier: str = "email", **spec: Any) -> gw.Job:
    payload = spec.pop("payload", {"to": "a@b.c"})
    return await utils.add_raw_job(identifier, payload, gw.JobSpec(**spec))


async def expect_invalid(
    admin: Admin,
    method: str,
    path: str,
    *,
    status: int,
    field: str,
    message: str = "",
    **kwargs: Any,
) -> None:
    """A validation error naming ``field``, and no change in the database."""
    before = await snapshot(admin.utils)
    reply = await admin.request(method, path, **kwargs)
    assert reply.status == status, (path, kwargs, reply.body)
    error = reply.error
    assert error["code"] == "validation", error
    assert error["field"] == field, error
    assert message in error["message"], error
    assert await snapshot(admin.utils) == before


# --------------------------------------------------------------------------- session & overview


async def test_session(admin: Admin) -> None:
    reply = await admin.get("/api/session")
    assert reply.status == 200
    assert reply.json == {
        "schema": "graphile_worker",
        "read_only": False,
        "version": gw.__version__,
        "csrf_header": "x-graphile-worker-admin-csrf",
        "csrf_token": admin.csrf,
        "auth": {"mode": "basic", "username": "admin", "header_name": None},
    }


async def test_page_renders_the_meta_tags(admin: Admin) -> None:
    page = (await admin.get("/")).body.decode()
    for name, value in [
        ("gw-auth-mode", "basic"),
        ("gw-auth-header", ""),
        ("gw-csrf-header", "x-graphile-worker-admin-csrf"),
        ("gw-csrf-token", admin.csrf),
        ("gw-read-only", "false"),
        ("gw-schema", "graphile_worker"),
        ("gw-version", gw.__version__),
    ]:
        assert f'<meta name="{name}" content="{value}">' in page
    assert "{{" not in page
    assert "<style" not in page
    assert " style=" not in page
    assert "<script>" not in page


async def test_assets_are_the_packaged_files(admin: Admin) -> None:
    from importlib import resources

    static = resources.files("gw.admin") / "static"
    for path, name in [
        ("/assets/admin.css", "admin.css"),
        ("/assets/admin.js", "admin.js"),
        ("/favicon.ico", "favicon.svg"),
    ]:
        reply = await admin.get(path)
        assert reply.status == 200
        assert reply.body == (static / name).read_bytes()


async def test_overview(admin: Admin, utils: gw.WorkerUtils) -> None:
    empty = (await admin.get("/api/overview")).json
    assert empty["counts"] == {"total": 0, "ready": 0, "scheduled": 0, "locked": 0, "failed": 0}
    assert empty["queues"] == empty["locked_workers"] == empty["active_workers"] == []

    ready = await add(utils, queue_name="mailers")
    await add(utils, "index", run_at=datetime.now(UTC) + timedelta(hours=1))
    failed = await add(utils)
    await utils.permanently_fail_jobs([failed.id], "boom")
    locked = await add(utils, "index")
    await lock(utils, locked.id, "worker-1")
    await sql(utils, "select {s}.worker_heartbeat('worker-2', '{\"host\": \"h\"}'::json)")

    data = (await admin.get("/api/overview")).json
    assert data["counts"] == {"total": 4, "ready": 1, "scheduled": 1, "locked": 1, "failed": 1}
    assert data["queues"] == [
        {"queue_name": "mailers", "job_count": 1, "locked_at": None, "locked_by": None}
    ]
    [worker] = data["locked_workers"]
    assert (worker["worker_id"], worker["locked_jobs"], worker["locked_queues"]) == (
        "worker-1",
        1,
        0,
    )
    [active] = data["active_workers"]
    assert (active["worker_id"], active["metadata"]) == ("worker-2", {"host": "h"})
    assert data["tasks"] == ["email", "index"]
    now = datetime.fromisoformat(data["now"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    assert ready.id


# --------------------------------------------------------------------------- listing


async def test_list_jobs_filters_and_pages(admin: Admin, utils: gw.WorkerUtils) -> None:
    a = await add(utils, "email", queue_name="mailers", job_key="welcome:1", payload={"to": "Ann"})
    b = await add(utils, "index", run_at=datetime.now(UTC) + timedelta(hours=1))
    c = await add(utils, "email")
    await utils.permanently_fail_jobs([c.id], "SMTP exploded")
    d = await add(utils, "index", flags=("slow",))
    await lock(utils, d.id, "worker-1")

    async def ids(**query: Any) -> list[int]:
        reply = await admin.get("/api/jobs", query=query)
        assert reply.status == 200, reply.body
        return [job["id"] for job in reply.json["jobs"]]

    assert await ids() == [d.id, c.id, b.id, a.id]
    assert await ids(state="all") == [d.id, c.id, b.id, a.id]
    assert await ids(state="ready") == [a.id]
    assert await ids(state="scheduled") == [b.id]
    assert await ids(state="failed") == [c.id]
    assert await ids(state="locked") == [d.id]
    assert await ids(identifier="index") == [d.id, b.id]
    assert await ids(queue="mailers") == [a.id]
    assert await ids(search="ann") == [a.id]  # payload text, case-insensitive
    assert await ids(search="WELCOME") == [a.id]  # key
    assert await ids(search="smtp") == [c.id]  # last_error
    assert await ids(search=str(b.id)) == [b.id]  # id
    assert await ids(search="ailers") == [a.id]  # queue
    assert await ids(search="inde") == [d.id, b.id]  # task identifier
    assert await ids(search="100%_") == []  # LIKE wildcards are literal
    assert await ids(identifier="email", state="failed") == [c.id]
    assert await ids(identifier="  ", queue="") == [d.id, c.id, b.id, a.id]  # blank = no filter

    first = (await admin.get("/api/jobs", query={"limit": "2"})).json
    assert [j["id"] for j in first["jobs"]] == [d.id, c.id]
    assert (first["limit"], first["offset"], first["has_more"]) == (2, 0, True)
    last = (await admin.get("/api/jobs", query={"limit": "2", "offset": "2"})).json
    assert [j["id"] for j in last["jobs"]] == [b.id, a.id]
    assert last["has_more"] is False

    job = next(j for j in (await admin.get("/api/jobs")).json["jobs"] if j["id"] == d.id)
    assert job["state"] == "locked"
    assert job["flags"] == ["slow"]
    assert job["locked_by"] == "worker-1"
    assert set(job) == {
        "id", "task_identifier", "queue_name", "payload", "priority", "run_at", "attempts",
        "max_attempts", "last_error", "created_at", "updated_at", "key", "locked_at",
        "locked_by", "revision", "flags", "is_available", "state",
    }  # fmt: skip


async def test_list_limit_is_capped_at_500(admin: Admin, utils: gw.WorkerUtils) -> None:
    await utils.add_raw_jobs([gw.RawJobSpec(identifier="bulk") for _ in range(502)])
    for limit in ("501", "1000", "99999999999999999999"):
        page = (await admin.get("/api/jobs", query={"limit": limit})).json
        assert page["limit"] == 500
        assert len(page["jobs"]) == 500
        assert page["has_more"] is True
    default = (await admin.get("/api/jobs")).json
    assert (default["limit"], len(default["jobs"])) == (50, 50)


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"limit": "0"}, "limit", "limit must be an integer between 1 and 500"),
        ({"limit": "-5"}, "limit", "between 1 and 500"),
        ({"limit": "ten"}, "limit", "limit must be an integer"),
        ({"limit": "1.5"}, "limit", "limit must be an integer"),
        ({"offset": "-1"}, "offset", "offset must be an integer >= 0"),
        ({"offset": "x"}, "offset", "offset must be an integer"),
        ({"offset": "9" * 25}, "offset", "offset must be an integer >= 0"),
        ({"state": "done"}, "state", "state must be one of all, ready"),
        ({"search": "a\x00b"}, "search", "NUL"),
        ({"identifier": "x" * 1001}, "identifier", "longer than 1000"),
    ],
)
async def test_list_validation_errors(
    admin: Admin, query: dict[str, str], field: str, message: str
) -> None:
    await expect_invalid(
        admin, "GET", "/api/jobs", query=query, status=400, field=field, message=message
    )


async def test_job_detail(admin: Admin, utils: gw.WorkerUtils) -> None:
    job = await add(utils, queue_name="q", payload={"deep": {"x": [1, 2]}})
    reply = await admin.get(f"/api/jobs/{job.id}")
    assert reply.status == 200
    listed = reply.json["job"]
    assert listed["id"] == job.id
    assert listed["payload"] == {"deep": {"x": [1, 2]}}
    assert (listed["queue_name"], listed["state"]) == ("q", "ready")
    missing = await admin.get("/api/jobs/987654")
    assert missing.status == 404
    assert missing.error == {"code": "not_found", "message": "job 987654 does not exist",
                             "field": "id"}  # fmt: skip
    for bad in ("abc", "0", "-1", "1.0", "99999999999999999999", "9223372036854775808"):
        await expect_invalid(
            admin, "GET", f"/api/jobs/{bad}", status=400, field="id", message="positive integer"
        )


# --------------------------------------------------------------------------- adding


async def test_add_job_with_every_option(admin: Admin, utils: gw.WorkerUtils) -> None:
    run_at = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    reply = await admin.post(
        "/api/jobs",
        {
            "identifier": "send_email",
            "payload": {"user_id": 123},
            "queue": "mailers",
            "run_at": "2031-05-04T05:02:01+02:00",
            "max_attempts": 7,
            "key": "email:123",
            "job_key_mode": "replace",
            "priority": -3,
            "flags": ["transactional", "slow", "slow"],
        },
    )
    assert reply.status == 201, reply.body
    listed = reply.json["job"]
    job = await utils.get_job(listed["id"])
    assert job is not None
    assert job.task_identifier == "send_email"
    assert job.payload == {"user_id": 123}
    assert job.queue_name == "mailers"
    assert job.run_at == run_at
    assert (job.max_attempts, job.priority, job.key) == (7, -3, "email:123")
    assert job.flag_names == ["slow", "transactional"]
    assert listed["state"] == "scheduled"
    assert listed["flags"] == ["slow", "transactional"]


async def test_add_job_warns_about_an_unregistered_identifier(
    admin: Admin, utils: gw.WorkerUtils
) -> None:
    await utils.pool.fetch(
        "insert into graphile_worker._private_tasks (identifier) values ('send_email') returning id"
    )
    reply = await admin.post("/api/jobs", {"identifier": "send_emial"})
    assert reply.status == 201
    assert reply.json["warning"] == (
        "no worker has registered task 'send_emial' on this database; did you mean "
        "'send_email'? (the job was added; it waits until a worker runs that task)"
    )
    job = await utils.get_job(reply.json["job"]["id"])
    assert job is not None
    assert job.task_identifier == "send_emial"
    known = await admin.post("/api/jobs", {"identifier": "send_email"})
    assert known.status == 201
    assert "warning" not in known.json


async def test_add_job_applies_the_servers_task_defaults(
    make_admin: Callable[..., Awaitable[Admin]], utils: gw.WorkerUtils
) -> None:
    utils.task_defaults = {"digest": gw.JobSpec(queue_name="digests", priority=4)}
    admin = await make_admin()
    job = (await admin.post("/api/jobs", {"identifier": "digest"})).json["job"]
    assert (job["queue_name"], job["priority"]) == ("digests", 4)
    job = (await admin.post("/api/jobs", {"identifier": "digest", "priority": 1})).json["job"]
    assert (job["queue_name"], job["priority"]) == ("digests", 1)


async def test_add_job_minimal_and_key_modes(admin: Admin, utils: gw.WorkerUtils) -> None:
    reply = await admin.post("/api/jobs", {"identifier": "ping"})
    assert reply.status == 201
    job = await utils.get_job(reply.json["job"]["id"])
    assert job is not None
    assert job.payload == {}
    assert job.queue_name is None

    later = "2040-01-01T00:00:00+00:00"
    first = (
        await admin.post(
            "/api/jobs", {"identifier": "k", "key": "same", "run_at": later, "payload": {"v": 1}}
        )
    ).json["job"]
    kept = (
        await admin.post(
            "/api/jobs",
            {"identifier": "k", "key": "same", "payload": {"v": 2},
             "job_key_mode": "preserve-run-at"},
        )
    ).json["job"]  # fmt: skip
    assert kept["id"] == first["id"]
    stored = await utils.get_job(first["id"])
    assert stored is not None
    assert stored.payload == {"v": 2}
    assert stored.run_at == datetime(2040, 1, 1, tzinfo=UTC)
    deduped = (
        await admin.post(
            "/api/jobs",
            {
                "identifier": "k",
                "key": "same",
                "payload": {"v": 3},
                "job_key_mode": "unsafe_dedupe",
            },
        )
    ).json["job"]
    assert deduped["id"] == first["id"]
    stored = await utils.get_job(first["id"])
    assert stored is not None
    assert stored.payload == {"v": 2}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "identifier", "missing required field `identifier`"),
        ({"identifier": ""}, "identifier", "length >= 1"),
        ({"identifier": "x" * 129}, "identifier", "length <= 128"),
        ({"identifier": 5}, "identifier", "Expected `str`"),
        ({"identifier": "x", "queue": ""}, "queue", "length >= 1"),
        ({"identifier": "x", "run_at": "2030-01-01T00:00:00"}, "run_at", "timezone"),
        ({"identifier": "x", "run_at": "tomorrow"}, "run_at", "datetime"),
        ({"identifier": "x", "max_attempts": 0}, "max_attempts", ">= 1"),
        ({"identifier": "x", "max_attempts": 40000}, "max_attempts", "<= 32767"),
        ({"identifier": "x", "priority": -40000}, "priority", ">= -32768"),
        ({"identifier": "x", "priority": 1.5}, "priority", "Expected `int | null`, got `float`"),
        ({"identifier": "x", "job_key_mode": "replace"}, "key", "needs a key"),
        ({"identifier": "x", "key": "k", "job_key_mode": "merge"}, "job_key_mode", "Invalid"),
        ({"identifier": "x", "key": ""}, "key", "length >= 1"),
        ({"identifier": "x", "flags": [""]}, "flags", "length >= 1"),
        ({"identifier": "x", "flags": "slow"}, "flags", "Expected `array"),
        ({"identifier": "x", "payload": {"a": "\u0000"}}, "payload", "NUL"),
        ({"identifier": "x\u0000"}, "identifier", "NUL"),
        ({"identifier": "x", "queue_name": "q"}, "queue_name", "unknown field `queue_name`"),
    ],
)
async def test_add_job_validation_errors(
    admin: Admin, body: dict[str, Any], field: str, message: str
) -> None:
    await expect_invalid(
        admin, "POST", "/api/jobs", body=body, status=422, field=field, message=message
    )


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"", 400, "must be a JSON object"),
        (b"   ", 400, "must be a JSON object"),
        (b"{", 400, "not valid JSON"),
        (b'{"identifier": "x",}', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        # Deeper than msgspec decodes on any Python (3.12+ goes to ~10,000 levels).
        (b'{"identifier": "x", "payload": ' + b"[" * 20000 + b"]" * 20000 + b"}", 400, "recursion"),
        (b'["identifier"]', 422, "Expected `object`, got `array`"),
        (b"null", 422, "Expected `object`, got `null`"),
    ],
)
async def test_malformed_bodies(admin: Admin, raw: bytes, status: int, message: str) -> None:
    await expect_invalid(
        admin, "POST", "/api/jobs", raw=raw, status=status, field="body", message=message
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"identifier": "x", "payload": ' + b"[" * 100 + b"]" * 100 + b"}", "nested more than"),
        (b'{"identifier": "x", "payload": {"a": 1e400}}', "out of range"),
        (b'{"identifier": "x", "payload": {"a\\u0000": 1}}', "NUL"),
    ],
)
async def test_unstorable_payloads(admin: Admin, raw: bytes, message: str) -> None:
    await expect_invalid(
        admin, "POST", "/api/jobs", raw=raw, status=422, field="payload", message=message
    )


# --------------------------------------------------------------------------- actions


async def test_complete(admin: Admin, utils: gw.WorkerUtils) -> None:
    a, b = await add(utils), await add(utils)
    locked = await add(utils)
    await lock(utils, locked.id, "w1", age="1 minute")
    reply = await admin.post(
        "/api/jobs/action", {"action": "complete", "ids": [a.id, locked.id, 424242]}
    )
    assert reply.status == 200
    assert reply.json["action"] == "complete"
    assert reply.json["count"] == 1
    assert [j["id"] for j in reply.json["jobs"]] == [a.id]
    assert await utils.get_job(a.id) is None
    assert await utils.get_job(b.id) is not None
    assert await utils.get_job(locked.id) is not None  # locked: left untouched


async def test_fail_with_and_without_reason(admin: Admin, utils: gw.WorkerUtils) -> None:
    a, b, c = await add(utils), await add(utils), await add(utils)
    reply = await admin.post("/api/jobs/action", {"action": "fail", "ids": [a.id], "reason": "bad"})
    assert reply.json["count"] == 1
    assert reply.json["jobs"][0]["state"] == "failed"
    await admin.post("/api/jobs/action", {"action": "fail", "ids": [b.id]})
    await admin.post("/api/jobs/action", {"action": "fail", "ids": [c.id], "reason": "  "})
    for job_id, reason in [(a.id, "bad"), (b.id, DEFAULT_REASON), (c.id, DEFAULT_REASON)]:
        job = await utils.get_job(job_id)
        assert job is not None
        assert job.last_error == reason
        assert job.attempts == job.max_attempts


async def test_run_now(admin: Admin, utils: gw.WorkerUtils) -> None:
    job = await add(utils, run_at=datetime.now(UTC) + timedelta(days=3))
    reply = await admin.post("/api/jobs/action", {"action": "run-now", "ids": [job.id]})
    assert reply.json["jobs"][0]["state"] == "ready"
    stored = await utils.get_job(job.id)
    assert stored is not None
    assert stored.run_at <= datetime.now(UTC)


async def test_reschedule(admin: Admin, utils: gw.WorkerUtils) -> None:
    a, b = await add(utils), await add(utils, priority=4)
    reply = await admin.post(
        "/api/jobs/action",
        {"action": "reschedule", "ids": [a.id], "run_at": "2035-01-02T03:04:05Z",
         "priority": 10, "attempts": 2, "max_attempts": 9},
    )  # fmt: skip
    assert reply.status == 200
    job = await utils.get_job(a.id)
    assert job is not None
    assert job.run_at == datetime(2035, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (job.priority, job.attempts, job.max_attempts) == (10, 2, 9)
    # Only the given fields change; run_at, when omitted, means "now" (as in
    # WorkerUtils.reschedule_jobs and the RS docs).
    before = datetime.now(UTC)
    await admin.post("/api/jobs/action", {"action": "reschedule", "ids": [b.id], "attempts": 1})
    other = await utils.get_job(b.id)
    assert other is not None
    assert (other.priority, other.attempts, other.max_attempts) == (4, 1, 25)
    assert other.run_at >= b.run_at
    assert abs(other.run_at - before) < timedelta(seconds=30)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"action": "complete"}, "ids", "missing required field `ids`"),
        ({"action": "complete", "ids": []}, "ids", "length >= 1"),
        ({"action": "complete", "ids": [0]}, "ids", ">= 1"),
        ({"action": "complete", "ids": ["1"]}, "ids", "Expected `int`"),
        ({"action": "complete", "ids": [2**63]}, "ids", "<= 9223372036854775807"),
        ({"action": "complete", "ids": 1}, "ids", "Expected `array"),
        ({"ids": [1]}, "action", "missing required field `action`"),
        ({"action": "delete", "ids": [1]}, "action", "Invalid enum value 'delete'"),
        ({"action": "reschedule", "ids": [1]}, "run_at", "at least one of run_at"),
        ({"action": "reschedule", "ids": [1], "run_at": "2030-01-01"}, "run_at", "datetime"),
        ({"action": "reschedule", "ids": [1], "attempts": -1}, "attempts", ">= 0"),
        ({"action": "reschedule", "ids": [1], "max_attempts": 0}, "max_attempts", ">= 1"),
        ({"action": "complete", "ids": [1], "reason": "x"}, "reason", "only goes with"),
        ({"action": "fail", "ids": [1], "priority": 1}, "priority", "only goes with"),
        ({"action": "run-now", "ids": [1], "run_at": "2030-01-01T00:00:00Z"}, "run_at", "only"),
        ({"action": "fail", "ids": [1], "reason": "a\u0000"}, "reason", "NUL"),
        ({"action": "fail", "ids": [1], "why": "x"}, "why", "unknown field `why`"),
    ],
)
async def test_action_validation_errors(
    admin: Admin, utils: gw.WorkerUtils, body: dict[str, Any], field: str, message: str
) -> None:
    await add(utils)
    await expect_invalid(
        admin, "POST", "/api/jobs/action", body=body, status=422, field=field, message=message
    )


async def test_remove_by_key(admin: Admin, utils: gw.WorkerUtils) -> None:
    job = await add(utils, job_key="email:1")
    other = await add(utils, job_key="email:2")
    reply = await admin.post("/api/jobs/remove-by-key", {"key": "email:1"})
    assert reply.status == 200
    assert reply.json["job"]["id"] == job.id
    assert await utils.get_job(job.id) is None
    assert await utils.get_job(other.id) is not None
    none = await admin.post("/api/jobs/remove-by-key", {"key": "email:1"})
    assert none.json == {"job": None}
    for body, field, message in [
        ({}, "key", "missing required field `key`"),
        ({"key": ""}, "key", "length >= 1"),
        ({"key": 5}, "key", "Expected `str`"),
        ({"key": "x" * 513}, "key", "length <= 512"),
    ]:
        await expect_invalid(
            admin, "POST", "/api/jobs/remove-by-key", body=body, status=422, field=field,
            message=message,
        )  # fmt: skip


# --------------------------------------------------------------------------- maintenance


async def test_migrate(admin: Admin) -> None:
    reply = await admin.post("/api/maintenance", {"action": "migrate"})
    assert reply.status == 200
    assert reply.json == {"action": "migrate", "result": {"migrated": True, "applied": []}}


async def test_cleanup_subset_and_all(admin: Admin, utils: gw.WorkerUtils) -> None:
    failed = await add(utils, "gone", queue_name="old-queue")
    await utils.permanently_fail_jobs([failed.id], "x")
    keep = await add(utils, "stays")
    reply = await admin.post(
        "/api/maintenance",
        {"action": "cleanup", "cleanup_tasks": ["delete-permanently-failed-jobs"]},
    )
    assert reply.json == {
        "action": "cleanup",
        "result": {"tasks": ["delete-permanently-failed-jobs"]},
    }
    assert await utils.get_job(failed.id) is None
    assert await utils.get_job(keep.id) is not None
    assert "gone" in await utils.known_task_identifiers()  # not collected yet
    everything = await admin.post("/api/maintenance", {"action": "cleanup"})
    assert everything.json["result"]["tasks"] == [
        "delete-permanently-failed-jobs",
        "gc-task-identifiers",
        "gc-job-queues",
    ]
    assert await utils.known_task_identifiers() == ["stays"]
    assert await utils.queues() == []


async def test_force_unlock(admin: Admin, utils: gw.WorkerUtils) -> None:
    mine, theirs = await add(utils), await add(utils)
    await lock(utils, mine.id, "worker-a")
    await lock(utils, theirs.id, "worker-b")
    reply = await admin.post(
        "/api/maintenance", {"action": "force-unlock", "worker_ids": ["worker-a", "worker-a"]}
    )
    assert reply.json == {"action": "force-unlock", "result": {"worker_ids": ["worker-a"]}}
    unlocked, still = await utils.get_job(mine.id), await utils.get_job(theirs.id)
    assert unlocked is not None
    assert unlocked.locked_by is None
    assert still is not None
    assert still.locked_by == "worker-b"


async def test_sweep_stale_workers(admin: Admin, utils: gw.WorkerUtils) -> None:
    job = await add(utils)
    await lock(utils, job.id, "dead-worker", age="2 hours")
    body = {"action": "sweep-stale-workers", "dry_run": True, "sweep_threshold_secs": 60}
    dry = await admin.post("/api/maintenance", body)
    assert dry.status == 200
    result = dry.json["result"]
    assert (result["dry_run"], result["worker_ids"], result["job_ids"]) == (
        True,
        ["dead-worker"],
        [job.id],
    )
    still = await utils.get_job(job.id)
    assert still is not None
    assert still.locked_by == "dead-worker"
    real = await admin.post(
        "/api/maintenance", {**body, "dry_run": False, "recovery_delay_secs": 0}
    )
    assert real.json["result"]["job_ids"] == [job.id]
    recovered = await utils.get_job(job.id)
    assert recovered is not None
    assert recovered.locked_by is None


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "action", "missing required field `action`"),
        ({"action": "vacuum"}, "action", "Invalid value 'vacuum'"),
        ({"action": 1}, "action", "Expected `str`"),
        ({"action": "migrate", "dry_run": True}, "dry_run", "unknown field `dry_run`"),
        ({"action": "cleanup", "cleanup_tasks": []}, "cleanup_tasks", "length >= 1"),
        ({"action": "cleanup", "cleanup_tasks": ["everything"]}, "cleanup_tasks", "Invalid"),
        ({"action": "force-unlock"}, "worker_ids", "missing required field `worker_ids`"),
        ({"action": "force-unlock", "worker_ids": []}, "worker_ids", "length >= 1"),
        ({"action": "force-unlock", "worker_ids": [""]}, "worker_ids", "length >= 1"),
        ({"action": "sweep-stale-workers", "sweep_threshold_secs": 0}, "sweep_threshold_secs",
         "> 0"),
        ({"action": "sweep-stale-workers", "recovery_delay_secs": -1}, "recovery_delay_secs",
         ">= 0"),
        ({"action": "sweep-stale-workers", "sweep_threshold_secs": 1e12}, "sweep_threshold_secs",
         "<="),
        ({"action": "sweep-stale-workers", "dry_run": "yes"}, "dry_run", "Expected `bool`"),
    ],
)  # fmt: skip
async def test_maintenance_validation_errors(
    admin: Admin, utils: gw.WorkerUtils, body: dict[str, Any], field: str, message: str
) -> None:
    job = await add(utils)
    await lock(utils, job.id, "w", age="2 hours")
    await expect_invalid(
        admin, "POST", "/api/maintenance", body=body, status=422, field=field, message=message
    )


# --------------------------------------------------------------------------- OpenAPI


async def test_openapi_lists_every_route(admin: Admin) -> None:
    reply = await admin.get("/api/openapi.json")
    assert reply.status == 200
    doc = reply.json
    assert doc["openapi"] == "3.1.0"
    routes: set[tuple[str, str]] = set()
    for rule in admin.app.url_map.iter_rules():
        path = rule.rule.replace("<job_id>", "{id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == routes
    schemas = doc["components"]["schemas"]
    for name in ("AddJobRequest", "JobActionRequest", "ListedJob", "ErrorResponse",
                 "MigrateRequest", "SweepRequest", "RemoveByKeyRequest"):  # fmt: skip
        assert name in schemas
    assert doc["components"]["securitySchemes"] == {"admin": {"type": "http", "scheme": "basic"}}
    add_job = doc["paths"]["/api/jobs"]["post"]
    assert add_job["parameters"][0]["name"] == "x-graphile-worker-admin-csrf"
    assert "201" in add_job["responses"]
    limit = next(p for p in doc["paths"]["/api/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert "capped to 500" in limit["description"]


@pytest.mark.parametrize("mode", ["bearer", "header", "none"])
async def test_openapi_security_follows_the_auth_mode(make_admin: MakeAdmin, mode: str) -> None:
    from gw.admin import AdminAuth

    auth = {"bearer": AdminAuth.bearer(), "header": AdminAuth.header(), "none": AdminAuth.none()}
    admin = await make_admin(auth=auth[mode])
    doc = (await admin.get("/api/openapi.json")).json
    schemes = doc["components"].get("securitySchemes")
    if mode == "none":
        assert schemes is None
        assert "security" not in doc
    elif mode == "bearer":
        assert schemes == {"admin": {"type": "http", "scheme": "bearer"}}
    else:
        assert schemes == {
            "admin": {"type": "apiKey", "in": "header", "name": "x-graphile-worker-admin-token"}
        }


# --------------------------------------------------------------------------- cancelling


async def gw_heartbeat(utils: gw.WorkerUtils, worker_id: str) -> None:
    """Register ``worker_id`` as a gw worker (its metadata names a gw version)."""
    metadata = '{"gw_version": "test"}'
    await sql(utils, "select {s}.worker_heartbeat(%s, %s::json)", worker_id, metadata)


async def cancel_requests(utils: gw.WorkerUtils) -> list[tuple[int, str]]:
    rows = await utils.pool.fetch(
        f"select job_id, reason from {utils.schema}._private_gw_cancel_requests order by job_id"
    )
    return [(row["job_id"], row["reason"]) for row in rows]


async def test_cancel_reports_every_outcome(admin: Admin, utils: gw.WorkerUtils) -> None:
    waiting = await add(utils)
    scheduled = await add(utils, run_at=datetime.now(UTC) + timedelta(hours=1))
    running = await add(utils, "index")
    await gw_heartbeat(utils, "gw-worker-1")
    await lock(utils, running.id, "gw-worker-1", age="1 minute")
    foreign = await add(utils, "index")
    await lock(utils, foreign.id, "node_worker_1", age="1 minute")
    failed = await add(utils)
    await utils.permanently_fail_jobs([failed.id], "boom")
    untouched = await add(utils)

    ids = [waiting.id, scheduled.id, running.id, foreign.id, failed.id, 987654, waiting.id]
    reply = await admin.post("/api/jobs/cancel", {"ids": ids, "reason": " customer left "})
    assert reply.status == 200, reply.body
    assert reply.json == {
        "action": "cancel",
        "count": 3,
        "counts": {"cancelled": 2, "cancelling": 1, "not_cancellable": 1, "finished": 1,
                   "not_found": 1},
        "results": [
            {"job_id": waiting.id, "outcome": "cancelled", "worker_id": None},
            {"job_id": scheduled.id, "outcome": "cancelled", "worker_id": None},
            {"job_id": running.id, "outcome": "cancelling", "worker_id": "gw-worker-1"},
            {"job_id": foreign.id, "outcome": "not_cancellable", "worker_id": "node_worker_1"},
            {"job_id": failed.id, "outcome": "finished", "worker_id": None},
            {"job_id": 987654, "outcome": "not_found", "worker_id": None},
        ],
    }  # fmt: skip

    # Waiting jobs failed for good, with the (trimmed) reason; the listing shows it.
    for job_id in (waiting.id, scheduled.id):
        job = await utils.get_job(job_id)
        assert job is not None
        assert job.last_error == "cancelled: customer left"
        assert job.attempts == job.max_attempts
        assert job.locked_by is None
        listed = (await admin.get(f"/api/jobs/{job_id}")).json["job"]
        assert (listed["state"], listed["last_error"]) == ("failed", "cancelled: customer left")
    # The running job is left to its gw worker, which was asked to stop it.
    still_running = await utils.get_job(running.id)
    assert still_running is not None
    assert (still_running.locked_by, still_running.last_error) == ("gw-worker-1", None)
    assert await cancel_requests(utils) == [(running.id, "customer left")]
    # Node's job, the failed job and the job not asked about are unchanged.
    for job, before in ((foreign, None), (failed, "boom"), (untouched, None)):
        stored = await utils.get_job(job.id)
        assert stored is not None
        assert stored.last_error == before
    stored_foreign = await utils.get_job(foreign.id)
    assert stored_foreign is not None
    assert stored_foreign.locked_by == "node_worker_1"
    stored_untouched = await utils.get_job(untouched.id)
    assert stored_untouched is not None
    assert stored_untouched.attempts == 0


@pytest.mark.parametrize("body", [{}, {"reason": None}, {"reason": ""}, {"reason": "   "}])
async def test_cancel_without_a_reason(
    admin: Admin, utils: gw.WorkerUtils, body: dict[str, Any]
) -> None:
    job = await add(utils)
    reply = await admin.post("/api/jobs/cancel", {"ids": [job.id], **body})
    assert reply.status == 200, reply.body
    assert reply.json["results"] == [{"job_id": job.id, "outcome": "cancelled", "worker_id": None}]
    stored = await utils.get_job(job.id)
    assert stored is not None
    assert stored.last_error == "cancelled: no reason given"


async def test_cancel_only_unknown_ids_changes_nothing(admin: Admin, utils: gw.WorkerUtils) -> None:
    await add(utils)
    before = await snapshot(utils)
    reply = await admin.post("/api/jobs/cancel", {"ids": [424242, 424243]})
    assert reply.status == 200
    assert reply.json["count"] == 0
    assert reply.json["counts"]["not_found"] == 2
    assert [r["outcome"] for r in reply.json["results"]] == ["not_found", "not_found"]
    assert await snapshot(utils) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "ids", "missing required field `ids`"),
        ({"reason": "x"}, "ids", "missing required field `ids`"),
        ({"ids": []}, "ids", "length >= 1"),
        ({"ids": [0]}, "ids", ">= 1"),
        ({"ids": [-3]}, "ids", ">= 1"),
        ({"ids": ["1"]}, "ids", "Expected `int`"),
        ({"ids": [1.5]}, "ids", "Expected `int`"),
        ({"ids": [True]}, "ids", "Expected `int`"),
        ({"ids": [2**63]}, "ids", "<= 9223372036854775807"),
        ({"ids": 1}, "ids", "Expected `array"),
        ({"ids": None}, "ids", "Expected `array"),
        ({"ids": [1] * 10_001}, "ids", "length <= 10000"),
        ({"ids": [1], "reason": 5}, "reason", "Expected `str | null`"),
        ({"ids": [1], "reason": ["x"]}, "reason", "Expected `str | null`"),
        ({"ids": [1], "reason": "x" * 1001}, "reason", "length <= 1000"),
        ({"ids": [1], "reason": "a\u0000b"}, "reason", "NUL"),
        ({"ids": [1], "action": "cancel"}, "action", "unknown field `action`"),
        ({"ids": [1], "why": "x"}, "why", "unknown field `why`"),
    ],
)
async def test_cancel_validation_errors(
    admin: Admin, utils: gw.WorkerUtils, body: dict[str, Any], field: str, message: str
) -> None:
    await add(utils)  # job 1 exists: a cancel that got through would change it
    await expect_invalid(
        admin, "POST", "/api/jobs/cancel", body=body, status=422, field=field, message=message
    )


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"", 400, "must be a JSON object"),
        (b"{", 400, "not valid JSON"),
        (b'{"ids": [1],}', 400, "not valid JSON"),
        (b'{"ids": [1], "reason": "caf\xe9"}', 400, "not valid UTF-8 JSON"),
        (b"[1]", 422, "Expected `object`, got `array`"),
        (b"null", 422, "Expected `object`, got `null`"),
    ],
)
async def test_cancel_malformed_bodies(
    admin: Admin, utils: gw.WorkerUtils, raw: bytes, status: int, message: str
) -> None:
    await add(utils)
    await expect_invalid(
        admin, "POST", "/api/jobs/cancel", raw=raw, status=status, field="body", message=message
    )


async def test_cancel_and_limits_methods(admin: Admin) -> None:
    for path in ("/api/jobs/cancel", "/api/limits"):
        method = "GET" if path.endswith("cancel") else "POST"
        reply = await admin.request(method, path, body={} if method == "POST" else None)
        assert reply.status == 405, (path, reply.body)
        assert reply.error["code"] == "method_not_allowed"


# --------------------------------------------------------------------------- limits


async def test_limits_empty(admin: Admin) -> None:
    reply = await admin.get("/api/limits")
    assert reply.status == 200
    assert reply.json["limits"] == []
    now = datetime.fromisoformat(reply.json["now"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)


async def test_limits_list_each_key_with_its_use(admin: Admin, utils: gw.WorkerUtils) -> None:
    # Full buckets (tokens = burst) and very slow ones read the same whenever
    # the request runs.
    await sql(
        utils,
        """
        insert into {s}._private_gw_limits (key, rate, burst, max_concurrency, tokens)
        values ('task:send_email', 20, 5, null, 5),
               ('queue:reports', null, null, 2, 0),
               ('task:resize', 1.0 / 3600, 1, 3, 0.5),
               ('odd-key', 2.5, 1, null, 1)
        """,
    )
    first, second = await add(utils, "resize"), await add(utils, "resize")
    await lock(utils, first.id, "gw-worker-1", age="1 minute")
    await lock(utils, second.id, "gw-worker-1", age="1 minute")
    await sql(
        utils,
        "insert into {s}._private_gw_slots (key, job_id, worker_id)"
        " values ('task:resize', %s, 'gw-worker-1'),"
        # A slot whose job that worker no longer holds does not count.
        " ('task:resize', 999999, 'gw-worker-gone')",
        first.id,
    )

    reply = await admin.get("/api/limits")
    assert reply.status == 200, reply.body
    limits = reply.json["limits"]
    assert [limit["key"] for limit in limits] == [
        "odd-key",
        "queue:reports",
        "task:resize",
        "task:send_email",
    ]
    odd, reports, resize, send_email = limits
    assert set(reports) == {
        "key", "kind", "name", "rate", "burst", "max_concurrency", "tokens", "running",
        "updated_at",
    }  # fmt: skip
    assert (odd["kind"], odd["name"], odd["rate"], odd["tokens"]) == ("other", "odd-key", 2.5, 1)
    del reports["updated_at"]
    assert reports == {
        "key": "queue:reports", "kind": "queue", "name": "reports", "rate": None, "burst": None,
        "max_concurrency": 2, "tokens": None, "running": 0,
    }  # fmt: skip
    assert (resize["kind"], resize["name"]) == ("task", "resize")
    assert resize["rate"] == pytest.approx(1 / 3600)
    assert (resize["burst"], resize["max_concurrency"], resize["running"]) == (1, 3, 1)
    assert 0.5 <= resize["tokens"] < 0.6
    assert (send_email["rate"], send_email["burst"], send_email["tokens"]) == (20, 5, 5)
    assert (send_email["max_concurrency"], send_email["running"]) == (None, 0)
    updated = datetime.fromisoformat(send_email["updated_at"])
    assert abs(updated - datetime.now(UTC)) < timedelta(minutes=1)


async def test_limits_without_the_gw_tables_is_a_503_that_says_migrate(
    admin: Admin, utils: gw.WorkerUtils
) -> None:
    await sql(utils, "drop table {s}._private_gw_limits")
    reply = await admin.get("/api/limits")
    assert reply.status == 503
    assert reply.error["code"] == "database"
    assert "gw migrate" in reply.error["message"]


# --------------------------------------------------------------------------- a real worker


async def test_limits_and_cancel_with_a_running_worker(
    admin: Admin, utils: gw.WorkerUtils, db_url: str
) -> None:
    from gw.testing import running, wait_for

    started: list[int] = []
    stopped = anyio.Event()

    @gw.task("crawl", rate_limit=gw.RateLimit(20), max_concurrency=3)
    async def crawl(payload: Any, ctx: gw.JobContext) -> None:
        started.append(ctx.job.id)
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    worker = gw.Worker(
        [crawl],
        database_url=db_url,
        concurrency=4,
        poll_interval=0.2,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
    )

    async def limits() -> list[dict[str, Any]]:
        reply = await admin.get("/api/limits")
        assert reply.status == 200, reply.body
        found: list[dict[str, Any]] = reply.json["limits"]
        return found

    async with running(worker):
        jobs = [await add(utils, "crawl", payload={"n": n}) for n in range(2)]
        await wait_for(lambda: len(started) == 2, message="both jobs started")

        async def running_is(count: int) -> bool:
            found = [(limit["key"], limit["running"]) for limit in await limits()]
            return found == [("task:crawl", count)]

        await wait_for(lambda: running_is(2), message="2 running")
        [limit] = await limits()
        assert (limit["kind"], limit["name"], limit["rate"], limit["burst"]) == (
            "task", "crawl", 20, 1,
        )  # fmt: skip
        assert limit["max_concurrency"] == 3
        assert 0 <= limit["tokens"] <= 1

        victim = jobs[0].id
        reply = await admin.post("/api/jobs/cancel", {"ids": [victim], "reason": "enough"})
        assert reply.status == 200, reply.body
        assert reply.json["results"] == [
            {"job_id": victim, "outcome": "cancelling", "worker_id": worker.worker_id}
        ]
        with anyio.fail_after(10):
            await stopped.wait()

        async def cancelled() -> bool:
            job = (await admin.get(f"/api/jobs/{victim}")).json["job"]
            return bool(job["state"] == "failed" and job["last_error"] == "cancelled: enough")

        await wait_for(cancelled, message="the cancelled job failed for good")
        await wait_for(lambda: running_is(1), message="its slot freed")
        # The other one too (so the worker has nothing left to wait for on shutdown).
        rest = await admin.post("/api/jobs/cancel", {"ids": [jobs[1].id]})
        assert rest.json["counts"]["cancelling"] == 1
        await wait_for(lambda: running_is(0), message="every slot freed")
