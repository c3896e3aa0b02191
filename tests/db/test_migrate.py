"""The migration runner: fresh installs, re-runs, races and every refusal."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from psycopg import sql

from gw.core.utils import WorkerUtils, open_pool
from gw.db.connection import connect
from gw.db.listen import Listener
from gw.db.migrate import (
    BREAKING_MIGRATIONS,
    MigrationReport,
    _bootstrap as bootstrap,
    _run_one as run_one,
    gw_migrations,
    migrate,
    migrations,
)
from gw.errors import LockedJobsError, SchemaTooNew, UnsupportedPostgres
from tests.core.conftest import Db, open_db

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ALL = tuple(range(1, 21))
GW_TRACK = tuple(m.id for m in gw_migrations())


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    async with open_db(db_url) as db:
        yield db


async def migration_rows(db: Db, schema: str = "graphile_worker") -> list[dict[str, Any]]:
    return await Db(db.conn, schema).rows("select id, ts, breaking from {s}.migrations order by id")


async def schema_exists(db: Db, schema: str) -> bool:
    return bool(
        await db.value(
            "select exists (select from pg_namespace where nspname = %s) as e", (schema,)
        )
    )


async def migrate_to(db_url: str, schema: str, last: int) -> None:
    """Install ``schema`` up to migration ``last`` only (an older installation)."""
    async with await connect(db_url) as conn:
        quoted = sql.Identifier(schema).as_string(conn)
        await bootstrap(conn, quoted)
        for migration in migrations()[:last]:
            assert await run_one(conn, schema, quoted, migration)


@pytest.mark.parametrize("schema", ["My Worker", 'odd "quoted" name'])
async def test_migrate_installs_a_fresh_schema_whose_name_needs_quoting(
    db_url: str, db: Db, schema: str
) -> None:
    report = await migrate(db_url, schema)
    assert report == MigrationReport(applied=ALL, gw_applied=GW_TRACK, latest=None)
    rows = await migration_rows(db, schema)
    assert [(r["id"], r["breaking"]) for r in rows] == [(i, i in BREAKING_MIGRATIONS) for i in ALL]
    assert BREAKING_MIGRATIONS == (1, 3, 11, 13, 14, 16, 19)
    async with open_pool(db_url, max_size=2) as pool:
        utils = WorkerUtils(pool, schema)
        job = await utils.add_raw_job("t", {"in": schema}, None)
        assert await utils.get_job(job.id) == job
    scoped = Db(db.conn, schema)
    assert await scoped.count_jobs() == 1
    # The default schema (installed in the template) did not get the job.
    assert await db.count_jobs() == 0


async def test_a_second_run_is_a_no_op(db_url: str, db: Db) -> None:
    first = await migrate(db_url, "again")
    rows = await migration_rows(db, "again")
    functions = await db.rows(
        "select p.oid, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'again' order by p.oid"
    )
    second = await migrate(db_url, "again")
    assert first.applied == ALL
    assert second == MigrationReport(applied=(), gw_applied=(), latest=20)
    assert await migration_rows(db, "again") == rows
    assert (
        await db.rows(
            "select p.oid, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = 'again' order by p.oid"
        )
        == functions
    )
    # The test databases' schema was installed by the template: also current.
    assert await migrate(db_url) == MigrationReport(applied=(), gw_applied=(), latest=20)


async def test_concurrent_migrations_of_a_fresh_schema_all_succeed(db_url: str, db: Db) -> None:
    reports: list[MigrationReport] = []

    async def one() -> None:
        reports.append(await migrate(db_url, "race"))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)

    assert len(reports) == 3
    applied = sorted(i for r in reports for i in r.applied)
    assert applied == list(ALL)
    assert sorted(i for r in reports for i in r.gw_applied) == list(GW_TRACK)
    assert [r["id"] for r in await migration_rows(db, "race")] == list(ALL)
    track = await Db(db.conn, "race").rows("select id from {s}._private_gw_migrations order by id")
    assert track == [{"id": i} for i in GW_TRACK]


async def test_each_migration_sends_a_worker_migrate_notification(db_url: str, db: Db) -> None:
    marker = "gw-test-marker"
    async with Listener(db_url, ["worker:migrate"]) as listener:
        await migrate(db_url, "notified")
        await db.execute("select pg_notify('worker:migrate', %s)", (marker,))
        payloads = []
        while (note := await listener.receive()).payload != marker:
            payloads.append(json.loads(note.payload))
    assert payloads == [{"migrationNumber": i, "breaking": i in BREAKING_MIGRATIONS} for i in ALL]


async def test_a_schema_from_an_older_release_gets_the_missing_migrations(
    db_url: str, db: Db
) -> None:
    # Node 0.17 stopped at migration 19.
    await migrate_to(db_url, "older", 19)
    report = await migrate(db_url, "older")
    assert report == MigrationReport(applied=(20,), gw_applied=GW_TRACK, latest=19)
    assert [r["id"] for r in await migration_rows(db, "older")] == list(ALL)


# --------------------------------------------------------------------------- refusals


@pytest.fixture
async def old_server_url(db_url: str, db: Db) -> str:
    """A connection string whose sessions see server_version_num = 110000.

    ``fake.current_setting`` shadows pg_catalog's because ``fake`` comes first
    in the search path (pg_catalog is only implicitly first when it is not listed).
    """
    await db.execute("create schema fake")
    await db.execute(
        """
        create function fake.current_setting(name text) returns text language sql as $$
          select case when name = 'server_version_num' then '110000'
                      else pg_catalog.current_setting(name) end
        $$
        """
    )
    return f"{db_url} options='-c search_path=fake,pg_catalog,public'"


async def test_postgres_older_than_12_is_refused_on_a_fresh_schema(
    old_server_url: str, db: Db
) -> None:
    async with await connect(old_server_url) as conn:
        cur = await conn.execute("select current_setting('server_version_num')")
        assert await cur.fetchone() == ("110000",)
        with pytest.raises(UnsupportedPostgres) as caught:
            await migrate(conn, "fresh")
    assert str(caught.value) == (
        "gw needs PostgreSQL 12 or newer (the server reports server_version_num = 110000); "
        "upgrade PostgreSQL or point DATABASE_URL at a newer server"
    )
    assert not await schema_exists(db, "fresh")


async def test_postgres_older_than_12_is_refused_on_an_installed_schema(
    old_server_url: str, db: Db
) -> None:
    rows = await migration_rows(db)
    with pytest.raises(UnsupportedPostgres, match="server_version_num = 110000"):
        await migrate(old_server_url)
    assert await migration_rows(db) == rows


async def test_a_newer_breaking_migration_is_refused(db_url: str, db: Db) -> None:
    await db.execute("insert into {s}.migrations (id, breaking) values (99, true)")
    rows = await migration_rows(db)
    before = await db.snapshot()
    with pytest.raises(SchemaTooNew) as caught:
        await migrate(db_url)
    assert str(caught.value) == (
        "database schema 'graphile_worker' is at revision 99 which includes breaking migration "
        "99, but this gw only supports up to revision 20. It would be unsafe to continue: "
        "upgrade gw (or point it at another schema/database)."
    )
    assert await migration_rows(db) == rows
    assert await db.snapshot() == before
    async with open_pool(db_url, max_size=1) as pool:
        with pytest.raises(SchemaTooNew):
            await WorkerUtils(pool).migrate()


async def test_a_newer_non_breaking_migration_warns_and_continues(
    db_url: str, db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    await db.execute("insert into {s}.migrations (id, breaking) values (21, false), (99, false)")
    rows = await migration_rows(db)
    with caplog.at_level(logging.WARNING, logger="gw.db.migrate"):
        report = await migrate(db_url)
    assert report == MigrationReport(applied=(), gw_applied=(), latest=99)
    warnings = [r for r in caplog.records if r.name == "gw.db.migrate"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert warnings[0].getMessage() == (
        "database schema 'graphile_worker' is at revision 99, newer than this gw's 20; it may "
        "or may not be compatible (no breaking migration above 20). Continuing."
    )
    assert await migration_rows(db) == rows


async def test_migration_11_refuses_while_jobs_are_locked(db_url: str, db: Db) -> None:
    await migrate_to(db_url, "m11", 10)
    old = Db(db.conn, "m11")
    await old.execute("select {s}.add_job('legacy_task', '{\"a\": 1}'::json, 'legacy_queue')")
    await old.execute(
        "update {s}.jobs set locked_at = now() - interval '1 minute', locked_by = 'w'"
    )

    with pytest.raises(LockedJobsError) as caught:
        await migrate(db_url, "m11")
    assert str(caught.value) == (
        "There are locked jobs present; migration 11 cannot complete. Please ensure all "
        "workers are shut down cleanly and all locked jobs and queues are unlocked (e.g. with "
        "force_unlock_workers) before attempting this migration."
    )
    assert await old.value("select max(id) from {s}.migrations") == 10
    assert await old.value("select count(*) from {s}.jobs") == 1

    # Once unlocked, it migrates all the way and carries the job over.
    await old.execute("update {s}.jobs set locked_at = null, locked_by = null")
    report = await migrate(db_url, "m11")
    assert report == MigrationReport(applied=tuple(range(11, 21)), gw_applied=GW_TRACK, latest=10)
    [job] = await old.rows(
        "select t.identifier, q.queue_name, j.payload from {s}._private_jobs j"
        " join {s}._private_tasks t on t.id = j.task_id"
        " join {s}._private_job_queues q on q.id = j.job_queue_id"
    )
    assert job == {"identifier": "legacy_task", "queue_name": "legacy_queue", "payload": {"a": 1}}


async def test_migration_11_ignores_locks_older_than_4_hours(db_url: str, db: Db) -> None:
    await migrate_to(db_url, "m11_stale", 10)
    old = Db(db.conn, "m11_stale")
    await old.execute("select {s}.add_job('legacy_task', '{}'::json)")
    await old.execute("update {s}.jobs set locked_at = now() - interval '5 hours', locked_by = 'w'")
    report = await migrate(db_url, "m11_stale")
    assert report.applied == tuple(range(11, 21))
    assert await old.count_jobs() == 1
