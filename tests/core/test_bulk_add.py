"""Bulk adds larger than one statement: sent as several ``add_jobs`` statements
in one transaction, so a batch is still all-or-nothing, returned in input order
with the payloads as stored."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

import gw
import gw.sync
from gw.core import _requests as rq

if TYPE_CHECKING:
    from .conftest import Db

SIZE = rq.ADD_JOBS_STATEMENT_SIZE
MISMATCH = "add_jobs rows did not match the jobs sent"
MANY = 2 * SIZE + 1  # three statements


def specs(count: int, **spec: Any) -> list[gw.RawJobSpec]:
    return [
        gw.RawJobSpec(
            identifier=f"t{i % 3}", payload={"i": i, "tags": [i, "x"]}, spec=gw.JobSpec(**spec)
        )
        for i in range(count)
    ]


async def test_a_batch_of_several_statements_comes_back_in_order(
    utils: gw.WorkerUtils, db: Db
) -> None:
    jobs = await utils.add_raw_jobs(specs(MANY, queue_name="q"))
    assert [job.payload for job in jobs] == [{"i": i, "tags": [i, "x"]} for i in range(MANY)]
    assert [job.task_identifier for job in jobs] == [f"t{i % 3}" for i in range(MANY)]
    assert {job.queue_name for job in jobs} == {"q"}
    ids = [job.id for job in jobs]
    assert ids == sorted(ids)
    stored = await db.rows("select id, payload from {s}._private_jobs order by id")
    assert [(row["id"], row["payload"]) for row in stored] == [
        (job.id, job.payload) for job in jobs
    ]


async def test_a_bad_job_in_a_later_statement_writes_nothing(utils: gw.WorkerUtils, db: Db) -> None:
    before = await db.snapshot()
    batch = specs(MANY)
    batch[SIZE + 7] = gw.RawJobSpec(identifier="t0", payload={"tags": {1, 2}})
    with pytest.raises(gw.InvalidJobSpec) as caught:
        await utils.add_raw_jobs(batch)
    assert str(caught.value).startswith(f"job #{SIZE + 7} ('t0'): the payload cannot be encoded")
    assert "payload['tags'] is a set" in str(caught.value)
    assert await db.snapshot() == before


async def test_a_key_used_twice_across_statements_is_refused_up_front(
    utils: gw.WorkerUtils, db: Db
) -> None:
    before = await db.snapshot()
    batch = specs(MANY)
    batch[3] = gw.RawJobSpec(identifier="t0", spec=gw.JobSpec(job_key="k"))
    batch[2 * SIZE] = gw.RawJobSpec(identifier="t0", spec=gw.JobSpec(job_key="k"))
    with pytest.raises(gw.InvalidJobSpec, match="job_key 'k' appears more than once"):
        await utils.add_raw_jobs(batch)
    assert await db.snapshot() == before


async def test_a_database_error_in_a_later_statement_rolls_the_whole_batch_back(
    utils: gw.WorkerUtils, db: Db
) -> None:
    # A trigger refuses one row of the third statement.
    await db.execute(
        """
        create function {s}.refuse() returns trigger language plpgsql as $$
        begin
          if (new.payload->>'i')::int = %(bad)s then
            raise exception 'refused by a trigger';
          end if;
          return new;
        end $$;
        create trigger refuse before insert on {s}._private_jobs
          for each row execute function {s}.refuse();
        """.replace("%(bad)s", str(2 * SIZE)),
    )
    before = await db.snapshot()
    with pytest.raises(gw.DatabaseError, match="refused by a trigger"):
        await utils.add_raw_jobs(specs(MANY))
    assert await db.snapshot() == before
    # The connection went back clean: the next add works.
    assert len(await utils.add_raw_jobs(specs(3))) == 3


async def test_preserve_run_at_anywhere_applies_to_every_statement(
    utils: gw.WorkerUtils, db: Db
) -> None:
    first = await utils.add_raw_job("t0", {}, gw.JobSpec(job_key="early", run_at=None))
    batch = specs(MANY)
    # The key that exists comes in the first statement, the preserve request in the last.
    batch[0] = gw.RawJobSpec(identifier="t0", spec=gw.JobSpec(job_key="early"))
    batch[-1] = gw.RawJobSpec(
        identifier="t0", spec=gw.JobSpec(job_key="late", job_key_mode="preserve_run_at")
    )
    jobs = await utils.add_raw_jobs(batch)
    assert jobs[0].id == first.id
    assert jobs[0].run_at == first.run_at  # preserved, although asked in another statement


def test_sync_batches_of_several_statements_are_atomic_too(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        utils = gw.sync.WorkerUtils(conn)
        batch = specs(MANY)
        batch[-1] = gw.RawJobSpec(identifier="", payload={})
        with pytest.raises(gw.InvalidJobSpec, match=f"job #{MANY - 1} \\(''\\): task identifier"):
            utils.add_raw_jobs(batch)
        assert conn.execute("select count(*) from graphile_worker._private_jobs").fetchone() == (0,)
        jobs = utils.add_raw_jobs(specs(MANY))
        assert [job.payload["i"] for job in jobs] == list(range(MANY))


async def test_returned_jobs_are_the_rows_as_stored(utils: gw.WorkerUtils) -> None:
    # A keyed batch job merges the new items into the existing array: the
    # returned payload is the merged one, not what this call sent.
    first = await utils.add_raw_job("t0", [1, 2], gw.JobSpec(job_key="batch"))
    jobs = await utils.add_raw_jobs(
        [
            gw.RawJobSpec(identifier="t0", payload=[3], spec=gw.JobSpec(job_key="batch")),
            gw.RawJobSpec(identifier="t1", payload={"other": True}),
        ]
    )
    by_task = {job.task_identifier: job for job in jobs}
    assert by_task["t0"].id == first.id
    assert by_task["t0"].payload == [1, 2, 3]
    assert by_task["t0"].revision == 1
    assert by_task["t1"].payload == {"other": True}


def mixed_batch() -> list[gw.RawJobSpec]:
    """Jobs with every field set some way, keyed ones included."""
    run_at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    return [
        gw.RawJobSpec(identifier="a", payload=None),
        gw.RawJobSpec(
            identifier="b",
            payload={"n": [1, 2.5, None, "é"]},
            spec=gw.JobSpec(queue_name="q1", priority=-3, max_attempts=2, flags=["x", "y", "x"]),
        ),
        gw.RawJobSpec(identifier="a", payload=[3], spec=gw.JobSpec(job_key="merge")),
        gw.RawJobSpec(identifier="c", payload={"when": run_at}, spec=gw.JobSpec(run_at=run_at)),
        gw.RawJobSpec(identifier="a", payload=7, spec=gw.JobSpec(job_key="running")),
        gw.RawJobSpec(identifier="b", payload="s", spec=gw.JobSpec(job_key="new", queue_name="q2")),
        gw.RawJobSpec(identifier="a", payload={}, spec=gw.JobSpec(job_key="failed")),
        gw.RawJobSpec(identifier="c", payload=True, spec=gw.JobSpec(queue_name="q1")),
    ]


async def keyed_rows_to_meet(utils: gw.WorkerUtils, db: Db) -> None:
    """An unlocked batch job to merge into, a running job and a failed one."""
    await utils.add_raw_job("a", [1, 2], gw.JobSpec(job_key="merge"))
    running = await utils.add_raw_job("a", {}, gw.JobSpec(job_key="running"))
    failed = await utils.add_raw_job("a", {}, gw.JobSpec(job_key="failed"))
    await db.execute(
        "update {s}._private_jobs set locked_at = now(), locked_by = 'w' where id = %(id)s",
        {"id": running.id},
    )
    await db.execute(
        "update {s}._private_jobs set attempts = max_attempts where id = %(id)s",
        {"id": failed.id},
    )


@pytest.mark.parametrize("lean", [True, False], ids=["lean rows", "full rows"])
async def test_every_returned_job_is_the_row_as_stored(
    utils: gw.WorkerUtils, db: Db, lean: bool, caplog: pytest.LogCaptureFixture
) -> None:
    await keyed_rows_to_meet(utils, db)
    utils._lean_add = lean
    with caplog.at_level(logging.DEBUG, "gw.utils"):
        jobs = await utils.add_raw_jobs(mixed_batch())
    assert MISMATCH not in caplog.text  # built from the lean rows, not read again
    assert len(jobs) == 8
    assert [job.task_identifier for job in jobs] == ["a", "b", "a", "c", "a", "b", "a", "c"]
    for job in jobs:
        assert job == await utils.get_job(job.id)
    assert jobs[2].payload == [1, 2, 3]
    assert jobs[2].revision == 1
    assert jobs[1].flags == {"x": True, "y": True}
    assert jobs[3].payload == {"when": "2031-05-06T07:08:09.123456Z"}


REWRITE_TRIGGER = """
    create function {s}.rewrite() returns trigger language plpgsql as $$
    begin
      if new.payload::text = '"drop"' then
        return null;
      end if;
      new.priority := new.priority + 100;
      new.key := coalesce(new.key || '-renamed', null);
      return new;
    end $$;
    create trigger rewrite before insert on {s}._private_jobs
      for each row execute function {s}.rewrite();
    """


def rewritten_batch() -> list[gw.RawJobSpec]:
    return [
        gw.RawJobSpec(identifier="a", payload=1),
        gw.RawJobSpec(identifier="a", payload="drop"),
        gw.RawJobSpec(identifier="a", payload=2, spec=gw.JobSpec(job_key="k")),
    ]


@pytest.mark.parametrize("when", ["before the first add", "after the first add"])
async def test_rows_a_trigger_rewrote_are_returned_as_stored(
    utils: gw.WorkerUtils, db: Db, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    # Lean rows say only id and times, so a trigger on the jobs table that
    # rewrites or drops jobs means full rows. A trigger created after the
    # WorkerUtils checked is still noticed when it drops a job or changes a
    # key (the rows no longer line up), and the rows are read again by id.
    if when == "after the first add":
        await utils.add_raw_jobs([gw.RawJobSpec(identifier="a", payload=0)])
        assert utils._lean_add is True
    await db.execute(REWRITE_TRIGGER)
    with caplog.at_level(logging.DEBUG, "gw.utils"):
        jobs = await utils.add_raw_jobs(rewritten_batch())
    assert utils._lean_add is (when == "after the first add")
    assert (MISMATCH in caplog.text) is (when == "after the first add")
    assert [(job.payload, job.priority, job.key) for job in jobs] == [
        (1, 100, None),
        (2, 100, "k-renamed"),
    ]
    for job in jobs:
        assert job == await utils.get_job(job.id)


async def test_an_add_jobs_without_input_order_gets_full_rows(
    utils: gw.WorkerUtils, db: Db
) -> None:
    # Node's add_jobs has no ORDER BY: its rows cannot be matched to the jobs
    # sent by position, so they come back whole.
    source = await db.rows(
        "select prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = %(schema)s and p.proname = 'add_jobs'",
        {"schema": utils.schema},
    )
    body = source[0]["prosrc"].replace("order by s.ordinality", "")
    await db.execute(
        "create or replace function {s}.add_jobs(specs {s}.job_spec[],"
        " job_key_preserve_run_at boolean default false) returns setof {s}._private_jobs"
        " language plpgsql as $fn$" + body.replace("%", "%%") + "$fn$"
    )
    await keyed_rows_to_meet(utils, db)
    jobs = await utils.add_raw_jobs(mixed_batch())
    assert utils._lean_add is False
    # Its rows come grouped by task here: a lean read would have mixed them up.
    assert sorted(job.task_identifier for job in jobs) == sorted("abacabac")
    for job in jobs:
        assert job == await utils.get_job(job.id)


@pytest.mark.parametrize("count", [0, 1, SIZE, SIZE + 1, 2 * SIZE + 1, 20_000, 100_003])
def test_a_batch_is_cut_into_a_small_first_statement_and_even_ones(count: int) -> None:
    bounds = rq.statement_bounds(count)
    assert [job for first, last in bounds for job in range(first, last)] == list(range(count))
    sizes = [last - first for first, last in bounds]
    assert all(0 < size <= SIZE for size in sizes)
    if count > SIZE:
        # The server starts on a small statement while the next is encoded;
        # the rest are as few and as even as statements of SIZE allow.
        assert sizes[0] == rq.FIRST_STATEMENT_SIZE
        assert len(sizes) == 1 + -(-(count - sizes[0]) // SIZE)
        assert max(sizes[1:]) - min(sizes[1:]) <= 1
    else:
        assert len(sizes) == (1 if count else 0)
