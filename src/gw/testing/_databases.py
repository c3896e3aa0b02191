"""Throwaway databases for tests: one server, a migrated template, a clone per test."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

__all__ = ("TestDatabases",)


class TestDatabases:
    """The PostgreSQL tests use, and the databases made on it.

    The server is ``GW_TEST_DATABASE_URL`` when set (a user that may create
    databases), else an embedded server in a temporary directory. Every
    database is a clone of a template migrated once (a clone costs a few
    milliseconds; migrating costs more), and is dropped in the background.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, prefix: str = "gw_test") -> None:
        self._embedded: Any = None
        self._tmp: str | None = None
        url = os.environ.get("GW_TEST_DATABASE_URL", "").strip()
        if url:
            self.admin_url = url
            self.kind = "system"
        else:
            from ..db.embedded import EmbeddedPostgres

            self._tmp = tempfile.mkdtemp(prefix="gw-test-pg-")
            # Others (e.g. a PgBouncer a test starts as another user) may reach
            # the server's socket inside; the data directory keeps its own 0700.
            os.chmod(self._tmp, 0o755)
            self._embedded = EmbeddedPostgres(Path(self._tmp) / "pgdata")
            self.admin_url = self._embedded.start()
            self.kind = "embedded"
        self._counter = itertools.count()
        self._prefix = f"{prefix}_{os.getpid()}"
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-test-dropdb")
        self._template: str | None = None

    def url_for(self, dbname: str) -> str:
        return make_conninfo(self.admin_url, dbname=dbname)

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the server's own database."""
        return psycopg.connect(self.admin_url, autocommit=True)

    def template(self) -> str:
        """The migrated template every test database is cloned from."""
        if self._template is None:
            from ..db.migrate import migrate_sync

            name = f"{self._prefix}_template"
            with self.admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            migrate_sync(self.url_for(name))
            self._template = name
        return self._template

    def create_database(self) -> str:
        """A new database with the gw schema; returns its name."""
        template = self.template()
        name = f"{self._prefix}_{next(self._counter)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name`` in the background (a drop costs a checkpoint)."""
        self._dropper.submit(self._drop, name)

    def _drop(self, name: str) -> None:
        try:
            with self.admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        except psycopg.Error as ex:  # pragma: no cover - cleanup only
            warnings.warn(f"could not drop test database {name}: {ex}", stacklevel=1)

    def close(self) -> None:
        """Drop what is left and stop the embedded server (if one was started)."""
        self._dropper.shutdown(wait=True)
        if self._template is not None:
            self._drop(self._template)
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
