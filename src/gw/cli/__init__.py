"""The ``gw`` command line."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import anyio
from cyclopts import App, Parameter

from .. import __version__
from ..errors import ConfigurationError, GwError

__all__ = ("app", "main")

app = App(
    name="gw",
    help="gw: Graphile Worker for Python, a PostgreSQL job queue for trio and asyncio.",
    version=__version__,
)

Backend = Literal["trio", "asyncio"]


@app.command
def check(
    *,
    database_url: Annotated[str | None, Parameter(env_var="DATABASE_URL")] = None,
    backend: Backend = "trio",
) -> None:
    """Connect to PostgreSQL and print the server version.

    Without --database-url or DATABASE_URL this starts the embedded PostgreSQL.
    """
    from ..db.connection import connect, describe_conninfo
    from ..db.embedded import open_database_url

    async def run() -> None:
        async with open_database_url(database_url) as url:
            async with await connect(url) as conn:
                cur = await conn.execute("select version()")
                row = await cur.fetchone()
            print(f"connected to {describe_conninfo(url)}")
            print(row[0] if row else "unknown server version")

    anyio.run(run, backend=backend)


def main() -> None:
    """Console-script entry point: user mistakes become one line on stderr."""
    try:
        app()
    except ConfigurationError as ex:
        print(f"gw: error: {ex}", file=sys.stderr)
        sys.exit(2)
    except GwError as ex:
        print(f"gw: error: {ex}", file=sys.stderr)
        sys.exit(1)
