"""The same quick start on asyncio: only the event loop differs.

python examples/quickstart_asyncio.py
"""

from __future__ import annotations

import asyncio

import msgspec

import gw


class Resize(msgspec.Struct):
    image_id: int
    width: int = 800


@gw.task("resize_image")
async def resize_image(payload: Resize) -> None:
    await asyncio.sleep(0)
    print(f"[asyncio] resized image {payload.image_id} to {payload.width}px")


@gw.task("report")
def report(payload: dict[str, str]) -> None:
    # Plain functions run in a worker thread: blocking code is fine here.
    print(f"[asyncio] building report {payload['name']} in a thread")


async def main() -> None:
    worker = gw.Worker([resize_image, report], concurrency=4)
    async with gw.WorkerUtils.connect() as utils:
        await utils.add_job(resize_image, Resize(image_id=7))
        await utils.add_raw_job("report", {"name": "weekly"}, gw.JobSpec(queue_name="reports"))
        processed = await worker.run_once()
    print(f"[asyncio] processed {processed} job(s)")


if __name__ == "__main__":
    asyncio.run(main())
