"""Helpers for testing code that uses gw (and for gw's own tests).

- ``pytest_plugins = ["gw.testing.pytest"]`` gives each test its own migrated
  database (``gw_database_url``) and :class:`GwTestDatabase` helpers
  (``gw_db``): ``run_jobs``, ``assert_jobs``, ``utils``; see docs/testing.md.
- :func:`running` starts a worker in the background for the duration of an
  ``async with`` block and stops it gracefully at the end.
- :func:`wait_for` re-checks a condition (sync or async) until it holds.
- :class:`FakeClock` (re-exported) drives time by hand on asyncio and trio.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..runtime import FakeClock, fail_after, open_task_group, sleep
from ._databases import TestDatabases
from ._helpers import ANY, GwTestDatabase, JobOutcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from ..worker import Worker

__all__ = (
    "ANY",
    "FakeClock",
    "GwTestDatabase",
    "JobOutcome",
    "TestDatabases",
    "running",
    "wait_for",
)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> None:
    """Re-check ``condition`` every ``interval`` seconds until it is true.

    Raises ``TimeoutError`` naming ``message`` after ``timeout`` seconds.
    """
    try:
        with fail_after(timeout):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await sleep(interval)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {message}") from None


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run ``worker`` in the background inside the block; shut it down after."""
    async with open_task_group() as tg:
        await tg.start(worker.run)
        try:
            yield worker
        finally:
            worker.shutdown("test finished")
