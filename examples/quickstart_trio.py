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


class BadAddress(Exception):
    """Retrying will not help: the job fails for good at once."""


# Job defaults (queue, attempts) and a retry policy: 2 s, 4 s, 8 s... apart.
@gw.task(
    "send_email",
    queue_name="mail",
    max_attempts=5,
    retry=gw.Retry(backoff=gw.Exponential(initial=2, cap=300), give_up_on=BadAddress),
)
async def send_email(payload: SendEmail, ctx: gw.JobContext) -> None:
    if "@" not in payload.to:
        raise BadAddress(f"cannot mail {payload.to!r}")
    await trio.lowlevel.checkpoint()  # pretend to talk to an SMTP server
    print(f"[trio] job {ctx.job.id}: sent {payload.subject!r} to {payload.to}")


async def main() -> None:
    worker = gw.Worker([send_email], concurrency=4)
    async with gw.WorkerUtils.connect() as utils:
        await utils.add_job(send_email, SendEmail(to="ada@example.com"))
        await utils.add_jobs(
            [(send_email, SendEmail(to=f"user{i}@example.com", subject="Batch")) for i in range(3)]
        )
        bad = await utils.add_job(send_email, SendEmail(to="nobody"))
        processed = await worker.run_once()
        failed = await utils.get_job(bad.id)
    print(f"[trio] processed {processed} job(s)")
    if failed is not None:
        print(
            f"[trio] job {failed.id} failed for good after {failed.attempts} of "
            f"{failed.max_attempts} attempts: {failed.last_error}"
        )


if __name__ == "__main__":
    trio.run(main)
