"""The hot-path statement deadline: a statement the server never answers is cut
by JobStore.watch (no cancel scope per statement), fails as a lost connection,
and the next statement runs on a fresh connection."""

from __future__ import annotations

import logging

import anyio
import pytest

import gw
from gw.core.utils import open_pool
from gw.db.queries import queries_for
from gw.runtime import SystemClock
from gw.worker._store import JobStore


async def test_a_statement_without_reply_is_cut_at_the_deadline(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(db_url, max_size=3) as pool:
        store = JobStore(pool, queries_for("graphile_worker"), "watched", clock=SystemClock())
        store.deadline = 0.4  # the watch looks every 0.1 s
        hung = store._complete_conn
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.watch)
            with caplog.at_level(logging.WARNING, "gw.worker"):
                with anyio.fail_after(30), pytest.raises(gw.DatabaseError) as caught:
                    # pg_sleep stands in for a server that stopped answering.
                    await store._on_pinned(hung, "completing jobs", "select pg_sleep(60)", {})
            assert caught.value.transient  # retried like any lost connection
            assert "completing jobs" in str(caught.value)
            assert "completing jobs got no reply within 0.4s" in caplog.text
            # The cut connection went away; the next statement borrows a new one.
            await store._on_pinned(hung, "completing jobs", "select 1", {})
            assert not store._busy
            tg.cancel_scope.cancel()
        await store.close()


async def test_statements_that_answer_are_never_cut(db_url: str) -> None:
    async with open_pool(db_url, max_size=3) as pool:
        store = JobStore(pool, queries_for("graphile_worker"), "watched", clock=SystemClock())
        store.deadline = 0.4
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.watch)
            conn = await store._complete_conn.get()
            for _ in range(5):
                # Each answers well inside the deadline, together they outlast it.
                await store._on_pinned(store._complete_conn, "t", "select pg_sleep(0.15)", {})
            assert await store._complete_conn.get() is conn
            tg.cancel_scope.cancel()
        await store.close()
