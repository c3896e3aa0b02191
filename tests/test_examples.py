"""The examples run end to end, exactly as a user runs them: with no
DATABASE_URL (on the embedded PostgreSQL, in a data directory of their own)
and against a server (DATABASE_URL set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


EXAMPLES = [
    (
        "quickstart_trio.py",
        [
            "sent 'Hello' to ada@example.com",
            "processed 5 job(s)",
            "failed for good after 5 of 5 attempts: cannot mail 'nobody'",
        ],
    ),
    ("quickstart_asyncio.py", ["resized image 7 to 800px", "processed 2 job(s)"]),
    (
        "fastapi_app.py",
        [
            "POST /signup -> 202 {'job_id': 1, 'queue': 'mail'}",
            "POST /signup (bad) -> 422",
            "welcome mail sent to ada@example.com",
            "GET /health -> 200 ok",
            "app stopped cleanly",
        ],
    ),
    (
        "starlette_app.py",
        ["POST /images -> 202", "resized image 7", "GET /health -> 200 ok", "app stopped cleanly"],
    ),
    (
        "sync_script.py",
        [
            "in queue 'billing' with the invoice row",
            "rolled back (payment declined); jobs waiting: 1",
            "invoice 1 sent",
            "processed 1 job(s)",
        ],
    ),
    (
        "django_app.py",
        [
            "order 1 placed",
            "payment for order 2 declined: the order and its jobs were rolled back",
            "receipt for order 1 sent to ada@example.com",
            "team notified about order 1",
            "processed 2 job(s)",
        ],
    ),
    ("embedded_worker.py", ["Welcome, Grace!", "worker stopped cleanly"]),
    (
        "control.py",
        [
            "cancel export: cancelling",
            "cancelled: the user closed the tab",
            "export last_error: cancelled: the user closed the tab",
            "limit task:call_partner_api: rate 10.0/s, max None",
            "limit task:render_video: rate None/s, max 2",
            "at most 2 videos rendered at once (limit 2)",
        ],
    ),
    (
        "batch_and_hooks.py",
        [
            "failed and will retry: 'Batch failures:\\nrecord -2 is invalid'",
            "items left to retry: [{'id': -2}]",
        ],
    ),
    (
        "tracing.py",
        [
            "POST /orders\n  send send_receipt\n"
            "    process send_receipt (attempt 1: failed)\n      render receipt\n"
            "    process send_receipt (attempt 2: completed)\n      render receipt\n",
        ],
    ),
]
# Modules the scripts and the README's main command import, not scripts.
NOT_SCRIPTS = {"__init__.py", "tasks.py"}


def test_every_example_script_is_run() -> None:
    scripts = {p.name for p in (ROOT / "examples").glob("*.py")} - NOT_SCRIPTS
    assert scripts == {script for script, _ in EXAMPLES}


@pytest.mark.parametrize(("script", "expected"), EXAMPLES)
@pytest.mark.parametrize("database", ["embedded", "server"])
def test_example_runs(
    script: str, expected: list[str], database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GW_EMBEDDED_DATA_DIR")}
    if database == "server":
        env["DATABASE_URL"] = request.getfixturevalue("db_url")
    else:
        env["GW_EMBEDDED_DATA_DIR"] = str(tmp_path / "pgdata")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout, result.stdout


def test_demo_crontab_matches_the_example_tasks() -> None:
    # The README's main command runs these two together.
    from examples import tasks

    import gw

    worker = gw.Worker(tasks.tasks, crontab=ROOT / "examples" / "crontab")
    assert sorted(item.identifier for item in worker.cron_items) == [
        "demo_email",
        "demo_flaky",
        "demo_resize",
        "demo_slow",
    ]
