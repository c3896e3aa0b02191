"""Quick start on trio: define a typed task, add jobs, run them.

    python examples/quickstart_trio.py

Uses DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

import msgspec
import trio
import trio.lowlevel

import gw


class SendEmail(msgspec.Struct):
    to: str
    subject: str = "Hello"


@gw.task("send_email")
async def send_email(payload: SendEmail, ctx: gw.JobContext) -> None:
    await trio.lowlevel.checkpoint()  # pretend to talk to an SMTP server
    print(f"[trio] job {ctx.job.id}: sent {payload.subject!r} to {payload.to}")


async def main() -> None:
    worker = gw.Worker([send_email], concurrency=4)
    async with gw.WorkerUtils.connect() as utils:
        await utils.add_job(send_email, SendEmail(to="ada@example.com"))
        await utils.add_jobs(
            [(send_email, SendEmail(to=f"user{i}@example.com", subject="Batch")) for i in range(3)]
        )
        processed = await worker.run_once()
    print(f"[trio] processed {processed} job(s)")


if __name__ == "__main__":
    trio.run(main)
