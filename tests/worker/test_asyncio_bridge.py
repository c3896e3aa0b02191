"""Tasks declared with loop="asyncio" run asyncio-only code on either worker loop
(through trio-asyncio on trio)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
import sniffio
from psycopg.conninfo import conninfo_to_dict

import gw
from tests.worker.test_worker import make_worker, rows

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


async def test_asyncio_only_code_runs_in_an_asyncio_task(
    db_url: str, utils: gw.WorkerUtils, anyio_backend: str
) -> None:
    seen: list[Any] = []

    @gw.task("aio", loop="asyncio")
    async def aio(payload: dict[str, int], ctx: gw.JobContext) -> None:
        loop = asyncio.get_running_loop()
        doubled = await loop.run_in_executor(None, lambda: payload["n"] * 2)
        answer = await ask_postgres_about_ssl(db_url)
        seen.append((sniffio.current_async_library(), doubled, answer, ctx.job.attempts))

    @gw.task("native")
    async def native(payload: Any) -> None:
        seen.append((sniffio.current_async_library(),))

    await utils.add_job(aio, {"n": 21})
    await utils.add_job(native, {})
    assert await make_worker(db_url, [aio, native]).run_once() == 2
    assert sorted(seen, key=len) == [(anyio_backend,), ("asyncio", 42, b"N", 1)]


async def test_timeouts_cancel_the_asyncio_handler(db_url: str, utils: gw.WorkerUtils) -> None:
    cancelled: list[bool] = []

    @gw.task("stuck", loop="asyncio", timeout=0.2, max_attempts=1)
    async def stuck(payload: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    job = await utils.add_job(stuck, {})
    assert await make_worker(db_url, [stuck]).run_once() == 1
    assert cancelled == [True]
    ((attempts, error),) = await rows(
        db_url,
        "select attempts, last_error from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, error) == (1, "timed out after 0.2 s")


async def test_errors_and_policies_apply_as_for_any_task(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    @gw.task("aio_fail", loop="asyncio")
    async def aio_fail(payload: Any) -> None:
        await asyncio.sleep(0)
        raise gw.PermanentFailure("asyncio says no")

    job = await utils.add_job(aio_fail, {})
    assert await make_worker(db_url, [aio_fail]).run_once() == 1
    ((attempts, error),) = await rows(
        db_url,
        "select attempts, last_error from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, error) == (25, "asyncio says no")


def test_loop_option_is_checked() -> None:
    with pytest.raises(gw.ConfigurationError, match=r"^task 'x': loop='asyncio' is for async"):
        gw.task("x", loop="asyncio")(lambda payload: None)
    with pytest.raises(gw.ConfigurationError, match=r"^task 'y': loop must be 'asyncio' or None"):

        async def y(payload: Any) -> None:
            pass

        gw.task("y", loop="uvloop")(y)  # type: ignore[typeddict-item]
