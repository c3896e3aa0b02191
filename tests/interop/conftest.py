"""Interop with npm graphile-worker 0.18.0, driven through a small Node ESM script.

The Node runtime lives in ``.ci/node`` (``bash .ci/install-node-interop.sh``,
which ``.ci/run`` calls); without it these tests are skipped, naming that
command.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import pytest
from psycopg.conninfo import conninfo_to_dict

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = ROOT / ".ci" / "node"
NODE_BIN = NODE_PREFIX / "node_modules" / ".bin" / "node"
GRAPHILE_INDEX = NODE_PREFIX / "node_modules" / "graphile-worker" / "dist" / "index.js"
INSTALL_COMMAND = "bash .ci/install-node-interop.sh"

# argv: connection string, schema, mode ("install" | "run"), JSON list of task names.
# install: migrate, then add one job per task name ({"from": "node"}, queue "nq").
# run:     migrate, then runOnce with handlers that record (task, payload).
# hold:    as run, but each handler first waits GW_NODE_HOLD_MS milliseconds.
# Prints one JSON line: {"seen": [[task, payload], ...], "warnings": [...]}.
NODE_SCRIPT = """
import { makeWorkerUtils, runOnce, Logger } from %(index)s;
const [connectionString, schema, mode, tasksJson] = process.argv.slice(2);
const taskNames = JSON.parse(tasksJson);
const warnings = [];
const logger = new Logger(() => (level, message) => {
  if (level === "warning" || level === "error") warnings.push(level + ": " + message);
});
const seen = [];
const utils = await makeWorkerUtils({ connectionString, schema, logger });
try {
  await utils.migrate();
  if (mode === "install") {
    for (const name of taskNames) {
      await utils.addJob(name, { from: "node" }, { queueName: "nq" });
    }
  }
} finally {
  await utils.release();
}
if (mode === "run" || mode === "hold") {
  const holdMs = mode === "hold" ? Number(process.env.GW_NODE_HOLD_MS || "0") : 0;
  const taskList = {};
  for (const name of taskNames) {
    taskList[name] = async (payload) => {
      if (holdMs) await new Promise((resolve) => setTimeout(resolve, holdMs));
      seen.push([name, payload]);
    };
  }
  await runOnce({ connectionString, schema, logger, concurrency: 1, taskList });
}
console.log(JSON.stringify({ seen, warnings }));
"""


def node_connection_string(conninfo: str) -> str:
    """A postgresql:// URL node-postgres understands, for a libpq conninfo or URL.

    Unix sockets (the embedded server) go in the ``host`` query parameter,
    which node-postgres reads as the socket directory.
    """
    params = conninfo_to_dict(conninfo)
    user = quote(str(params.get("user", "")), safe="")
    password = quote(str(params.get("password", "") or ""), safe="")
    auth = f"{user}:{password}@" if password else f"{user}@"
    dbname = quote(str(params.get("dbname", "")), safe="")
    host = str(params.get("host", "") or "localhost")
    port = str(params.get("port", "") or "")
    if host.startswith("/"):
        query = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
        return f"postgresql://{auth}/{dbname}{query}"
    return f"postgresql://{auth}{host}{':' + port if port else ''}/{dbname}"


@dataclass
class NodeResult:
    seen: list[list[Any]]
    warnings: list[str]


@dataclass
class NodeWorker:
    """Runs the interop script with the installed Node."""

    node: Path
    script: Path

    async def __call__(
        self,
        conninfo: str,
        schema: str,
        mode: str,
        tasks: Sequence[str],
        env: dict[str, str] | None = None,
    ) -> NodeResult:
        argv = [
            str(self.node),
            str(self.script),
            node_connection_string(conninfo),
            schema,
            mode,
            json.dumps(list(tasks)),
        ]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
        proc = await anyio.run_process(argv, check=False, env={**clean, **(env or {})})
        out, err = proc.stdout.decode(), proc.stderr.decode()
        if proc.returncode != 0:
            pytest.fail(f"node exited with {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
        result = json.loads(out.strip().splitlines()[-1])
        return NodeResult(seen=result["seen"], warnings=result["warnings"])


@pytest.fixture(scope="session")
def node_bin() -> Path:
    if not NODE_BIN.exists() or not GRAPHILE_INDEX.exists():
        pytest.skip(
            f"Node interop runtime not installed ({NODE_BIN} missing); "
            f"install it with `{INSTALL_COMMAND}`"
        )
    return NODE_BIN


@pytest.fixture
def node_worker(node_bin: Path, tmp_path: Path) -> NodeWorker:
    script = tmp_path / "interop.mjs"
    script.write_text(NODE_SCRIPT % {"index": json.dumps(GRAPHILE_INDEX.as_uri())})
    return NodeWorker(node_bin, script)
