"""A worker that holds its jobs forever: the recovery tests SIGKILL it.

Usage: ``python tests/worker/crash_worker.py DATABASE_URL asyncio|trio``.
Its task ``hold`` never returns, so with concurrency 50 it keeps up to 50
jobs locked, with a heartbeat row refreshed every 0.2 s, until it is killed.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

import gw


async def main(database_url: str) -> None:
    @gw.task("hold")
    async def hold(payload: Any) -> None:
        await anyio.sleep_forever()

    worker = gw.Worker(
        [hold],
        database_url=database_url,
        concurrency=50,
        poll_interval=0.1,
        migrate=False,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
        # Heartbeats only: the test's own worker does the sweeping.
        recovery=gw.RecoveryConfig(heartbeat_interval=0.2, sweep_threshold=1.0, sweep=False),
    )
    await worker.run()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend=sys.argv[2])
