"""Fuzz the admin server over real HTTP: bodies from the OpenAPI schemas with
raw byte mutations (invalid UTF-8, NUL, truncation), written in two pieces at
a random point, with and without credentials and CSRF token.

Properties: never a 5xx; a request without credentials or without the right
CSRF token is refused and changes nothing; the connection stays usable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import h11
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from gw.admin import CSRF_HEADER, AdminAuth, AdminServerConfig, serve
from tests.admin.conftest import PASSWORD, basic_header, snapshot
from tests.admin.test_fuzz import write_requests
from tests.admin.test_hostile import Connection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import gw

pytestmark = pytest.mark.faults

AUTH = basic_header("admin", PASSWORD)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes, int]:
    """A write request: path, body with byte mutations, and where to split it."""
    path, raw = draw(write_requests())
    body = bytearray(raw)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(body)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b'"', b"\\"]))
        body[position:position] = junk
    split = draw(st.integers(0, len(body)))
    return path, bytes(body), split


@pytest.fixture
async def address(utils: gw.WorkerUtils) -> AsyncIterator[str]:
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    async with anyio.create_task_group() as tg:
        bound: str = await tg.start(lambda task_status: serve(config, task_status=task_status))
        yield bound
        tg.cancel_scope.cancel()


async def _session(conn: Connection) -> str:
    await conn.head("GET", "/api/session", AUTH, 0)
    await conn.send(h11.EndOfMessage())
    status, _, body = await conn.response()
    assert status == 200
    token = msgspec.json.decode(body)["csrf_token"]
    assert conn.next_request()
    return str(token)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=mutated(), with_auth=st.booleans(), with_csrf=st.booleans())
async def test_split_mutated_writes_never_5xx_and_never_write_unauthorised(
    address: str,
    utils: gw.WorkerUtils,
    request: tuple[str, bytes, int],
    with_auth: bool,
    with_csrf: bool,
) -> None:
    path, body, split = request
    before = await snapshot(utils)
    host, port = address.rsplit(":", 1)
    with anyio.fail_after(20):
        async with await anyio.connect_tcp(host, int(port)) as stream:
            conn = Connection(stream, address)
            token = await _session(conn)
            headers: dict[str, Any] = {"Content-Type": "application/json"}
            if with_auth:
                headers.update(AUTH)
            if with_csrf:
                headers[CSRF_HEADER] = token
            await conn.head("POST", path, headers, len(body))
            await conn.send(h11.Data(data=body[:split]))
            await conn.send(h11.Data(data=body[split:]))
            await conn.send(h11.EndOfMessage())
            status, _, _ = await conn.response()
            event(
                f"{'auth' if with_auth else 'no auth'}, {'csrf' if with_csrf else 'no csrf'}: "
                f"{status}"
            )
            assert status < 500, (path, body)
            if not (with_auth and with_csrf):
                assert status in (401, 403), (path, body, status)
                assert await snapshot(utils) == before
            else:
                assert status in (200, 201, 400, 404, 409, 422), (path, body, status)
            # The connection is still in step: another request gets its answer.
            if conn.next_request():
                await _session(conn)
