"""gw history, gw result and gw worker --history, as subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import poll_until

from .conftest import GW, GW_TIMEOUT, REPO, gw_command, gw_env

if TYPE_CHECKING:
    from pathlib import Path

TASKS = "tests.cli.history_tasks"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HISTORY = "graphile_worker._private_gw_history"


def record(
    gw: GW,
    job_id: int,
    *,
    outcome: str,
    finished_at: datetime,
    duration: float = 0.5,
    run_at: datetime | None = None,
    task: str = "t",
    queue: str | None = None,
    attempt: int = 1,
    max_attempts: int = 25,
    error: str | None = None,
    result: Any = None,
    payload: Any = None,
) -> None:
    """One history row, as a worker with gw.History would have written it."""
    gw.sql(
        f"insert into {HISTORY} (job_id, task_identifier, queue_name, attempt, max_attempts,"
        " worker_id, run_at, started_at, finished_at, outcome, error, result, payload)"
        " values (%s, %s, %s, %s, %s, 'graphile_worker_w1', %s, %s, %s, %s, %s, %s, %s)",
        (
            job_id, task, queue, attempt, max_attempts, run_at,
            finished_at - timedelta(seconds=duration), finished_at, outcome, error,
            None if result is None else json.dumps(result),
            None if payload is None else json.dumps(payload),
        ),
    )  # fmt: skip


def cells(line: str) -> list[str]:
    """A plain table line's cells (columns are two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def run_worker(gw: GW, *args: str) -> None:
    # Not gw.ok: the worker logs the traceback of each failed attempt.
    result = gw("worker", "--tasks", TASKS, "--once", *args)
    assert result.returncode == 0, result.stderr


def make_ready(gw: GW, job_id: int) -> None:
    """Let a failed job's retry run now (instead of after its backoff)."""
    gw.sql("update graphile_worker._private_jobs set run_at = now() where id = %s", (job_id,))


def history_rows(gw: GW) -> list[tuple[Any, ...]]:
    return gw.sql(
        f"select job_id, task_identifier, attempt, max_attempts, outcome, error, result, payload"
        f" from {HISTORY} order by job_id, attempt"
    )


# -- gw history


def test_history_table_newest_first(gw: GW) -> None:
    long_error = "ValueError: " + "x" * 80 + "\nTraceback (most recent call last): ..."
    record(
        gw, 101, task="send_email", outcome="completed", run_at=T0,
        finished_at=T0 + timedelta(seconds=0.2623), duration=0.0123, result={"sent": True},
    )  # fmt: skip
    record(
        gw, 102, task="resize", queue="images", attempt=1, max_attempts=2, outcome="failed",
        run_at=T0 + timedelta(seconds=58), finished_at=T0 + timedelta(seconds=61.5),
        duration=1.5, error="OSError: disk full\nTraceback (most recent call last): ...",
    )  # fmt: skip
    record(
        gw, 102, task="resize", queue="images", attempt=2, max_attempts=2,
        outcome="permanently_failed", finished_at=T0 + timedelta(seconds=200), duration=90,
        error=long_error,
    )  # fmt: skip

    lines = gw.ok("history").stdout.splitlines()
    assert [cells(line) for line in lines[:-1]] == [
        ["FINISHED", "JOB", "TASK", "QUEUE", "ATTEMPT", "OUTCOME", "DURATION", "QUEUE WAIT",
         "WORKER", "ERROR"],
        ["2026-01-02 03:07:25Z", "102", "resize", "images", "2/2", "permanently_failed",
         "1m30s", "-", "graphile_worker_w1", "ValueError: " + "x" * 47 + "…"],
        ["2026-01-02 03:05:06Z", "102", "resize", "images", "1/2", "failed", "1.5s", "2s",
         "graphile_worker_w1", "OSError: disk full / Traceback (most recent call last): ..."],
        ["2026-01-02 03:04:05Z", "101", "send_email", "-", "1/25", "completed", "12.3ms",
         "250ms", "graphile_worker_w1", "-"],
    ]  # fmt: skip
    assert lines[-1] == "3 attempt(s), newest first"
    # A page as long as --limit says how to get the next one.
    (second_id,) = gw.sql(f"select id from {HISTORY} where job_id = 102 and attempt = 1")[0]
    assert gw.ok("history", "--limit", "2").stdout.splitlines()[-1] == (
        f"2 attempt(s), newest first; older ones with --before-id {second_id}"
    )
    rest = gw.ok("history", "--limit", "2", "--before-id", str(second_id)).stdout.splitlines()
    assert [cells(line)[1] for line in rest[1:-1]] == ["101"]
    assert rest[-1] == "1 attempt(s), newest first"


def test_history_json_has_every_field_with_duration_and_queue_wait(gw: GW) -> None:
    record(
        gw, 7, task="send_email", queue="mail", outcome="completed", run_at=T0,
        finished_at=T0 + timedelta(seconds=3), duration=2, result={"sent": [1, 2]},
        payload={"to": "a@b.c"},
    )  # fmt: skip
    (entry,) = gw.ok("history", "--json", env=gw_env(PGTZ="Asia/Kolkata")).json()
    assert isinstance(entry.pop("id"), int)
    assert entry == {
        "job_id": 7,
        "task_identifier": "send_email",
        "queue_name": "mail",
        "attempt": 1,
        "max_attempts": 25,
        "worker_id": "graphile_worker_w1",
        "run_at": "2026-01-02T03:04:05Z",
        "started_at": "2026-01-02T03:04:06Z",
        "finished_at": "2026-01-02T03:04:08Z",
        "outcome": "completed",
        "error": None,
        "result": {"sent": [1, 2]},
        "payload": {"to": "a@b.c"},
        "duration": 2.0,
        "queue_wait": 1.0,
    }
    assert gw.ok("history", "--json", "--task", "nothing").json() == []


def test_history_filters(gw: GW) -> None:
    now = datetime.now(UTC)
    record(gw, 1, task="a", queue="q1", outcome="completed", finished_at=now - timedelta(days=3))
    record(gw, 2, task="b", outcome="failed", finished_at=now - timedelta(hours=2))
    record(gw, 2, task="b", attempt=2, outcome="permanently_failed",
           finished_at=now - timedelta(minutes=5))  # fmt: skip
    record(gw, 3, task="a", queue="q2", outcome="cancelled", finished_at=now - timedelta(minutes=1))

    def found(*args: str) -> list[tuple[int, int]]:
        return [(e["job_id"], e["attempt"]) for e in gw.ok("history", "--json", *args).json()]

    assert found() == [(3, 1), (2, 2), (2, 1), (1, 1)]
    assert found("--task", "a") == [(3, 1), (1, 1)]
    assert found("--queue", "q1") == [(1, 1)]
    assert found("--outcome", "failed") == [(2, 1)]
    assert found("--outcome", "permanently_failed", "--task", "b") == [(2, 2)]
    assert found("--job", "2") == [(2, 2), (2, 1)]
    assert found("--since", "1h") == [(3, 1), (2, 2)]
    assert found("--since", "1d") == [(3, 1), (2, 2), (2, 1)]
    since = (now - timedelta(minutes=3)).astimezone(UTC).isoformat()
    assert found("--since", since) == [(3, 1)]
    assert found("--limit", "1") == [(3, 1)]
    assert found("--task", "a", "--outcome", "failed") == []
    assert gw.ok("history", "--task", "a", "--outcome", "failed").stdout == (
        "no recorded attempts match\n"
    )


def test_history_when_nothing_is_recorded_says_how_to_record(gw: GW) -> None:
    out = gw.ok("history").stdout
    assert out.startswith("no recorded attempts (gw workers record attempts only when run with")
    assert "gw worker --history 7d" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--outcome", "done"],
            'Invalid value "done" for --outcome. Choose from: "completed", "failed",',
            id="outcome",
        ),
        pytest.param(["--limit", "0"], "--limit must be between 1 and 10000, got 0", id="limit-0"),
        pytest.param(
            ["--limit", "10001"], "--limit must be between 1 and 10000, got 10001", id="limit-big"
        ),
        pytest.param(
            ["--since", "yesterday"],
            "Invalid value for --since: 'yesterday' is neither a duration nor a time; use a "
            "duration ago such as 15m, 2h or 7d, or ISO 8601 with an offset",
            id="since-text",
        ),
        pytest.param(
            ["--since", "2026-01-02T03:04:05"],
            "'2026-01-02T03:04:05' has no timezone; add Z or +HH:MM",
            id="since-naive",
        ),
        pytest.param(
            ["--since", "-15m"], "'-15m' is negative; say how long ago", id="since-negative"
        ),
        pytest.param(
            ["--since", "99999999999d"], "'99999999999d' is too far back", id="since-overflow"
        ),
        pytest.param(
            ["--job", "0"], "'0' is not a job id (ids are positive integers)", id="job-id"
        ),
        pytest.param(
            ["--before-id", "0"],
            "--before-id must be a history entry's id (1 to 9223372036854775807), got 0",
            id="before-id",
        ),
        pytest.param(
            ["--task", " "], "--task must not be empty; leave it out to list all", id="empty-task"
        ),
    ],
)
def test_history_bad_input_is_exit_2(gw: GW, args: list[str], message: str) -> None:
    result = gw("history", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.error
    assert result.stdout == ""


# -- gw result


def test_result_of_jobs_run_by_a_worker_with_history(gw: GW) -> None:
    done = gw.add_job("answer", {"text": "life"})
    retried = gw.add_job("broken", {"why": "disk"}, max_attempts=2)
    hopeless = gw.add_job("broken", {"why": "bad"}, max_attempts=1)
    run_worker(gw, "--history", "7d")

    # Completed: exit 0, the result as JSON (as is: no rich markup).
    shown = gw.ok("result", str(done))
    fields = dict(cells(line) for line in shown.stdout.split("result:\n")[0].splitlines())
    names = ("FIELD", "job", "task", "queue", "outcome", "attempt", "error")
    assert {k: fields[k] for k in names} == {
        "FIELD": "VALUE", "job": str(done), "task": "answer", "queue": "-",
        "outcome": "completed", "attempt": "1/25", "error": "-",
    }  # fmt: skip
    assert fields["worker"].startswith("graphile_worker_")
    assert re.fullmatch(r"[\d.]+(µs|ms|s)", fields["duration"])
    # (jsonb keeps object keys shortest first.)
    assert shown.stdout.endswith(
        'result:\n{\n  "tags": [\n    "[bold]x[/bold]"\n  ],\n  "answer": 42,\n'
        '  "question": "life"\n}\n'
    )
    data = gw.ok("result", str(done), "--json").json()
    assert (data["job_id"], data["outcome"], data["attempt"]) == (done, "completed", 1)
    assert data["result"] == {"answer": 42, "question": "life", "tags": ["[bold]x[/bold]"]}
    assert data["payload"] is None  # not kept without --history-payloads
    assert data["duration"] >= 0

    # Failed with an attempt left: not finished, exit 4; the error is shown.
    pending = gw("result", str(retried))
    assert pending.returncode == 4, pending.stderr
    assert re.search(r"outcome\s+failed\n", pending.stdout)
    assert re.search(r"error\s+broken: disk\n", pending.stdout)
    assert "result:" not in pending.stdout
    assert pending.stdout.endswith(
        f"job {retried} has not finished: attempt 1/2 ended failed and another follows; "
        f"gw result {retried} --wait 1m waits for the final outcome\n"
    )
    assert pending.stderr == ""
    pending_json = gw("result", str(retried), "--json")
    assert pending_json.returncode == 4
    assert json.loads(pending_json.stdout)["outcome"] == "failed"

    # Out of attempts: exit 3, with --json too.
    failed = gw("result", str(hopeless))
    assert failed.returncode == 3, failed.stderr
    assert re.search(r"outcome\s+permanently_failed\n", failed.stdout)
    assert re.search(r"attempt\s+1/1\n", failed.stdout)
    assert failed.stderr == ""
    failed_json = gw("result", str(hopeless), "--json")
    assert failed_json.returncode == 3
    assert json.loads(failed_json.stdout)["error"] == "broken: bad"

    # The retry runs and fails for good: the latest attempt is the one shown.
    make_ready(gw, retried)
    run_worker(gw, "--history", "7d")
    last = gw("result", str(retried), "--json")
    assert last.returncode == 3
    assert (json.loads(last.stdout)["attempt"], json.loads(last.stdout)["outcome"]) == (
        2, "permanently_failed",
    )  # fmt: skip
    lines = gw.ok("history", "--job", str(retried)).stdout.splitlines()
    assert [cells(line)[4:6] for line in lines[1:-1]] == [
        ["2/2", "permanently_failed"], ["1/2", "failed"],
    ]  # fmt: skip


def test_result_of_a_cancelled_or_skipped_job_is_exit_3(gw: GW) -> None:
    record(gw, 5, outcome="cancelled", finished_at=T0, error="cancelled: customer asked")
    record(gw, 6, outcome="skipped", finished_at=T0)
    cancelled = gw("result", "5")
    assert cancelled.returncode == 3
    assert re.search(r"error\s+cancelled: customer asked\n", cancelled.stdout)
    assert gw("result", "6").returncode == 3


def test_result_without_history(gw: GW) -> None:
    unknown = gw("result", "424242")
    assert unknown.returncode == 2
    assert unknown.error.startswith(
        "no history for job 424242: no attempt of it is recorded and no such job is waiting "
        "(gw workers record attempts only when run with --history, e.g. gw worker --history 7d"
    )
    assert unknown.stdout == ""

    waiting = gw.add_job("answer", {"text": "later"})
    not_yet = gw("result", str(waiting))
    assert not_yet.returncode == 4
    assert not_yet.error == (
        f"job {waiting} has not run yet (it is ready); gw result {waiting} --wait 1m waits for "
        "its outcome"
    )

    running = gw.add_job("answer", {"text": "now"})
    gw.lock(running, "graphile_worker_elsewhere")
    busy = gw("result", str(running))
    assert busy.returncode == 4
    assert busy.error.startswith(f"job {running} is running (attempt 1/25)")

    # Run by a worker that keeps no history: it failed, nothing says how.
    failed = gw.add_job("broken", {"why": "x"}, max_attempts=3)
    run_worker(gw)
    unrecorded = gw("result", str(failed))
    assert unrecorded.returncode == 2
    assert unrecorded.error.startswith(
        f"no history for job {failed}: it has run 1 time(s) but no attempt of it is recorded "
        "(gw workers record attempts only when run with --history"
    )
    assert history_rows(gw) == []


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_result_wait_returns_once_the_job_completes(gw: GW, backend: str) -> None:
    job_id = gw.add_job("answer", {"text": "wait"})
    cmd = gw_command(
        "--backend", backend, "result", str(job_id), "--wait", "1m", "--json", db_url=gw.db_url
    )
    with subprocess.Popen(
        cmd, cwd=REPO, env=gw_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as waiter:
        try:
            # The wait LISTENs for history records before it looks: once that is
            # on, the job runs (and nothing before it could have answered).
            poll_until(
                lambda: (
                    gw.sql(
                        "select count(*) from pg_stat_activity where datname = current_database()"
                        " and query = 'LISTEN \"gw:history\"'"
                    )[0][0]
                    == 1
                ),
                what="gw result --wait to listen",
            )
            assert waiter.poll() is None
            run_worker(gw, "--history", "7d")
            stdout, stderr = waiter.communicate(timeout=GW_TIMEOUT)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
    assert waiter.returncode == 0, stderr
    data = json.loads(stdout)
    assert (data["job_id"], data["outcome"]) == (job_id, "completed")
    assert data["result"]["question"] == "wait"


def test_result_wait_for_a_job_that_ended_without_history(gw: GW) -> None:
    job_id = gw.add_job("broken", {"why": "z"}, max_attempts=1)
    run_worker(gw)
    result = gw("result", str(job_id), "--wait", "1m")
    assert result.returncode == 2, result.stderr
    assert result.error.startswith(
        f"no history for job {job_id}: it has run 1 time(s) but no attempt of it is recorded"
    )
    assert result.stdout == ""


def test_result_wait_times_out(gw: GW) -> None:
    job_id = gw.add_job("answer", {"text": "never"})
    result = gw("result", str(job_id), "--wait", "100ms")
    assert result.returncode == 4
    assert result.error == (
        f"job {job_id} has no final outcome after waiting 100ms (no attempt of it has ended "
        "yet); wait longer with a larger --wait"
    )
    assert result.stdout == ""

    record(gw, job_id, outcome="failed", attempt=1, max_attempts=25, finished_at=T0)
    result = gw("result", str(job_id), "--wait", "0.1")
    assert result.returncode == 4
    assert "(its latest attempt, 1/25, ended failed)" in result.error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["0"], "'0' is not a job id (ids are positive integers)", id="id"),
        pytest.param(["1", "--wait", "0"], "--wait must be longer than 0", id="wait-0"),
        pytest.param(["1", "--wait", "soon"], "'soon' is not a duration", id="wait-text"),
        pytest.param([], 'Command "result" parameter JOB_ID requires an argument', id="no-id"),
        pytest.param(
            ["1", "--wait", "5s", "--transaction-pooler"],
            "--wait LISTENs for the workers' notifications, which a transaction pooler does "
            "not deliver",
            id="wait-pooler",
        ),
    ],
)
def test_result_bad_input_is_exit_2(gw: GW, args: list[str], message: str) -> None:
    result = gw("result", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.error
    assert result.stdout == ""


# -- gw worker --history


def test_worker_history_records_attempts(gw: GW) -> None:
    done = gw.add_job("answer", {"text": "kept"})
    failed = gw.add_job("broken", {"why": "y"}, max_attempts=1)
    run_worker(gw, "--history", "7d")
    assert history_rows(gw) == [
        (done, "answer", 1, 25, "completed", None,
         {"answer": 42, "question": "kept", "tags": ["[bold]x[/bold]"]}, None),
        (failed, "broken", 1, 1, "permanently_failed", "broken: y", None, None),
    ]  # fmt: skip

    # --history-payloads keeps the payload as well.
    again = gw.add_job("answer", {"text": "with payload"})
    run_worker(gw, "--history", "1h", "--history-payloads")
    (row,) = [r for r in history_rows(gw) if r[0] == again]
    assert row[7] == {"text": "with payload"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--history", "0"],
            "--history must be longer than 0 (how long to keep the records, e.g. 7d)",
            id="zero",
        ),
        pytest.param(
            ["--history", "a week"],
            "Invalid value for --history: 'a week' is not a duration",
            id="text",
        ),
        pytest.param(
            ["--history", "99999999d"],
            "Invalid value for --history: History keep must be at most 36500 days",
            id="overflow",
        ),
        pytest.param(
            ["--history-payloads"],
            "--history-payloads needs --history DURATION (how long to keep the records, e.g. 7d)",
            id="payloads-alone",
        ),
    ],
)
def test_worker_bad_history_is_exit_2_and_runs_nothing(
    gw: GW, args: list[str], message: str
) -> None:
    gw.add_job("answer", {"text": "untouched"})
    before = gw.jobs()
    result = gw("worker", "--tasks", TASKS, "--once", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.error
    assert gw.jobs() == before
    assert history_rows(gw) == []


def test_worker_tracing_gives_each_attempt_a_consumer_span(gw: GW, tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    job = gw.add_job("answer", {})
    result = gw(
        "worker", "--tasks", "tests.cli.traced_tasks", "--once", "--tracing",
        env=gw_env(GW_TEST_SPANS=str(spans)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in spans.read_text().splitlines()]
    assert [s["name"] for s in found] == ["inside answer", "process answer"]
    attributes = found[1]["attributes"]
    assert attributes["messaging.system"] == "graphile_worker"
    assert attributes["messaging.message.id"] == str(job)
