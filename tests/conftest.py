"""Test rules for gw.

- Every async test runs twice: on asyncio and on trio (the ``anyio_backend``
  fixture below). pytest-asyncio and pytest-trio are not loaded.
- Never sleep on the wall clock to wait for something: wait on an event, a
  condition (``wait_until``), or move a ``FakeClock`` / trio ``MockClock``.
- Tests that need PostgreSQL take ``db_url``: a fresh database cloned from a
  migrated template, on ``GW_TEST_DATABASE_URL`` when set (e.g.
  ``postgresql://postgres@127.0.0.1:5432/postgres``), else on an embedded
  server started for the session.
- Every async test has a loop-clock deadline (``fail_after``) so a hang
  fails with a traceback instead of stalling the run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from psycopg.conninfo import conninfo_to_dict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gw.testing import TestDatabases

# A sample application's suite, run by tests/test_user_style.py under each
# pytest async plugin in its own process (they cannot load together).
collect_ignore = ["user_style"]

TEST_TIMEOUT = float(os.environ.get("GW_TEST_TIMEOUT", "60"))


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    # Give every coroutine test a deadline on the loop's own clock.
    func = pyfuncitem.obj
    backend = pyfuncitem.funcargs.get("anyio_backend")
    virtual_time = isinstance(backend, tuple) and "clock" in backend[1]
    if virtual_time or getattr(func, "_gw_deadline", False) or not _is_coroutine_function(func):
        return (yield)

    async def with_deadline(*args: Any, **kwargs: Any) -> Any:
        with anyio.fail_after(TEST_TIMEOUT):
            return await func(*args, **kwargs)

    with_deadline._gw_deadline = True  # type: ignore[attr-defined]
    pyfuncitem.obj = with_deadline
    try:
        return (yield)
    finally:
        pyfuncitem.obj = func


def _is_coroutine_function(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


# --------------------------------------------------------------------------- databases


# gw's own suite runs on the plugin it ships to users (gw.testing.pytest).
pytest_plugins = ["gw.testing.pytest"]


@pytest.fixture(scope="session")
def pg_server(gw_test_databases: TestDatabases) -> TestDatabases:
    """The server every test database lives on."""
    return gw_test_databases


@pytest.fixture
def db_url(gw_database_url: str) -> str:
    """A fresh database (cloned from the migrated template) for this test."""
    return gw_database_url


@pytest.fixture
async def utils(db_url: str) -> AsyncIterator[Any]:
    """WorkerUtils on the test database (already migrated)."""
    import gw

    async with gw.WorkerUtils.connect(db_url, migrate=False) as u:
        yield u


@pytest.fixture
def db_name(db_url: str) -> str:
    return str(conninfo_to_dict(db_url)["dbname"])
