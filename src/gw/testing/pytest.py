"""A pytest plugin for testing applications that use gw.

Enable it in a ``conftest.py``::

    pytest_plugins = ["gw.testing.pytest"]

Fixtures (all synchronous, so they work under the anyio plugin, pytest-trio
and pytest-asyncio):

- ``gw_database_url``: a fresh database with the gw schema, for this test
  only (on ``GW_TEST_DATABASE_URL`` when set, else an embedded server started
  once per session);
- ``gw_utils``: a :class:`gw.WorkerUtils` on it, whose connections open in
  the test's own event loop when first used;
- ``gw_db``: a :class:`gw.testing.GwTestDatabase` on it, with ``utils()``,
  ``run_jobs(tasks)``, ``assert_jobs(...)`` and ``jobs()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..core.utils import WorkerUtils, open_pool
from ._databases import TestDatabases
from ._helpers import GwTestDatabase

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("gw_database_url", "gw_db", "gw_test_databases", "gw_utils")


@pytest.fixture(scope="session")
def gw_test_databases() -> Iterator[TestDatabases]:
    """The server the test databases live on (one per session)."""
    databases = TestDatabases(prefix="gw_user_test")
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def gw_database_url(gw_test_databases: TestDatabases) -> Iterator[str]:
    """A fresh, migrated database for this test (dropped afterwards)."""
    name = gw_test_databases.create_database()
    try:
        yield gw_test_databases.url_for(name)
    finally:
        gw_test_databases.drop_database(name)


@pytest.fixture
def gw_db(gw_database_url: str) -> GwTestDatabase:
    """Helpers on this test's database: ``utils()``, ``run_jobs``, ``assert_jobs``, ``jobs``."""
    return GwTestDatabase(gw_database_url)


@pytest.fixture
def gw_utils(gw_database_url: str) -> Iterator[WorkerUtils]:
    """A WorkerUtils on this test's database (connections open on first use)."""
    pool = open_pool(gw_database_url, max_size=4)
    try:
        yield WorkerUtils(pool)
    finally:
        # The test's loop has ended by now (each plugin closes its own).
        pool.close_now()
