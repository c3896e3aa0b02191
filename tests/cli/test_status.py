"""gw stats / queues / workers / limits / check, as subprocesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .conftest import GW  # noqa: TC001  (pytest fixtures' annotations)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_stats_counts_jobs_by_state(gw: GW, backend: str) -> None:
    gw.add_job("t")
    gw.add_job("t")
    gw.add_job("t", run_at=datetime.now(UTC) + timedelta(days=1))
    gw.lock(gw.add_job("t"), "graphile_worker_cli_test")
    failed = gw.add_job("t", max_attempts=1)
    gw.sql("update graphile_worker._private_jobs set attempts = 1 where id = %s", (failed,))

    text = gw.ok("--backend", backend, "stats").stdout
    assert [line.split() for line in text.splitlines()] == [
        ["STATE", "JOBS"],
        ["ready", "2"],
        ["scheduled", "1"],
        ["locked", "1"],
        ["failed", "1"],
        ["total", "5"],
    ]
    data = gw.ok("stats", "--json", "--backend", backend).json()
    assert data == {"total": 5, "ready": 2, "scheduled": 1, "locked": 1, "failed": 1}


def test_queues_lists_named_queues(gw: GW) -> None:
    assert gw.ok("queues").stdout == "no named queues\n"
    assert gw.ok("queues", "--json").json() == []
    gw.add_job("t", queue_name="mail")
    gw.add_job("t", queue_name="mail")
    gw.add_job("t", queue_name="reports")
    gw.sql(
        "update graphile_worker._private_job_queues set locked_by = 'graphile_worker_q',"
        " locked_at = now() where queue_name = 'reports'"
    )
    rows = [line.split() for line in gw.ok("queues").stdout.splitlines()]
    assert rows[0] == ["QUEUE", "JOBS", "LOCKED", "BY", "LOCKED", "AT"]
    assert rows[1] == ["mail", "2", "-", "-"]
    assert rows[2][:3] == ["reports", "1", "graphile_worker_q"]
    data = gw.ok("queues", "--json").json()
    assert [(q["queue_name"], q["job_count"], q["locked_by"]) for q in data] == [
        ("mail", 2, None),
        ("reports", 1, "graphile_worker_q"),
    ]
    assert set(data[0]) == {"queue_name", "job_count", "locked_at", "locked_by"}


def test_workers_lists_lockers_and_heartbeats(gw: GW) -> None:
    assert gw.ok("workers").stdout == "no worker holds a lock\n"
    assert gw.ok("workers", "--json").json() == {"locked": [], "active": []}

    gw.lock(gw.add_job("t"), "graphile_worker_one")
    gw.lock(gw.add_job("t"), "graphile_worker_one")
    gw.sql("select graphile_worker.worker_heartbeat('graphile_worker_one', '{\"host\": \"a\"}')")
    gw.sql("select graphile_worker.worker_heartbeat('graphile_worker_idle')")
    gw.sql(
        "update graphile_worker._private_workers set last_heartbeat_at = now() - interval '1 hour'"
        " where id = 'graphile_worker_idle'"
    )

    lines = gw.ok("workers").stdout.splitlines()
    assert lines[0] == "Workers holding locks"
    assert lines[1].split() == ["WORKER", "LOCKED", "JOBS", "LOCKED", "QUEUES", "OLDEST", "LOCK"]
    assert lines[2].split()[:3] == ["graphile_worker_one", "2", "0"]
    assert lines[3] == "Heartbeating workers (recovery enabled)"
    assert [line.split()[0] for line in lines[5:]] == [
        "graphile_worker_idle",
        "graphile_worker_one",
    ]

    data = gw.ok("workers", "--json", "--active-within", "5m").json()
    assert [w["worker_id"] for w in data["locked"]] == ["graphile_worker_one"]
    assert data["locked"][0]["locked_jobs"] == 2
    assert [w["worker_id"] for w in data["active"]] == ["graphile_worker_one"]
    assert data["active"][0]["metadata"] == {"host": "a"}


def test_check_reports_server_and_schema(gw: GW) -> None:
    lines = gw.ok("check").stdout.splitlines()
    assert lines[0].startswith("connected to ")
    assert "(PostgreSQL 1" in lines[0]
    assert lines[1] == "schema graphile_worker is installed"
    data = gw.ok("check", "--json", "--schema", "absent").json()
    assert data["schema"] == "absent"
    assert data["schema_ready"] is False
    assert gw.ok("check", "-q").stdout == ""


def test_verbose_logs_to_stderr_only(gw: GW) -> None:
    quiet = gw.ok("stats", "--json")
    assert quiet.stderr == ""
    loud = gw.ok("-v", "--backend", "asyncio", "stats", "--json")
    assert loud.stdout == quiet.stdout
    assert "INFO    gw.cli: database " in loud.stderr
    assert "schema graphile_worker, backend asyncio" in loud.stderr


def test_limits_empty(gw: GW) -> None:
    assert gw.ok("limits").stdout == (
        "no fleet-wide limits: they are set with @gw.task(rate_limit=..., max_concurrency=...)"
        " or Worker(queue_limits=...)\n"
    )
    assert gw.ok("limits", "--json").json() == []


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_limits_lists_each_key_with_its_use(gw: GW, backend: str) -> None:
    # Buckets refill from updated_at on: full ones (tokens = burst) and slow
    # ones read the same whenever the command runs.
    gw.sql(
        """
        insert into graphile_worker._private_gw_limits (key, rate, burst, max_concurrency, tokens)
        values ('task:send_email', 20, 5, null, 5),
               ('queue:reports', null, null, 2, 0),
               ('task:resize', 1.0 / 3600, 1, 3, 0.5),
               ('task:slow', 2.5, 1, null, 1)
        """
    )
    running = gw.add_job("resize")
    gw.lock(running, "graphile_worker_one")
    gw.lock(gw.add_job("resize"), "graphile_worker_one")
    gw.sql(
        "insert into graphile_worker._private_gw_slots (key, job_id, worker_id)"
        " values ('task:resize', %s, 'graphile_worker_one'),"
        # A slot whose job that worker no longer holds does not count.
        " ('task:resize', 999999, 'graphile_worker_gone')",
        (running,),
    )

    lines = gw.ok("--backend", backend, "limits").stdout.splitlines()
    assert lines[0].split() == ["KEY", "RATE", "BURST", "TOKENS", "MAX", "CONCURRENCY", "RUNNING"]
    assert [line.split() for line in lines[1:]] == [
        ["queue:reports", "-", "-", "-", "2", "0"],
        ["task:resize", "1/h", "1", "0.5", "3", "1"],
        ["task:send_email", "20/s", "5", "5", "-", "0"],
        ["task:slow", "2.5/s", "1", "1", "-", "0"],
    ]

    data = gw.ok("limits", "--json", "--backend", backend).json()
    assert [d["key"] for d in data] == [
        "queue:reports",
        "task:resize",
        "task:send_email",
        "task:slow",
    ]
    reports, resize, send_email, _slow = data
    assert set(reports) == {
        "key", "rate", "burst", "max_concurrency", "tokens", "running", "updated_at",
    }  # fmt: skip
    assert reports == {
        "key": "queue:reports",
        "rate": None,
        "burst": None,
        "max_concurrency": 2,
        "tokens": None,
        "running": 0,
        "updated_at": reports["updated_at"],
    }
    assert reports["updated_at"].endswith("Z")
    assert (send_email["rate"], send_email["burst"], send_email["tokens"]) == (20.0, 5.0, 5.0)
    assert send_email["max_concurrency"] is None
    assert resize["rate"] == pytest.approx(1 / 3600)
    assert 0.5 <= resize["tokens"] < 0.6
    assert (resize["max_concurrency"], resize["running"]) == (3, 1)
