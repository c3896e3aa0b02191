"""gw add / list / show / complete / fail / reschedule / cancel / remove, as subprocesses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import GW, gw_env


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_add_with_every_option_writes_the_job(gw: GW, backend: str) -> None:
    result = gw.ok(
        "--backend",
        backend,
        "add",
        "send_email",
        "--payload",
        '{"to": "ada@example.com"}',
        "--queue",
        "mail",
        "--run-at",
        "2030-01-02T03:04:05+02:00",
        "--max-attempts",
        "3",
        "--priority",
        "-5",
        "--job-key",
        "welcome:ada",
        "--flag",
        "urgent",
        "--flag",
        "smtp",
    )
    (job,) = gw.jobs()
    assert result.stdout == f"added job {job['id']} (send_email, queue mail, key welcome:ada); " + (
        "runs at 2030-01-02 01:04:05Z\n"
    )
    assert job["task_identifier"] == "send_email"
    assert job["queue_name"] == "mail"
    assert job["payload"] == {"to": "ada@example.com"}
    assert job["run_at"] == datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert (job["max_attempts"], job["priority"], job["key"]) == (3, -5, "welcome:ada")
    assert job["flags"] == {"urgent": True, "smtp": True}


def test_add_json_output_and_job_key_modes(gw: GW) -> None:
    first = gw.ok(
        "add", "report", "--job-key", "r1", "--run-at", "2030-01-01T00:00:00Z", "--json"
    ).json()
    assert first["task_identifier"] == "report"
    assert first["payload"] == {}
    assert first["run_at"] == "2030-01-01T00:00:00Z"
    assert set(first) >= {"id", "queue_name", "attempts", "max_attempts", "key", "revision"}

    # preserve-run-at (hyphens accepted) updates the payload but keeps run_at.
    second = gw.ok(
        "--json",
        "add",
        "report",
        "--payload",
        '{"v": 2}',
        "--job-key",
        "r1",
        "--job-key-mode",
        "preserve-run-at",
        "--run-at",
        "2031-01-01T00:00:00Z",
    ).json()
    assert second["id"] == first["id"]
    assert second["revision"] == 1
    (job,) = gw.jobs()
    assert job["payload"] == {"v": 2}
    assert job["run_at"] == datetime(2030, 1, 1, tzinfo=UTC)

    # unsafe_dedupe leaves the existing job untouched.
    third = gw.ok(
        "add", "report", "--payload", '{"v": 3}', "--job-key", "r1", "--job-key-mode",
        "unsafe_dedupe", "--json",
    ).json()  # fmt: skip
    assert third["id"] == first["id"]
    assert gw.jobs()[0]["payload"] == {"v": 2}


def test_add_payload_from_file(gw: GW, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "payload.json"
    path.write_text('[{"id": 1}, {"id": 2}]')
    gw.ok("add", "index_documents", "--payload", f"@{path}")
    assert gw.jobs()[0]["payload"] == [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_list_filters_and_pages(gw: GW, backend: str) -> None:
    ready = gw.add_job("alpha", {"n": 1})
    scheduled = gw.add_job(
        "beta", {"n": 2}, queue_name="q1", run_at=datetime.now(UTC) + timedelta(hours=1)
    )
    failed = gw.add_job("alpha", {"needle": True}, max_attempts=1)
    gw.sql(
        "update graphile_worker._private_jobs set attempts = 1, last_error = 'boom' where id = %s",
        (failed,),
    )
    locked = gw.add_job("gamma")
    gw.lock(locked, "graphile_worker_cli_test")

    out = gw.ok("--backend", backend, "list").stdout.splitlines()
    assert out[0].split() == [
        "ID", "TASK", "QUEUE", "STATE", "RUN", "AT", "ATTEMPTS", "PRIORITY", "KEY", "LOCKED",
        "BY", "LAST", "ERROR",
    ]  # fmt: skip
    rows = [line.split() for line in out[1:-1]]
    assert [(int(r[0]), r[1], r[3]) for r in rows] == [
        (locked, "gamma", "locked"),
        (failed, "alpha", "failed"),
        (scheduled, "beta", "scheduled"),
        (ready, "alpha", "ready"),
    ]
    assert out[-1] == "jobs 1-4"

    def ids(*args: str) -> list[int]:
        page = gw.ok("list", "--json", *args).json()
        return [j["id"] for j in page["jobs"]]

    assert ids("--state", "ready") == [ready]
    assert ids("--state", "scheduled") == [scheduled]
    assert ids("--state", "failed") == [failed]
    assert ids("--state", "locked") == [locked]
    assert ids("--identifier", "alpha") == [failed, ready]
    assert ids("--queue", "q1") == [scheduled]
    assert ids("--search", "needle") == [failed]
    page = gw.ok("list", "--json", "--limit", "2", "--offset", "1").json()
    assert [j["id"] for j in page["jobs"]] == [failed, scheduled]
    assert (page["limit"], page["offset"], page["has_more"]) == (2, 1, True)
    assert gw.ok("list", "--state", "ready", "--queue", "nope").stdout == "no jobs in state ready\n"


def test_show_prints_the_whole_job(gw: GW) -> None:
    job_id = gw.add_job("send_email", {"to": "ada@example.com"}, job_key="k1")
    text = gw.ok("show", str(job_id)).stdout
    assert f"id          {job_id}\n" in text
    assert "task        send_email\n" in text
    assert "key         k1\n" in text
    assert text.endswith('payload:\n{\n  "to": "ada@example.com"\n}\n')
    # JSON timestamps are UTC whatever the session time zone.
    data = gw.ok("show", str(job_id), "--json", env=gw_env(PGTZ="Asia/Kolkata")).json()
    assert data["run_at"].endswith("Z")
    assert data["created_at"].endswith("Z")
    assert data["id"] == job_id
    assert data["payload"] == {"to": "ada@example.com"}
    assert data["key"] == "k1"

    missing = gw("show", "999999")
    assert missing.returncode == 1
    assert missing.error == "no job with id 999999"
    assert missing.stdout == ""


def test_text_that_looks_like_markup_is_shown_as_it_is(gw: GW) -> None:
    # Task names, keys, errors and payloads are data: rich must not read
    # "[/x]" as a closing tag (it refused it with a MarkupError before).
    job_id = gw.add_job("t[/x]", {"a": "[/bold] [red]x"}, job_key="[/k]")
    gw.sql(
        "update graphile_worker._private_jobs set last_error = '[bold]boom[/oops]' where id = %s",
        (job_id,),
    )
    listed = gw.ok("list").stdout
    assert "t[/x]" in listed
    assert "[/k]" in listed
    assert "[bold]boom[/oops]" in listed
    shown = gw.ok("show", str(job_id)).stdout
    assert "task        t[/x]\n" in shown
    assert "last error  [bold]boom[/oops]\n" in shown
    assert shown.endswith('payload:\n{\n  "a": "[/bold] [red]x"\n}\n')


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_complete_deletes_unlocked_jobs_only(gw: GW, backend: str) -> None:
    a, b, locked = gw.add_job("t"), gw.add_job("t"), gw.add_job("t")
    gw.lock(locked, "graphile_worker_cli_test")
    result = gw.ok("--backend", backend, "complete", str(a), str(b), str(locked), "424242")
    assert result.stdout.splitlines() == [
        f"completed 2 job(s): {a}, {b}",
        f"not completed (no such job, or locked by a worker): {locked}, 424242",
    ]
    assert [j["id"] for j in gw.jobs()] == [locked]


def test_complete_json(gw: GW) -> None:
    a = gw.add_job("t")
    data = gw.ok("complete", str(a), "--json").json()
    assert [j["id"] for j in data] == [a]
    assert gw.jobs() == []


def test_fail_sets_last_error_and_exhausts_attempts(gw: GW) -> None:
    a, b = gw.add_job("t"), gw.add_job("t")
    result = gw.ok("fail", str(a), "--reason", "invalid payload")
    assert result.stdout == f"failed 1 job(s): {a}\n"
    jobs = {j["id"]: j for j in gw.jobs()}
    assert jobs[a]["last_error"] == "invalid payload"
    assert jobs[a]["attempts"] == jobs[a]["max_attempts"]
    assert jobs[b]["last_error"] is None
    data = gw.ok("--json", "fail", str(b)).json()
    assert [j["id"] for j in data] == [b]
    assert gw.jobs()[1]["attempts"] == 25


def test_reschedule_changes_only_given_fields(gw: GW) -> None:
    a = gw.add_job("t", priority=3, max_attempts=5)
    gw.sql("update graphile_worker._private_jobs set attempts = 5 where id = %s", (a,))
    result = gw.ok(
        "reschedule", str(a), "--run-at", "2030-06-01T12:00:00Z", "--attempts", "0",
        "--max-attempts", "10",
    )  # fmt: skip
    assert result.stdout == f"rescheduled 1 job(s): {a}\n"
    (job,) = gw.jobs()
    assert job["run_at"] == datetime(2030, 6, 1, 12, tzinfo=UTC)
    assert (job["attempts"], job["max_attempts"], job["priority"]) == (0, 10, 3)

    data = gw.ok("reschedule", str(a), "--priority", "-1", "--json").json()
    assert data[0]["priority"] == -1
    (job,) = gw.jobs()
    # No --run-at means "now".
    assert job["run_at"] <= datetime.now(UTC)
    assert (job["priority"], job["max_attempts"]) == (-1, 10)


def test_add_and_reschedule_relative_to_now(gw: GW) -> None:
    before = datetime.now(UTC)
    gw.ok("add", "t", "--delay", "5m")
    gw.ok("add", "t", "--run-at", "+1h30m")
    after = datetime.now(UTC)
    first, second = gw.jobs()
    assert before + timedelta(minutes=5) <= first["run_at"] <= after + timedelta(minutes=5)
    assert before + timedelta(minutes=90) <= second["run_at"] <= after + timedelta(minutes=90)

    before = datetime.now(UTC)
    gw.ok("reschedule", str(first["id"]), str(second["id"]), "--delay", "10s")
    gw.ok("reschedule", str(second["id"]), "--run-at", "+2d")
    after = datetime.now(UTC)
    first, second = gw.jobs()
    assert before + timedelta(seconds=10) <= first["run_at"] <= after + timedelta(seconds=10)
    assert before + timedelta(days=2) <= second["run_at"] <= after + timedelta(days=2)


def test_add_warns_about_an_identifier_no_worker_registered(gw: GW) -> None:
    # A worker registers its task identifiers when it starts.
    gw.ok("worker", "--tasks", "examples.tasks", "--once")
    typo = gw.ok("add", "sned_email", "--payload", '{"to": "a@b.c"}')
    assert typo.stderr == (
        "warning: no worker has registered task 'sned_email' on this database; did you mean "
        "'send_email'? (the job was added; it waits until a worker runs that task)\n"
    )
    (job,) = gw.jobs()
    assert job["task_identifier"] == "sned_email"
    assert typo.stdout == f"added job {job['id']} (sned_email); runs now\n"
    # --json keeps stdout JSON; the warning stays on stderr.
    data = gw.ok("add", "nothing_like_it", "--json")
    assert data.json()["task_identifier"] == "nothing_like_it"
    assert data.stderr.startswith("warning: no worker has registered task 'nothing_like_it'")
    assert "did you mean" not in data.stderr
    known = gw.ok("add", "send_email", "--payload", '{"to": "a@b.c"}')
    assert known.stderr == ""


def test_add_with_tasks_uses_the_task_defaults(gw: GW) -> None:
    # examples.tasks: flaky has max_attempts=5.
    gw.ok("add", "flaky", "--tasks", "examples.tasks")
    gw.ok("add", "flaky", "--tasks", "examples.tasks", "--max-attempts", "2")
    gw.ok("add", "flaky")
    assert [j["max_attempts"] for j in gw.jobs()] == [5, 2, 25]
    bad = gw("add", "flaky", "--tasks", "no_such_module_here")
    assert bad.returncode == 2
    assert bad.error.startswith("--tasks no_such_module_here: no module named")
    assert [j["max_attempts"] for j in gw.jobs()] == [5, 2, 25]


def test_remove_by_key(gw: GW) -> None:
    keep = gw.add_job("t", job_key="other")
    gone = gw.add_job("t", job_key="cli-job-key")
    assert gw.ok("remove", "cli-job-key").stdout == f"removed job {gone} (t)\n"
    assert [j["id"] for j in gw.jobs()] == [keep]
    missing = gw.ok("remove", "cli-job-key")
    assert missing.stdout == "no job has key 'cli-job-key'; nothing removed\n"
    assert gw.ok("remove", "nope", "--json").json() is None
    assert gw.ok("--json", "remove", "other").json()["id"] == keep
    assert gw.jobs() == []


def test_terminal_output_is_compact_and_shows_progress(gw: GW) -> None:
    gw.add_job("t", run_at=datetime.now(UTC) + timedelta(hours=2, minutes=1))
    terminal = gw_env(FORCE_COLOR="1", COLUMNS="80")
    text = gw.ok("list", env=terminal).stdout
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    header, row = plain.splitlines()[:2]
    # Relative run times, and no column for values no job has.
    assert "in 2h" in row
    assert "LOCKED BY" not in header
    assert "KEY" not in header
    assert max(len(line.rstrip()) for line in plain.splitlines()) <= 80
    sweep = gw.ok("sweep-stale-workers", env=terminal)
    assert "sweeping stale workers" in sweep.stderr  # the spinner, on stderr
    assert "no stale workers (threshold 5m)" in sweep.stdout


def _row(gw: GW, job_id: int) -> dict[str, object]:
    (job,) = [j for j in gw.jobs() if j["id"] == job_id]
    return job


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_cancel_says_what_happened_to_each_job(gw: GW, backend: str) -> None:
    waiting, foreign, running, failed = (gw.add_job("t") for _ in range(4))
    gw.sql(
        "update graphile_worker._private_jobs set locked_by = 'node_worker_1',"
        " locked_at = now() where id = %s",
        (foreign,),
    )
    # A gw worker registers itself (with its version) for recovery and cancel requests.
    gw.sql(
        "select graphile_worker.worker_heartbeat('graphile_worker_ab12', %s::json)",
        ('{"gw_version": "0"}',),
    )
    gw.lock(running, "graphile_worker_ab12")
    gw.sql(
        "update graphile_worker._private_jobs set attempts = max_attempts,"
        " last_error = 'boom' where id = %s",
        (failed,),
    )
    before = {j["id"]: j for j in gw.jobs()}

    result = gw.ok(
        "--backend", backend, "cancel", str(waiting), str(foreign), str(running), str(failed),
        "424242", str(waiting), "--reason", "customer asked",
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        f"job {waiting}: cancelled",
        f"job {foreign}: not cancellable: held by node_worker_1, which is not a gw worker",
        f"job {running}: cancelling (running on graphile_worker_ab12, which was asked to stop it)",
        f"job {failed}: not cancelled: it has already failed permanently",
        "job 424242: not found",
    ]
    assert result.stderr == ""

    cancelled = _row(gw, waiting)
    assert cancelled["last_error"] == "cancelled: customer asked"
    assert cancelled["attempts"] == cancelled["max_attempts"] == 25
    assert cancelled["locked_by"] is None
    # The other jobs are as they were; the gw worker got a request to act on.
    for job_id in (foreign, running, failed):
        assert _row(gw, job_id) == before[job_id]
    assert gw.sql("select job_id, reason from graphile_worker._private_gw_cancel_requests") == [
        (running, "customer asked")
    ]


def test_cancel_without_reason_and_json(gw: GW) -> None:
    waiting, foreign = gw.add_job("t"), gw.add_job("t")
    gw.sql(
        "update graphile_worker._private_jobs set locked_by = 'node_worker_1',"
        " locked_at = now() where id = %s",
        (foreign,),
    )
    data = gw.ok("cancel", str(waiting), str(foreign), "7777777", "--json").json()
    assert data == [
        {"job_id": waiting, "outcome": "cancelled", "worker_id": None},
        {"job_id": foreign, "outcome": "not_cancellable", "worker_id": "node_worker_1"},
        {"job_id": 7777777, "outcome": "not_found", "worker_id": None},
    ]
    assert _row(gw, waiting)["last_error"] == "cancelled: no reason given"
    assert _row(gw, foreign)["last_error"] is None
    # Cancelling again changes nothing and says so.
    again = gw.ok("--json", "cancel", str(waiting)).json()
    assert again == [{"job_id": waiting, "outcome": "finished", "worker_id": None}]
    assert gw.ok("cancel", "7777777").stdout == "job 7777777: not found\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["0"], "'0' is not a job id (ids are positive integers)", id="zero"),
        pytest.param(["-1"], "'-1' is not a job id (ids are positive integers)", id="negative"),
        pytest.param(["abc"], "'abc' is not a job id (ids are positive integers)", id="text"),
        pytest.param(
            ["99999999999999999999"],
            "'99999999999999999999' is not a job id (ids go up to 9223372036854775807)",
            id="over-range",
        ),
        pytest.param(None, 'Command "cancel" parameter JOB_IDS requires an argument', id="none"),
    ],
)
def test_cancel_bad_ids_are_exit_2_and_change_nothing(
    gw: GW, args: list[str] | None, message: str
) -> None:
    job_id = gw.add_job("t")
    before = gw.jobs()
    # A good id next to the bad one: the command still does nothing.
    result = gw("cancel", *([str(job_id), *args] if args else []), "--reason", "r")
    assert result.returncode == 2, result.stderr
    assert message in result.error
    assert result.stdout == ""
    assert gw.jobs() == before
