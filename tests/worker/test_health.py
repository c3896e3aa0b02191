"""gw worker --health: /livez and /readyz over plain HTTP on the worker's loop."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import httpx
import pytest

import gw
from gw.testing import running, wait_for
from tests.worker.test_worker import make_worker


async def get(address: str, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        return await client.request(method, path)


async def raw(address: str, data: bytes) -> bytes:
    host, _, port = address.rpartition(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(data)
        out = b""
        try:
            while True:
                out += await stream.receive()
        except anyio.EndOfStream:
            return out


async def test_probes_answer_and_readiness_ends_with_shutdown(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    started = anyio.Event()
    release = anyio.Event()

    @gw.task("hold")
    async def hold(payload: Any) -> None:
        started.set()
        await release.wait()

    worker = make_worker(db_url, [hold], health="127.0.0.1:0")
    async with running(worker):
        address = worker.health_address
        assert address is not None
        assert address.startswith("127.0.0.1:")
        live = await get(address, "/livez")
        assert live.status_code == 200
        assert live.headers["content-type"] == "application/json"
        assert live.json()["status"] == "ok"
        assert live.json()["loop_lag_ms"] >= 0
        await wait_for(lambda: worker._health.listening is True, message="LISTEN to connect")
        ready = await get(address, "/readyz")
        assert (ready.status_code, ready.json()) == (
            200,
            {"database": "ok", "listen": "ok", "status": "ok"},
        )
        assert (await get(address, "/readyz", "HEAD")).content == b""
        missing = await get(address, "/metrics")
        assert (missing.status_code, missing.json()["paths"]) == (404, ["/livez", "/readyz"])
        assert (await get(address, "/livez", "POST")).status_code == 405
        assert (await raw(address, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400 ")

        # Shutting down (a job still running): alive, no longer ready.
        await utils.add_job(hold, {})
        await started.wait()
        worker.shutdown("test")
        draining = await get(address, "/readyz")
        assert draining.status_code == 503
        assert draining.json()["worker"] == "shutting down"
        assert (await get(address, "/livez")).status_code == 200
        release.set()


async def test_readiness_reports_a_listen_connection_that_fails(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("noop")
    async def noop(payload: Any) -> None:
        pass

    worker = make_worker(
        db_url,
        [noop],
        health="127.0.0.1:0",
        listen_database_url="postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
    )
    async with running(worker):
        assert worker.health_address is not None
        await wait_for(lambda: worker._health.listen_error is not None, message="LISTEN to fail")
        reply = await get(worker.health_address, "/readyz")
        assert reply.status_code == 503
        body = reply.json()
        assert (body["status"], body["database"]) == ("unavailable", "ok")
        assert body["listen"] != "ok"


def test_bad_health_addresses_are_refused() -> None:
    with pytest.raises(
        gw.ConfigurationError, match=r"^invalid health address 'nope': expected host:port"
    ):
        gw.Worker([], health="nope")
    result = subprocess.run(
        [sys.executable, "-m", "gw", "worker", "--tasks", "examples.tasks", "--health", "x:99999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("gw: error: invalid health address 'x:99999'")
