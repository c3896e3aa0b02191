"""Control running work: cancel a running job, rate-limit a task, cap its concurrency.

python examples/control.py

The limits hold across every gw worker on the database; here one worker
shows them. Cancelling works the same from another process or host
(`gw cancel ID`, the admin UI, or `WorkerUtils.cancel_jobs`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import gw

calls: list[float] = []
rendering = 0
most_rendering = 0
export_started = asyncio.Event()
completed: list[int] = []
all_completed = asyncio.Event()


def on_complete(event: gw.JobComplete) -> None:
    completed.append(event.job.id)
    if len(completed) == 12:
        all_completed.set()


@gw.task("call_partner_api", rate_limit=gw.RateLimit(10))  # 10 a second, fleet-wide
async def call_partner_api(payload: dict[str, int]) -> None:
    calls.append(time.monotonic())


@gw.task("render_video", max_concurrency=2)  # at most 2 at once, fleet-wide
async def render_video(payload: dict[str, int]) -> None:
    global rendering, most_rendering
    rendering += 1
    most_rendering = max(most_rendering, rendering)
    await asyncio.sleep(0.05)
    rendering -= 1


@gw.task("export_everything")
async def export_everything(payload: Any, ctx: gw.JobContext) -> None:
    export_started.set()
    await asyncio.sleep(3600)  # far too long: somebody cancels it


async def main() -> None:
    worker = gw.Worker([call_partner_api, render_video, export_everything], concurrency=8)
    worker.on(gw.JobCancelled, lambda e: print(f"job {e.job.id} cancelled: {e.reason}"))
    worker.on(gw.JobComplete, on_complete)
    async with gw.WorkerUtils.connect() as utils:
        for n in range(6):
            await utils.add_job(call_partner_api, {"n": n})
            await utils.add_job(render_video, {"n": n})
        export = await utils.add_job(export_everything, {})
        async with worker:
            await export_started.wait()
            (result,) = await utils.cancel_jobs([export.id], reason="the user closed the tab")
            print(f"cancel export: {result.outcome}")
            await all_completed.wait()
            for limit in await utils.list_limits():
                print(f"limit {limit.key}: rate {limit.rate}/s, max {limit.max_concurrency}")
        (row,) = await utils.pool.fetch(
            "select last_error from graphile_worker.jobs where id = %(id)s", {"id": export.id}
        )
    print(f"export last_error: {row['last_error']}")
    print(f"6 partner calls took {calls[-1] - calls[0]:.2f} s (10/s, one at a time)")
    print(f"at most {most_rendering} videos rendered at once (limit 2)")


if __name__ == "__main__":
    asyncio.run(main())
