"""Install and upgrade the Graphile Worker schema.

Migrations 1..20 (``gw/sql/0000NN.sql``) replay npm graphile-worker 0.18.0's
history, so a database migrated by gw is the one Node and Rust workers expect,
and gw accepts a database they migrated. The algorithm follows the contract
(§2): a status query, bootstrap of the ``migrations`` table, every pending
migration in its own transaction whose first statement inserts the
migration's row (the row's primary key is what makes concurrent migrators
safe), a ``worker:migrate`` notification, the breaking-migration guard and
the migration-11 locked-jobs guard. gw adds an advisory lock around the
whole run (a transaction lock held on a second connection, so that it also
works through a transaction pooler) so that several gw processes starting
together queue up instead of racing. gw-only objects (the recovery ``_private_workers`` table)
come from a separate idempotent track recorded in ``_private_gw_migrations``;
gw never writes a row above 20 into ``migrations``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import errors as pg_errors, sql

from ..errors import LockedJobsError, MigrationError, SchemaTooNew, UnsupportedPostgres
from ..runtime import move_on_after
from .connection import Connection, connect
from .queries import check_schema_name

__all__ = ("Migration", "MigrationReport", "migrate", "migrate_sync", "migrations")

logger = logging.getLogger("gw.db.migrate")

# Node 0.18.0 flags these ids as breaking.
BREAKING_MIGRATIONS = (1, 3, 11, 13, 14, 16, 19)
# SQLSTATEs meaning "someone else did it concurrently".
_CLASH_CODES = ("23505", "42P06", "42P07", "42710")
# pg_advisory_lock(int4, int4) keyspace: 'GWMG' + a hash of the schema name.
_LOCK_CLASS = 0x47574D47
_UNLOCK_TIMEOUT = 5.0
_PLACEHOLDER = re.compile(r":GRAPHILE_WORKER_SCHEMA\b")


@dataclass(frozen=True)
class Migration:
    id: int
    breaking: bool
    text: str


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` did."""

    applied: tuple[int, ...]
    """Graphile migration ids this run applied."""
    gw_applied: tuple[int, ...]
    """gw-track migration ids this run applied."""
    latest: int | None
    """The highest migration id in the database before this run."""


@cache
def migrations() -> tuple[Migration, ...]:
    """The Graphile migrations gw ships, in order."""
    return _load("", r"(\d{6})\.sql")


@cache
def gw_migrations() -> tuple[Migration, ...]:
    """gw's own idempotent migration track."""
    return _load("gw", r"(\d{4})_[\w-]+\.sql")


def _load(subdir: str, pattern: str) -> tuple[Migration, ...]:
    root = resources.files("gw").joinpath("sql")
    if subdir:
        root = root.joinpath(subdir)
    found: list[Migration] = []
    for entry in root.iterdir():
        match = re.fullmatch(pattern, entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        breaking = any(line.strip() == "--! breaking-change" for line in text.splitlines()[:5])
        found.append(Migration(int(match.group(1)), breaking, text))
    found.sort(key=lambda m: m.id)
    return tuple(found)


def _substitute(text: str, quoted_schema: str) -> str:
    return _PLACEHOLDER.sub(lambda _: quoted_schema, text)


async def migrate(
    conn_or_url: Connection[Any] | str, schema: str = "graphile_worker"
) -> MigrationReport:
    """Bring ``schema`` up to date; safe to call from many processes at once.

    Raises :class:`~gw.errors.UnsupportedPostgres` for PostgreSQL < 12,
    :class:`~gw.errors.SchemaTooNew` when the database holds a breaking
    migration this gw does not know, and :class:`~gw.errors.LockedJobsError`
    when migration 11 finds locked jobs.
    """
    check_schema_name(schema)
    try:
        if isinstance(conn_or_url, str):
            async with await connect(conn_or_url) as conn:
                return await _migrate(conn, schema)
        return await _migrate(conn_or_url, schema)
    except psycopg.Error as ex:
        # Anything the steps above do not expect (permissions, a lost
        # connection, ...) still surfaces as a gw error.
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise MigrationError(f"could not migrate schema {schema!r}: {first}") from None


def migrate_sync(url: str, schema: str = "graphile_worker") -> MigrationReport:
    """Blocking :func:`migrate` (for scripts and test fixtures)."""
    import anyio

    return anyio.run(migrate, url, schema)


async def _migrate(conn: Connection[Any], schema: str) -> MigrationReport:
    if not conn.autocommit:
        await conn.set_autocommit(True)
    quoted = sql.Identifier(schema).as_string(conn)
    current = await _up_to_date(conn, quoted)
    if current is not None:
        return MigrationReport((), (), current)
    # The queueing lock is a transaction lock held on a second connection while
    # this one runs the migrations, each in its own transaction. A session lock
    # would not survive a transaction pooler (PgBouncer): the lock, the
    # migrations and the unlock could each land on a different server session.
    lock_args = (_LOCK_CLASS, schema)
    lock_conn = await connect(_same_target(conn), prepare_threshold=None)
    try:
        async with lock_conn.transaction():
            await lock_conn.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", lock_args)
            return await _migrate_locked(conn, schema, quoted)
    finally:
        with move_on_after(_UNLOCK_TIMEOUT, shield=True):
            await lock_conn.close()


def _same_target(conn: Connection[Any]) -> str:
    """A conninfo for another connection like ``conn`` (same server, user, options)."""
    from psycopg.conninfo import make_conninfo

    password = conn.info.password
    return make_conninfo(conn.info.dsn, password=password) if password else conn.info.dsn


async def _up_to_date(conn: Connection[Any], quoted: str) -> int | None:
    """The schema's revision if it needs nothing from this gw, else None.

    One statement and no lock: the common start of a worker or a WorkerUtils
    on an installed schema. Anything missing or unexpected takes the locked path.
    """
    known = migrations()
    track = {m.id for m in gw_migrations()}
    try:
        cur = await conn.execute(
            f"""
            select current_setting('server_version_num')::int,
                   (select max(id) from {quoted}.migrations),
                   (select coalesce(array_agg(id), '{{}}') from {quoted}._private_gw_migrations)
            """
        )
        row = await cur.fetchone()
    except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
        return None
    if row is None or not known:
        return None
    version, latest, gw_done = row
    if version < 120000 or latest != known[-1].id or not track.issubset(gw_done):
        return None
    return int(latest)


async def _status(conn: Connection[Any], quoted: str) -> tuple[int, int | None, int | None]:
    cur = await conn.execute(
        f"""
        select current_setting('server_version_num')::int,
               (select id from {quoted}.migrations order by id desc limit 1),
               (select id from {quoted}.migrations where breaking is true
                order by id desc limit 1)
        """
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2]


async def _check_version(conn: Connection[Any]) -> None:
    cur = await conn.execute("select current_setting('server_version_num')::int")
    row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version < 120000:
        raise UnsupportedPostgres(
            "gw needs PostgreSQL 12 or newer (the server reports "
            f"server_version_num = {version}); upgrade PostgreSQL or point "
            "DATABASE_URL at a newer server"
        )


async def _bootstrap(conn: Connection[Any], quoted: str) -> None:
    await _check_version(conn)
    await conn.execute(
        f"""
        create schema if not exists {quoted};
        create table if not exists {quoted}.migrations (
          id int primary key,
          ts timestamptz default now() not null
        );
        alter table {quoted}.migrations
          add column if not exists breaking boolean not null default false;
        """
    )
    await conn.execute(
        f"update {quoted}.migrations set breaking = true where id = any(%s::int[])",
        (list(BREAKING_MIGRATIONS),),
    )


async def _migrate_locked(conn: Connection[Any], schema: str, quoted: str) -> MigrationReport:
    for attempt in range(3):
        try:
            version, latest, biggest_breaking = await _status(conn, quoted)
            break
        except (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.InvalidSchemaName):
            try:
                await _bootstrap(conn, quoted)
            except psycopg.Error as ex:
                if ex.sqlstate not in _CLASH_CODES or attempt == 2:
                    raise MigrationError(f"could not install the {schema!r} schema: {ex}") from None
    else:  # pragma: no cover - the loop always breaks or raises
        raise MigrationError(f"could not read the migration status of schema {schema!r}")

    if version < 120000:
        await _check_version(conn)

    known = migrations()
    highest = known[-1].id if known else 0
    applied: list[int] = []
    for migration in known:
        if latest is not None and migration.id <= latest:
            continue
        if await _run_one(conn, schema, quoted, migration):
            applied.append(migration.id)

    if biggest_breaking is not None and highest < biggest_breaking:
        raise SchemaTooNew(
            f"database schema {schema!r} is at revision {latest} which includes breaking "
            f"migration {biggest_breaking}, but this gw only supports up to revision "
            f"{highest}. It would be unsafe to continue: upgrade gw (or point it at "
            "another schema/database)."
        )
    if latest is not None and highest < latest:
        logger.warning(
            "database schema %r is at revision %s, newer than this gw's %s; it may or may not "
            "be compatible (no breaking migration above %s). Continuing.",
            schema,
            latest,
            highest,
            highest,
        )

    gw_applied = await _run_gw_track(conn, quoted)
    if applied or gw_applied:
        logger.info(
            "migrated schema %r: graphile migrations %s, gw migrations %s",
            schema,
            list(applied),
            list(gw_applied),
        )
    return MigrationReport(tuple(applied), tuple(gw_applied), latest)


async def _run_one(conn: Connection[Any], schema: str, quoted: str, migration: Migration) -> bool:
    """Apply one migration; False when another process applied it concurrently."""
    try:
        async with conn.transaction():
            try:
                await conn.execute(
                    f"insert into {quoted}.migrations (id, breaking) values (%s, %s)",
                    (migration.id, migration.breaking),
                )
            except psycopg.Error as ex:
                if ex.sqlstate in _CLASH_CODES:
                    raise _Clash from None
                raise
            await conn.execute(_substitute(migration.text, quoted).encode())
            await conn.execute(
                "select pg_notify('worker:migrate', %s)",
                (json.dumps({"migrationNumber": migration.id, "breaking": migration.breaking}),),
            )
    except _Clash:
        return False
    except pg_errors.DivisionByZero:
        if migration.id == 11:
            raise LockedJobsError(
                "There are locked jobs present; migration 11 cannot complete. Please ensure "
                "all workers are shut down cleanly and all locked jobs and queues are unlocked "
                "(e.g. with force_unlock_workers) before attempting this migration."
            ) from None
        raise MigrationError(f"migration {migration.id} of schema {schema!r} failed") from None
    except psycopg.Error as ex:
        raise MigrationError(
            f"migration {migration.id} of schema {schema!r} failed: {ex}"
        ) from None
    return True


async def _run_gw_track(conn: Connection[Any], quoted: str) -> list[int]:
    track = gw_migrations()
    if not track:
        return []
    cur = await conn.execute(
        "select to_regclass(%s) is not null", (f"{quoted}._private_gw_migrations",)
    )
    row = await cur.fetchone()
    done: set[int] = set()
    if row and row[0]:
        cur = await conn.execute(f"select id from {quoted}._private_gw_migrations")
        done = {r[0] for r in await cur.fetchall()}
    applied: list[int] = []
    for migration in track:
        if migration.id in done:
            continue
        try:
            async with conn.transaction():
                await conn.execute(_substitute(migration.text, quoted).encode())
                await conn.execute(
                    f"insert into {quoted}._private_gw_migrations (id) values (%s)"
                    " on conflict do nothing",
                    (migration.id,),
                )
        except psycopg.Error as ex:
            raise MigrationError(f"gw migration {migration.id} failed: {ex}") from None
        applied.append(migration.id)
    return applied


class _Clash(Exception):
    """Another process inserted this migration's row first."""
