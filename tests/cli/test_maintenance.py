"""gw migrate / cleanup / force-unlock / sweep-stale-workers, as subprocesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .conftest import GW  # noqa: TC001  (pytest fixtures' annotations)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_migrate_installs_a_new_schema_then_is_a_no_op(gw: GW, backend: str) -> None:
    first = gw.ok("--backend", backend, "--schema", "gw_cli_fresh", "migrate")
    assert first.stdout == "schema gw_cli_fresh: applied migration(s) 1-20; now at 20\n"
    ids = [r[0] for r in gw.sql("select id from gw_cli_fresh.migrations order by id")]
    assert ids == list(range(1, 21))
    again = gw.ok("migrate", "--schema", "gw_cli_fresh", "--json", "--backend", backend).json()
    assert again == {
        "schema": "gw_cli_fresh",
        "applied": [],
        "gw_applied": [],
        "previous": 20,
        "current": 20,
    }
    # The schema works: gw can add and list jobs in it.
    gw.ok("--schema", "gw_cli_fresh", "add", "t")
    assert gw.sql("select count(*) from gw_cli_fresh._private_jobs") == [(1,)]


def test_migrate_reads_the_schema_from_the_environment(gw: GW) -> None:
    from .conftest import gw_env

    result = gw.ok("migrate", env=gw_env(GRAPHILE_WORKER_SCHEMA="gw_env_schema"))
    assert result.stdout.startswith("schema gw_env_schema: applied migration(s) 1-20")
    assert gw.sql("select count(*) from gw_env_schema.migrations") == [(20,)]


def test_cleanup_defaults_then_named_task(gw: GW) -> None:
    gone = gw.add_job("orphan_task", queue_name="orphan_queue")
    gw.sql("delete from graphile_worker._private_jobs where id = %s", (gone,))
    failed = gw.add_job("kept_task", max_attempts=1)
    gw.sql("update graphile_worker._private_jobs set attempts = 1 where id = %s", (failed,))

    result = gw.ok("cleanup")
    assert result.stdout == "done: gc-task-identifiers\ndone: gc-job-queues\n"
    tasks = [r[0] for r in gw.sql("select identifier from graphile_worker._private_tasks")]
    assert tasks == ["kept_task"]
    assert gw.sql("select count(*) from graphile_worker._private_job_queues") == [(0,)]
    assert [j["id"] for j in gw.jobs()] == [failed]

    data = gw.ok(
        "cleanup", "--task", "delete_permanently_failed_jobs", "--task", "gc-task-identifiers",
        "--json",
    ).json()  # fmt: skip
    assert data == {"tasks": ["delete-permanently-failed-jobs", "gc-task-identifiers"]}
    assert gw.jobs() == []
    assert gw.sql("select count(*) from graphile_worker._private_tasks") == [(0,)]


def test_force_unlock_releases_only_the_named_workers(gw: GW) -> None:
    a = gw.add_job("t", queue_name="serial")
    b = gw.add_job("t")
    other = gw.add_job("t")
    gw.lock(a, "graphile_worker_deadbeef")
    gw.lock(b, "graphile_worker_deadbeef")
    gw.lock(other, "graphile_worker_alive")
    gw.sql(
        "update graphile_worker._private_job_queues"
        " set locked_by = 'graphile_worker_deadbeef', locked_at = now()"
    )
    result = gw.ok("force-unlock", "graphile_worker_deadbeef")
    assert result.stdout == "unlocked 2 job(s) and 1 queue(s) held by graphile_worker_deadbeef\n"
    locks = {j["id"]: j["locked_by"] for j in gw.jobs()}
    assert locks == {a: None, b: None, other: "graphile_worker_alive"}
    assert gw.sql("select locked_by from graphile_worker._private_job_queues") == [(None,)]

    data = gw.ok("--json", "force-unlock", "graphile_worker_alive", "graphile_worker_x").json()
    assert data == {
        "worker_ids": ["graphile_worker_alive", "graphile_worker_x"],
        "released_jobs": 1,
        "released_queues": 0,
    }
    assert all(j["locked_by"] is None for j in gw.jobs())


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_sweep_stale_workers_dry_run_then_recover(gw: GW, backend: str) -> None:
    stale = gw.add_job("t")
    fresh = gw.add_job("t")
    gw.lock(stale, "graphile_worker_crashed", ago="10 minutes")
    gw.lock(fresh, "graphile_worker_busy", ago="1 minute")
    before = gw.jobs()

    dry = gw.ok("--backend", backend, "sweep-stale-workers", "--dry-run", "--sweep-threshold", "5m")
    assert dry.stdout.splitlines() == [
        "would recover 1 job(s) from 1 stale worker(s)",
        "STALE WORKER",
        "graphile_worker_crashed",
        f"jobs: {stale}",
    ]
    assert gw.jobs() == before

    data = gw.ok(
        "--backend", backend, "--json", "sweep-stale-workers", "--sweep-threshold", "5m",
        "--recovery-delay", "1h30m",
    ).json()  # fmt: skip
    assert data == {
        "dry_run": False,
        "worker_ids": ["graphile_worker_crashed"],
        "job_ids": [stale],
        "recovered_jobs": 1,
        "skipped_job_ids": [],
    }
    jobs = {j["id"]: j for j in gw.jobs()}
    assert jobs[stale]["locked_by"] is None
    assert jobs[stale]["attempts"] == 0  # the interrupted attempt is given back
    expected = datetime.now(UTC) + timedelta(minutes=90)
    assert abs(jobs[stale]["run_at"] - expected) < timedelta(minutes=1)
    assert jobs[fresh]["locked_by"] == "graphile_worker_busy"

    nothing = gw.ok("sweep-stale-workers", "--sweep-threshold", "5m")
    assert nothing.stdout == "no stale workers (threshold 5m)\n"
