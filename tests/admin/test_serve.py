"""The real server: hypercorn on port 0, real HTTP, shutdown by trigger or cancellation,
and running next to a gw Worker in one task group."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import httpx
import pytest

import gw
from gw.admin import CSRF_HEADER, AdminAuth, AdminServerConfig, serve
from gw.testing import running

from .conftest import PASSWORD, SECURITY_HEADERS


def refuses_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


async def test_serves_http_on_port_0(utils: gw.WorkerUtils) -> None:
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.basic(password=PASSWORD))
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        address: str = await tg.start(lambda task_status: serve(
            config, task_status=task_status, shutdown_trigger=stop
        ))  # fmt: skip
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0
        base = f"http://{address}"
        async with httpx.AsyncClient(base_url=base) as client:
            refused = await client.get("/")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic")
            client.auth = ("admin", PASSWORD)
            page = await client.get("/")
            assert page.status_code == 200
            for name, value in SECURITY_HEADERS.items():
                assert page.headers[name] == value
            assert page.headers["cache-control"] == "no-store"
            assert "server" not in page.headers
            asset = await client.get("/assets/admin.js")
            assert asset.headers["cache-control"] == "public, max-age=3600"
            session = (await client.get("/api/session")).json()
            added = await client.post(
                "/api/jobs",
                json={"identifier": "over_http", "payload": {"n": 1}},
                headers={CSRF_HEADER: session["csrf_token"]},
            )
            assert added.status_code == 201
            job = await utils.get_job(added.json()["job"]["id"])
            assert job is not None
            assert job.task_identifier == "over_http"
            missing = await client.get("/api/nope")
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
        stop.set()
    # serve returned by itself once the trigger was set, and let go of the port.
    assert refuses_connections(address)


async def test_cancelling_the_task_group_stops_the_server(utils: gw.WorkerUtils) -> None:
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.none())
    async with anyio.create_task_group() as tg:
        address = await tg.start(serve, config)
        async with httpx.AsyncClient() as client:
            # An idle keep-alive connection must not hold the shutdown up.
            assert (await client.get(f"http://{address}/api/session")).status_code == 200
            tg.cancel_scope.cancel()
    assert refuses_connections(address)


async def test_listen_port_in_use_is_an_error(utils: gw.WorkerUtils) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = AdminServerConfig(utils, listen=f"127.0.0.1:{port}", auth=AdminAuth.none())
        with pytest.raises(OSError, match="in use"):
            await serve(config)


async def test_runs_next_to_a_worker(db_url: str, utils: gw.WorkerUtils) -> None:
    done = anyio.Event()
    seen: list[Any] = []

    async def greet(payload: Any) -> None:
        seen.append(payload)
        done.set()

    worker = gw.Worker({"greet": greet}, database_url=db_url, concurrency=1, migrate=False)
    config = AdminServerConfig(utils, listen="127.0.0.1:0", auth=AdminAuth.bearer("tok"))
    async with running(worker), anyio.create_task_group() as tg:
        address = await tg.start(serve, config)
        async with httpx.AsyncClient(
            base_url=f"http://{address}", headers={"Authorization": "Bearer tok"}
        ) as client:
            csrf = (await client.get("/api/session")).json()["csrf_token"]
            reply = await client.post(
                "/api/jobs", json={"identifier": "greet", "payload": {"hi": 1}},
                headers={CSRF_HEADER: csrf},
            )  # fmt: skip
            assert reply.status_code == 201
        with anyio.fail_after(20):
            await done.wait()
        tg.cancel_scope.cancel()
    assert seen == [{"hi": 1}]
