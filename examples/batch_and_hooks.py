"""Batch jobs (one job, many items; failed items retried alone) and lifecycle hooks.

python examples/batch_and_hooks.py
"""

from __future__ import annotations

import anyio
import msgspec

import gw


class Record(msgspec.Struct):
    id: int


@gw.batch_task("index_records")
async def index_records(items: list[Record]) -> list[Exception | None]:
    # One result per item: None for success, an exception for a failure.
    return [ValueError(f"record {r.id} is invalid") if r.id < 0 else None for r in items]


def log_failure(event: gw.JobFail) -> None:
    print(f"job {event.job.id} failed and will retry: {event.error!r}")


async def main() -> None:
    worker = gw.Worker([index_records], concurrency=2)
    worker.on(gw.JobFail, log_failure)
    async with gw.WorkerUtils.connect() as utils:
        job = await utils.add_batch_job(index_records, [Record(1), Record(-2), Record(3)])
        await worker.run_once()
        retried = await utils.get_job(job.id)
        assert retried is not None
        print(f"items left to retry: {retried.payload}")
        await utils.complete_jobs([job.id])  # tidy up the example


if __name__ == "__main__":
    anyio.run(main)
