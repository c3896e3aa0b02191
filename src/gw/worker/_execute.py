"""Running one job: decode, call the handler, turn the outcome into a result.

Kept free of scheduling concerns: :func:`execute` returns an
:class:`Outcome` and the worker records it (complete, fail, interrupted).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ..core.hooks import AfterJobRun, BeforeJobRun, Fail, HookRegistry, JobStart, Skip
from ..errors import PayloadError
from ..runtime import CapacityLimiter, get_cancelled_exc_class, move_on_after, to_thread
from .context import JobContext

if TYPE_CHECKING:
    from ..core.retry import Retry
    from ..core.tasks import Task
    from ..runtime import AsyncioBridge
    from ..types import Job
    from .context import Extensions

__all__ = ("Outcome", "execute")

_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Outcome:
    """How a job ended. ``error`` None means success.

    ``fatal`` is a KeyboardInterrupt or SystemExit the handler raised: not the
    job's failure but a request to stop the process, which the worker honours
    after releasing the job (its attempt does not count).
    """

    error: str | None = None
    exception: BaseException | None = None
    replacement_payload: bytes | None = None
    skipped: bool = False
    fatal: BaseException | None = None
    result: Any = None
    """What the handler returned (kept only for gw.History(results=True))."""


SUCCESS = Outcome()


@dataclass(slots=True)
class ExecEnv:
    """What executing jobs needs from the worker (built once)."""

    worker_id: str
    extensions: Extensions
    utils: Any
    hooks: HookRegistry
    limiter: CapacityLimiter
    default_timeout: float | None
    retry: Retry
    asyncio_bridge: AsyncioBridge | None
    before_run: bool
    after_run: bool
    job_start: bool = False
    keep_results: bool = False


async def execute(job: Job, task: Task[..., Any], payload_json: Any, env: ExecEnv) -> Outcome:
    """Run ``job`` with ``task``; never raises except for cancellation."""
    try:
        if task.is_batch:
            raw_items = task.decode(payload_json)
            payload: Any = task.decode_items(raw_items)
        else:
            raw_items = None
            payload = job.payload if task.payload_type is Any else task.decode(payload_json)
    except PayloadError as ex:
        return Outcome(error=str(ex), exception=ex)

    if env.before_run:
        decision = await env.hooks.intercept(BeforeJobRun(env.worker_id, job, payload))
        if isinstance(decision, Skip):
            return Outcome(skipped=True)
        if isinstance(decision, Fail):
            return Outcome(error=decision.message)
    # After BeforeJobRun, as in the Rust port: only jobs that really run start.
    if env.job_start:
        await env.hooks.emit(JobStart(env.worker_id, job))

    ctx: JobContext | None = None
    if task.takes_context or not task.is_async:
        ctx = JobContext(job, env.worker_id, env.extensions, env.utils)
    timeout = task.timeout if task.timeout is not None else env.default_timeout
    started = time.perf_counter()
    error: BaseException | None = None
    result: Any = None
    try:
        if timeout is None:
            result = await _call(task, payload, ctx, env)
        else:
            with move_on_after(timeout) as scope:
                result = await _call(task, payload, ctx, env)
            if scope.cancelled_caught:
                if ctx is not None and ctx._cancelled is not None:
                    ctx._cancelled.set()
                error = TimeoutError(f"timed out after {timeout:g} s")
    except get_cancelled_exc_class():
        if ctx is not None and ctx._cancelled is not None:
            ctx._cancelled.set()
        raise
    except Exception as ex:
        error = ex
    except (KeyboardInterrupt, SystemExit) as ex:
        # Not the job's failure: the process is asked to stop. Returned, not
        # raised, so that asyncio does not abort its loop before the worker
        # has released this job and the others.
        return Outcome(fatal=ex)
    except BaseException as ex:
        # Any other BaseException a handler raises is that job's failure.
        error = ex

    outcome = _outcome(task, job, error, result, raw_items)
    if env.keep_results and outcome is SUCCESS and result is not None:
        outcome = Outcome(result=result)
    if env.after_run:
        decision = await env.hooks.intercept(
            AfterJobRun(env.worker_id, job, error, time.perf_counter() - started)
        )
        if isinstance(decision, Fail):
            return Outcome(error=decision.message)
        if isinstance(decision, Skip):
            return Outcome(skipped=True)
    return outcome


async def _call(task: Task[..., Any], payload: Any, ctx: JobContext | None, env: ExecEnv) -> Any:
    if task.is_async:
        if task.loop is not None and env.asyncio_bridge is not None:
            args = (payload, ctx) if task.takes_context else (payload,)
            return await env.asyncio_bridge(task.fn, *args)
        if task.takes_context:
            return await task.fn(payload, ctx)
        return await task.fn(payload)
    assert ctx is not None
    ctx._cancelled = threading.Event()
    call = (
        functools.partial(task.fn, payload, ctx)
        if task.takes_context
        else functools.partial(task.fn, payload)
    )
    # A thread cannot be killed: on timeout or shutdown the worker stops
    # waiting for it (ctx.is_cancelled() turns true) and releases the job.
    return await to_thread.run_sync(call, abandon_on_cancel=True, limiter=env.limiter)


def error_message(error: BaseException) -> str:
    """The text stored in last_error: the exception's message (Graphile stores
    ``err.message``), or its type when it has none."""
    text = str(error).strip()
    return text or type(error).__name__


def _outcome(
    task: Task[..., Any],
    job: Job,
    error: BaseException | None,
    result: Any,
    raw_items: list[msgspec.Raw] | None,
) -> Outcome:
    if error is not None:
        return Outcome(error=error_message(error), exception=error)
    if raw_items is None:
        return SUCCESS
    # Batch job: one result per item; failed items are retried as a new array.
    if not isinstance(result, (list, tuple)) or len(result) != len(raw_items):
        got = len(result) if isinstance(result, (list, tuple)) else type(result).__name__
        return Outcome(
            error=(
                f"batch handler for {task.identifier!r} must return one result per item "
                f"({len(raw_items)} items, got {got}); the whole batch will be retried"
            )
        )
    failed_items: list[msgspec.Raw] = []
    messages: list[str] = []
    for item, item_result in zip(raw_items, result, strict=True):
        if isinstance(item_result, BaseException):
            failed_items.append(item)
            messages.append(error_message(item_result))
    if not failed_items:
        return SUCCESS
    return Outcome(
        error="Batch failures:\n" + "\n".join(messages),
        replacement_payload=_encoder.encode(failed_items),
    )
