"""Example tasks for ``gw worker --tasks examples.tasks``.

Try it from the repository root::

    gw migrate
    gw worker --tasks examples.tasks &
    gw add send_email --payload '{"to": "ada@example.com", "subject": "Hello"}'
    gw add resize_image --payload '{"path": "cat.png", "width": 640}'
    gw add index_documents --payload '[{"id": 1, "text": "hello"}, {"id": 2, "text": ""}]'
    gw add flaky --payload '{"failure_rate": 0.5}'
    gw add slow --payload '{"seconds": 2}'
"""

from __future__ import annotations

import logging
import random

import anyio
import msgspec

import gw

logger = logging.getLogger("examples.tasks")


class Email(msgspec.Struct):
    """A typed payload: gw decodes and validates it before the handler runs."""

    to: str
    subject: str = "(no subject)"
    body: str = ""


@gw.task
async def send_email(email: Email, ctx: gw.JobContext) -> None:
    """An async task with a typed payload and the job context."""
    await anyio.sleep(0.01)  # pretend to talk to an SMTP server
    ctx.logger.info("sent %r to %s (attempt %d)", email.subject, email.to, ctx.attempt)


class Image(msgspec.Struct):
    path: str
    width: int = 256


@gw.task
def resize_image(image: Image) -> None:
    """A plain (sync) function: gw runs it in a worker thread."""
    logger.info("resized %s to %dpx wide", image.path, image.width)


class Document(msgspec.Struct):
    id: int
    text: str


@gw.batch_task("index_documents")
async def index_documents(docs: list[Document]) -> list[Exception | None]:
    """A batch task: one result per item; failed items are retried as a smaller batch."""
    results: list[Exception | None] = []
    for doc in docs:
        if doc.text:
            logger.info("indexed document %d", doc.id)
            results.append(None)
        else:
            results.append(gw.BatchItemFailed(f"document {doc.id} is empty"))
    return results


class Flaky(msgspec.Struct):
    failure_rate: float = 0.3


@gw.task(
    max_attempts=5,
    retry=gw.Retry(backoff=gw.Exponential(initial=2, cap=60, jitter=0.2), give_up_on=ValueError),
)
async def flaky(options: Flaky, ctx: gw.JobContext) -> None:
    """Fails now and then: retried up to 5 times, 2 s, 4 s, 8 s... apart (at most a
    minute, a little less at random); a ValueError would end it at once."""
    if not 0 <= options.failure_rate <= 1:
        raise ValueError(f"failure_rate must be between 0 and 1, got {options.failure_rate}")
    if random.random() < options.failure_rate:
        raise RuntimeError(f"flaky failed on attempt {ctx.attempt} of {ctx.job.max_attempts}")
    logger.info("flaky succeeded on attempt %d", ctx.attempt)


class Nap(msgspec.Struct):
    seconds: float = 1.0


@gw.task
async def slow(nap: Nap) -> None:
    """Sleeps a while: watch Ctrl-C let it finish (within the grace period)."""
    await anyio.sleep(nap.seconds)
    logger.info("slept %gs", nap.seconds)


tasks = [send_email, resize_image, index_documents, flaky, slow]
"""All of them, for ``gw worker --tasks examples.tasks:tasks``."""
