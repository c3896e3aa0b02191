"""One bad job never harms the others: hostile payloads, rows and error messages.

Each test mixes bad jobs with good ones in the same fetches and checks that
the bad job fails alone (a clear last_error, normal retry semantics, never
run) while every good job runs, and that run_once returns.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest
from psycopg import sql

import gw
from gw.db.connection import connect
from tests.worker.test_worker import make_worker, rows

GOOD = 200

POISON = {
    # Deeper than msgspec decodes on any Python (3.12+ goes to ~10,000 levels),
    # within what PostgreSQL's json type accepts (~14,000 on 15).
    "deep nesting": ('{"a": ' + "[" * 12000 + "]" * 12000 + "}", "nests 12001 levels deep"),
    "lone surrogate": (
        '{"name": "\\ud800"}',
        "unpaired UTF-16 surrogate escape \\ud800, which is not valid Unicode",
    ),
    "float overflow": ('{"n": 1e400}', "payload cannot be decoded: number out of range"),
    "huge integer": (
        '{"n": ' + "7" * 5000 + "}",
        "payload cannot be decoded: integer value out of range",
    ),
}

PROFILES = {
    "default": {},
    "local queue": {"local_queue": gw.LocalQueueConfig(size=500)},
}


async def add_sql_job(db_url: str, task: str, payload_json: str, **spec: Any) -> int:
    """Add a job the way a trigger or another language would: SQL add_job."""
    args = ", ".join(f"{name} => %({name})s" for name in spec)
    async with await connect(db_url) as conn:
        cur = await conn.execute(
            f"select id from graphile_worker.add_job('{task}', %(payload)s::json"
            + (f", {args}" if args else "")
            + ")",
            {"payload": payload_json, **spec},
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def add_good_jobs(utils: gw.WorkerUtils, start: int, count: int) -> None:
    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="work", payload={"i": i}) for i in range(start, start + count)]
    )


def recording_task() -> tuple[gw.Task[..., Any], list[Any]]:
    seen: list[Any] = []

    @gw.task("work")
    async def work(payload: Any) -> None:
        seen.append(payload)

    return work, seen


async def failed_row(db_url: str, job_id: int) -> tuple[int, str | None, Any, bool]:
    ((attempts, error, locked_by, later),) = await rows(
        db_url,
        "select attempts, last_error, locked_by, run_at > now()"
        " from graphile_worker._private_jobs where id = %s",
        job_id,
    )
    return attempts, error, locked_by, later


@pytest.mark.parametrize("profile", PROFILES)
async def test_poison_payloads_fail_alone(db_url: str, utils: gw.WorkerUtils, profile: str) -> None:
    work, seen = recording_task()
    await add_good_jobs(utils, 0, GOOD // 2)
    poison_ids = {
        kind: await add_sql_job(db_url, "work", text) for kind, (text, _) in POISON.items()
    }
    big = "x" * 5_000_000  # large but valid: it runs
    big_id = await add_sql_job(db_url, "work", msgspec.json.encode({"blob": big}).decode())
    await add_good_jobs(utils, GOOD // 2, GOOD // 2)

    processed = await make_worker(db_url, [work], concurrency=10, **PROFILES[profile]).run_once()

    assert processed == GOOD + len(POISON) + 1
    assert sorted(p["i"] for p in seen if "i" in p) == list(range(GOOD))
    assert [len(p["blob"]) for p in seen if "blob" in p] == [len(big)]
    for kind, (_, expected) in POISON.items():
        attempts, error, locked_by, later = await failed_row(db_url, poison_ids[kind])
        assert expected in (error or ""), kind
        # A payload that cannot be decoded never will: failed for good at once.
        assert (attempts, locked_by, later) == (25, None, True), kind
    left = await rows(db_url, "select id from graphile_worker._private_jobs order by id")
    assert sorted(r[0] for r in left) == sorted(poison_ids.values())
    assert big_id not in {r[0] for r in left}


async def test_poison_payload_of_a_typed_task_fails_alone(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    class Order(msgspec.Struct):
        n: int

    ran: list[int] = []

    @gw.task("order")
    async def order(payload: Order) -> None:
        ran.append(payload.n)

    await utils.add_raw_jobs(
        [gw.RawJobSpec(identifier="order", payload={"n": i}) for i in range(20)]
    )
    bad = await add_sql_job(db_url, "order", '{"n": 1e400}')
    wrong = await add_sql_job(db_url, "order", '{"n": "seven"}')
    assert await make_worker(db_url, [order]).run_once() == 22
    assert sorted(ran) == list(range(20))
    assert "number out of range" in ((await failed_row(db_url, bad))[1] or "")
    assert "field 'n': expected `int`, got `str`" in ((await failed_row(db_url, wrong))[1] or "")


async def test_a_row_that_cannot_be_read_fails_alone(db_url: str, utils: gw.WorkerUtils) -> None:
    # run_at = -infinity is runnable, but no Python datetime can hold it.
    work, seen = recording_task()
    await add_good_jobs(utils, 0, 50)
    bad = await add_sql_job(db_url, "work", "{}", run_at="-infinity")
    assert await make_worker(db_url, [work], concurrency=10).run_once() == 51
    assert len(seen) == 50
    attempts, error, locked_by, later = await failed_row(db_url, bad)
    assert (attempts, locked_by, later) == (25, None, True)  # it never will be readable
    assert error is not None
    assert error.startswith("gw cannot read this job's row: timestamp too small")


async def test_invalid_utf8_payload_fails_alone(pg_server: Any) -> None:
    # Only a SQL_ASCII database lets bytes that are not UTF-8 into a json value.
    name = f"gw_test_ascii_{os.getpid()}"
    with pg_server.admin() as admin:
        admin.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL(
                "create database {} encoding 'SQL_ASCII' lc_collate 'C' lc_ctype 'C'"
                " template template0"
            ).format(sql.Identifier(name))
        )
    url = pg_server.url_for(name)
    try:
        work, seen = recording_task()
        async with gw.WorkerUtils.connect(url) as utils:  # migrates the new database
            await add_good_jobs(utils, 0, GOOD)
            job = await utils.add_raw_job("work", {"label": "café"})
        async with await connect(url) as conn:
            cur = await conn.execute(
                "select id from graphile_worker.add_job('work',"
                " convert_from('\\x7b2261223a2022ff227d'::bytea, 'SQL_ASCII')::json)"
            )
            row = await cur.fetchone()
        assert row is not None
        bad = int(row[0])
        worker = make_worker(url, [work], local_queue=gw.LocalQueueConfig(size=500))
        assert await worker.run_once() == GOOD + 2
        assert len(seen) == GOOD + 1
        assert {"label": "café"} in seen
        attempts, error, locked_by, later = await failed_row(url, bad)
        assert (attempts, locked_by, later) == (25, None, True)
        assert isinstance(error, bytes)  # a plain psycopg connection to SQL_ASCII: bytes
        assert (
            error.decode()
            == "payload cannot be decoded: it is not valid UTF-8 (invalid start byte)"
        )
        assert await rows(url, "select id from graphile_worker._private_jobs") == [(bad,)]
        assert job.id != bad
    finally:
        pg_server.drop_database(name)


async def test_recovery_hooks_see_poison_jobs_without_crashing(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    work, _ = recording_task()
    bad = await add_sql_job(db_url, "work", POISON["float overflow"][0])
    good = await utils.add_raw_job("work", {"i": 1})
    await rows(
        db_url,
        "update graphile_worker._private_jobs set attempts = 1, locked_by = 'graphile_worker_dead',"
        " locked_at = now() - interval '1 hour' returning id",
    )
    decided: list[Any] = []

    def decide(event: gw.JobRecovery) -> None:
        decided.append((event.job.id, type(event.job.payload)))

    worker = make_worker(
        db_url,
        [work],
        recovery=gw.RecoveryConfig(heartbeat_interval=1, sweep_threshold=60, recovery_delay=0),
    )
    worker.on(gw.JobRecovery, decide)

    async def unlocked() -> bool:
        (row,) = await rows(
            db_url,
            "select count(*) from graphile_worker._private_jobs"
            " where locked_by = 'graphile_worker_dead'",
        )
        return bool(row[0] == 0)

    async with gw.testing.running(worker):
        await gw.testing.wait_for(unlocked, message="both jobs recovered")
    assert sorted(decided) == sorted([(bad, msgspec.Raw), (good.id, dict)])


# --------------------------------------------------------------------------- error messages


async def test_error_messages_the_database_cannot_store_are_sanitised(
    db_url: str, utils: gw.WorkerUtils
) -> None:
    huge = "e" * 10_000_000
    messages = {
        "nul": ValueError("x\x00y"),
        "surrogate": FileNotFoundError(os.fsdecode(b"report-\xff.csv")),
        "huge": ValueError(huge),
        "plain": ValueError("an ordinary failure"),
    }

    @gw.task("fails")
    async def fails(payload: dict[str, str]) -> None:
        raise messages[payload["kind"]]

    work, seen = recording_task()
    ids = {}
    for kind in messages:
        ids[kind] = (await utils.add_raw_job("fails", {"kind": kind})).id
    await add_good_jobs(utils, 0, 50)
    processed = await make_worker(db_url, [fails, work], concurrency=10).run_once()
    assert processed == len(messages) + 50
    assert len(seen) == 50
    stored = {kind: await failed_row(db_url, job_id) for kind, job_id in ids.items()}
    assert all(row[0] == 1 and row[2] is None for row in stored.values())
    assert stored["nul"][1] == "x\ufffdy"
    assert stored["surrogate"][1] == "report-\ufffd.csv"
    assert stored["plain"][1] == "an ordinary failure"
    cut = gw.core._json.MAX_ERROR_LENGTH
    assert stored["huge"][1] == "e" * cut + f"... [{len(huge) - cut} more characters cut]"


@pytest.fixture
async def picky_database(db_url: str) -> str:
    """A trigger refuses to store one error message and to delete one job."""
    async with await connect(db_url) as conn:
        await conn.execute(
            """
            create function graphile_worker.picky() returns trigger language plpgsql as $$
            begin
              if tg_op = 'UPDATE' and new.last_error like '%reject me%' then
                raise exception 'errors about rejection are not welcome here';
              end if;
              if tg_op = 'DELETE' and old.payload::jsonb ? 'undeletable' then
                raise exception 'this row is here to stay';
              end if;
              return case when tg_op = 'DELETE' then old else new end;
            end $$;
            create trigger picky before update or delete on graphile_worker._private_jobs
              for each row execute function graphile_worker.picky();
            """
        )
    return db_url


async def test_a_row_the_database_refuses_does_not_hold_the_batch(
    picky_database: str, utils: gw.WorkerUtils
) -> None:
    db_url = picky_database

    @gw.task("mixed")
    async def mixed(payload: dict[str, Any]) -> None:
        if "fail" in payload:
            raise RuntimeError(payload["fail"])

    specs = [gw.RawJobSpec(identifier="mixed", payload={"ok": i}) for i in range(30)]
    specs += [gw.RawJobSpec(identifier="mixed", payload={"fail": f"plain {i}"}) for i in range(30)]
    await utils.add_raw_jobs(specs)
    rejected = await utils.add_raw_job("mixed", {"fail": "please reject me"})
    undeletable = await utils.add_raw_job("mixed", {"undeletable": True})
    worker = make_worker(
        db_url,
        [mixed],
        concurrency=10,
        local_queue=gw.LocalQueueConfig(size=100),
        # Gather everything into one completion and one failure batch.
        complete_job_batch_delay=0.2,
        fail_job_batch_delay=0.2,
    )
    assert await worker.run_once() == 62
    left = dict(
        await rows(db_url, "select id, last_error from graphile_worker._private_jobs order by id")
    )
    assert len(left) == 32  # 30 plain failures + the two special ones
    assert sorted(e for e in left.values() if e and e.startswith("plain")) == sorted(
        f"plain {i}" for i in range(30)
    )
    assert left[rejected.id] == (
        "gw could not record this job's error (errors about rejection are not welcome here); "
        "the worker's log has the original message"
    )
    assert left[undeletable.id] == (
        "the job succeeded, but gw could not delete it: this row is here to stay"
    )
    locked = await rows(
        db_url, "select count(*) from graphile_worker._private_jobs where locked_by is not null"
    )
    assert locked == [(0,)]


async def test_an_unexpected_error_recording_outcomes_stops_the_worker_and_releases_jobs(
    db_url: str, utils: gw.WorkerUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gw.worker._store import JobStore

    async def broken_complete(self: JobStore, ids: list[int], keep: list[int]) -> None:
        raise TypeError("a bug in gw")

    monkeypatch.setattr(JobStore, "complete", broken_complete)
    work, seen = recording_task()
    job = await utils.add_raw_job("work", {"i": 1})
    with pytest.raises(gw.GwError, match="this is a bug in gw") as caught:
        await make_worker(db_url, [work]).run_once()
    assert isinstance(caught.value, gw.errors.GwInternalError)
    assert isinstance(caught.value.__cause__, TypeError)
    assert len(seen) == 1
    ((attempts, locked_by, error, later),) = await rows(
        db_url,
        "select attempts, locked_by, last_error, run_at > now()"
        " from graphile_worker._private_jobs where id = %s",
        job.id,
    )
    assert (attempts, locked_by, later) == (0, None, True)
    assert error == "gw could not record this job's outcome (a bug in gw)"


async def test_transient_write_errors_are_retried(
    db_url: str, utils: gw.WorkerUtils, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gw.worker._store import JobStore

    original = JobStore.complete
    failures = [gw.errors.ConnectionLost("server closed the connection")] * 2

    async def flaky_complete(
        self: JobStore, ids: list[int], keep: list[int], history: Any = ()
    ) -> None:
        if failures:
            raise failures.pop()
        await original(self, ids, keep, history)

    monkeypatch.setattr(JobStore, "complete", flaky_complete)
    work, _seen = recording_task()
    await add_good_jobs(utils, 0, 5)
    assert await make_worker(db_url, [work]).run_once() == 5
    assert failures == []
    assert await rows(db_url, "select count(*) from graphile_worker._private_jobs") == [(0,)]


async def test_forbidden_flags_callable_errors_are_retried_not_fatal(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    work, seen = recording_task()
    calls = 0

    def flaky_flags() -> list[str]:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ValueError("flag service is down")
        return []

    await add_good_jobs(utils, 0, 3)
    worker = make_worker(db_url, [work], forbidden_flags=flaky_flags, poll_interval=0.01)
    async with gw.testing.running(worker):
        await gw.testing.wait_for(lambda: len(seen) == 3, message="jobs to run")
    assert "the forbidden_flags callable raised ValueError: flag service is down" in caplog.text

    with pytest.raises(gw.GwError, match="forbidden_flags callable raised ZeroDivisionError"):
        await make_worker(db_url, [work], forbidden_flags=lambda: 1 / 0 or []).run_once()


async def test_stale_worker_sweep_errors_are_gw_errors(db_url: str, utils: gw.WorkerUtils) -> None:
    async with await connect(db_url) as conn:
        await conn.execute("drop function graphile_worker.list_stale_workers(interval) cascade")
    with pytest.raises(gw.DatabaseError, match="sweeping stale workers"):
        await utils.sweep_stale_workers_with_config(gw.RecoveryConfig())
