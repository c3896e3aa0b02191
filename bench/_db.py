"""The database a benchmark runs on: the given URL, or gw's embedded server."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A scratch database, dropped after: on the server of ``url``, or (when it
    is empty) on gw's embedded server, stopped after. A benchmark fills and
    empties its jobs table, so it never runs in the database it was given."""
    if url:
        with scratch_database(url) as scratch:
            yield scratch
        return
    from gw.db.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres()
    try:
        with scratch_database(embedded.start()) as scratch:
            yield scratch
    finally:
        embedded.stop()


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new database ``gw_bench_<pid>`` on the server of ``url``; its URL."""
    import os

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"gw_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def child_env(tree: str | None = None) -> dict[str, str]:
    """The environment of a benchmark child; ``tree``: a gw source tree (a git
    worktree of another commit) whose gw it imports instead of this one."""
    import os

    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.join(tree, "src"), env.get("PYTHONPATH")) if p
        )
    return env
