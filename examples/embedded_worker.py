"""Run a worker inside your own application's task group (e.g. a web app's lifespan).

``async with worker:`` starts it in the background and stops it gracefully
when the block ends; ``worker.utils`` adds jobs through the same pool. With
FastAPI/Starlette, put the ``async with`` in the lifespan function.

    python examples/embedded_worker.py
"""

from __future__ import annotations

import anyio

import gw

done = anyio.Event()


@gw.task("welcome")
async def welcome(payload: dict[str, str], ctx: gw.JobContext) -> None:
    greeting = ctx.extensions["greeting"]  # application state, shared with handlers
    print(f"{greeting}, {payload['name']}!")
    done.set()


async def main() -> None:
    async with gw.Worker([welcome], concurrency=2, extensions={"greeting": "Welcome"}) as worker:
        # ... your application runs here; it can enqueue jobs at any time:
        await worker.utils.add_raw_job("welcome", {"name": "Grace"})
        with anyio.fail_after(30):
            await done.wait()
    print("worker stopped cleanly")


if __name__ == "__main__":
    anyio.run(main)
