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

import itertools
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

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


class _Server:
    """The PostgreSQL the tests use, and the databases created on it."""

    def __init__(self) -> None:
        self._embedded: Any = None
        url = os.environ.get("GW_TEST_DATABASE_URL", "").strip()
        if url:
            self.admin_url = url
            self.kind = "system"
        else:
            from gw.db.embedded import EmbeddedPostgres

            self._tmp = tempfile.mkdtemp(prefix="gw-test-pg-")
            self._embedded = EmbeddedPostgres(Path(self._tmp) / "pgdata")
            self.admin_url = self._embedded.start()
            self.kind = "embedded"
        self._counter = itertools.count()
        self._prefix = f"gw_test_{os.getpid()}"
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-test-dropdb")
        self._template: str | None = None

    def url_for(self, dbname: str) -> str:
        return make_conninfo(self.admin_url, dbname=dbname)

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def template(self) -> str:
        if self._template is None:
            name = f"{self._prefix}_template"
            with self._admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            _prepare_template(self.url_for(name))
            self._template = name
        return self._template

    def create_database(self) -> str:
        template = self.template()
        name = f"{self._prefix}_{next(self._counter)}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        # Dropping costs ~0.1 s (a checkpoint); do it off the test's path.
        self._dropper.submit(self._drop, name)

    def _drop(self, name: str) -> None:
        try:
            with self._admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        except psycopg.Error as ex:  # pragma: no cover - cleanup only
            warnings.warn(f"could not drop test database {name}: {ex}", stacklevel=1)

    def close(self) -> None:
        self._dropper.shutdown(wait=True)
        if self._template is not None:
            self._drop(self._template)
        if self._embedded is not None:
            self._embedded.stop()
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)


def _prepare_template(url: str) -> None:
    """Install what every test database starts with (the migrated gw schema, once it exists)."""
    try:
        from gw.db.migrate import migrate_sync
    except ImportError:
        return
    migrate_sync(url)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_Server]:
    server = _Server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def db_url(pg_server: _Server) -> Iterator[str]:
    """A fresh database (cloned from the migrated template) for this test."""
    name = pg_server.create_database()
    try:
        yield pg_server.url_for(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
async def utils(db_url: str) -> AsyncIterator[Any]:
    """WorkerUtils on the test database (already migrated)."""
    import gw

    async with gw.WorkerUtils.connect(db_url, migrate=False) as u:
        yield u


@pytest.fixture
def db_name(db_url: str) -> str:
    return str(conninfo_to_dict(db_url)["dbname"])
