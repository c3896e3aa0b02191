"""The ``gw`` command line.

One module per command group: :mod:`.jobs` (add, list, show, complete, fail,
reschedule, cancel, remove), :mod:`.status` (stats, queues, workers, limits, check),
:mod:`.history` (history, result),
:mod:`.maintenance` (migrate, cleanup, force-unlock, sweep-stale-workers),
:mod:`.worker` and :mod:`.admin`. :func:`main` turns every error into one
``gw: error: ...`` line on stderr: exit code 2 for bad input, 1 for failures
on the database side (or anything else going wrong).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import NoReturn

from cyclopts import CycloptsError, Group, UnknownCommandError

from ..errors import ConfigurationError, GwError
from . import _app
from ._app import GROUPS, CommandFailed, app, current

__all__ = ("app", "main")

# Each command's module is imported when that command runs (``gw --help`` only
# reads the one-line summaries below; tests/cli/test_help.py checks them against
# the docstrings): ``gw worker`` does not pay for the admin server or rich.
COMMANDS: dict[str, tuple[str, Group, str]] = {
    "add": ("gw.cli.jobs:add", GROUPS.jobs, "Schedule a job for a task."),
    "list": ("gw.cli.jobs:list_jobs", GROUPS.jobs, "List jobs, newest first."),
    "show": ("gw.cli.jobs:show", GROUPS.jobs, "Show one job in full, payload included."),
    "complete": (
        "gw.cli.jobs:complete",
        GROUPS.jobs,
        "Mark jobs as done (deletes them). Locked (running) jobs are left alone.",
    ),
    "fail": (
        "gw.cli.jobs:fail",
        GROUPS.jobs,
        "Fail jobs permanently: attempts = max_attempts, last_error = reason.",
    ),
    "reschedule": (
        "gw.cli.jobs:reschedule",
        GROUPS.jobs,
        "Change when and how jobs run (unlocked jobs only).",
    ),
    "cancel": (
        "gw.cli.jobs:cancel",
        GROUPS.jobs,
        "Cancel jobs, waiting or running on a gw worker: they fail for good.",
    ),
    "remove": ("gw.cli.jobs:remove", GROUPS.jobs, "Cancel the job with this job key."),
    "stats": ("gw.cli.status:stats", GROUPS.inspect, "Count jobs by state."),
    "queues": (
        "gw.cli.status:queues",
        GROUPS.inspect,
        "List named queues with their job counts and locks.",
    ),
    "workers": (
        "gw.cli.status:workers",
        GROUPS.inspect,
        "List workers holding locks, and workers registered for recovery (heartbeats).",
    ),
    "limits": (
        "gw.cli.status:limits",
        GROUPS.inspect,
        "List the fleet-wide rate and concurrency limits, and how much of each is in use.",
    ),
    "check": (
        "gw.cli.status:check",
        GROUPS.inspect,
        "Connect to PostgreSQL and report its version and whether the schema is installed.",
    ),
    # -- job history (#18)
    "history": (
        "gw.cli.history:history",
        GROUPS.inspect,
        "List finished attempts, newest first (recorded by workers run with --history).",
    ),
    "result": (
        "gw.cli.history:result",
        GROUPS.inspect,
        "Show how a job ended: its latest recorded attempt and what it returned.",
    ),
    "migrate": (
        "gw.cli.maintenance:migrate",
        GROUPS.maintenance,
        "Install or upgrade the Graphile Worker schema (safe to run at any time).",
    ),
    "cleanup": (
        "gw.cli.maintenance:cleanup",
        GROUPS.maintenance,
        "Run maintenance tasks on the schema.",
    ),
    "force-unlock": (
        "gw.cli.maintenance:force_unlock",
        GROUPS.maintenance,
        "Release every job and queue locked by these worker ids.",
    ),
    "sweep-stale-workers": (
        "gw.cli.maintenance:sweep_stale_workers",
        GROUPS.maintenance,
        "Recover jobs held by workers that stopped heartbeating (or never registered).",
    ),
    "admin": ("gw.cli.admin:admin", GROUPS.run, "Serve the admin UI and JSON API until Ctrl-C."),
    "worker": (
        "gw.cli.worker:worker",
        GROUPS.run,
        "Run a worker for the tasks in Python modules until Ctrl-C (or SIGTERM).",
    ),
}
for _name, (_path, _group, _summary) in COMMANDS.items():
    app.command(_path, name=_name, group=_group, help=_summary)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _pick(exc: BaseException) -> BaseException:
    """The exception to report from a (possibly grouped) failure."""
    leaves = _leaves(exc)
    for kinds in ((KeyboardInterrupt,), (CycloptsError, GwError), (Exception,)):
        for leaf in leaves:
            if isinstance(leaf, kinds):
                return leaf
    return leaves[0]


def _fail(code: int, message: str) -> NoReturn:
    sys.stdout.flush()
    print(f"gw: error: {_one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, CommandFailed):
        return exc.exit_code
    if isinstance(exc, (CycloptsError, ConfigurationError)):
        return 2
    return 1


# A negative number or duration right after an option is that option's value
# (no gw option starts with a digit): "--priority -5", "--sweep-threshold -5s".
_NEGATIVE_VALUE = re.compile(r"-\.?\d")


def _attach_negative_values(tokens: list[str]) -> list[str]:
    """``--opt -5s`` -> ``--opt=-5s``, so that the option's own parser judges the
    value (and can say it is negative) instead of reading it as an option."""
    out: list[str] = []
    for token in tokens:
        previous = out[-1] if out else ""
        if (
            _NEGATIVE_VALUE.match(token)
            and previous.startswith("--")
            and "=" not in previous
            and previous != "--"
        ):
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


def _full_help(tokens: list[str]) -> None:
    """For ``gw CMD --help``: register CMD by its function, so that its help is the
    whole docstring (a lazy command's help is the one-line summary)."""
    if "--help" not in tokens and "-h" not in tokens:
        return
    name = next((t for t in tokens if t in COMMANDS), None)
    if name is None:
        return
    from importlib import import_module

    path, group, _ = COMMANDS[name]
    module, _, attr = path.partition(":")
    try:
        fn = getattr(import_module(module), attr)
    except ImportError:
        return  # a missing extra: running the command explains it
    del app[name]
    app.command(fn, name=name, group=group)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    tokens = _attach_negative_values(sys.argv[1:] if argv is None else argv)
    _app.invocation[:] = tokens
    _full_help(tokens)
    try:
        app.meta(tokens, exit_on_error=False, print_error=False, result_action="return_value")
    except SystemExit:
        raise
    except BaseException as raw:
        exc = _pick(raw)
        if isinstance(exc, ImportError) and isinstance(exc.__cause__, GwError):
            # A command module that could not load for a reason gw explains
            # (a missing extra), wrapped by cyclopts' lazy import.
            exc = exc.__cause__
        if isinstance(exc, SystemExit):
            raise exc from None
        if isinstance(exc, KeyboardInterrupt):
            print("gw: interrupted", file=sys.stderr, flush=True)
            sys.exit(130)
        if isinstance(exc, BrokenPipeError):
            sys.exit(1)
        if isinstance(exc, UnknownCommandError) and exc.unused_tokens:
            token = exc.unused_tokens[0]
            if token.startswith("-"):
                # A global-position option the meta app did not know.
                _fail(2, f"Unknown option: {token}. See gw --help.")
        if isinstance(exc, (CycloptsError, GwError)):
            _fail(_exit_code(exc), str(exc))
        import psycopg

        if isinstance(exc, psycopg.Error):
            _fail(1, f"database error: {exc}")
        if isinstance(exc, OSError):
            _fail(1, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        if current().verbose:
            logging.getLogger("gw.cli").exception("unexpected error")
        _fail(1, f"unexpected {type(exc).__name__}: {exc} (this is a bug; -v shows details)")
