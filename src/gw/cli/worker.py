"""``gw worker``: run the tasks of one or more Python modules."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from cyclopts import Parameter

from ..core.tasks import Task, TaskRegistry
from ..errors import ConfigurationError
from ..runtime import Event, open_task_group
from ._app import current, run, setup_logging
from ._output import emit_json, say
from ._params import AuthMode, Duration, Flag, QueueLimits, parse_queue_limit

if TYPE_CHECKING:
    from ..worker import History
    from .admin import AdminOptions

__all__ = ("load_tasks", "worker")

logger = logging.getLogger("gw.cli")


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as ex:
        missing = ex.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ConfigurationError(
                f"--tasks {spec}: no module named {module_name!r} "
                f"(looked in {os.getcwd()} and the installed packages)"
            ) from None
        logger.debug("importing %s failed", module_name, exc_info=True)
        raise ConfigurationError(f"--tasks {spec}: importing {module_name} failed: {ex}") from None
    except Exception as ex:
        logger.debug("importing %s failed", module_name, exc_info=True)
        reason = " ".join(str(ex).split())
        raise ConfigurationError(
            f"--tasks {spec}: importing {module_name} failed: {type(ex).__name__}: {reason} "
            "(-v shows the traceback)"
        ) from None


def _tasks_from(obj: Any, spec: str) -> list[Any]:
    if isinstance(obj, (Task, Mapping)):
        return [obj]
    if isinstance(obj, TaskRegistry):
        return list(obj)
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        return list(obj)
    if callable(obj):
        return [obj]
    raise ConfigurationError(
        f"--tasks {spec}: expected a gw task, a list of tasks or a TaskRegistry, "
        f"got {type(obj).__name__}"
    )


def load_tasks(specs: Iterable[str]) -> TaskRegistry:
    """Import ``MODULE[:ATTR]`` specs and collect their tasks.

    ``MODULE:ATTR`` names a task, a list of tasks or a TaskRegistry; a bare
    ``MODULE`` contributes every gw task defined at its top level.
    """
    # Like `python -m`: modules next to where gw is run are importable.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    registry = TaskRegistry()
    for spec in specs:
        module_name, _, attr = spec.strip().partition(":")
        if not module_name:
            raise ConfigurationError(f"--tasks {spec!r}: expected MODULE or MODULE:ATTR")
        module = _import(module_name, spec)
        if attr:
            obj: Any = module
            for part in attr.split("."):
                try:
                    obj = getattr(obj, part)
                except AttributeError:
                    raise ConfigurationError(
                        f"--tasks {spec}: module {module_name} has no attribute {attr!r}"
                    ) from None
            found = _tasks_from(obj, spec)
        else:
            found = list({id(v): v for v in vars(module).values() if isinstance(v, Task)}.values())
        if not found:
            raise ConfigurationError(
                f"--tasks {spec}: no gw tasks found; decorate handlers with @gw.task "
                "or name a list of tasks as MODULE:ATTR"
            )
        for source in found:
            try:
                registry.add(source)
            except ConfigurationError as ex:
                raise ConfigurationError(f"--tasks {spec}: {ex}") from None
    return registry


def _read_crontab(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as ex:
        raise ConfigurationError(f"cannot read --crontab {path}: {ex.strerror or ex}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"--crontab {path} is not UTF-8 text") from None


class OnceReport(msgspec.Struct, frozen=True, kw_only=True):
    """``gw worker --once --json``."""

    jobs_processed: int


def worker(
    *,
    tasks: Annotated[list[str], Parameter(metavar="MODULE[:ATTR]", negative="")],
    concurrency: Annotated[int | None, Parameter(metavar="N")] = None,
    poll_interval: Duration = 1.0,
    crontab: Annotated[Path | None, Parameter(metavar="FILE")] = None,
    once: Flag = False,
    local_queue_size: Annotated[int | None, Parameter(metavar="N")] = None,
    recovery: Flag = False,
    grace_period: Duration = 5.0,
    cleanup_timeout: Duration = 10.0,
    max_pg_conn: Annotated[int, Parameter(metavar="N")] = 20,
    admin: Flag = False,
    listen: Annotated[str, Parameter(metavar="HOST:PORT")] = "127.0.0.1:5678",
    admin_auth: AuthMode = "basic",
    allowed_host: Annotated[list[str] | None, Parameter(metavar="NAME", negative="")] = None,
    health: Annotated[str | None, Parameter(metavar="HOST:PORT")] = None,
    processes: Annotated[int | None, Parameter(metavar="N")] = None,
    listen_database_url: Annotated[str | None, Parameter(metavar="URL")] = None,
    poll_only: Flag = False,
    heartbeat_interval: Duration = 30.0,
    sweep_interval: Duration = 60.0,
    sweep_threshold: Duration = 300.0,
    recovery_delay: Duration = 30.0,
    queue_limit: QueueLimits | None = None,
    history: Duration | None = None,
    history_payloads: Flag = False,
    tracing: Flag = False,
) -> None:
    """Run a worker for the tasks in Python modules until Ctrl-C (or SIGTERM).

    The first signal stops fetching and lets running jobs finish (up to
    --grace-period), then hands back what it holds (within --cleanup-timeout,
    even if the database stopped answering); a second one stops at once. The
    current directory is importable, as with python -m.

    Example: gw worker --tasks examples.tasks --concurrency 4

    Parameters
    ----------
    tasks
        Module whose @gw.task handlers to run, or MODULE:ATTR naming a list or
        TaskRegistry (repeat for more).
    concurrency
        Jobs to run at once (default: the number of CPUs).
    poll_interval
        How often to look for jobs when no notification arrives (e.g. 1s, 500ms).
    crontab
        A crontab file whose schedule this worker maintains.
    once
        Run the jobs that are ready now, then exit.
    local_queue_size
        Fetch up to N jobs ahead into a local queue (fewer database round trips).
    recovery
        Heartbeat, and recover jobs of workers that died (see sweep-stale-workers).
    grace_period
        How long running jobs may take to finish on shutdown.
    cleanup_timeout
        How long shutdown may spend handing jobs back and writing results after that.
    max_pg_conn
        Largest number of database connections.
    admin
        Also serve the admin UI (see gw admin) in this process.
    listen
        With --admin: the address to listen on.
    admin_auth
        With --admin: basic, bearer, header or none (secrets as for gw admin).
    allowed_host
        With --admin: a host name browsers use besides the IP address and localhost.
    health
        Serve /livez and /readyz probes (JSON over HTTP) on this address, e.g.
        0.0.0.0:8080 for Kubernetes.
    processes
        Run N worker processes with these options under a supervisor that
        forwards signals and restarts crashed ones (for CPU-bound handlers).
    listen_database_url
        LISTEN for new jobs on this URL instead (a direct connection when
        --database-url goes through PgBouncer in transaction mode).
    poll_only
        Do not LISTEN; look for jobs every --poll-interval.
    heartbeat_interval
        With --recovery: how often this worker says it is alive.
    sweep_interval
        With --recovery: how often it looks for dead workers.
    sweep_threshold
        With --recovery: a worker silent this long is dead; its jobs are recovered.
    recovery_delay
        With --recovery: recovered jobs wait this long before they run again.
    queue_limit
        Rate-limit a named queue across every gw worker, e.g. emails=20/s,
        emails=100/1m or emails=20/s,burst=5 (repeat for more queues).
    history
        Record every finished attempt (outcome, error, what the handler returned)
        and keep the records this long, e.g. 7d; gw history and gw result read them.
    history_payloads
        With --history: keep each job's payload in its record too.
    tracing
        An OpenTelemetry consumer span for every attempt, child of the span
        that added the job (needs the otel extra; set up the SDK and its
        exporter in your tasks module: gw uses the global TracerProvider).
    """
    from ..worker import LocalQueueConfig, RecoveryConfig, ShutdownConfig, Worker

    setup_logging(base=logging.INFO)
    registry = load_tasks(tasks)  # import errors show here, once, not in N children
    kwargs: dict[str, Any] = {}
    if history is not None:
        kwargs["history"] = _history(history, payloads=history_payloads)
    elif history_payloads:
        raise ConfigurationError(
            "--history-payloads needs --history DURATION (how long to keep the records, e.g. 7d)"
        )
    if tracing:
        from ..core.tracing import Tracing

        kwargs["tracing"] = Tracing()  # the otel extra missing: a clear exit 2 here
    if processes is not None:
        _supervise(processes, admin=admin, health=health)
        return
    if crontab is not None:
        text = _read_crontab(crontab)
        from ..cron import parse_crontab

        try:
            parse_crontab(text)  # report mistakes now, naming the file
        except ConfigurationError as ex:
            raise ConfigurationError(f"--crontab {crontab}: {ex}") from None
        if "crontab" not in inspect.signature(Worker).parameters:
            raise ConfigurationError("--crontab needs a gw whose Worker supports crontab=")
        kwargs["crontab"] = text
    if local_queue_size is not None:
        kwargs["local_queue"] = LocalQueueConfig(size=local_queue_size)
    if queue_limit:
        try:
            parsed = [parse_queue_limit(text) for text in queue_limit]
        except ValueError as ex:
            raise ConfigurationError(f"Invalid value for --queue-limit: {ex}") from None
        limits = dict(parsed)
        if len(limits) < len(parsed):
            raise ConfigurationError("--queue-limit names a queue twice; give each queue one limit")
        kwargs["queue_limits"] = limits
    options = None
    if admin:
        from .admin import AdminOptions

        options = AdminOptions(
            listen=listen, auth=admin_auth, allowed_hosts=tuple(allowed_host or ())
        )
        if once:
            raise ConfigurationError("--admin cannot be combined with --once")
        options.check()  # before the worker starts
    if health is not None:
        if once:
            raise ConfigurationError("--health cannot be combined with --once")
        kwargs["health"] = health
    g = current()
    w = Worker(
        registry,
        database_url=g.database_url,
        schema=g.schema,
        concurrency=concurrency,
        poll_interval=poll_interval,
        max_pg_conn=max_pg_conn,
        recovery=(
            RecoveryConfig(
                heartbeat_interval=heartbeat_interval,
                sweep_interval=sweep_interval,
                sweep_threshold=sweep_threshold,
                recovery_delay=recovery_delay,
            )
            if recovery
            else None
        ),
        listen=not poll_only,
        listen_database_url=listen_database_url,
        prepared_statements=g.prepared_statements,
        shutdown=ShutdownConfig(grace_period=grace_period, cleanup_timeout=cleanup_timeout),
        **kwargs,
    )

    async def go() -> int:
        if once:
            return await w.run_once()
        if options is None:
            await w.run()
            return w.jobs_processed
        await _run_with_admin(w, options)
        return w.jobs_processed

    processed = run(go)
    if once:
        if g.json:
            emit_json(OnceReport(jobs_processed=processed))
        else:
            say(f"processed {processed} job(s)")


def _history(keep: float, *, payloads: bool) -> History:
    """The ``gw.History`` of ``--history KEEP [--history-payloads]`` (results kept)."""
    from ..worker import History

    if keep <= 0:
        raise ConfigurationError(
            "--history must be longer than 0 (how long to keep the records, e.g. 7d)"
        )
    try:
        return History(keep=keep, payloads=payloads)
    except ConfigurationError as ex:
        raise ConfigurationError(f"Invalid value for --history: {ex}") from None


def _supervise(processes: int, *, admin: bool, health: str | None) -> None:
    """Run this very command N times (without --processes) under a supervisor."""
    from ..worker._processes import ProcessSupervisor, child_command
    from . import _app

    if admin:
        raise ConfigurationError("--processes cannot serve --admin; run gw admin on its own")
    if health is not None:
        raise ConfigurationError(
            "--processes cannot share one --health address; probe the supervisor's children "
            "through their database (gw workers) or run one process per container"
        )
    supervisor = ProcessSupervisor(child_command(_without_processes(_app.invocation)), processes)
    code = run(supervisor.run)
    if code:
        raise SystemExit(code)


def _without_processes(tokens: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--processes":
            skip = True
        elif not token.startswith("--processes="):
            out.append(token)
    return out


async def _run_with_admin(w: Any, options: AdminOptions) -> None:
    """The worker and the admin server in one task group; the server stops after the worker."""
    from .admin import start_admin

    stop = Event()
    failure: BaseException | None = None

    async def run_worker(*, task_status: Any) -> None:
        try:
            await w.run(task_status=task_status)
        finally:
            stop.set()

    async with open_task_group() as tg:
        await tg.start(run_worker)
        try:
            await tg.start(start_admin, w.utils, options, stop)
        except Exception as ex:
            # Let the worker wind down gracefully, then report why.
            failure = ex
            w.shutdown("the admin server failed to start")
    if failure is not None:
        raise failure
