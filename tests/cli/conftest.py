"""Helpers for the CLI tests: run ``python -m gw`` as a subprocess, read the database.

These tests are synchronous (they drive subprocesses), so they do not run
twice like the async tests; commands pick their event loop with --backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
import pytest

REPO = Path(__file__).resolve().parents[2]
GW_TIMEOUT = 60.0


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)

    @property
    def error(self) -> str:
        """The single stderr line of a failed command (asserting there is only one)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.stderr!r}"
        assert lines[0].startswith("gw: error: "), lines[0]
        assert "Traceback" not in self.stderr
        return lines[0].removeprefix("gw: error: ")


def gw_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHILE_WORKER_", "GW_"))}
    env.pop("DATABASE_URL", None)
    env.pop("COLUMNS", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def gw_command(*args: str, db_url: str | None = None) -> list[str]:
    head = [sys.executable, "-m", "gw"]
    if db_url is not None:
        head += ["--database-url", db_url]
    return [*head, *args]


@dataclass
class GW:
    """Runs gw against one test database."""

    db_url: str

    def __call__(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Result:
        cmd = gw_command(*args, db_url=self.db_url)
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=GW_TIMEOUT,
            cwd=REPO,
            env=env or gw_env(),
            **kw,
        )
        return Result(cmd[3:], proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kw: Any) -> Result:
        result = self(*args, **kw)
        assert result.returncode == 0, f"gw {' '.join(args)} failed: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first, with its task identifier and queue name."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute(
                """
                select j.id, t.identifier as task_identifier, q.queue_name, j.payload,
                       j.priority, j.run_at, j.attempts, j.max_attempts, j.last_error,
                       j.key, j.locked_at, j.locked_by, j.revision, j.flags
                from graphile_worker._private_jobs j
                join graphile_worker._private_tasks t on t.id = j.task_id
                left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
                order by j.id
                """
            )
            return list(cur.fetchall())

    def add_job(self, identifier: str, payload: Any = None, **spec: Any) -> int:
        """Add a job through the schema's own add_job function (no gw code involved)."""
        args = ", ".join(f"{k} => %({k})s" for k in spec)
        query = "select id from graphile_worker.add_job(%(identifier)s, %(payload)s::json"
        query += (", " + args if args else "") + ")"
        params = {"identifier": identifier, "payload": json.dumps(payload or {}), **spec}
        return int(self.sql(query, params)[0][0])

    def lock(self, job_id: int, worker_id: str, *, ago: str = "0 seconds") -> None:
        self.sql(
            "update graphile_worker._private_jobs set locked_by = %s,"
            " locked_at = now() - %s::interval, attempts = attempts + 1 where id = %s",
            (worker_id, ago, job_id),
        )


@pytest.fixture
def gw(db_url: str) -> GW:
    return GW(db_url)
