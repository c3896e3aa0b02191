"""Maintenance commands: migrate, cleanup, force-unlock, sweep-stale-workers."""

from __future__ import annotations

from typing import Annotated

import msgspec
from cyclopts import Parameter

from ..types import CleanupTask, SweepResult
from ._app import current, open_utils, run
from ._output import emit_json, print_table, say, status
from ._params import CleanupTaskName, Duration, Flag, format_duration

__all__ = ("cleanup", "force_unlock", "migrate", "sweep_stale_workers")


class MigrateReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw migrate --json``."""

    schema: str
    applied: list[int]
    gw_applied: list[int]
    previous: int | None
    current: int | None


def migrate() -> None:
    """Install or upgrade the Graphile Worker schema (safe to run at any time)."""

    async def go() -> MigrateReport:
        async with open_utils() as utils:
            with status(f"migrating schema {utils.schema}…"):
                report = await utils.migrate()
            return MigrateReport(
                schema=utils.schema,
                applied=list(report.applied),
                gw_applied=list(report.gw_applied),
                previous=report.latest,
                current=max(report.applied) if report.applied else report.latest,
            )

    result = run(go)
    if current().json:
        emit_json(result)
        return
    if result.applied:
        first, last = result.applied[0], result.applied[-1]
        span = str(first) if first == last else f"{first}-{last}"
        say(f"schema {result.schema}: applied migration(s) {span}; now at {result.current}")
    else:
        say(f"schema {result.schema} is up to date (migration {result.current})")


class CleanupReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw cleanup --json``: the tasks that ran, in the order they ran."""

    tasks: list[CleanupTask]


_ORDER = (
    CleanupTask.DELETE_PERMAFAILED_JOBS,
    CleanupTask.GC_TASK_IDENTIFIERS,
    CleanupTask.GC_JOB_QUEUES,
)


def cleanup(*, task: CleanupTaskName | None = None) -> None:
    """Run maintenance tasks on the schema.

    Default: gc-task-identifiers and gc-job-queues. Note that gc-task-identifiers
    run from here does not know which tasks your running workers handle; restart
    them afterwards if it removed identifiers they use.

    Parameters
    ----------
    task
        delete-permanently-failed-jobs, gc-task-identifiers or gc-job-queues (repeat for more).
    """
    wanted = set(task) if task else {CleanupTask.GC_TASK_IDENTIFIERS, CleanupTask.GC_JOB_QUEUES}
    ordered = [t for t in _ORDER if t in wanted]

    async def go() -> list[CleanupTask]:
        done: list[CleanupTask] = []
        async with open_utils() as utils:
            for index, item in enumerate(ordered, 1):
                with status(f"cleanup {index}/{len(ordered)}: {item.value}…"):
                    done.extend(await utils.cleanup([item]))
                say(f"done: {item.value}")
        return done

    done = run(go)
    if current().json:
        emit_json(CleanupReport(tasks=done))


class ForceUnlockReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw force-unlock --json``: what the given workers held just before."""

    worker_ids: list[str]
    released_jobs: int
    released_queues: int


def force_unlock(worker_ids: Annotated[list[str], Parameter(metavar="WORKER_ID")], /) -> None:
    """Release every job and queue locked by these worker ids.

    Only for workers you know are gone (see gw workers); their jobs become
    available to other workers at once.

    Parameters
    ----------
    worker_ids
        One or more worker ids, e.g. graphile_worker_deadbeef.
    """
    from ..errors import ConfigurationError

    if not all(w.strip() for w in worker_ids):
        raise ConfigurationError("worker ids must not be empty")

    async def go() -> ForceUnlockReport:
        async with open_utils() as utils:
            held = {w.worker_id: w for w in await utils.locked_workers()}
            await utils.force_unlock_workers(worker_ids)
        mine = [held[w] for w in dict.fromkeys(worker_ids) if w in held]
        return ForceUnlockReport(
            worker_ids=list(dict.fromkeys(worker_ids)),
            released_jobs=sum(w.locked_jobs for w in mine),
            released_queues=sum(w.locked_queues for w in mine),
        )

    report = run(go)
    if current().json:
        emit_json(report)
        return
    say(
        f"unlocked {report.released_jobs} job(s) and {report.released_queues} queue(s) "
        f"held by {', '.join(report.worker_ids)}"
    )


def sweep_stale_workers(
    *,
    dry_run: Flag = False,
    sweep_threshold: Duration = 300.0,
    recovery_delay: Duration = 30.0,
) -> None:
    """Recover jobs held by workers that stopped heartbeating (or never registered).

    Recovered jobs are unlocked, get their attempt back and run again after
    the recovery delay. Try --dry-run first.

    Parameters
    ----------
    dry_run
        Only report what would be recovered.
    sweep_threshold
        A worker is stale after this long without a heartbeat (e.g. 5m).
    recovery_delay
        Recovered jobs run again after this delay (e.g. 30s).
    """

    async def go() -> SweepResult:
        async with open_utils() as utils:
            with status("sweeping stale workers…"):
                return await utils.sweep_stale_workers(
                    sweep_threshold=sweep_threshold,
                    recovery_delay=recovery_delay,
                    dry_run=dry_run,
                )

    result = run(go)
    if current().json:
        emit_json(result)
        return
    threshold = format_duration(sweep_threshold)
    if not result.worker_ids and not result.job_ids:
        say(f"no stale workers (threshold {threshold})")
        return
    verb = "would recover" if result.dry_run else "recovered"
    count = len(result.job_ids) if result.dry_run else result.recovered_jobs
    say(f"{verb} {count} job(s) from {len(result.worker_ids)} stale worker(s)")
    if result.worker_ids:
        print_table(("STALE WORKER",), [(w,) for w in result.worker_ids])
    if result.job_ids:
        say("jobs: " + ", ".join(str(j) for j in result.job_ids))
