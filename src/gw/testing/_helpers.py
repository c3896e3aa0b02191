"""``GwTestDatabase``: what a test of an application's tasks needs, on any loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..core import hooks as h
from ..core.utils import WorkerUtils, open_pool

if TYPE_CHECKING:
    from ..core.tasks import TaskSource
    from ..types import Job

__all__ = ("ANY", "GwTestDatabase", "JobOutcome")

_MAX_ROUNDS = 1000


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""Matches any payload in :meth:`GwTestDatabase.assert_jobs`."""


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one attempt of one job ended in :meth:`GwTestDatabase.run_jobs`."""

    job_id: int
    task_identifier: str
    payload: Any
    attempt: int
    outcome: Literal["completed", "failed", "permanently_failed"]
    """``failed``: it will be retried; ``permanently_failed``: it will not."""
    error: str | None = None


class GwTestDatabase:
    """One isolated, migrated database and helpers around it.

    The helpers are coroutines that open what they need in the running loop
    and close it before returning, so they work under the anyio plugin,
    pytest-trio and pytest-asyncio alike (fixtures stay synchronous).
    """

    __test__ = False

    def __init__(self, url: str, schema: str = "graphile_worker") -> None:
        self.url = url
        """The database's connection string (give it to your app or Worker)."""
        self.schema = schema

    @asynccontextmanager
    async def utils(self, **options: Any) -> AsyncIterator[WorkerUtils]:
        """``async with db.utils() as utils``: a WorkerUtils on this database."""
        async with open_pool(self.url, max_size=2) as pool:
            yield WorkerUtils(pool, self.schema, **options)

    async def jobs(self) -> list[Job]:
        """Every job in the database, oldest first."""
        async with self.utils() as utils:
            found: list[Job] = []
            offset = 0
            while True:
                page = await utils.list_jobs(limit=500, offset=offset)
                found.extend(page.jobs)
                if len(page.jobs) < 500:
                    return sorted(found, key=lambda job: job.id)
                offset += 500

    async def run_jobs(
        self,
        tasks: Iterable[TaskSource] | Mapping[str, Callable[..., Any]],
        **worker_options: Any,
    ) -> list[JobOutcome]:
        """Run workers for ``tasks`` until no job is ready; return every attempt's outcome.

        A job that failed and will be retried later is not ready (its backoff
        moved ``run_at``), so it appears once as ``failed``. ``worker_options``
        go to :class:`gw.Worker` (e.g. ``concurrency=1``, ``retry=...``).
        """
        from ..worker import ShutdownConfig, Worker

        outcomes: list[JobOutcome] = []

        def record(
            outcome: Literal["completed", "failed", "permanently_failed"],
        ) -> Callable[[Any], None]:
            def on(event: Any) -> None:
                job = event.job
                outcomes.append(
                    JobOutcome(
                        job_id=job.id,
                        task_identifier=job.task_identifier,
                        payload=job.payload,
                        attempt=job.attempts,
                        outcome=outcome,
                        error=getattr(event, "error", None),
                    )
                )

            return on

        options: dict[str, Any] = {
            "concurrency": 1,
            "migrate": False,
            "reset_locked_interval": None,
            "shutdown": ShutdownConfig(listen_os_signals=False),
            **worker_options,
        }
        tasks = list(tasks) if not isinstance(tasks, Mapping) else tasks
        for _ in range(_MAX_ROUNDS):
            worker = Worker(tasks, database_url=self.url, schema=self.schema, **options)
            worker.on(h.JobComplete, record("completed"))
            worker.on(h.JobFail, record("failed"))
            worker.on(h.JobPermanentlyFail, record("permanently_failed"))
            if await worker.run_once() == 0:
                return outcomes
        raise AssertionError(
            f"jobs were still ready after {_MAX_ROUNDS} rounds: does a task add jobs forever?"
        )

    async def assert_jobs(
        self,
        identifier: str | None = None,
        payload: Any = ANY,
        *,
        count: int | None = None,
    ) -> list[Job]:
        """Assert that jobs of ``identifier`` with ``payload`` are waiting; return them.

        Without ``count`` at least one must match; ``count=0`` asserts there is none.
        The failure message lists what the database holds.
        """
        jobs = await self.jobs()
        matching = [
            job
            for job in jobs
            if (identifier is None or job.task_identifier == identifier)
            and (payload is ANY or job.payload == _plain(payload))
        ]
        if (count is None and matching) or (count is not None and len(matching) == count):
            return matching
        wanted = "jobs" if identifier is None else f"jobs of {identifier!r}"
        if payload is not ANY:
            wanted += f" with payload {_plain(payload)!r}"
        expected = "at least one" if count is None else str(count)
        held = "; ".join(f"#{j.id} {j.task_identifier} {j.payload!r}" for j in jobs[:20]) or "none"
        raise AssertionError(
            f"expected {expected} {wanted}, found {len(matching)}; the database holds: {held}"
        )


def _plain(value: Any) -> Any:
    """A payload as the database returns it (Structs and tuples become JSON values)."""
    return msgspec.json.decode(msgspec.json.encode(value))
