"""gw and npm graphile-worker 0.18 run the same crontab on one database.

Node's cron reads the real clock, so this test runs in real time: it starts a
Node worker (subprocess) and a gw worker with the same two-item crontab, picks
the first minute boundary both are sure to see, and waits (on conditions, with
deadlines computed from the clock) until both have processed that minute.
Every job runs in the gw worker (the Node worker has no ``tick`` task), so a
duplicate job would show up as a second run of the same (item, minute).
"""

from __future__ import annotations

import json
import math
import textwrap
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import pytest
from anyio.streams.text import TextReceiveStream
from psycopg.conninfo import conninfo_to_dict

import gw
from gw.db.connection import connect
from gw.testing import running, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import Process

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "node"
NODE_INDEX = ROOT / ".ci" / "node" / "node_modules" / "graphile-worker" / "dist" / "index.js"
CRONTAB = "* * * * * tick ?id=tick\n* * * * * tick ?id=tick_b {which: 'b'}\n"
# Both workers must be running this long before the minute they are judged on.
MARGIN = timedelta(seconds=3)
DEADLINE = 150.0

NODE_SCRIPT = """
import { EventEmitter } from "node:events";
import { run, Logger } from %(index)s;

const [connectionString, crontab] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const events = new EventEmitter();
events.on("cron:started", () => say({ event: "started" }));
events.on("cron:scheduled", ({ timestamp, jobsAndIdentifiers }) =>
  say({
    event: "scheduled",
    ts: new Date(timestamp).toISOString(),
    ids: jobsAndIdentifiers.map((j) => j.identifier),
  }),
);
const logger = new Logger(() => (level, message) => {
  process.stderr.write(level + ": " + message + "\\n");
});
const runner = await run({
  connectionString,
  concurrency: 1,
  crontab,
  events,
  logger,
  noHandleSignals: true,
  taskList: { node_only: async () => {} },
});
process.stdin.on("end", async () => {
  await runner.stop();
  process.exit(0);
});
process.stdin.resume();
"""


def node_url(conninfo: str) -> str:
    """A postgres:// URL node-postgres understands (unix sockets via ?host=)."""
    params = conninfo_to_dict(conninfo)
    user = quote(str(params.get("user") or "postgres"))
    dbname = quote(str(params["dbname"]))
    host = str(params.get("host") or "127.0.0.1")
    port = params.get("port")
    if host.startswith("/"):
        query = f"?host={quote(host, safe='')}" + (f"&port={port}" if port else "")
        return f"postgresql://{user}@/{dbname}{query}"
    return f"postgresql://{user}@{host}{f':{port}' if port else ''}/{dbname}"


class NodeWorker:
    """The Node subprocess and what it reported on stdout."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.started = anyio.Event()
        self.scheduled: list[dict[str, Any]] = []
        self.stderr: list[str] = []

    async def read_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stdout):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                message = json.loads(line)
                if message["event"] == "started":
                    self.started.set()
                else:
                    self.scheduled.append(message)

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for chunk in TextReceiveStream(self.process.stderr):
            self.stderr.extend(chunk.splitlines())

    def saw(self, ts: str) -> bool:
        return any(m["ts"] == ts for m in self.scheduled)


@asynccontextmanager
async def node_worker(tg: Any, url: str, tmp: Path) -> AsyncIterator[NodeWorker]:
    """Run the Node worker for the duration of the block; stop it cleanly after."""
    script = tmp / "cron_interop.mjs"
    script.write_text(textwrap.dedent(NODE_SCRIPT % {"index": json.dumps(NODE_INDEX.as_uri())}))
    process = await anyio.open_process([str(NODE_BIN), str(script), url, CRONTAB])
    node = NodeWorker(process)
    tg.start_soon(node.read_stdout)
    tg.start_soon(node.read_stderr)
    try:
        yield node
    finally:
        with anyio.CancelScope(shield=True):
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def minute_after(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor + timedelta(minutes=1)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_gw_and_node_schedule_each_tick_once(db_url: str, tmp_path: Path) -> None:
    if not NODE_BIN.exists() or not NODE_INDEX.exists():
        reason = (
            f"Node interop runtime missing ({NODE_BIN} or graphile-worker 0.18.0); "
            "run `bash .ci/install-node-interop.sh`"
        )
        print(reason)
        pytest.skip(reason)

    runs: list[tuple[str, str]] = []

    @gw.task("tick")
    async def tick(payload: Any) -> None:
        runs.append((payload.get("which", "a"), payload["_cron"]["ts"]))

    won: list[gw.CronJobScheduled] = []
    worker = gw.Worker(
        [tick],
        database_url=db_url,
        crontab=CRONTAB,
        concurrency=2,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
    )
    worker.on(gw.CronJobScheduled, won.append)
    gw_ticks: list[datetime] = []
    worker.on(gw.CronTick, lambda event: gw_ticks.append(event.timestamp))

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            async with node_worker(tg, node_url(db_url), tmp_path) as node:
                with anyio.fail_after(30):
                    await node.started.wait()
                async with running(worker):
                    # The first boundary both workers are certainly waiting for.
                    target = minute_after(datetime.now(UTC) + MARGIN)
                    stamp = iso(target)
                    wait = (target - datetime.now(UTC)).total_seconds() + 30
                    await wait_for(
                        lambda: node.saw(stamp) and len([r for r in runs if r[1] == stamp]) >= 2,
                        timeout=math.ceil(wait),
                        interval=0.1,
                        message=f"both workers to process {stamp}",
                    )
                    # Node has finished its statement for the minute, so any
                    # duplicate job exists by now: wait for gw to run them all.
                    await wait_for(
                        lambda: _no_jobs_before(db_url, target),
                        timeout=30,
                        message="every job up to the target minute to run",
                    )
            tg.cancel_scope.cancel()

    per_item = {(which, ts) for which, ts in runs if ts == stamp}
    assert sorted(r for r in runs if r[1] == stamp) == [("a", stamp), ("b", stamp)], (
        runs,
        node.stderr[-20:],
    )
    assert len(per_item) == 2
    # Every minute either worker processed ran exactly once per item.
    assert len(runs) == len(set(runs)), runs
    # Both really competed for the minute.
    assert {m["ts"] for m in node.scheduled} >= {stamp}
    assert target in gw_ticks
    gw_won = [e for e in won if e.timestamp == target]
    print(f"{stamp}: gw created {len(gw_won)} of 2 jobs, Node {2 - len(gw_won)}")
    async with await connect(db_url) as conn:
        cur = await conn.execute(
            "select identifier, last_execution from graphile_worker._private_known_crontabs"
            " order by identifier"
        )
        known = await cur.fetchall()
    assert [k[0] for k in known] == ["tick", "tick_b"]
    assert all(k[1] >= target for k in known)


async def _no_jobs_before(db_url: str, target: datetime) -> bool:
    async with await connect(db_url) as conn:
        cur = await conn.execute(
            "select count(*) from graphile_worker._private_jobs where run_at <= %s", (target,)
        )
        row = await cur.fetchone()
    return row is not None and row[0] == 0


test_gw_and_node_schedule_each_tick_once._gw_deadline = True  # type: ignore[attr-defined]
