"""gw and npm graphile-worker 0.18.0 share one schema, whichever installed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import gw
from gw.core.utils import WorkerUtils, open_pool
from gw.db.migrate import MigrationReport, gw_migrations, migrate
from gw.types import JobSpec
from tests.core.conftest import Db, open_db
from tests.helpers import wait_until
from tests.interop.conftest import node_connection_string

if TYPE_CHECKING:
    from tests.interop.conftest import NodeWorker

pytestmark = pytest.mark.interop

GW_TRACK = tuple(m.id for m in gw_migrations())

SCHEMAS = [
    pytest.param("graphile_worker", id="default-schema"),
    pytest.param("My Worker", id="quoted-schema"),
]


async def migration_rows(db: Db) -> list[dict[str, Any]]:
    return await db.rows("select id, ts, breaking from {s}.migrations order by id")


def test_node_connection_strings() -> None:
    assert (
        node_connection_string("user=postgres dbname=db_1 host='/tmp/pg sock'")
        == "postgresql://postgres@/db_1?host=/tmp/pg%20sock"
    )
    assert (
        node_connection_string("postgresql://postgres:@/postgres?host=/tmp/x")
        == "postgresql://postgres@/postgres?host=/tmp/x"
    )
    assert (
        node_connection_string("user=u password=p@ss dbname=d host=127.0.0.1 port=5432")
        == "postgresql://u:p%40ss@127.0.0.1:5432/d"
    )


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_node_runs_a_job_gw_added_on_a_gw_installed_schema(
    db_url: str, node_worker: NodeWorker, schema: str
) -> None:
    async with open_pool(db_url, max_size=2) as pool, open_db(db_url, schema) as db:
        utils = WorkerUtils(pool, schema)
        await utils.migrate()  # no-op for the template's graphile_worker
        rows = await migration_rows(db)
        assert [r["id"] for r in rows] == list(range(1, 21))
        job = await utils.add_job("gw_added", {"from": "gw"}, JobSpec(queue_name="nq"))

        result = await node_worker(db_url, schema, "run", ["gw_added"])

        assert result.warnings == []
        assert result.seen == [["gw_added", {"from": "gw"}]]
        # Node's migrate() accepted the schema as it was: not a row added or touched.
        assert await migration_rows(db) == rows
        assert await utils.get_job(job.id) is None
        assert await db.count_jobs() == 0


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_gw_works_on_a_node_installed_schema(
    db_url: str, node_worker: NodeWorker, schema: str
) -> None:
    async with open_db(db_url, schema) as db:
        # Start from nothing: the test database's template has gw's schema.
        await db.execute("drop schema if exists {s} cascade")
        result = await node_worker(db_url, schema, "install", ["node_added"])
        assert result.warnings == []
        node_rows = await migration_rows(db)
        assert [(r["id"], r["breaking"]) for r in node_rows] == [
            (i, i in (1, 3, 11, 13, 14, 16, 19)) for i in range(1, 21)
        ]

        report = await migrate(db_url, schema)
        # No Graphile migration to apply; only gw's own track.
        assert report == MigrationReport(applied=(), gw_applied=GW_TRACK, latest=20)
        assert await migration_rows(db) == node_rows

        async with open_pool(db_url, max_size=2) as pool:
            utils = WorkerUtils(pool, schema)
            added = await utils.add_job("gw_task", {"n": 1}, JobSpec(queue_name="gq"))
            assert (added.task_identifier, added.queue_name) == ("gw_task", "gq")
            completed = await utils.complete_jobs([added.id])
            assert [j.id for j in completed] == [added.id]
            assert await utils.get_job(added.id) is None
            # Node's add_jobs returns rows in no set order: a batch comes back
            # as full rows (not the lean ones gw's own add_jobs allows).
            batch = await utils.add_jobs([("gw_b", {"i": i}) for i in range(3)] + [("gw_a", 1)])
            assert utils._lean_add is False
            assert sorted(job.task_identifier for job in batch) == ["gw_a", "gw_b", "gw_b", "gw_b"]
            for job in batch:
                assert job == await utils.get_job(job.id)
            await utils.complete_jobs([job.id for job in batch])

        seen: list[Any] = []

        @gw.task("node_added")
        async def node_added(payload: Any) -> None:
            seen.append(payload)

        worker = gw.Worker(
            [node_added],
            database_url=db_url,
            schema=schema,
            concurrency=1,
            shutdown=gw.ShutdownConfig(listen_os_signals=False),
        )
        assert await worker.run_once() == 1
        assert seen == [{"from": "node"}]
        assert await db.count_jobs() == 0
        assert await migration_rows(db) == node_rows


async def test_node_runs_a_job_gw_failed_with_its_own_backoff_and_skips_a_final_one(
    db_url: str, node_worker: NodeWorker
) -> None:
    # gw's clock runs an hour behind: a 30-minute backoff lands 30 minutes ago
    # in real time, so the job is due for Node at once (no waiting in the test).
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    clock = gw.FakeClock(start)

    @gw.task("retried", retry=gw.Retry(backoff=timedelta(minutes=30)))
    async def retried(payload: Any) -> None:
        raise RuntimeError("first try fails")

    @gw.task("final")
    async def final(payload: Any) -> None:
        raise gw.PermanentFailure("not worth retrying")

    async with open_pool(db_url, max_size=2) as pool, open_db(db_url) as db:
        utils = WorkerUtils(pool, use_local_time=True, clock=clock)
        a = await utils.add_job(retried, {"n": 1})
        b = await utils.add_job(final, {"n": 2})
        worker = gw.Worker(
            [retried, final],
            pool=pool,
            clock=clock,
            use_local_time=True,
            shutdown=gw.ShutdownConfig(listen_os_signals=False),
        )
        assert await worker.run_once() == 2
        row = await db.job(a.id)
        assert (row["attempts"], row["last_error"]) == (1, "first try fails")
        assert row["run_at"] == start + timedelta(minutes=30)
        failed = await db.job(b.id)
        assert (failed["attempts"], failed["max_attempts"]) == (25, 25)

        result = await node_worker(db_url, "graphile_worker", "run", ["retried", "final"])

        assert result.warnings == []
        assert result.seen == [["retried", {"n": 1}]]
        assert [r["id"] for r in await db.rows("select id from {s}._private_jobs")] == [b.id]


async def test_a_job_node_runs_is_not_cancellable_and_a_cancelled_one_never_runs(
    db_url: str, node_worker: NodeWorker
) -> None:
    async with open_pool(db_url, max_size=2) as pool, open_db(db_url) as db:
        utils = WorkerUtils(pool)
        held = await utils.add_raw_job("slow_node_task", {"n": 1})
        dropped = await utils.add_raw_job("slow_node_task", {"n": 2}, JobSpec(priority=5))
        (cancelled,) = await utils.cancel_jobs([dropped.id], "not wanted")
        assert cancelled.outcome == "cancelled"
        results: list[Any] = []

        async def run_node() -> None:
            results.append(
                await node_worker(
                    db_url,
                    "graphile_worker",
                    "hold",
                    ["slow_node_task"],
                    {"GW_NODE_HOLD_MS": "3000"},
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_node)

            async def node_holds_it() -> bool:
                return (await db.job(held.id))["locked_by"] is not None

            await wait_until(node_holds_it, timeout=30)
            locker = (await db.job(held.id))["locked_by"]
            (result,) = await utils.cancel_jobs([held.id], "stop")
            assert result == gw.CancelResult(
                job_id=held.id, outcome="not_cancellable", worker_id=locker
            )
            row = await db.job(held.id)
            assert (row["last_error"], row["locked_by"]) == (None, locker)
        # Node ran the held job to completion and never ran the cancelled one.
        assert results[0].seen == [["slow_node_task", {"n": 1}]]
        assert [r["id"] for r in await db.rows("select id from {s}._private_jobs")] == [dropped.id]
        assert await db.rows("select job_id from {s}._private_gw_cancel_requests") == []


async def test_history_is_invisible_to_a_node_worker_on_the_same_database(
    db_url: str, node_worker: NodeWorker
) -> None:
    from tests.worker.test_worker import make_worker

    @gw.task("gw_task")
    async def gw_task(payload: Any) -> str:
        return "gw ran it"

    async with open_pool(db_url, max_size=2) as pool, open_db(db_url) as db:
        utils = WorkerUtils(pool)
        gw_job = await utils.add_raw_job("gw_task", {"n": 1})
        node_jobs = [await utils.add_raw_job("node_task", {"n": n}) for n in (2, 3)]
        worker = make_worker(db_url, [gw_task], history=gw.History())
        assert await worker.run_once() == 1
        result = await node_worker(db_url, "graphile_worker", "run", ["node_task"])
        # Node ran its jobs on a schema carrying gw's history table, trigger
        # and samples, with nothing to warn about.
        assert sorted(p["n"] for _, p in result.seen) == [2, 3]
        assert result.warnings == []
        assert await db.rows("select id from {s}._private_jobs") == []
        # Only gw's attempt is in the history; a Node-run job has no result.
        history = await db.rows("select job_id, outcome, result from {s}._private_gw_history")
        assert history == [{"job_id": gw_job.id, "outcome": "completed", "result": "gw ran it"}]
        entry = await utils.wait_for_result(gw_job.id, timeout=5)
        assert entry.result == "gw ran it"
        with pytest.raises(gw.ResultUnavailable, match=f"job {node_jobs[0].id} is not waiting"):
            await utils.wait_for_result(node_jobs[0].id, timeout=5)
