"""Bad input: one ``gw: error:`` line on stderr, exit 2 (1 on the database side),
no traceback, nothing on stdout and nothing written."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import GW, REPO, Result, gw_command, gw_env

if TYPE_CHECKING:
    from collections.abc import Iterator

BAD_INPUT = [
    pytest.param(["nope"], 'Unknown command "nope"', id="unknown-command"),
    pytest.param(["list", "--bogus"], "Unknown option: --bogus", id="unknown-option"),
    pytest.param(["--bogus", "list"], "Unknown option: --bogus", id="unknown-global-option"),
    pytest.param(
        ["add", "t", "--payload", "{bad"],
        "Invalid value for --payload: not valid JSON (JSON is malformed",
        id="malformed-payload",
    ),
    pytest.param(
        ["add", "t", "--payload", "@/nonexistent/p.json"],
        "Invalid value for --payload: cannot read /nonexistent/p.json",
        id="payload-file-missing",
    ),
    pytest.param(
        ["sweep-stale-workers", "--sweep-threshold", "5x"],
        "Invalid value for --sweep-threshold: '5x' is not a duration (e.g. 500ms, 30s, 5m",
        id="bad-duration",
    ),
    pytest.param(
        ["sweep-stale-workers", "--recovery-delay", "30s5m"],
        "Invalid value for --recovery-delay: '30s5m' is not a duration",
        id="duration-units-out-of-order",
    ),
    pytest.param(
        ["add", "t", "--run-at", "2026-01-02T03:04:05"],
        "Invalid value for --run-at: '2026-01-02T03:04:05' has no timezone; add Z or +HH:MM",
        id="naive-time",
    ),
    pytest.param(
        ["reschedule", "1", "--run-at", "2026-01-02 03:04"],
        "Invalid value for --run-at: '2026-01-02 03:04' has no timezone; add Z or +HH:MM",
        id="naive-time-reschedule",
    ),
    pytest.param(
        ["add", "t", "--run-at", "tomorrow"],
        "Invalid value for --run-at: 'tomorrow' is not a time; use ISO 8601 such as "
        "2026-01-02T03:04:05Z, or + and a duration from now such as +1h",
        id="unparsable-time",
    ),
    pytest.param(
        ["add", "t", "--run-at", "+soon"],
        "Invalid value for --run-at: '+soon' is not a time from now; use + and a duration "
        "(e.g. 500ms, 30s, 5m, 2h, 1d or 1h30m; a bare number is seconds)",
        id="unparsable-relative-time",
    ),
    pytest.param(
        ["add", "t", "--delay", "5m", "--run-at", "+1h"],
        "--delay and --run-at both say when the job runs; give one of them",
        id="delay-and-run-at",
    ),
    pytest.param(
        ["add", "t", "--delay", "soon"],
        "Invalid value for --delay: 'soon' is not a duration "
        "(e.g. 500ms, 30s, 5m, 2h, 1d or 1h30m; a bare number is seconds)",
        id="unparsable-delay",
    ),
    pytest.param(
        ["reschedule", "1", "--delay", "5m", "--run-at", "+1h"],
        "--delay and --run-at both say when the job runs; give one of them",
        id="delay-and-run-at-reschedule",
    ),
    pytest.param(
        ["complete", "1", "abc"],
        "'abc' is not a job id (ids are positive integers)",
        id="non-numeric-id",
    ),
    pytest.param(["show", "0"], "'0' is not a job id (ids are positive integers)", id="zero-id"),
    *(
        pytest.param(
            [command, "99999999999999999999", *extra],
            "'99999999999999999999' is not a job id (ids go up to 9223372036854775807)",
            id=f"over-range-id-{command}",
        )
        for command, extra in (
            ("show", []),
            ("complete", []),
            ("fail", ["--reason", "r"]),
            ("reschedule", ["--priority", "1"]),
        )
    ),
    pytest.param(
        ["show", "9223372036854775808"],
        "'9223372036854775808' is not a job id (ids go up to 9223372036854775807)",
        id="bigint-max-plus-one",
    ),
    pytest.param(
        ["sweep-stale-workers", "--sweep-threshold", "-5s"],
        "Invalid value for --sweep-threshold: '-5s' is negative; durations are 0 or more",
        id="negative-duration",
    ),
    pytest.param(
        ["sweep-stale-workers", "--recovery-delay=-1"],
        "Invalid value for --recovery-delay: '-1' is negative; durations are 0 or more",
        id="negative-duration-with-equals",
    ),
    pytest.param(
        ["worker", "--tasks", "examples.tasks", "--grace-period", "-.5"],
        "Invalid value for --grace-period: '-.5' is negative; durations are 0 or more",
        id="negative-fraction-duration",
    ),
    pytest.param(["fail", "x1", "--reason", "r"], "'x1' is not a job id", id="non-numeric-id-fail"),
    pytest.param(
        ["add", "t", "--job-key", "k", "--job-key-mode", "sometimes"],
        "Invalid value for --job-key-mode: unknown job key mode 'sometimes'; "
        "expected replace, preserve_run_at or unsafe_dedupe",
        id="unknown-job-key-mode",
    ),
    pytest.param(
        ["add", "t", "--job-key-mode", "replace"],
        "job_key_mode='replace' needs a job_key",
        id="job-key-mode-without-key",
    ),
    pytest.param(
        ["add", "t", "--max-attempts", "0"],
        "max_attempts must be between 1 and 32767, got 0",
        id="max-attempts-zero",
    ),
    pytest.param(
        ["add", "t", "--priority", "high"],
        'Invalid value for --priority: unable to convert "high" into int',
        id="non-numeric-priority",
    ),
    pytest.param(["add"], "requires an argument", id="missing-identifier"),
    pytest.param(
        ["list", "--state", "stuck"], 'Invalid value "stuck" for --state', id="unknown-state"
    ),
    pytest.param(["list", "--limit", "0"], "--limit must be between 1 and 500", id="bad-limit"),
    pytest.param(
        ["cleanup", "--task", "vacuum"],
        "unknown cleanup task 'vacuum'; expected one of delete-permanently-failed-jobs, "
        "gc-task-identifiers, gc-job-queues",
        id="unknown-cleanup-task",
    ),
    pytest.param(
        ["--backend", "curio", "stats"], 'Invalid value "curio" for --backend', id="bad-backend"
    ),
    pytest.param(
        ["worker", "--tasks", "examples.tasks", "--poll-interval", "soon"],
        "Invalid value for --poll-interval: 'soon' is not a duration",
        id="worker-bad-duration",
    ),
    pytest.param(
        ["worker", "--tasks", "no_such_module_here"],
        "--tasks no_such_module_here: no module named 'no_such_module_here'",
        id="worker-missing-module",
    ),
    pytest.param(
        ["worker", "--tasks", "examples.tasks:nothing"],
        "--tasks examples.tasks:nothing: module examples.tasks has no attribute 'nothing'",
        id="worker-missing-attribute",
    ),
    pytest.param(
        ["worker", "--tasks", "json"],
        "--tasks json: no gw tasks found",
        id="worker-module-without-tasks",
    ),
    pytest.param(
        ["worker", "--tasks", "examples.tasks", "--crontab", "/nonexistent/crontab"],
        "cannot read --crontab /nonexistent/crontab",
        id="worker-missing-crontab",
    ),
    pytest.param(
        ["worker", "--tasks", "examples.tasks", "--concurrency", "0"],
        "concurrency must be an integer >= 1, got 0",
        id="worker-zero-concurrency",
    ),
]


@dataclass
class BadRun:
    """All BAD_INPUT cases, run concurrently against one seeded database."""

    gw: GW
    before: list[dict[str, Any]]
    results: dict[str, Result]


@pytest.fixture(scope="module")
def bad_run(pg_server: Any) -> Iterator[BadRun]:
    name = pg_server.create_database()
    try:
        gw = GW(pg_server.url_for(name))
        gw.add_job("t", {"keep": True})
        gw.lock(gw.add_job("t"), "graphile_worker_gone_long_ago", ago="1 hour")
        before = gw.jobs()
        cases = [(p.id, p.values[0]) for p in BAD_INPUT]
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = pool.map(lambda case: (case[0], gw(*case[1])), cases)
            results = dict(done)
        yield BadRun(gw, before, results)
    finally:
        pg_server.drop_database(name)


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(
    bad_run: BadRun, request: pytest.FixtureRequest, args: list[str], message: str
) -> None:
    result = bad_run.results[request.node.callspec.id]
    assert result.returncode == 2, result.stderr
    assert message in result.error
    assert result.stdout == ""


def test_bad_input_writes_nothing(bad_run: BadRun) -> None:
    assert len(bad_run.results) == len(BAD_INPUT)
    assert bad_run.gw.jobs() == bad_run.before
    assert len(bad_run.before) == 2
    assert bad_run.gw.sql("select count(*) from graphile_worker._private_tasks") == [(1,)]
    assert bad_run.gw.sql("select count(*) from graphile_worker._private_job_queues") == [(0,)]


def test_bad_crontab_names_the_file_and_line(gw: GW, tmp_path: object) -> None:
    from pathlib import Path

    crontab = Path(str(tmp_path)) / "crontab"
    crontab.write_text("0 4 * * * send_email\n61 * * * * send_email\n")
    result = gw("worker", "--tasks", "examples.tasks", "--crontab", str(crontab))
    assert result.returncode == 2
    assert result.error.startswith(f"--crontab {crontab}: invalid crontab: line 2")
    assert gw.jobs() == []


def _run(args: list[str], **env: str) -> Result:
    proc = subprocess.run(
        gw_command(*args), capture_output=True, text=True, cwd=REPO, env=gw_env(**env), timeout=60
    )
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


def test_unreachable_database_is_exit_1() -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=5"
    result = _run(["--database-url", url, "stats"])
    assert result.returncode == 1
    assert result.error.startswith(
        "could not connect to PostgreSQL at postgres@127.0.0.1:1/postgres"
    )
    assert "Check that PostgreSQL is running" in result.error
    # DATABASE_URL is used the same way.
    result = _run(["add", "t"], DATABASE_URL=url)
    assert result.returncode == 1
    assert "could not connect to PostgreSQL" in result.error


def test_unparsable_database_url_is_exit_2() -> None:
    result = _run(["--database-url", "not a url", "stats"])
    assert result.returncode == 2
    assert result.error.startswith("the database URL is not a valid PostgreSQL connection string")


def test_missing_schema_is_a_database_side_error(gw: GW) -> None:
    result = gw("--schema", "not_installed", "list")
    assert result.returncode == 1
    assert "the gw schema is missing or out of date" in result.error
    assert "run `gw migrate`" in result.error
