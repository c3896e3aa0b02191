"""A dedicated LISTEN connection that survives the server dropping it.

``async with Listener(conninfo, ["jobs:insert"]) as listener`` then
``async for note in listener`` yields every notification. When the
connection dies (server restart, ``pg_terminate_backend``, network loss) the
listener reconnects with exponential backoff and LISTENs again; the
``on_connect`` callback runs after every (re)connection so the caller can
look for work it may have missed while deaf.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import msgspec
import psycopg
from psycopg import sql

from ..errors import DatabaseError
from ..runtime import Clock, SystemClock
from ._errors import translate
from .connection import Connection, connect, connect_defaults, describe_conninfo

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ("Listener", "Notification")

logger = logging.getLogger("gw.db.listen")


class Notification(msgspec.Struct, frozen=True):
    """One NOTIFY received: channel, payload text and the sender's backend pid."""

    channel: str
    payload: str
    pid: int


class Listener:
    """LISTEN on ``channels`` over one dedicated connection, reconnecting as needed."""

    def __init__(
        self,
        conninfo: str,
        channels: Sequence[str],
        *,
        on_connect: Callable[[], Awaitable[None] | None] | None = None,
        initial_backoff: float = 0.05,
        max_backoff: float = 10.0,
        clock: Clock | None = None,
        keepalives: bool = True,
    ) -> None:
        if not channels:
            raise ValueError("Listener needs at least one channel")
        self.conninfo = conninfo
        self.channels = tuple(channels)
        self._on_connect = on_connect
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._clock = clock or SystemClock()
        self._connect_kwargs = connect_defaults(conninfo) if keepalives else {}
        self._conn: Connection[Any] | None = None
        self._pending: deque[Notification] = deque()
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def backend_pid(self) -> int | None:
        """Server pid of the LISTEN connection (None while disconnected)."""
        return self._conn.info.backend_pid if self.connected and self._conn else None

    async def _connect(self) -> None:
        conn = await connect(self.conninfo, autocommit=True, **self._connect_kwargs)
        try:
            # A standby refuses LISTEN ("cannot execute LISTEN during recovery").
            with translate("LISTEN"):
                for channel in self.channels:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        if self._on_connect is not None:
            result = self._on_connect()
            if result is not None:
                await result

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            delay = min(self._max_backoff, self._initial_backoff * math.exp(attempt))
            delay *= 0.5 + random.random()  # jitter so a fleet does not reconnect in lockstep
            await self._clock.sleep(delay)
            try:
                await self._connect()
            except DatabaseError as ex:
                attempt += 1
                logger.warning(
                    "LISTEN connection to %s still down (attempt %d): %s",
                    describe_conninfo(self.conninfo),
                    attempt,
                    ex,
                )
                continue
            self.reconnects += 1
            logger.info("LISTEN connection re-established after %d attempt(s)", attempt + 1)
            return

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Notification:
        return await self.receive()

    async def receive(self) -> Notification:
        """Wait for the next notification, reconnecting as often as needed."""
        while not self._pending:
            if self._conn is None or self._conn.closed:
                await self._reconnect()
            conn = self._conn
            assert conn is not None
            try:
                notes = await conn.wait_notifies()
            except (psycopg.Error, OSError) as ex:
                logger.warning("LISTEN connection lost: %s; reconnecting", _first_line(ex))
                self._conn = None
                await conn.close()
                continue
            self._pending.extend(Notification(n.channel, n.payload, n.pid) for n in notes)
        return self._pending.popleft()


def _first_line(ex: BaseException) -> str:
    return str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
