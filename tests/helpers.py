"""Helpers shared by the tests (conditions, clocks)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def trio_mock_clock() -> Any:
    """An ``anyio_backend`` parameter: trio with an autojumping MockClock."""
    from trio.testing import MockClock

    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


def poll_until(
    condition: Callable[[], bool], *, what: str, timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Blocking twin of :func:`wait_until` for sync tests (e.g. ones driving
    subprocesses): re-check ``condition`` until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 20.0,
    poll: float = 0.01,
) -> None:
    """Re-check ``predicate`` until it holds: a condition wait, not a fixed sleep."""
    with anyio.fail_after(timeout):
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(poll)
