"""The cyclopts app, its global options and the plumbing every command shares.

Global options live on the *meta* app: it parses them wherever they appear
(``gw --json list`` and ``gw list --json`` both work), stores them in
:data:`_globals` and hands the remaining tokens to the command app.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
from cyclopts import App, Group, Parameter

from .. import __version__
from ..errors import ConfigurationError, GwError
from ._params import Flag

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.tasks import Task
    from ..core.utils import WorkerUtils

__all__ = ("GROUPS", "CommandFailed", "Globals", "app", "current", "open_utils", "run")

T = TypeVar("T")
logger = logging.getLogger("gw.cli")
Backend = Literal["trio", "asyncio"]
# trio is an extra: without it the CLI runs on asyncio.
DEFAULT_BACKEND: Backend = "trio" if find_spec("trio") is not None else "asyncio"

app = App(
    name="gw",
    help=(
        "gw: Graphile Worker for Python, a PostgreSQL job queue for trio and asyncio.\n\n"
        "Without --database-url or DATABASE_URL, gw uses its embedded PostgreSQL."
    ),
    version=__version__,
    result_action="return_value",
)
GLOBAL = Group("Global options", sort_key=100)
app.meta.group_parameters = GLOBAL


class _Groups:
    jobs = Group("Jobs", sort_key=1)
    inspect = Group("Inspect", sort_key=2)
    maintenance = Group("Maintenance", sort_key=3)
    run = Group("Run", sort_key=4)


GROUPS = _Groups()


@dataclass(frozen=True)
class Globals:
    """The global options of this invocation."""

    database_url: str | None = None
    schema: str = "graphile_worker"
    backend: Backend = DEFAULT_BACKEND
    prepared_statements: bool = True
    json: bool = False
    verbose: int = 0


class CommandFailed(GwError):
    """An error a command reports with an exit code of its own (see docs/cli.md),
    such as ``gw result``'s 4 for a job that has not finished."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_globals = Globals()
invocation: list[str] = []
"""This invocation's arguments as given (``gw worker --processes`` hands them on)."""


def current() -> Globals:
    """The global options the command line was given."""
    return _globals


@app.meta.default
def _launcher(
    *tokens: Annotated[str, Parameter(show=False, allow_leading_hyphen=True)],
    database_url: Annotated[
        str | None, Parameter(env_var="DATABASE_URL", metavar="URL", show_env_var=True)
    ] = None,
    schema: Annotated[
        str, Parameter(env_var="GRAPHILE_WORKER_SCHEMA", metavar="NAME")
    ] = "graphile_worker",
    backend: Backend = DEFAULT_BACKEND,
    transaction_pooler: Annotated[
        bool,
        Parameter(
            negative="", env_var="GW_TRANSACTION_POOLER", show_env_var=True, show_default=False
        ),
    ] = False,
    json: Flag = False,
    verbose: Annotated[int, Parameter(alias="-v", count=True, show_default=False)] = 0,
) -> object:
    """Global options (accepted before or after the command).

    Parameters
    ----------
    database_url
        PostgreSQL URL, e.g. postgresql://user:pass@host/db (else the embedded server).
    schema
        The Graphile Worker schema.
    backend
        Event loop to run on (trio when it is installed, else asyncio).
    transaction_pooler
        The database URL goes through a transaction pooler (PgBouncer before
        1.21): prepare no statement server-side.
    json
        Print machine-readable JSON (see docs/cli.md) instead of tables.
    verbose
        More logging on stderr (-v: info, -vv: debug).
    """
    global _globals
    _globals = Globals(
        database_url=database_url or None,
        schema=schema,
        backend=backend,
        prepared_statements=not transaction_pooler,
        json=json,
        verbose=verbose,
    )
    setup_logging()
    return app(tokens, exit_on_error=False, print_error=False, result_action="return_value")


class _Formatter(logging.Formatter):
    """gw's CLI format; a task's own log lines (ctx.logger) end with their job."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        label = getattr(record, "gw_job", None)
        return f"{text} [{label}]" if label else text


def setup_logging(*, base: int = logging.WARNING) -> None:
    """Log to stderr; each -v lowers the threshold one level from ``base``."""
    level = max(logging.DEBUG, base - 10 * current().verbose)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def check_database_url(url: str | None) -> None:
    """Reject a --database-url psycopg cannot even parse (before connecting)."""
    if not url:
        return
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception as ex:
        reason = " ".join(str(ex).split()) or type(ex).__name__
        raise ConfigurationError(
            f"the database URL is not a valid PostgreSQL connection string ({reason})"
        ) from None


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on the event loop chosen with --backend."""
    g = current()
    check_database_url(g.database_url)
    from ..db.queries import check_schema_name

    check_schema_name(g.schema)
    if g.backend == "trio":
        from ..errors import require_extra

        require_extra("--backend trio", "trio", "trio")
    return anyio.run(fn, backend=g.backend)


@asynccontextmanager
async def open_utils(
    *, max_pg_conn: int = 2, tasks: Iterable[Task[..., Any]] = ()
) -> AsyncIterator[WorkerUtils]:
    """WorkerUtils on the configured database (management commands never migrate);
    ``tasks``' job defaults apply to jobs it adds by identifier."""
    from ..core.utils import WorkerUtils

    g = current()
    async with WorkerUtils.connect(
        g.database_url,
        schema=g.schema,
        max_pg_conn=max_pg_conn,
        migrate=False,
        tasks=tasks,
        prepared_statements=g.prepared_statements,
    ) as utils:
        from ..db.connection import describe_conninfo

        logger.info(
            "database %s, schema %s, backend %s",
            describe_conninfo(utils.pool.conninfo),
            utils.schema,
            g.backend,
        )
        yield utils
