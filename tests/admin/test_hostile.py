"""Hostile HTTP: split writes on kept-alive connections, bodies that are not
UTF-8, over-deep payloads, and pages that rebind their DNS name to loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import h11
import httpx
import msgspec
import pytest

import gw
from gw.admin import AdminAuth, AdminServerConfig, serve

from .conftest import PASSWORD, basic_header, snapshot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from .conftest import Admin

AUTH = basic_header("admin", PASSWORD)


class Connection:
    """One kept-alive HTTP/1.1 connection, driven by h11, that can split its writes."""

    def __init__(self, stream: Any, host: str) -> None:
        self.stream = stream
        self.host = host
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, event: Any) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send(data)

    async def head(self, method: str, path: str, headers: dict[str, str], length: int) -> None:
        all_headers = {"Host": self.host, **headers}
        if method != "GET":
            all_headers["Content-Length"] = str(length)
        await self.send(h11.Request(method=method, target=path, headers=list(all_headers.items())))

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = 0, {}, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive(65536)
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body

    async def exchange_split(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the head, give the server a moment to answer early, then the body."""
        await self.head(method, path, headers, len(body))
        early: tuple[int, dict[str, str], bytes] | None = None
        with anyio.move_on_after(0.3):  # a slow client: the body comes later
            early = await self.response()
        await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())
        return early if early is not None else await self.response()

    def next_request(self) -> bool:
        """Ready for another request on this connection (False: the server closes it)."""
        if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            return False
        self.conn.start_next_cycle()
        return True


@pytest.fixture
async def server(utils: gw.WorkerUtils) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start real admin servers (hypercorn) on port 0; yields a starter."""
    async with anyio.create_task_group() as tg:

        async def start(**options: Any) -> str:
            options.setdefault("auth", AdminAuth.basic(password=PASSWORD))
            config = AdminServerConfig(utils, listen="127.0.0.1:0", **options)
            address: str = await tg.start(
                lambda task_status: serve(config, task_status=task_status)
            )
            return address

        yield start
        tg.cancel_scope.cancel()


EARLY_REFUSALS = {
    # name: (path, headers without the base auth, expected status, expected code)
    "no credentials": ("/api/jobs", {}, 401, "unauthorized"),
    "no csrf token": ("/api/jobs", AUTH, 403, "csrf"),
    "unknown route": ("/api/nowhere", AUTH, 404, "not_found"),
}


@pytest.mark.parametrize("case", EARLY_REFUSALS)
async def test_a_refusal_keeps_a_split_write_connection_in_step(
    server: Callable[..., Awaitable[str]], utils: gw.WorkerUtils, case: str
) -> None:
    address = await server()
    path, headers, status, code = EARLY_REFUSALS[case]
    before = await snapshot(utils)
    body = msgspec.json.encode({"identifier": "sneaky", "payload": {"x": 1}})
    with anyio.fail_after(15):
        host, port = address.rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as stream:
            conn = Connection(stream, address)
            for _ in range(3):  # the same refusal, again and again, on one connection
                got, _, reply = await conn.exchange_split(
                    "POST", path, {"Content-Type": "application/json", **headers}, body
                )
                assert got == status
                assert msgspec.json.decode(reply)["error"]["code"] == code
                assert conn.next_request()
            # ...and the connection still serves a proper request afterwards.
            await conn.head("GET", "/api/session", AUTH, 0)
            await conn.send(h11.EndOfMessage())
            got, _, reply = await conn.response()
            assert got == 200
            assert "csrf_token" in msgspec.json.decode(reply)
    assert await snapshot(utils) == before


async def test_a_refused_oversized_body_closes_the_connection(
    server: Callable[..., Awaitable[str]], utils: gw.WorkerUtils
) -> None:
    address = await server()
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    with anyio.fail_after(15):
        host, port = address.rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as stream:
            conn = Connection(stream, address)
            await conn.head("POST", "/api/jobs", {"Content-Type": "application/json"}, len(body))
            try:
                await conn.send(h11.Data(data=body))
                await conn.send(h11.EndOfMessage())
            except (anyio.BrokenResourceError, OSError):
                pass  # the server may close before it took the whole body
            got, headers, _ = await conn.response()
    assert got in (401, 413)
    assert headers.get("connection", "").lower() == "close"


async def test_many_refused_posts_on_one_httpx_client_all_get_answers(
    server: Callable[..., Awaitable[str]],
) -> None:
    address = await server()
    # httpx sends headers and body in separate writes, on a kept-alive connection.
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        with anyio.fail_after(30):
            for _ in range(60):
                reply = await client.post("/api/jobs", json={"identifier": "x"})
                assert reply.status_code == 401


# --------------------------------------------------------------------------- bodies


async def test_invalid_utf8_inside_a_json_string_is_a_400(admin: Admin) -> None:
    before = await snapshot(admin.utils)
    reply = await admin.post("/api/jobs", raw=b'{"identifier": "caf\xe9", "payload": {}}')
    assert reply.status == 400
    assert reply.error == {
        "code": "validation",
        "message": "the request body is not valid UTF-8 JSON",
        "field": "body",
    }
    assert await snapshot(admin.utils) == before


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


async def test_payload_nesting_limit_is_64_levels(admin: Admin) -> None:
    accepted = await admin.post("/api/jobs", {"identifier": "deep", "payload": _nested(64)})
    assert accepted.status == 201, accepted.body
    before = await snapshot(admin.utils)
    refused = await admin.post("/api/jobs", {"identifier": "deep", "payload": _nested(65)})
    assert refused.status == 422
    assert refused.error == {
        "code": "validation",
        "message": "payload is nested more than 64 levels deep",
        "field": "payload",
    }
    objects = {"a": {"b": _nested(63)}}  # 2 objects + 63 arrays = 65 levels
    assert (await admin.post("/api/jobs", {"identifier": "deep", "payload": objects})).status == 422
    assert await snapshot(admin.utils) == before


# --------------------------------------------------------------------------- history queries

HOSTILE_HISTORY_QUERIES = [
    # (query string as sent on the wire, the status it gets)
    ("/api/history?task=%ff%fe%fd", 200),  # not UTF-8: read as U+FFFD, matches nothing
    ("/api/history?task=%27%20or%201%3D1%20--", 200),  # a bound parameter, not SQL
    ("/api/history?queue=%00", 400),
    ("/api/history?outcome=completed%00", 400),
    ("/api/history?limit=" + "9" * 5000, 400),
    ("/api/history?before_id=1e9", 400),
    ("/api/history?since=2026-01-01T00:00:00%2B99:99", 400),
    ("/api/history?job_id=1&job_id=x", 200),  # the first of a repeated parameter
    ("/api/history/stats?range=1h&range=junk", 200),
    ("/api/history/stats?range=3660d&bucket=1", 400),
    ("/api/history/stats?since=9999-12-31T23:59:59.999999-14:00", 400),
    ("/api/history/stats?until=9999-12-31T23:59:59.999999%2B14:00", 200),
    ("/api/history/stats?task=" + "%e2%80%ae" * 300, 200),  # right-to-left overrides
    ("/api/history/stats?bucket=999999999.999999&range=1m", 400),
    ("/api/history/stats?bucket=3660d&range=1m", 200),
]


async def test_hostile_history_queries_get_clear_answers_on_one_connection(
    server: Callable[..., Awaitable[str]], utils: gw.WorkerUtils
) -> None:
    address = await server()
    before = await snapshot(utils)
    with anyio.fail_after(30):
        host, port = address.rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as stream:
            conn = Connection(stream, address)
            for target, status in HOSTILE_HISTORY_QUERIES:
                await conn.head("GET", target, AUTH, 0)
                await conn.send(h11.EndOfMessage())
                got, headers, reply = await conn.response()
                assert (got, headers["content-type"]) == (status, "application/json"), (
                    target,
                    reply,
                )
                if got == 400:
                    error = msgspec.json.decode(reply)["error"]
                    assert error["code"] == "validation"
                    assert error["field"] in target, (target, error)
                assert conn.next_request(), target
    assert await snapshot(utils) == before


# --------------------------------------------------------------------------- host and origin

AUTH_MODES = {
    "none": AdminAuth.none(),
    "basic": AdminAuth.basic(password=PASSWORD),
    "bearer": AdminAuth.bearer(token="t0ken-for-tests"),
}


@pytest.mark.parametrize("mode", AUTH_MODES)
async def test_a_rebinding_page_gets_nothing(
    make_admin: Callable[..., Awaitable[Admin]], mode: str
) -> None:
    admin = await make_admin(auth=AUTH_MODES[mode])
    before = await snapshot(admin.utils)
    evil = {"Host": "attacker.example", "Origin": "http://attacker.example"}
    page = await admin.get("/", headers=evil)
    assert page.status == 403
    assert admin.csrf.encode() not in page.body
    session = await admin.get("/api/session", headers=evil)
    assert session.status == 403
    assert session.error["code"] == "host"
    assert "--allowed-host" in session.error["message"]
    added = await admin.post("/api/jobs", {"identifier": "pwned"}, headers=evil)
    assert added.status == 403
    assert added.error["code"] == "host"
    assert await snapshot(admin.utils) == before


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:5678", "127.0.0.1:4000", "[::1]:4000", "gw.localhost:80"]
)
async def test_loopback_hosts_are_served(
    make_admin: Callable[..., Awaitable[Admin]], host: str
) -> None:
    admin = await make_admin(auth=AdminAuth.none())
    reply = await admin.get("/api/session", headers={"Host": host})
    assert reply.status == 200
    added = await admin.post(
        "/api/jobs", {"identifier": "ok"}, headers={"Host": host, "Origin": f"http://{host}"}
    )
    assert added.status == 201, added.body


async def test_a_configured_public_name_is_served(utils: gw.WorkerUtils) -> None:
    from gw.admin import create_app

    config = AdminServerConfig(
        utils,
        listen="0.0.0.0:5678",
        auth=AdminAuth.basic(password=PASSWORD),
        allowed_hosts=("Admin.Example.COM",),
    )
    client = create_app(config).test_client()
    ok = await client.get("/api/session", headers={**AUTH, "Host": "admin.example.com:443"})
    assert ok.status_code == 200
    other = await client.get("/api/session", headers={**AUTH, "Host": "other.example.com"})
    assert other.status_code == 403
    with pytest.raises(gw.ConfigurationError, match="invalid allowed host 'https://x'"):
        AdminServerConfig(utils, allowed_hosts=("https://x",))


@pytest.mark.parametrize(
    ("origin_headers", "message"),
    [
        ({"Origin": "http://evil.example"}, "writes from 'http://evil.example' are refused"),
        ({"Origin": "null"}, "cross-site writes are refused"),
        ({"Origin": "http://localhost:9999"}, "only this server's page may write"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site writes are refused"),
    ],
)
async def test_writes_from_another_origin_are_refused(
    admin: Admin, origin_headers: dict[str, str], message: str
) -> None:
    before = await snapshot(admin.utils)
    reply = await admin.post(
        "/api/jobs", {"identifier": "x"}, headers={"Host": "localhost:5678", **origin_headers}
    )
    assert reply.status == 403
    assert reply.error["code"] == "origin"
    assert message in reply.error["message"]
    assert await snapshot(admin.utils) == before
    # A same-origin write (the admin page's own) still works.
    ok = await admin.post(
        "/api/jobs",
        {"identifier": "x"},
        headers={"Host": "localhost:5678", "Origin": "http://localhost:5678"},
    )
    assert ok.status == 201


async def test_a_cross_site_cancel_is_refused(admin: Admin, utils: gw.WorkerUtils) -> None:
    job = await utils.add_raw_job("email", {"to": "a@b.c"})
    before = await snapshot(utils)
    for origin_headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        reply = await admin.post(
            "/api/jobs/cancel",
            {"ids": [job.id], "reason": "pwned"},
            headers={"Host": "localhost:5678", **origin_headers},
        )
        assert reply.status == 403, reply.body
        assert reply.error["code"] == "origin"
    assert await snapshot(utils) == before
    ok = await admin.post(
        "/api/jobs/cancel",
        {"ids": [job.id]},
        headers={"Host": "localhost:5678", "Origin": "http://localhost:5678"},
    )
    assert ok.status == 200, ok.body
    assert ok.json["results"][0]["outcome"] == "cancelled"
