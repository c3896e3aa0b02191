"""Fixtures for the admin tests: a WorkerUtils on a fresh database, and an
``Admin`` harness around the app's test client (Quart under asyncio, QuartTrio
under trio) that knows the credentials and the CSRF token."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

import gw
from gw.admin import CSRF_HEADER, AdminAuth, AdminServerConfig, create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

PASSWORD = "correct horse"
TOKEN = "t0ken-for-tests"

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def basic_header(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def credentials_for(auth: AdminAuth) -> dict[str, str]:
    """The headers that authenticate against ``auth``."""
    if auth.mode == "basic":
        return basic_header(auth.username, auth.secret or "")
    if auth.mode == "bearer":
        return {"Authorization": f"Bearer {auth.secret}"}
    if auth.mode == "header":
        return {auth.header_name: auth.secret or ""}
    return {}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def error(self) -> dict[str, Any]:
        err = self.json["error"]
        assert isinstance(err, dict)
        return err


@dataclass
class Admin:
    """An admin app plus a test client that signs requests like the page does."""

    utils: gw.WorkerUtils
    config: AdminServerConfig
    app: Any
    client: Any
    csrf: str = ""
    auth_headers: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        csrf: bool = True,
        query: dict[str, Any] | None = None,
    ) -> Reply:
        sent: dict[str, str] = {"Accept": "application/json"}
        if auth:
            sent.update(self.auth_headers)
        if csrf and method not in ("GET", "HEAD", "OPTIONS"):
            sent[CSRF_HEADER] = self.csrf
        if body is not None or raw is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        data = raw if raw is not None else (msgspec.json.encode(body) if body is not None else None)
        response = await self.client.open(
            path, method=method, headers=sent, data=data, query_string=query
        )
        return Reply(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=await response.get_data(),
        )

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, body=body, **kwargs)


@pytest.fixture
async def utils(db_url: str) -> AsyncIterator[gw.WorkerUtils]:
    async with gw.WorkerUtils.connect(db_url, migrate=False, max_pg_conn=4) as u:
        yield u


@pytest.fixture
def make_admin(utils: gw.WorkerUtils) -> Callable[..., Awaitable[Admin]]:
    async def make(
        auth: AdminAuth | None = None,
        read_only: bool = False,
        listen: str = "127.0.0.1:4000",
        target: gw.WorkerUtils | None = None,
    ) -> Admin:
        config = AdminServerConfig(
            target or utils,
            listen=listen,
            auth=auth or AdminAuth.basic(password=PASSWORD),
            read_only=read_only,
        )
        app = create_app(config)
        admin = Admin(
            utils=target or utils,
            config=config,
            app=app,
            client=app.test_client(),
            auth_headers=credentials_for(config.auth),
        )
        session = await admin.get("/api/session")
        assert session.status == 200, session.body
        admin.csrf = session.json["csrf_token"]
        return admin

    return make


@pytest.fixture
async def admin(make_admin: Callable[..., Awaitable[Admin]]) -> Admin:
    return await make_admin()


async def snapshot(utils: gw.WorkerUtils) -> list[Any]:
    """Everything an admin write could change, to prove a refused write changed nothing."""
    schema = utils.schema
    rows: list[Any] = []
    for table, order in (
        ("_private_jobs", "id"),
        ("_private_job_queues", "id"),
        ("_private_tasks", "id"),
        ("_private_workers", "id"),
        # gw's own tables: cancel requests and fleet-wide limits.
        ("_private_gw_cancel_requests", "job_id"),
        ("_private_gw_limits", "key"),
        ("_private_gw_slots", "key, job_id"),
    ):
        rows.append(
            await utils.pool.fetch(
                f'select row_to_json(t)::text as r from "{schema}".{table} t order by {order}'
            )
        )
    return rows
