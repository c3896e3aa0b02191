"""Tasks declared with loop="asyncio" run asyncio-only code on either worker loop
(through trio-asyncio on trio). Each scenario runs in its own process
(tests/worker/bridge_app.py): trio-asyncio changes asyncio process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gw

ROOT = Path(__file__).resolve().parents[2]
LOOPS = ["asyncio", "trio"]


def scenario(name: str, backend: str, db_url: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "tests" / "worker" / "bridge_app.py"),
         name, backend, db_url],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("backend", LOOPS)
def test_asyncio_only_code_runs_in_an_asyncio_task(db_url: str, backend: str) -> None:
    # asyncio streams to the test PostgreSQL, run_in_executor and wait_for.
    out = scenario("asyncio_code", backend, db_url)
    assert out == {"processed": 2, "seen": [[backend], ["asyncio", 42, "N", 1]]}


@pytest.mark.parametrize("backend", LOOPS)
def test_timeouts_cancel_the_asyncio_handler_and_errors_are_recorded(
    db_url: str, backend: str
) -> None:
    out = scenario("timeout", backend, db_url)
    assert out["processed"] == 2
    assert out["cancelled"] == [True]  # the timeout reached the handler as CancelledError
    assert out["errors"] == {
        "stuck": [1, "timed out after 0.2 s"],
        "aio_fail": [25, "asyncio says no"],
    }


def test_loop_option_is_checked() -> None:
    with pytest.raises(gw.ConfigurationError, match=r"^task 'x': loop='asyncio' is for async"):
        gw.task("x", loop="asyncio")(lambda payload: None)
    with pytest.raises(gw.ConfigurationError, match=r"^task 'y': loop must be 'asyncio' or None"):

        async def y(payload: Any) -> None:
            pass

        gw.task("y", loop="uvloop")(y)  # type: ignore[typeddict-item]
