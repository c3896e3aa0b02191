"""Fixtures for WorkerUtils tests: a pool on the test database, the utils, and
``db``, a direct SQL handle for arranging and checking table state."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from gw.core.utils import WorkerUtils, open_pool
from gw.db.connection import connect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from gw.db.pool import Pool

SCHEMA = "graphile_worker"


class Db:
    """Raw SQL against one schema: ``{s}`` in a query is the quoted schema name."""

    def __init__(self, conn: Any, schema: str = SCHEMA) -> None:
        self.conn = conn
        self.schema = schema
        self._quoted = sql.Identifier(schema).as_string(None)

    def q(self, query: str) -> str:
        return query.replace("{s}", self._quoted)

    async def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        cur = self.conn.cursor(row_factory=dict_row)
        await cur.execute(self.q(query), params)
        return await cur.fetchall()

    async def one(self, query: str, params: Any = None) -> dict[str, Any]:
        rows = await self.rows(query, params)
        assert len(rows) == 1, rows
        return rows[0]

    async def value(self, query: str, params: Any = None) -> Any:
        return next(iter((await self.one(query, params)).values()))

    async def execute(self, query: str, params: Any = None) -> None:
        await self.conn.execute(self.q(query), params)

    async def now(self) -> datetime:
        return await self.value("select now() as now")

    async def job(self, job_id: int) -> dict[str, Any]:
        return await self.one("select * from {s}._private_jobs where id = %s", (job_id,))

    async def count_jobs(self) -> int:
        return int(await self.value("select count(*) from {s}._private_jobs"))

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the job, queue and task tables (the "nothing was written" check)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in ("_private_jobs", "_private_job_queues", "_private_tasks"):
            cur = await self.conn.execute(self.q(f"select * from {{s}}.{table} order by 1"))
            out[table] = await cur.fetchall()
        return out

    async def lock(self, job_id: int, worker: str = "other_worker", ago: str = "0 seconds") -> None:
        """Lock a job (and its queue) the way a worker's fetch does."""
        await self.execute(
            """
            with j as (
              update {s}._private_jobs
              set locked_by = %(w)s, locked_at = now() - %(ago)s::interval, attempts = attempts + 1
              where id = %(id)s returning job_queue_id
            )
            update {s}._private_job_queues set locked_by = %(w)s,
              locked_at = now() - %(ago)s::interval
            from j where _private_job_queues.id = j.job_queue_id
            """,
            {"id": job_id, "w": worker, "ago": ago},
        )


class UntouchablePool:
    """A stand-in pool that fails the test if anything asks it for the database."""

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail("the database was touched")

    connection = fetch = fetchone = execute = pinned = _fail


@asynccontextmanager
async def open_db(url: str, schema: str = SCHEMA) -> AsyncIterator[Db]:
    async with await connect(url) as conn:
        yield Db(conn, schema)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Pool]:
    async with open_pool(db_url, max_size=4) as pool:
        yield pool


@pytest.fixture
def utils(pool: Pool) -> WorkerUtils:
    return WorkerUtils(pool)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    async with open_db(db_url) as db:
        yield db
