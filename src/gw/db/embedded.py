"""Where the database comes from: a given URL, ``DATABASE_URL``, or an embedded server.

When no URL is given (argument first, then the ``DATABASE_URL`` environment
variable) gw starts a private PostgreSQL from the ``pgserver`` wheel in a
per-user data directory, so ``gw worker`` works on a laptop with nothing
installed. The server listens on a Unix socket only and is stopped when the
last gw process using it exits.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import ConfigurationError
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

# pgserver keeps one server object per data directory per process and counts
# its users by pid, so releasing it once stops it for every gw object in this
# process. gw counts its own users per data directory and releases pgserver's
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
    import platformdirs

    return platformdirs.user_data_path("gw") / "pgdata"


def _import_pgserver() -> Any:
    # pgserver logs every pg_ctl call at INFO; keep that out of gw's INFO output
    # unless the application configured the "pgserver" logger itself.
    pg_logger = logging.getLogger("pgserver")
    if pg_logger.level == logging.NOTSET:
        pg_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR when pgserver is imported.
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as ex:  # pragma: no cover - it is a dependency
            raise ConfigurationError(
                "no database URL was given and the embedded PostgreSQL (pgserver) "
                f"could not be imported ({ex}). Set DATABASE_URL or pass --database-url."
            ) from None
    return pgserver


class EmbeddedPostgres:
    """A private PostgreSQL server (pgserver) in ``data_dir``.

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
        pgserver = _import_pgserver()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pgserver.get_server(self.data_dir, cleanup_mode="stop")
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
