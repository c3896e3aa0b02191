"""A small connection pool on anyio (psycopg_pool does not run under trio).

Bounded (a semaphore caps open connections), LIFO (the most recently used
idle connection is handed out first, so a quiet pool keeps few sockets warm),
connections are opened lazily, checked cheaply before reuse, rolled back on
return when a transaction was left open (shielded from cancellation), and
discarded when broken.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

from psycopg import pq
from psycopg.rows import AsyncRowFactory, dict_row

from ..errors import PoolClosed, PoolTimeout
from ..runtime import CancelScope, Semaphore, WouldBlock, fail_after, move_on_after
from .connection import Connection, abandoning, connect, connect_defaults, describe_conninfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

__all__ = ("Pool",)

logger = logging.getLogger("gw.db.pool")

_ROLLBACK_TIMEOUT = 5.0


class Pool:
    """A bounded pool of :class:`~gw.db.connection.Connection` objects.

    Use it as an async context manager; borrow connections with
    ``async with pool.connection() as conn``. Connections are in autocommit
    mode: open a transaction explicitly with ``conn.transaction()``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int = 10,
        acquire_timeout: float | None = 30.0,
        configure: Callable[[Connection[Any]], Awaitable[None]] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"pool max_size must be at least 1, got {max_size}")
        self.conninfo = conninfo
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self._configure = configure
        # Keepalives and a connect timeout unless the URL sets its own.
        self._connect_kwargs = {**connect_defaults(conninfo), **(connect_kwargs or {})}
        self._slots = Semaphore(max_size, fast_acquire=True)
        self._idle: list[Connection[Any]] = []
        self._open = 0
        self._waiting = 0
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close idle connections now; borrowed ones close when returned."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    def close_now(self) -> None:
        """Close idle connections without awaiting: for code outside any event loop,
        such as a synchronous test fixture's teardown after its loop has ended."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()  # libpq's own close: no I/O wait on any loop
            self._open -= 1

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, int]:
        """Open, idle, borrowed and waiting counts (for logs and metrics)."""
        return {
            "max_size": self.max_size,
            "open": self._open,
            "idle": len(self._idle),
            "in_use": self._open - len(self._idle),
            "waiting": self._waiting,
        }

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<Pool {describe_conninfo(self.conninfo)} [{s['in_use']} in use, "
            f"{s['idle']} idle, {s['waiting']} waiting, max {self.max_size}]>"
        )

    # -- borrowing -----------------------------------------------------------------

    @asynccontextmanager
    async def connection(self, *, timeout: float | None = None) -> AsyncIterator[Connection[Any]]:
        """Borrow a connection for the duration of the block."""
        conn = await self._acquire(self.acquire_timeout if timeout is None else timeout)
        try:
            yield conn
        finally:
            await self._release(conn)

    async def _acquire(self, timeout: float | None) -> Connection[Any]:
        if self._closed:
            raise PoolClosed("the connection pool is closed; create a new one")
        try:
            self._slots.acquire_nowait()
        except WouldBlock:
            await self._acquire_slot(timeout)
        try:
            while self._idle:
                conn = self._idle.pop()
                if conn.is_idle_and_alive:
                    return conn
                await self._discard(conn)
            return await self._new_connection()
        except BaseException:
            self._slots.release()
            raise

    async def _acquire_slot(self, timeout: float | None) -> None:
        self._waiting += 1
        try:
            with fail_after(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no database connection became free within {timeout:g}s "
                f"(all {self.max_size} in use). Raise the pool size (max_pg_conn) "
                "or lower the concurrency."
            ) from None
        finally:
            self._waiting -= 1

    async def _new_connection(self) -> Connection[Any]:
        conn = await connect(self.conninfo, autocommit=True, **self._connect_kwargs)
        self._open += 1
        if self._configure is not None:
            try:
                await self._configure(conn)
            except BaseException:
                await self._discard(conn)
                raise
        return conn

    async def _release(self, conn: Connection[Any]) -> None:
        try:
            if self._closed or conn.closed or conn.broken:
                await self._discard(conn)
                return
            if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                if abandoning():
                    await self._discard(conn)  # no time left for a rollback
                    return
                # A transaction was left open (an error or a cancellation in
                # the middle of it): roll it back even if we are being
                # cancelled, or throw the connection away.
                with CancelScope(shield=True), move_on_after(_ROLLBACK_TIMEOUT) as scope:
                    try:
                        await conn.rollback()
                    except Exception as ex:
                        logger.warning("discarding a connection that failed to roll back: %s", ex)
                        await self._discard(conn)
                        return
                if scope.cancelled_caught or conn.broken:
                    await self._discard(conn)
                    return
            self._idle.append(conn)
        finally:
            self._slots.release()

    async def _discard(self, conn: Connection[Any]) -> None:
        self._open -= 1
        try:
            await conn.close()
        except Exception as ex:  # closing a dead socket may fail; it is gone either way
            logger.debug("error closing a discarded connection: %s", ex)

    def pinned(self) -> PinnedConnection:
        """A connection kept out of the pool for one long-lived task (see PinnedConnection)."""
        return PinnedConnection(self)

    # -- one-shot helpers ---------------------------------------------------------

    async def execute(self, query: Any, params: Sequence[Any] | None = None) -> None:
        """Run one statement on a pooled connection."""
        async with self.connection() as conn:
            await conn.execute(query, params)

    async def fetch(
        self,
        query: Any,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        row_factory: AsyncRowFactory[Any] = dict_row,
    ) -> list[Any]:
        """Run a query and return all rows (dicts by default)."""
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=row_factory)
            await cur.execute(query, params)
            return await cur.fetchall()

    async def fetchone(
        self,
        query: Any,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        row_factory: AsyncRowFactory[Any] = dict_row,
    ) -> Any:
        """Run a query and return its first row, or None."""
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=row_factory)
            await cur.execute(query, params)
            return await cur.fetchone()


class PinnedConnection:
    """One pool connection held by a long-lived task (the worker's fetcher, its
    batcher), so the hot path skips the pool and keeps prepared statements warm.

    ``await pinned.get()`` returns the held connection, borrowing a new one
    when there is none or it broke; call ``discard()`` after an error and
    ``release()`` when done.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection[Any] | None = None

    async def get(self) -> Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._conn = None
            await self._pool._release(conn)
        self._conn = await self._pool._acquire(self._pool.acquire_timeout)
        return self._conn

    async def discard(self) -> None:
        """Give the connection back after an error (the pool checks or drops it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # _release bounds its own rollback; this bound is only a backstop.
            with move_on_after(_ROLLBACK_TIMEOUT + 1.0, shield=True):
                await self._pool._release(conn)

    async def release(self) -> None:
        await self.discard()

    def sever(self) -> bool:
        """Shut the held connection's socket down, so that a statement waiting
        on it fails at once (its caller then discards the connection). For a
        server that stopped answering without the network noticing."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            # A duplicate of the descriptor: shutting it down cuts the shared
            # socket without closing the descriptor the event loop watches.
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
        return True
