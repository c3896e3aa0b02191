"""Scenarios for the trio-asyncio bridge tests, each run in a fresh process:
importing trio-asyncio changes asyncio's event loop policy for the whole
process, which must not leak into the other tests.

    python tests/worker/bridge_app.py SCENARIO BACKEND DATABASE_URL
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
from typing import Any

import anyio
import sniffio
from psycopg.conninfo import conninfo_to_dict

import gw

# PostgreSQL's SSLRequest: length 8, code 80877103. The server answers one byte.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


async def ask_postgres_about_ssl(db_url: str) -> bytes:
    """Talk to the test PostgreSQL over asyncio streams (an asyncio-only API)."""
    params = conninfo_to_dict(db_url)
    host = str(params.get("host") or "localhost")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        reader, writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
    else:
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(SSL_REQUEST)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(1), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


def make_worker(url: str, tasks: list[Any]) -> gw.Worker:
    return gw.Worker(
        tasks,
        database_url=url,
        concurrency=4,
        migrate=False,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
    )


async def asyncio_code(url: str) -> dict[str, Any]:
    seen: list[Any] = []

    @gw.task("aio", loop="asyncio")
    async def aio(payload: dict[str, int], ctx: gw.JobContext) -> None:
        loop = asyncio.get_running_loop()
        doubled = await loop.run_in_executor(None, lambda: payload["n"] * 2)
        answer = await ask_postgres_about_ssl(url)
        seen.append([sniffio.current_async_library(), doubled, answer.decode(), ctx.job.attempts])

    @gw.task("native")
    async def native(payload: Any) -> None:
        seen.append([sniffio.current_async_library()])

    async with gw.WorkerUtils.connect(url, migrate=False) as utils:
        await utils.add_job(aio, {"n": 21})
        await utils.add_job(native, {})
    processed = await make_worker(url, [aio, native]).run_once()
    return {"processed": processed, "seen": sorted(seen, key=len)}


async def timeout(url: str) -> dict[str, Any]:
    cancelled: list[bool] = []

    @gw.task("stuck", loop="asyncio", timeout=0.2, max_attempts=1)
    async def stuck(payload: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    @gw.task("aio_fail", loop="asyncio")
    async def aio_fail(payload: Any) -> None:
        await asyncio.sleep(0)
        raise gw.PermanentFailure("asyncio says no")

    async with gw.WorkerUtils.connect(url, migrate=False) as utils:
        a = await utils.add_job(stuck, {})
        b = await utils.add_job(aio_fail, {})
        processed = await make_worker(url, [stuck, aio_fail]).run_once()
        errors = {}
        for job in (a, b):
            row = await utils.get_job(job.id)
            assert row is not None
            errors[job.task_identifier] = [row.attempts, row.last_error]
    return {"processed": processed, "cancelled": cancelled, "errors": errors}


SCENARIOS = {"asyncio_code": asyncio_code, "timeout": timeout}

if __name__ == "__main__":
    scenario, backend, url = sys.argv[1:]
    print(json.dumps(anyio.run(SCENARIOS[scenario], url, backend=backend)))
