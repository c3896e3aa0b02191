"""Auth modes, CSRF, read-only mode and the headers on every kind of response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import gw
from gw.admin import AdminAuth
from gw.core.utils import open_pool

from .conftest import (
    PASSWORD,
    SECURITY_HEADERS,
    TOKEN,
    Admin,
    basic_header,
    snapshot,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    MakeAdmin = Callable[..., Awaitable[Admin]]

API_READS = [
    "/api/session",
    "/api/overview",
    "/api/jobs",
    "/api/limits",
    "/api/history",
    "/api/history/stats",
    "/api/openapi.json",
    "/api/jobs/1",
]

# One valid body per write route (all refer to jobs/workers that exist after `seed`).
WRITES: list[tuple[str, Any]] = [
    ("/api/jobs", {"identifier": "refused", "payload": {"a": 1}}),
    ("/api/jobs/action", {"action": "fail", "ids": [1], "reason": "no"}),
    ("/api/jobs/action", {"action": "complete", "ids": [1]}),
    ("/api/jobs/action", {"action": "run-now", "ids": [2]}),
    ("/api/jobs/action", {"action": "reschedule", "ids": [2], "priority": 9}),
    ("/api/jobs/cancel", {"ids": [1, 2], "reason": "no"}),
    ("/api/jobs/remove-by-key", {"key": "k1"}),
    ("/api/maintenance", {"action": "migrate"}),
    ("/api/maintenance", {"action": "cleanup"}),
    ("/api/maintenance", {"action": "force-unlock", "worker_ids": ["w1"]}),
    (
        "/api/maintenance",
        {"action": "sweep-stale-workers", "dry_run": False, "sweep_threshold_secs": 1},
    ),
]
WRITE_IDS = [f"{path}:{body.get('action', '')}" for path, body in WRITES]


async def seed(utils: gw.WorkerUtils) -> None:
    """Jobs 1 (key k1) and 2 (run_at in the future), a permanently failed job 3."""
    from datetime import UTC, datetime, timedelta

    await utils.add_raw_job("email", {"n": 1}, gw.JobSpec(job_key="k1", queue_name="q"))
    await utils.add_raw_job(
        "email", {"n": 2}, gw.JobSpec(run_at=datetime.now(UTC) + timedelta(hours=1))
    )
    failed = await utils.add_raw_job("email", {"n": 3})
    await utils.permanently_fail_jobs([failed.id], "boom")


def assert_security_headers(reply: Any, cache: str = "no-store") -> None:
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value, (name, reply.headers)
    assert reply.headers.get("cache-control") == cache


# --------------------------------------------------------------------------- auth


WRONG_CREDENTIALS: dict[str, list[dict[str, str]]] = {
    "basic": [
        basic_header("admin", "wrong"),
        basic_header("root", PASSWORD),
        basic_header("admin", PASSWORD + "x"),
        {"Authorization": "Basic not-base64!!"},
        {"Authorization": "Basic " + "YWRtaW4="},  # "admin" without a colon
        {"Authorization": f"Bearer {PASSWORD}"},
    ],
    "bearer": [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Token {TOKEN}"},
        {"x-graphile-worker-admin-token": TOKEN},
        basic_header("admin", TOKEN),
    ],
    "header": [
        {"x-graphile-worker-admin-token": "wrong"},
        {"x-graphile-worker-admin-token": TOKEN[:-1]},
        {"Authorization": f"Bearer {TOKEN}"},
        {"x-other-token": TOKEN},
    ],
}


def auth_for(mode: str) -> AdminAuth:
    if mode == "basic":
        return AdminAuth.basic(password=PASSWORD)
    if mode == "bearer":
        return AdminAuth.bearer(TOKEN)
    return AdminAuth.header(token=TOKEN)


@pytest.mark.parametrize("mode", ["basic", "bearer", "header"])
async def test_api_needs_the_right_credentials(make_admin: MakeAdmin, mode: str) -> None:
    admin = await make_admin(auth=auth_for(mode))
    for path in API_READS:
        missing = await admin.get(path, auth=False)
        assert missing.status == 401, (path, missing.body)
        assert missing.error["code"] == "unauthorized"
        assert "credentials" in missing.error["message"]
        assert_security_headers(missing)
        if mode == "basic":
            assert missing.headers["www-authenticate"].startswith('Basic realm="gw admin"')
        for wrong in WRONG_CREDENTIALS[mode]:
            reply = await admin.get(path, auth=False, headers=wrong)
            assert reply.status == 401, (path, wrong)
            assert reply.error["code"] == "unauthorized"
        right = await admin.get(path)
        assert right.status in (200, 404), (path, right.body)  # job 1 does not exist yet
    assert (await admin.get("/api/jobs/1")).error["code"] == "not_found"


async def test_basic_auth_protects_the_page_but_not_the_assets(admin: Admin) -> None:
    page = await admin.get("/", auth=False)
    assert page.status == 401
    assert page.headers["www-authenticate"] == 'Basic realm="gw admin", charset="UTF-8"'
    assert page.headers["content-type"].startswith("text/html")
    assert_security_headers(page)
    wrong = await admin.get("/", auth=False, headers=basic_header("admin", "nope"))
    assert wrong.status == 401
    assert (await admin.get("/")).status == 200
    for asset in ("/assets/admin.css", "/assets/admin.js", "/favicon.ico"):
        assert (await admin.get(asset, auth=False)).status == 200


@pytest.mark.parametrize("mode", ["bearer", "header"])
async def test_token_modes_serve_the_page_publicly(make_admin: MakeAdmin, mode: str) -> None:
    admin = await make_admin(auth=auth_for(mode))
    page = await admin.get("/", auth=False)
    assert page.status == 200
    text = page.body.decode()
    assert f'<meta name="gw-auth-mode" content="{mode}">' in text
    expected_header = "x-graphile-worker-admin-token" if mode == "header" else ""
    assert f'<meta name="gw-auth-header" content="{expected_header}">' in text
    assert TOKEN not in text


async def test_a_custom_header_name_is_used(make_admin: MakeAdmin) -> None:
    admin = await make_admin(auth=AdminAuth.header("X-Ops-Key", TOKEN))
    assert (await admin.get("/api/session", auth=False, headers={"X-Ops-Key": TOKEN})).status == 200
    refused = await admin.get(
        "/api/session", auth=False, headers={"x-graphile-worker-admin-token": TOKEN}
    )
    assert refused.status == 401
    session = (await admin.get("/api/session")).json
    assert session["auth"] == {"mode": "header", "username": None, "header_name": "x-ops-key"}


async def test_no_auth_mode_needs_nothing(make_admin: MakeAdmin) -> None:
    admin = await make_admin(auth=AdminAuth.none())
    for path in ["/", *API_READS[:-1]]:
        assert (await admin.get(path, auth=False)).status == 200
    session = (await admin.get("/api/session")).json
    assert session["auth"] == {"mode": "none", "username": None, "header_name": None}


async def test_writes_without_credentials_are_refused_and_change_nothing(
    make_admin: MakeAdmin, utils: gw.WorkerUtils
) -> None:
    await seed(utils)
    before = await snapshot(utils)
    for mode in ("basic", "bearer", "header"):
        admin = await make_admin(auth=auth_for(mode))
        for path, body in WRITES:
            reply = await admin.post(path, body, auth=False)
            assert reply.status == 401, (mode, path)
            assert reply.error["code"] == "unauthorized"
    assert await snapshot(utils) == before


# --------------------------------------------------------------------------- CSRF


@pytest.mark.parametrize(("path", "body"), WRITES, ids=WRITE_IDS)
async def test_every_write_needs_the_csrf_token(
    admin: Admin, utils: gw.WorkerUtils, path: str, body: Any
) -> None:
    await seed(utils)
    before = await snapshot(utils)
    missing = await admin.post(path, body, csrf=False)
    assert missing.status == 403
    assert missing.error["code"] == "csrf"
    assert "missing CSRF token" in missing.error["message"]
    assert_security_headers(missing)
    for wrong in ("", "nope", admin.csrf[:-1], admin.csrf + "x", admin.csrf.upper()):
        reply = await admin.post(
            path, body, csrf=False, headers={"x-graphile-worker-admin-csrf": wrong}
        )
        assert reply.status == 403, wrong
        assert reply.error["code"] == "csrf"
    assert await snapshot(utils) == before
    right = await admin.post(path, body)
    assert right.status in (200, 201), right.body


async def test_each_app_has_its_own_csrf_token(
    make_admin: MakeAdmin, utils: gw.WorkerUtils
) -> None:
    first = await make_admin()
    second = await make_admin()
    assert first.csrf
    assert second.csrf
    assert first.csrf != second.csrf
    page = (await first.get("/")).body.decode()
    assert f'<meta name="gw-csrf-token" content="{first.csrf}">' in page
    reply = await first.post(
        "/api/jobs",
        {"identifier": "x"},
        csrf=False,
        headers={"x-graphile-worker-admin-csrf": second.csrf},
    )
    assert reply.status == 403
    assert (await utils.list_jobs()).jobs == []


# --------------------------------------------------------------------------- read-only


async def test_read_only_refuses_every_write(make_admin: MakeAdmin, utils: gw.WorkerUtils) -> None:
    await seed(utils)
    admin = await make_admin(read_only=True)
    before = await snapshot(utils)
    for path, body in WRITES:
        for csrf in (True, False):
            reply = await admin.post(path, body, csrf=csrf)
            assert reply.status == 403, (path, body)
            assert reply.error["code"] == "read_only"
            assert "read-only" in reply.error["message"]
            assert_security_headers(reply)
    assert await snapshot(utils) == before
    # Reads still work and the page knows.
    assert (await admin.get("/api/jobs")).status == 200
    assert (await admin.get("/api/session")).json["read_only"] is True
    assert '<meta name="gw-read-only" content="true">' in (await admin.get("/")).body.decode()


# --------------------------------------------------------------------------- headers


async def test_headers_on_every_kind_of_response(admin: Admin, utils: gw.WorkerUtils) -> None:
    await seed(utils)
    cases: list[tuple[str, str, dict[str, Any], int, str, str]] = [
        ("GET", "/", {}, 200, "no-store", "text/html; charset=utf-8"),
        ("GET", "/assets/admin.css", {}, 200, "public, max-age=3600", "text/css; charset=utf-8"),
        (
            "GET",
            "/assets/admin.js",
            {},
            200,
            "public, max-age=3600",
            "text/javascript; charset=utf-8",
        ),
        ("GET", "/favicon.ico", {}, 200, "public, max-age=3600", "image/svg+xml"),
        ("GET", "/api/jobs", {}, 200, "no-store", "application/json"),
        ("GET", "/api/jobs/1", {}, 200, "no-store", "application/json"),
        ("GET", "/api/jobs", {"query": {"limit": "0"}}, 400, "no-store", "application/json"),
        ("GET", "/api/jobs/x", {}, 400, "no-store", "application/json"),
        ("GET", "/api/session", {"auth": False}, 401, "no-store", "application/json"),
        ("POST", "/api/jobs", {"csrf": False, "body": {}}, 403, "no-store", "application/json"),
        ("GET", "/api/jobs/999", {}, 404, "no-store", "application/json"),
        ("GET", "/nowhere", {}, 404, "no-store", "application/json"),
        ("GET", "/api/jobs//1", {}, 404, "no-store", "application/json"),
        ("GET", "/api//session", {}, 404, "no-store", "application/json"),
        ("GET", "/assets/missing.css", {}, 404, "no-store", "application/json"),
        ("GET", "/api/maintenance", {}, 405, "no-store", "application/json"),
        ("GET", "/api/jobs/cancel", {}, 405, "no-store", "application/json"),
        ("GET", "/api/limits", {}, 200, "no-store", "application/json"),
        ("POST", "/api/jobs/cancel", {"body": {"ids": []}}, 422, "no-store", "application/json"),
        ("DELETE", "/api/jobs", {}, 405, "no-store", "application/json"),
        ("POST", "/api/jobs", {"body": {}}, 422, "no-store", "application/json"),
        ("POST", "/api/jobs", {"raw": b"{"}, 400, "no-store", "application/json"),
        ("HEAD", "/assets/admin.css", {}, 200, "public, max-age=3600", "text/css; charset=utf-8"),
    ]
    for method, path, kwargs, status, cache, content_type in cases:
        reply = await admin.request(method, path, **kwargs)
        assert reply.status == status, (method, path, reply.body)
        assert_security_headers(reply, cache)
        assert reply.headers["content-type"] == content_type, (method, path)
        if status >= 400 and method != "HEAD":
            assert reply.error["code"]
    allowed = (await admin.get("/api/maintenance")).headers["allow"]
    assert "POST" in allowed


async def test_payload_too_large_is_a_json_413(admin: Admin, utils: gw.WorkerUtils) -> None:
    body = b'{"identifier": "x", "payload": "' + b"a" * (1024 * 1024) + b'"}'
    reply = await admin.post("/api/jobs", raw=body)
    assert reply.status == 413
    assert reply.error["code"] == "payload_too_large"
    assert_security_headers(reply)
    assert (await utils.list_jobs()).jobs == []


async def test_page_values_are_html_escaped(make_admin: MakeAdmin, utils: gw.WorkerUtils) -> None:
    odd = gw.WorkerUtils(utils.pool, schema='gw"<script>')
    admin = await make_admin(target=odd)
    page = (await admin.get("/")).body.decode()
    assert "<script>" not in page.replace('<script src="/assets/admin.js" defer></script>', "")
    assert '<meta name="gw-schema" content="gw&quot;&lt;script&gt;">' in page
    assert "{{" not in page


async def test_database_unreachable_is_a_503(make_admin: MakeAdmin) -> None:
    down = gw.WorkerUtils(open_pool("postgresql://postgres@127.0.0.1:1/none", max_size=1))
    admin = await make_admin(target=down)
    assert (await admin.get("/")).status == 200
    for method, path, body in [
        ("GET", "/api/overview", None),
        ("GET", "/api/jobs", None),
        ("GET", "/api/jobs/1", None),
        ("POST", "/api/jobs", {"identifier": "x"}),
        ("POST", "/api/jobs/action", {"action": "complete", "ids": [1]}),
        ("POST", "/api/jobs/cancel", {"ids": [1], "reason": "x"}),
        ("GET", "/api/limits", None),
        ("GET", "/api/history", None),
        ("GET", "/api/history/stats", None),
        ("POST", "/api/maintenance", {"action": "cleanup"}),
        ("POST", "/api/maintenance", {"action": "sweep-stale-workers", "dry_run": True}),
    ]:
        reply = await admin.request(method, path, body=body)
        assert reply.status == 503, (path, reply.body)
        assert reply.error["code"] == "database"
        assert "could not connect to PostgreSQL" in reply.error["message"]
        assert_security_headers(reply)
