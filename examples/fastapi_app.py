"""FastAPI with gw: the worker runs in the app's lifespan, endpoints enqueue.

Serve it (pip install fastapi uvicorn)::

    uvicorn examples.fastapi_app:app

or run this file to drive the app in-process (no server) and watch a job run::

    python examples/fastapi_app.py

Uses DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
from fastapi import FastAPI, HTTPException, Request

import gw


class Welcome(msgspec.Struct):
    email: str


@gw.task("send_welcome", queue_name="mail", max_attempts=5)
async def send_welcome(payload: Welcome, ctx: gw.JobContext) -> None:
    await anyio.lowlevel.checkpoint()  # talk to your mail provider here
    print(f"job {ctx.job.id}: welcome mail sent to {payload.email}")
    ctx.extensions["sent"].set()  # only for the demo below


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sent = anyio.Event()
    # The worker runs in the background for the app's lifetime and stops
    # gracefully (running jobs finish) when the server shuts down.
    async with gw.Worker([send_welcome], concurrency=4, extensions={"sent": sent}) as worker:
        app.state.worker = worker
        app.state.sent = sent
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/signup", status_code=202)
async def signup(body: dict[str, str], request: Request) -> dict[str, Any]:
    email = body.get("email", "")
    if "@" not in email:
        raise HTTPException(422, "email must be an email address")
    worker: gw.Worker = request.app.state.worker
    job = await worker.utils.add_job(send_welcome, Welcome(email=email))
    return {"job_id": job.id, "queue": job.queue_name}


@app.get("/health")
async def health(request: Request) -> dict[str, Any]:
    worker: gw.Worker = request.app.state.worker
    stats = await worker.utils.stats()  # also proves the database answers
    return {"status": "ok", "jobs_processed": worker.jobs_processed, "jobs_queued": stats.total}


async def demo() -> None:
    import httpx

    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            reply = await client.post("/signup", json={"email": "ada@example.com"})
            print(f"POST /signup -> {reply.status_code} {reply.json()}")
            bad = await client.post("/signup", json={"email": "nope"})
            print(f"POST /signup (bad) -> {bad.status_code}")
            with anyio.fail_after(30):
                await app.state.sent.wait()  # the job runs in the background
            health = await client.get("/health")
            print(f"GET /health -> {health.status_code} {health.json()['status']}")
    print("app stopped cleanly")


if __name__ == "__main__":
    anyio.run(demo)
