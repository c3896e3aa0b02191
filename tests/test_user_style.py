"""The testing plugin (gw.testing.pytest) under each pytest async plugin.

tests/user_style is a user's suite, written once. It runs here in its own
pytest process per plugin, since the anyio plugin, pytest-trio and
pytest-asyncio cannot load together.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "user_style"

FLAVOURS = {
    "anyio": ["-p", "anyio", "-p", "no:trio", "-p", "no:asyncio", "-o", "anyio_mode=auto"],
    "pytest-trio": ["-p", "trio", "-p", "no:anyio", "-p", "no:asyncio", "-o", "trio_mode=true"],
    "pytest-asyncio": [
        "-p",
        "asyncio",
        "-p",
        "no:anyio",
        "-p",
        "no:trio",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    ],
}


# The anyio plugin runs each async test on asyncio and on trio.
PASSED = {"anyio": 9, "pytest-trio": 5, "pytest-asyncio": 5}


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_the_sample_suite_passes_under(flavour: str, request: pytest.FixtureRequest) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    if "GW_TEST_DATABASE_URL" not in env:
        # Share this session's server instead of starting another embedded one.
        env["GW_TEST_DATABASE_URL"] = request.getfixturevalue("pg_server").admin_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(SUITE / "pytest.ini"),
            "--rootdir",
            str(ROOT),
            "--confcutdir",
            str(SUITE),
            "-p",
            "no:cacheprovider",
            "-q",
            *FLAVOURS[flavour],
            str(SUITE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{PASSED[flavour]} passed in" in result.stdout, result.stdout
