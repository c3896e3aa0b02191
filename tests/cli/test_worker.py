"""gw worker with the example tasks, as a subprocess."""

from __future__ import annotations

import signal
import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.helpers import poll_until

from .conftest import GW, GW_TIMEOUT, REPO, gw_command, gw_env

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("backend", "sig", "extra"),
    [
        pytest.param("trio", signal.SIGINT, [], id="trio-SIGINT"),
        pytest.param("asyncio", signal.SIGTERM, ["--local-queue-size", "10"], id="asyncio-SIGTERM"),
    ],
)
def test_worker_runs_jobs_from_gw_add_and_stops_gracefully(
    gw: GW, tmp_path: Path, backend: str, sig: signal.Signals, extra: list[str]
) -> None:
    log_path = tmp_path / "stderr"
    cmd = gw_command(
        "--backend", backend, "worker", "--tasks", "examples.tasks", "--concurrency", "2",
        "--poll-interval", "200ms", *extra, db_url=gw.db_url,
    )  # fmt: skip
    with log_path.open("w") as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=gw_env(), stdout=subprocess.DEVNULL, stderr=err, text=True
        )
    try:
        gw.ok("add", "send_email", "--payload", '{"to": "ada@example.com", "subject": "hi"}')
        gw.ok("add", "resize_image", "--payload", '{"path": "cat.png"}')
        poll_until(lambda: gw.jobs() == [], what="the worker to finish both jobs")
        proc.send_signal(sig)
        assert proc.wait(timeout=GW_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert f"{sig.name} received: shutting down gracefully" in log
    assert "sent 'hi' to ada@example.com (attempt 1)" in log
    assert "resized cat.png to 256px wide" in log
    assert f"stopped ({sig.name}); 2 job(s) processed" in log
    assert "Traceback" not in log


def test_worker_once_runs_what_is_ready_and_exits(gw: GW, tmp_path: Path) -> None:
    gw.add_job("send_email", {"to": "a@example.com"})
    gw.add_job("index_documents", [{"id": 1, "text": "hello"}, {"id": 2, "text": ""}])
    gw.add_job("slow", {"seconds": 0.01})
    crontab = tmp_path / "crontab"
    crontab.write_text("0 4 * * * send_email\n")
    result = gw.ok("worker", "--tasks", "examples.tasks", "--once", "--crontab", str(crontab))
    assert result.stdout == "processed 3 job(s)\n"
    (left,) = gw.jobs()
    # The batch job's failed item is retried on its own.
    assert left["task_identifier"] == "index_documents"
    assert left["payload"] == [{"id": 2, "text": ""}]
    assert left["attempts"] == 1
    assert "document 2 is empty" in left["last_error"]


def test_worker_once_with_a_task_list_attribute_on_asyncio(gw: GW) -> None:
    gw.add_job("send_email", {"to": "a@example.com"})
    gw.add_job("send_email", {"wrong": "payload"})
    # A payload that does not fit the task's type fails for good at once (no traceback).
    data = gw(
        "--backend", "asyncio", "--json", "worker", "--tasks", "examples.tasks:tasks", "--once"
    ).json()
    assert data == {"jobs_processed": 2}
    (bad,) = gw.jobs()
    assert bad["payload"] == {"wrong": "payload"}
    assert (bad["attempts"], bad["max_attempts"]) == (25, 25)
    assert "invalid payload for task 'send_email'" in bad["last_error"]


def test_worker_runs_only_the_tasks_it_was_given(gw: GW) -> None:
    email = gw.add_job("send_email", {"to": "a@example.com"})
    nap = gw.add_job("slow", {"seconds": 0.01})
    image = gw.add_job("resize_image", {"path": "a.png"})
    result = gw.ok(
        "worker", "--tasks", "examples.tasks:send_email", "--tasks", "examples.tasks:resize_image",
        "--once", "--backend", "asyncio",
    )  # fmt: skip
    assert result.stdout == "processed 2 job(s)\n"
    assert [j["id"] for j in gw.jobs()] == [nap]
    assert email != image


def test_worker_queue_limits_are_recorded_and_bad_ones_refused(gw: GW) -> None:
    gw.ok(
        "worker", "--tasks", "examples.tasks", "--once",
        "--queue-limit", "emails=20/s,burst=5", "--queue-limit", "reports=100/1m",
    )  # fmt: skip
    rows = gw.sql("select key, rate, burst from graphile_worker._private_gw_limits order by key")
    assert rows == [("queue:emails", 20.0, 5.0), ("queue:reports", 100 / 60, 1.0)]
    bad = gw("worker", "--tasks", "examples.tasks", "--once", "--queue-limit", "emails=20")
    assert bad.returncode == 2
    assert "Invalid value for --queue-limit: 'emails=20' is not a queue rate limit" in bad.stderr
    assert "Traceback" not in bad.stderr
