"""WorkerUtils refuses bad input with a specific error before writing anything."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from gw.core.utils import WorkerUtils
from gw.db.migrate import migrate
from gw.errors import ConfigurationError, DatabaseError, InvalidJobSpec, MigrationError
from gw.types import JobSpec, RawJobSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gw.db.pool import Pool
    from tests.core.conftest import Db

NAIVE = datetime(2030, 1, 1)
NAIVE_MESSAGE = (
    "run_at 2030-01-01T00:00:00 has no timezone; pass an aware datetime such as "
    "datetime.now(UTC) or datetime(..., tzinfo=UTC)"
)
NOT_JSON = (
    "the payload cannot be encoded as JSON (Encoding objects of type object is unsupported); "
    "use dicts, lists, strings, numbers, booleans, None, datetimes or msgspec Structs"
)
SET_MESSAGE = (
    "the payload cannot be encoded as JSON: {path} is a {kind}, and JSON has no sets; "
    "pass a list (sorted, so the payload is deterministic)"
)
IDS_MESSAGE = "job ids must be positive integers, got {!r}"


def spec_case(spec: JobSpec, message: str, id: str) -> Any:
    return pytest.param(lambda u: u.add_raw_job("t", {}, spec), message, id=id)


CASES = [
    spec_case(
        JobSpec(job_key="k", job_key_mode="upsert"),  # type: ignore[arg-type]
        "unknown job_key_mode 'upsert'; expected one of 'replace', 'preserve_run_at' or "
        "'unsafe_dedupe'",
        "unknown-job-key-mode",
    ),
    spec_case(
        JobSpec(max_attempts=0), "max_attempts must be between 1 and 32767, got 0", "max-zero"
    ),
    spec_case(
        JobSpec(max_attempts=-3), "max_attempts must be between 1 and 32767, got -3", "max-neg"
    ),
    spec_case(
        JobSpec(max_attempts=40_000),
        "max_attempts must be between 1 and 32767, got 40000",
        "max-too-big",
    ),
    spec_case(
        JobSpec(max_attempts="5"),  # type: ignore[arg-type]
        "max_attempts must be an integer, got '5'",
        "max-not-int",
    ),
    spec_case(
        JobSpec(priority=32_768),
        "priority must be between -32768 and 32767, got 32768",
        "priority-too-big",
    ),
    spec_case(
        JobSpec(priority=-32_769),
        "priority must be between -32768 and 32767, got -32769",
        "priority-too-small",
    ),
    spec_case(JobSpec(run_at=NAIVE), NAIVE_MESSAGE, "naive-run-at"),
    spec_case(
        JobSpec(job_key="k" * 513), "job_key is 513 characters long; the limit is 512", "long-key"
    ),
    spec_case(
        JobSpec(queue_name="q" * 129),
        "queue_name is 129 characters long; the limit is 128",
        "long-queue",
    ),
    spec_case(
        JobSpec(queue_name=""),
        "queue_name must be a non-empty string (or None for no queue)",
        "empty-queue",
    ),
    spec_case(
        JobSpec(flags="slow"),  # type: ignore[arg-type]
        "flags must be a sequence of non-empty strings",
        "flags-string",
    ),
    pytest.param(
        lambda u: u.add_raw_job("t", {}, {"queue_name": "q"}),
        "spec must be a gw.JobSpec (or None), got dict",
        id="spec-not-a-jobspec",
    ),
    pytest.param(
        lambda u: u.add_jobs([("t", {}, "q")]),
        "job #0 ('t'): spec must be a gw.JobSpec (or None), got str",
        id="batch-spec-not-a-jobspec",
    ),
    pytest.param(
        lambda u: u.add_raw_job("t" * 129, {}),
        "task identifier is 129 characters long; the limit is 128",
        id="long-identifier",
    ),
    pytest.param(
        lambda u: u.add_raw_job("", {}),
        "task identifier must be a non-empty string, got ''",
        id="empty-identifier",
    ),
    pytest.param(
        lambda u: u.add_job(object(), {}),
        "expected a task identifier string or a gw task, got object",
        id="not-a-task",
    ),
    pytest.param(
        lambda u: u.add_jobs([("t", {}), (object(), {})]),
        "job #1: expected a task identifier string or a gw task, got object",
        id="batch-not-a-task",
    ),
    pytest.param(lambda u: u.add_raw_job("t", object()), NOT_JSON, id="payload-object"),
    pytest.param(lambda u: u.add_raw_job("t", {"o": object()}), NOT_JSON, id="payload-nested"),
    pytest.param(
        lambda u: u.add_raw_job("t", {1, 2}),
        SET_MESSAGE.format(path="payload", kind="set"),
        id="payload-set",
    ),
    pytest.param(
        lambda u: u.add_raw_job("t", {"tags": [frozenset({"a"})]}),
        SET_MESSAGE.format(path="payload['tags'][0]", kind="frozenset"),
        id="payload-nested-frozenset",
    ),
    pytest.param(
        lambda u: u.add_raw_job("t", {"x": float("nan")}),
        "the payload cannot be encoded as JSON: payload['x'] is nan, which JSON cannot represent",
        id="payload-nan",
    ),
    pytest.param(
        lambda u: u.add_batch_job("t", []), "a batch job needs at least one item", id="batch-empty"
    ),
    pytest.param(
        lambda u: u.add_batch_job("t", "abc"),
        "a batch job's items must be a list",
        id="batch-string",
    ),
    pytest.param(
        lambda u: u.add_batch_job("t", {"a": 1}),
        "a batch job's items must be a list",
        id="batch-dict",
    ),
    pytest.param(
        lambda u: u.add_batch_job("t", [{1}]),
        SET_MESSAGE.format(path="payload[0]", kind="set"),
        id="batch-item-not-json",
    ),
    # In a batch, the first bad job is named and none is written.
    pytest.param(
        lambda u: u.add_jobs([("t", {}), ("t", {}, JobSpec(run_at=NAIVE))]),
        f"job #1 ('t'): {NAIVE_MESSAGE}",
        id="batch-naive-run-at",
    ),
    pytest.param(
        lambda u: u.add_raw_jobs(
            [RawJobSpec(identifier="t"), RawJobSpec(identifier="t", payload=object())]
        ),
        f"job #1 ('t'): {NOT_JSON}",
        id="batch-payload",
    ),
    pytest.param(
        lambda u: u.add_raw_jobs([RawJobSpec(identifier="x" * 129)]),
        f"job #0 ({'x' * 129!r}): task identifier is 129 characters long; the limit is 128",
        id="batch-long-identifier",
    ),
    pytest.param(
        lambda u: u.add_jobs([("t", {}, JobSpec(max_attempts=0))]),
        "job #0 ('t'): max_attempts must be between 1 and 32767, got 0",
        id="batch-max-attempts",
    ),
    # Management operations.
    pytest.param(
        lambda u: u.reschedule_jobs([1], run_at=NAIVE),
        "run_at 2030-01-01T00:00:00 has no timezone; pass an aware datetime",
        id="reschedule-naive",
    ),
    pytest.param(
        lambda u: u.reschedule_jobs([1], priority=40_000),
        "priority must be between -32768 and 32767, got 40000",
        id="reschedule-priority",
    ),
    pytest.param(
        lambda u: u.reschedule_jobs([1], max_attempts=0),
        "max_attempts must be between 1 and 32767, got 0",
        id="reschedule-max-attempts",
    ),
    pytest.param(
        lambda u: u.reschedule_jobs([1], attempts=-1),
        "attempts must be between 0 and 32767, got -1",
        id="reschedule-attempts",
    ),
    pytest.param(lambda u: u.complete_jobs([1, 0]), IDS_MESSAGE.format(0), id="complete-zero"),
    pytest.param(
        lambda u: u.permanently_fail_jobs([-1]), IDS_MESSAGE.format(-1), id="fail-negative"
    ),
    pytest.param(
        lambda u: u.reschedule_jobs([True], priority=1),
        IDS_MESSAGE.format(True),
        id="reschedule-bool",
    ),
    pytest.param(lambda u: u.complete_jobs(["1"]), IDS_MESSAGE.format("1"), id="complete-str"),
    pytest.param(lambda u: u.get_job(0), IDS_MESSAGE.format(0), id="get-job-zero"),
    pytest.param(
        lambda u: u.remove_job(""), "remove_job needs a non-empty job key", id="remove-empty-key"
    ),
    pytest.param(
        lambda u: u.list_active_workers(threshold=-1),
        "threshold must be a number of seconds >= 0, got -1",
        id="active-workers-threshold",
    ),
    pytest.param(
        lambda u: u.sweep_stale_workers(sweep_threshold=float("nan")),
        "sweep_threshold must be a number of seconds >= 0, got nan",
        id="sweep-threshold-nan",
    ),
    pytest.param(
        lambda u: u.force_unlock_workers(["w", ""]),
        "worker ids must be non-empty strings",
        id="force-unlock-empty-id",
    ),
]


@pytest.fixture
async def populated(utils: WorkerUtils, db: Db) -> WorkerUtils:
    """Some state to prove untouched: a job 1 (unlocked) in a queue, with a key."""
    job = await utils.add_raw_job("t", {"keep": True}, JobSpec(queue_name="q", job_key="k"))
    assert job.id == 1
    return utils


@pytest.mark.parametrize(("call", "message"), CASES)
async def test_bad_input_is_refused_and_nothing_is_written(
    populated: WorkerUtils, db: Db, call: Callable[[WorkerUtils], Awaitable[Any]], message: str
) -> None:
    before = await db.snapshot()
    with pytest.raises(ConfigurationError) as caught:
        await call(populated)
    assert str(caught.value) == message
    assert await db.snapshot() == before


async def test_bad_job_input_is_an_invalid_job_spec(populated: WorkerUtils) -> None:
    with pytest.raises(InvalidJobSpec):
        await populated.add_raw_job("t", {}, JobSpec(max_attempts=0))


async def test_the_limits_themselves_are_accepted(utils: WorkerUtils, db: Db) -> None:
    job = await utils.add_raw_job(
        "t" * 128,
        {},
        JobSpec(
            queue_name="q" * 128,
            job_key="k" * 512,
            max_attempts=32_767,
            priority=-32_768,
            run_at=datetime(2030, 1, 1, tzinfo=UTC),
        ),
    )
    assert (len(job.task_identifier), len(job.queue_name or ""), len(job.key or "")) == (
        128,
        128,
        512,
    )
    low = await utils.add_raw_job("t", {}, JobSpec(max_attempts=1, priority=32_767))
    assert (low.max_attempts, low.priority) == (1, 32_767)
    assert await db.count_jobs() == 2


SCHEMA_CASES = [
    pytest.param("", "schema must be a non-empty string, got ''", id="empty"),
    pytest.param(
        "s" * 64, f"schema name {'s' * 64!r} is 64 bytes; PostgreSQL allows 63", id="64-bytes"
    ),
    pytest.param(
        "é" * 32, f"schema name {'é' * 32!r} is 64 bytes; PostgreSQL allows 63", id="64-utf8-bytes"
    ),
    pytest.param("a\x00b", "schema name must not contain NUL characters", id="nul"),
    pytest.param(None, "schema must be a non-empty string, got None", id="none"),
]


@pytest.mark.parametrize(("schema", "message"), SCHEMA_CASES)
async def test_invalid_schema_names_are_refused(
    pool: Pool, db: Db, db_url: str, schema: Any, message: str
) -> None:
    schemas = "select array_agg(nspname order by nspname) as names from pg_namespace"
    before = await db.value(schemas)
    with pytest.raises(ConfigurationError) as caught:
        WorkerUtils(pool, schema)
    assert str(caught.value) == message
    with pytest.raises(ConfigurationError) as caught:
        await migrate(db_url, schema)
    assert str(caught.value) == message
    assert await db.value(schemas) == before


async def test_a_63_byte_schema_name_is_accepted(pool: Pool, db: Db) -> None:
    utils = WorkerUtils(pool, "s" * 63)
    report = await utils.migrate()
    assert report.applied == tuple(range(1, 21))
    job = await utils.add_raw_job("t", {})
    assert (await utils.get_job(job.id)) == job


async def test_an_uninstalled_schema_is_a_gw_error(pool: Pool, db: Db) -> None:
    utils = WorkerUtils(pool, "never_migrated")
    expected = "the gw schema is missing or out of date"
    for call in (
        utils.add_raw_job("t", {}),
        utils.add_jobs([("t", {})]),
        utils.complete_jobs([1]),
        utils.list_jobs(),
        utils.cleanup(),
    ):
        with pytest.raises(DatabaseError) as caught:
            await call
        assert expected in str(caught.value)
        assert "run `gw migrate` or WorkerUtils.migrate() first" in str(caught.value)
    assert not await db.value(
        "select exists (select from pg_namespace where nspname = 'never_migrated') as e"
    )


async def test_a_migration_the_database_refuses_is_a_migration_error(db_url: str, db: Db) -> None:
    # Roles are cluster-wide: a unique name keeps parallel runs apart.
    role = f"gw_test_reader_{os.getpid()}_{secrets.token_hex(4)}"
    await db.execute(f'create role "{role}" login')
    try:
        with pytest.raises(MigrationError) as caught:
            await migrate(f"{db_url} user={role}", "reader_schema")
        assert str(caught.value) == (
            "could not install the 'reader_schema' schema: permission denied for database "
            f"{conninfo_to_dict(db_url)['dbname']}"
        )
    finally:
        await db.execute(f'drop role "{role}"')
    assert not await db.value(
        "select exists (select from pg_namespace where nspname = 'reader_schema') as e"
    )
