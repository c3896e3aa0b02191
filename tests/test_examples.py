"""The examples run end to end against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart_trio.py", ["sent 'Hello' to ada@example.com", "processed 4 job(s)"]),
        ("quickstart_asyncio.py", ["resized image 7 to 800px", "processed 2 job(s)"]),
        ("embedded_worker.py", ["Welcome, Grace!", "worker stopped cleanly"]),
        (
            "batch_and_hooks.py",
            [
                "failed and will retry: 'Batch failures:\\nrecord -2 is invalid'",
                "items left to retry: [{'id': -2}]",
            ],
        ),
    ],
)
def test_example_runs(script: str, expected: list[str], db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
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
