"""Database round trips on asyncio and trio, side by side.

Prints, per backend: sequential simple-query throughput on one connection,
concurrent throughput through a pool of 5, and NOTIFY round-trip latency
(pg_notify on one connection until the LISTEN connection receives it). On
asyncio the same numbers are also taken with stock ``psycopg.AsyncConnection``
as the reference.

    python bench/db_roundtrip.py [--database-url URL] [--queries 20000]

Without a URL (and no DATABASE_URL) it uses the embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio
import psycopg

from gw.db.connection import connect
from gw.db.embedded import open_database_url
from gw.db.listen import Listener
from gw.db.pool import Pool


async def sequential(url: str, n: int, stock: bool) -> float:
    conn: Any
    if stock:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    else:
        conn = await connect(url)
    async with conn:
        for _ in range(200):
            await conn.execute("select 1")
        start = time.perf_counter()
        for _ in range(n):
            cur = await conn.execute("select 1")
            await cur.fetchone()
        return n / (time.perf_counter() - start)


async def pooled(url: str, n: int) -> float:
    async with Pool(url, max_size=5) as pool:
        per_task = n // 50

        async def worker() -> None:
            for _ in range(per_task):
                async with pool.connection() as conn:
                    cur = await conn.execute("select 1")
                    await cur.fetchone()

        async with anyio.create_task_group() as tg:  # warm up the 5 connections
            for _ in range(5):
                tg.start_soon(pool.fetch, "select 1")
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(worker)
        return per_task * 50 / (time.perf_counter() - start)


async def notify_latency(url: str, rounds: int) -> tuple[float, float]:
    samples: list[float] = []
    async with Listener(url, ["gw_bench"]) as listener, await connect(url) as sender:
        for i in range(rounds + 50):
            start = time.perf_counter()
            await sender.execute("select pg_notify('gw_bench', %s)", (str(i),))
            note = await listener.receive()
            assert note.payload == str(i)
            if i >= 50:
                samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6


async def bench(url: str, backend: str, queries: int, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    out["seq"] = await sequential(url, queries, stock=False)
    if backend == "asyncio":
        out["seq_stock"] = await sequential(url, queries, stock=True)
    out["pool"] = await pooled(url, queries)
    out["notify_p50"], out["notify_p99"] = await notify_latency(url, rounds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    async def resolve() -> None:
        async with open_database_url(args.database_url) as url:
            results: dict[str, dict[str, float]] = {}
            for backend in ("asyncio", "trio"):
                results[backend] = await anyio.to_thread.run_sync(
                    lambda b=backend: anyio.run(bench, url, b, args.queries, args.rounds, backend=b)
                )
            a, t = results["asyncio"], results["trio"]
            print(f"{'metric':38} {'asyncio':>12} {'trio':>12} {'trio/asyncio':>13}")
            print(
                f"{'simple query, 1 conn (queries/s)':38} {a['seq']:12.0f} {t['seq']:12.0f} "
                f"{t['seq'] / a['seq']:13.2f}"
            )
            print(
                f"{'  stock psycopg AsyncConnection':38} {a['seq_stock']:12.0f} {'-':>12} {'-':>13}"
            )
            print(
                f"{'50 tasks, pool of 5 (queries/s)':38} {a['pool']:12.0f} {t['pool']:12.0f} "
                f"{t['pool'] / a['pool']:13.2f}"
            )
            print(
                f"{'NOTIFY round trip p50 (us)':38} {a['notify_p50']:12.0f} "
                f"{t['notify_p50']:12.0f} {t['notify_p50'] / a['notify_p50']:13.2f}"
            )
            print(
                f"{'NOTIFY round trip p99 (us)':38} {a['notify_p99']:12.0f} "
                f"{t['notify_p99']:12.0f} {t['notify_p99'] / a['notify_p99']:13.2f}"
            )

    anyio.run(resolve)


if __name__ == "__main__":
    main()
