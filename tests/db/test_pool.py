from __future__ import annotations

from typing import Any

import anyio
import pytest

from gw.db.connection import connect
from gw.db.pool import Pool
from gw.errors import PoolClosed, PoolTimeout
from tests.helpers import wait_until


async def test_thousand_concurrent_queries_through_five_connections(db_url: str) -> None:
    results: dict[int, int] = {}
    peak = 0
    async with Pool(
        db_url, max_size=5, connect_kwargs={"application_name": "gw-pool-test"}
    ) as pool:

        async def one(i: int) -> None:
            nonlocal peak
            async with pool.connection() as conn:
                peak = max(peak, pool.stats()["in_use"])
                cur = await conn.execute("select %s::int * 3", (i,))
                row = await cur.fetchone()
                assert row is not None
                results[i] = row[0]

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(one, i)

        assert results == {i: i * 3 for i in range(1000)}
        assert pool.stats()["open"] <= 5
        assert peak == 5
        rows = await pool.fetch(
            "select count(*) as n from pg_stat_activity where application_name = 'gw-pool-test'"
        )
        assert rows[0]["n"] <= 5


async def test_cancelled_query_is_cancelled_on_server_and_pool_stays_usable(db_url: str) -> None:
    async with Pool(db_url, max_size=1) as pool, await connect(db_url) as admin:
        pids: list[int] = []
        async with anyio.create_task_group() as tg:

            async def long_query() -> None:
                async with pool.connection() as conn:
                    pids.append(conn.info.backend_pid)
                    await conn.execute("select pg_sleep(60)")

            tg.start_soon(long_query)

            async def running() -> bool:
                cur = await admin.execute(
                    "select count(*) from pg_stat_activity"
                    " where query = 'select pg_sleep(60)' and state = 'active'"
                )
                row = await cur.fetchone()
                return row is not None and row[0] == 1

            await wait_until(running)
            tg.cancel_scope.cancel()

        assert not await running()
        # The one connection came back healthy and is reused.
        async with pool.connection() as conn:
            assert conn.info.backend_pid == pids[0]
            cur = await conn.execute("select 1")
            assert await cur.fetchone() == (1,)
        assert pool.stats()["open"] == 1


async def test_open_transaction_is_rolled_back_on_return(db_url: str) -> None:
    async with Pool(db_url, max_size=1) as pool:
        await pool.execute("create table t (x int)")
        with pytest.raises(RuntimeError):
            async with pool.connection() as conn:
                await conn.execute("begin")
                await conn.execute("insert into t values (1)")
                raise RuntimeError("boom")
        async with pool.connection() as conn:
            assert conn.info.transaction_status.name == "IDLE"
            cur = await conn.execute("select count(*) from t")
            assert await cur.fetchone() == (0,)


async def test_broken_connection_is_discarded(db_url: str) -> None:
    async with Pool(db_url, max_size=2) as pool, await connect(db_url) as admin:
        async with pool.connection() as conn:
            old_pid = conn.info.backend_pid
        await admin.execute("select pg_terminate_backend(%s)", (old_pid,))

        async def gone() -> bool:
            cur = await admin.execute(
                "select count(*) from pg_stat_activity where pid = %s", (old_pid,)
            )
            row = await cur.fetchone()
            return row is not None and row[0] == 0

        await wait_until(gone)
        async with pool.connection() as conn:
            assert conn.info.backend_pid != old_pid
            cur = await conn.execute("select 5")
            assert await cur.fetchone() == (5,)
        assert pool.stats()["open"] == 1


async def test_connection_broken_during_use_is_not_reused(db_url: str) -> None:
    async with Pool(db_url, max_size=1) as pool, await connect(db_url) as admin:
        with pytest.raises(Exception):  # noqa: B017 - psycopg reports the dead socket its own way
            async with pool.connection() as conn:
                pid = conn.info.backend_pid
                await admin.execute("select pg_terminate_backend(%s)", (pid,))
                await conn.execute("select pg_sleep(0.5)")
        assert pool.stats()["open"] == 0
        rows: list[Any] = await pool.fetch("select 1 as one")
        assert rows == [{"one": 1}]


async def test_acquire_timeout_is_a_clear_error(db_url: str) -> None:
    async with Pool(db_url, max_size=1) as pool:
        async with pool.connection():
            with pytest.raises(PoolTimeout) as info:
                async with pool.connection(timeout=0.05):
                    pass  # never reached
        assert "within 0.05s" in str(info.value)
        assert "all 1 in use" in str(info.value)
        assert pool.stats()["in_use"] == 0


async def test_closed_pool_refuses_new_borrowers(db_url: str) -> None:
    pool = Pool(db_url, max_size=1)
    await pool.fetch("select 1")
    await pool.close()
    assert pool.stats()["open"] == 0
    with pytest.raises(PoolClosed, match="closed"):
        await pool.fetch("select 1")


def test_pool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pool("postgresql://x", max_size=0)
