"""Consumer spans (gw.Tracing): each attempt of a job runs inside one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._execute import execute

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..core.tasks import Task
    from ..core.tracing import TraceContext, Tracing
    from ..types import Job
    from ._execute import ExecEnv, Outcome

__all__ = ("traced_execute",)


def traced_execute(
    tracing: Tracing,
    contexts: dict[int, TraceContext],
    worker_id: str,
    cancel_requested: Callable[[int], bool],
) -> Callable[[Job, Task[..., Any], Any, ExecEnv], Awaitable[Outcome]]:
    """:func:`~._execute.execute` inside a consumer span whose parent is the job's
    stored producer context (``contexts``, filled by the fetch; a new trace
    without one). ``cancel_requested(job_id)`` tells a cancel request from a
    shutdown when the attempt is cut short."""
    start = tracing.start

    async def run(job: Job, task: Task[..., Any], payload: Any, env: ExecEnv) -> Outcome:
        attempt = start(job, worker_id, contexts.pop(job.id, None))
        try:
            outcome = await execute(job, task, payload, env)
        except BaseException:
            attempt.end("cancelled" if cancel_requested(job.id) else "interrupted")
            raise
        if cancel_requested(job.id):
            attempt.end("cancelled")
        elif outcome.fatal is not None:
            attempt.end("interrupted")
        elif outcome.skipped:
            attempt.end("skipped")
        elif outcome.error is not None:
            attempt.end("failed", outcome.error, outcome.exception)
        else:
            attempt.end("completed")
        return outcome

    return run
