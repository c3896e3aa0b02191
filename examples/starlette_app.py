"""Starlette with gw: the same pattern as FastAPI without the framework on top.

    uvicorn examples.starlette_app:app      # serve it
    python examples/starlette_app.py        # or drive it in-process

Uses DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import gw


@gw.task("resize")
async def resize(payload: dict[str, int], ctx: gw.JobContext) -> None:
    ctx.extensions["done"].set()  # only for the demo below
    print(f"job {ctx.job.id}: resized image {payload['image']}")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    done = anyio.Event()
    async with gw.Worker([resize], concurrency=2, extensions={"done": done}) as worker:
        app.state.worker = worker
        app.state.done = done
        yield


async def upload(request: Request) -> JSONResponse:
    body = await request.json()
    job = await request.app.state.worker.utils.add_job(resize, {"image": int(body["image"])})
    return JSONResponse({"job_id": job.id}, status_code=202)


async def health(request: Request) -> JSONResponse:
    worker: gw.Worker = request.app.state.worker
    return JSONResponse({"status": "ok", "jobs_processed": worker.jobs_processed})


app = Starlette(
    routes=[Route("/images", upload, methods=["POST"]), Route("/health", health)],
    lifespan=lifespan,
)


async def demo() -> None:
    import httpx

    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            reply = await client.post("/images", json={"image": 7})
            print(f"POST /images -> {reply.status_code} {reply.json()}")
            with anyio.fail_after(30):
                await app.state.done.wait()  # the job runs in the background
            health = await client.get("/health")
            print(f"GET /health -> {health.status_code} {health.json()['status']}")
    print("app stopped cleanly")


if __name__ == "__main__":
    anyio.run(demo)
