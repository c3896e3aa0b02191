"""Arrange gw history and backlog samples by hand (for the stats, admin and
browser tests): rows as gw workers with ``gw.History`` write them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import gw


@dataclass
class Attempt:
    """One finished attempt; ``duration`` and ``wait`` are seconds."""

    task: str
    finished_at: datetime
    outcome: str = "completed"
    duration: float = 1.0
    wait: float | None = 0.5
    queue: str | None = None
    job_id: int = 1
    attempt: int = 1
    max_attempts: int = 25
    worker_id: str = "gw_worker_test"
    error: str | None = None
    result: Any = None
    payload: Any = None

    def row(self) -> dict[str, Any]:
        started = self.finished_at - timedelta(seconds=self.duration)
        run_at = None if self.wait is None else started - timedelta(seconds=self.wait)
        return {
            "job_id": self.job_id,
            "task_identifier": self.task,
            "queue_name": self.queue,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "worker_id": self.worker_id,
            "run_at": run_at.isoformat() if run_at else None,
            "started_at": started.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "outcome": self.outcome,
            "error": self.error,
            "result": self.result,
            "payload": self.payload,
        }


async def insert_history(utils: gw.WorkerUtils, attempts: list[Attempt]) -> list[int]:
    """Insert the attempts in order (one statement); returns their ids."""
    rows = await utils.pool.fetch(
        f"""
        insert into "{utils.schema}"._private_gw_history (
          job_id, task_identifier, queue_name, attempt, max_attempts, worker_id, run_at,
          started_at, finished_at, outcome, error, result, payload)
        select (v->>'job_id')::bigint, v->>'task_identifier', v->>'queue_name',
               (v->>'attempt')::int, (v->>'max_attempts')::int, v->>'worker_id',
               (v->>'run_at')::timestamptz, (v->>'started_at')::timestamptz,
               (v->>'finished_at')::timestamptz, v->>'outcome', v->>'error',
               nullif(v->'result', 'null'::jsonb), nullif(v->'payload', 'null'::jsonb)
        from jsonb_array_elements(%s::jsonb) with ordinality as e(v, n)
        order by e.n
        returning id
        """,
        (msgspec.json.encode([a.row() for a in attempts]).decode(),),
    )
    return sorted(row["id"] for row in rows)


async def insert_backlog(
    utils: gw.WorkerUtils, samples: list[tuple[datetime, int, int, int, int]]
) -> None:
    """Backlog samples: (sampled_at, ready, scheduled, running, failed)."""
    for at, ready, scheduled, running, failed in samples:
        await utils.pool.execute(
            f'insert into "{utils.schema}"._private_gw_backlog_samples'
            " (sampled_at, ready, scheduled, running, failed) values (%s, %s, %s, %s, %s)",
            (at, ready, scheduled, running, failed),
        )
