"""psycopg on anyio: one AsyncConnection that runs natively on asyncio and trio.

psycopg drives libpq through generators that yield "wait for readable /
writable" requests; the stock ``AsyncConnection`` answers them with asyncio's
``add_reader``. :class:`Connection` answers them with the running loop's own
primitives instead: psycopg's asyncio waiters on asyncio (so that side keeps
stock speed) and ``trio.lowlevel.wait_readable``/``wait_writable`` on trio.
It also swaps the asyncio lock for an anyio one, resolves host names with
anyio, and, when a query is cancelled by a cancel scope, cancels it on the
server inside a shielded scope so the connection stays usable.

This is the only gw module that touches psycopg internals; the import-time
check below names the psycopg versions it was written and tested against.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from random import shuffle
from time import monotonic
from typing import TYPE_CHECKING, Any, Self, cast

import anyio
import psycopg
import sniffio
from psycopg import errors as e, pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo, timeout_from_conninfo
from psycopg.rows import AsyncRowFactory, Row, tuple_row

from ..errors import ConnectionFailed

SUPPORTED_PSYCOPG = ">=3.3.6,<3.4"


def _check_psycopg_version() -> None:
    parts = psycopg.__version__.split(".")
    try:
        major, minor, patch = (int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts[:3])
    except ValueError:
        major = minor = patch = -1
    if (major, minor) != (3, 3) or patch < 6:
        raise ImportError(
            f"gw needs psycopg {SUPPORTED_PSYCOPG} (found {psycopg.__version__}): "
            "gw.db.connection relies on psycopg internals of that range. "
            "Install a supported version, e.g. pip install 'psycopg[binary]>=3.3.6,<3.4'."
        )


_check_psycopg_version()

# psycopg internals used below (all checked at import by the version guard).
from psycopg import generators, waiting  # noqa: E402
from psycopg._capabilities import capabilities  # noqa: E402
from psycopg._conninfo_utils import (  # noqa: E402
    get_param,
    get_param_def,
    is_ip_address,
    split_attempts,
)

if TYPE_CHECKING:
    from psycopg.abc import RV, ConnDict, ConnParam, PQGen, PQGenConn
    from psycopg.transaction import AsyncTransaction

__all__ = (
    "CONNECT_DEFAULTS",
    "SUPPORTED_PSYCOPG",
    "CancelPolicy",
    "Connection",
    "abandoning",
    "connect",
    "connect_defaults",
    "describe_conninfo",
    "use_cancel_policy",
)

logger = logging.getLogger("gw.db")

_WAIT_R = waiting.Wait.R
_WAIT_W = waiting.Wait.W
_READY_R = waiting.Ready.R
_READY_W = waiting.Ready.W
_READY_NONE = waiting.Ready.NONE
_ACTIVE = pq.TransactionStatus.ACTIVE
_ready_now: Callable[[int, waiting.Wait], int] = waiting._ready  # zero-timeout poll
_WAIT_INTERVAL = 0.1
_CANCEL_TIMEOUT = 5.0
# How long the trio waiter may run without yielding to the scheduler when
# every socket it sees is ready (mirrors psycopg's own asyncio waiter).
_MAX_BUSY_TIME = 0.005
_last_yield = 0.0

_Waiter = Callable[..., Coroutine[Any, Any, Any]]

# Connection parameters gw sets unless the URL (or libpq's environment) does:
# a bounded connect, and keepalives plus a TCP user timeout so that a server
# that vanished without closing the socket shows up as an error within about
# a minute instead of the kernel's two hours (or fifteen, with data in flight).
CONNECT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
_DEFAULT_ENV = {"connect_timeout": "PGCONNECT_TIMEOUT"}


def connect_defaults(conninfo: str) -> dict[str, Any]:
    """The :data:`CONNECT_DEFAULTS` that ``conninfo`` does not set itself."""
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return {}  # a bad URL: connecting reports it
    return {
        key: value
        for key, value in CONNECT_DEFAULTS.items()
        if key not in given and not os.environ.get(_DEFAULT_ENV.get(key, ""), "")
    }


class CancelPolicy:
    """How a query interrupted by a cancel scope ends.

    Normally gw asks the server to cancel the query and reads its end, so the
    connection stays usable. Once ``abandon`` is set (a worker whose shutdown
    grace period is over) the connection is closed at once instead: against
    an unreachable server a cancel request alone can take seconds.
    """

    __slots__ = ("abandon",)

    def __init__(self) -> None:
        self.abandon = False


_cancel_policy: ContextVar[CancelPolicy | None] = ContextVar("gw_cancel_policy", default=None)


@contextmanager
def use_cancel_policy(policy: CancelPolicy) -> Iterator[CancelPolicy]:
    """Apply ``policy`` to queries of this task (and tasks it starts) inside the block."""
    token = _cancel_policy.set(policy)
    try:
        yield policy
    finally:
        _cancel_policy.reset(token)


def abandoning() -> bool:
    """True when the current task's :class:`CancelPolicy` abandons cancelled queries."""
    policy = _cancel_policy.get()
    return policy is not None and policy.abandon


_TUPLE_ROW: AsyncRowFactory[Any] = cast("AsyncRowFactory[Any]", tuple_row)


# --------------------------------------------------------------------------- trio waiters


async def _trio_wait(
    gen: PQGen[RV], fileno: int, interval: float = 0.0, timeout: float | None = None
) -> RV:
    """Drive a psycopg generator on trio (the equivalent of waiting.wait_async)."""
    import trio

    global _last_yield
    try:
        s = next(gen)
    except StopIteration as ex:
        if monotonic() - _last_yield >= _MAX_BUSY_TIME:
            await trio.lowlevel.checkpoint()
            _last_yield = monotonic()
        return cast("RV", ex.value)

    try:
        if timeout is None:
            # The common case: no deadline, so no cancel scope to set up.
            while True:
                s = gen.send(await _trio_wait_fd(trio, fileno, s))
        with trio.move_on_after(timeout) as scope:
            while True:
                s = gen.send(await _trio_wait_fd(trio, fileno, s))
        if scope.cancelled_caught:
            raise e._WaitTimeout("wait timeout expired")
        raise AssertionError("unreachable")  # pragma: no cover
    except StopIteration as ex:
        return cast("RV", ex.value)
    except OSError as ex:
        raise e.OperationalError("connection socket closed") from ex


async def _trio_wait_conn(
    gen: PQGenConn[RV], interval: float = 0.0, timeout: float | None = None
) -> RV:
    """Drive a psycopg connection generator (the fd may change) on trio."""
    import trio

    try:
        fileno, s = next(gen)
    except StopIteration as ex:
        return cast("RV", ex.value)
    deadline = trio.current_time() + timeout if timeout else float("inf")
    try:
        with trio.CancelScope(deadline=deadline) as scope:
            while True:
                ready = await _trio_wait_fd(trio, fileno, s)
                fileno, s = gen.send(ready)
        if scope.cancelled_caught:
            raise e._WaitTimeout("wait timeout expired")
        raise AssertionError("unreachable")  # pragma: no cover
    except StopIteration as ex:
        return cast("RV", ex.value)


async def _trio_wait_fd(trio: Any, fileno: int, s: waiting.Wait) -> int:
    global _last_yield
    if s == _WAIT_R:
        await trio.lowlevel.wait_readable(fileno)
        _last_yield = monotonic()
        return _READY_R
    if not (s & (_WAIT_R | _WAIT_W)):
        raise e.InternalError(f"bad poll status: {s}")
    # A socket asked for writing is nearly always writable: a zero-timeout
    # poll is far cheaper than a trip through the scheduler.
    if monotonic() - _last_yield >= _MAX_BUSY_TIME:
        await trio.lowlevel.checkpoint()
        _last_yield = monotonic()
    ready = _ready_now(fileno, s)
    if ready:
        return ready
    if s == _WAIT_W:
        await trio.lowlevel.wait_writable(fileno)
        _last_yield = monotonic()
        return _READY_W
    # Read-or-write: whichever comes first (a full send buffer while the
    # server waits for us to read would deadlock a write-only wait).
    result = 0
    async with trio.open_nursery() as nursery:

        async def wait_one(waiter: Callable[[int], Any], flag: int) -> None:
            nonlocal result
            await waiter(fileno)
            result |= flag
            nursery.cancel_scope.cancel()

        nursery.start_soon(wait_one, trio.lowlevel.wait_readable, _READY_R)
        nursery.start_soon(wait_one, trio.lowlevel.wait_writable, _READY_W)
    _last_yield = monotonic()
    return result


def _waiters() -> tuple[_Waiter, _Waiter]:
    """(wait, wait_conn) for the running event loop."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError("gw database connections need a running asyncio or trio loop") from None
    if library == "trio":
        return _trio_wait, _trio_wait_conn
    if library == "asyncio":
        return waiting.wait_async, waiting.wait_conn_async
    raise RuntimeError(f"gw database connections run on asyncio or trio, not {library!r}")


# --------------------------------------------------------------------------- connection


class Connection(psycopg.AsyncConnection[Row]):
    """A ``psycopg.AsyncConnection`` that works on asyncio and on trio.

    Use :func:`connect` (or ``Connection.connect``) from inside a running
    loop; the connection then belongs to that loop's backend.
    """

    __module__ = "gw.db"

    _gw_wait: _Waiter
    _gw_wait_conn: _Waiter
    _gw_trio: bool

    def __init__(
        self,
        pgconn: Any,
        row_factory: AsyncRowFactory[Row] = _TUPLE_ROW,
    ) -> None:
        super().__init__(pgconn, row_factory)
        # psycopg's lock is an asyncio.Lock, which cannot wait under trio.
        self.lock = anyio.Lock(fast_acquire=True)  # type: ignore[assignment]
        self._gw_wait, self._gw_wait_conn = _waiters()
        self._gw_trio = self._gw_wait is _trio_wait

    @classmethod
    async def connect(
        cls,
        conninfo: str = "",
        *,
        autocommit: bool = False,
        prepare_threshold: int | None = 5,
        context: Any = None,
        row_factory: AsyncRowFactory[Row] | None = None,
        cursor_factory: Any = None,
        **kwargs: ConnParam,
    ) -> Self:
        """Connect, trying every host (and every address of each host) in turn."""
        params = await cls._get_connection_params(conninfo, **kwargs)
        timeout = timeout_from_conninfo(params)
        _, wait_conn = _waiters()
        attempts = await _conninfo_attempts(params)
        rv: Self | None = None
        errors: list[tuple[e.Error, str]] = []
        for attempt in attempts:
            descr = (
                f"host: {attempt.get('host')!r}, port: {attempt.get('port')!r},"
                f" hostaddr: {attempt.get('hostaddr')!r}"
            )
            try:
                gen = cls._connect_gen(make_conninfo("", **attempt))
                rv = await wait_conn(gen, interval=_WAIT_INTERVAL, timeout=timeout)
            except e._WaitTimeout:
                errors.append((e.ConnectionTimeout("connection timeout expired"), descr))
            except e.Error as ex:
                errors.append((ex, descr))
            else:
                break
        if rv is None:
            last = errors[-1][0]
            if len(errors) == 1:
                raise last.with_traceback(None)
            lines = [str(last), "Multiple connection attempts failed. All failures were:"]
            lines.extend(f"- {descr}: {err}" for err, descr in errors)
            raise type(last)("\n".join(lines), pgconn=last.pgconn).with_traceback(None)

        rv._autocommit = bool(autocommit)
        if row_factory:
            rv.row_factory = row_factory
        if cursor_factory:
            rv.cursor_factory = cursor_factory
        if context:
            from psycopg.adapt import AdaptersMap

            rv._adapters = AdaptersMap(context.adapters)
        rv.prepare_threshold = prepare_threshold
        return rv

    async def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        """Consume a psycopg generator; on cancellation, cancel on the server too."""
        try:
            return cast("RV", await self._gw_wait(gen, self.pgconn.socket, interval, timeout))
        except BaseException as ex:
            if isinstance(ex, Exception) or self.pgconn.transaction_status != _ACTIVE:
                raise
            if abandoning():
                self._gw_finish()
                raise
            # Cancelled (or interrupted) mid-query: stop the query on the
            # server and read its end, shielded from the cancellation that
            # got us here, so that the connection can be used again.
            await self._cancel_and_drain(gen, interval)
            raise

    async def _cancel_and_drain(self, gen: PQGen[Any], interval: float) -> None:
        with anyio.move_on_after(_CANCEL_TIMEOUT, shield=True) as scope:
            try:
                await self.cancel_safe(timeout=_CANCEL_TIMEOUT)
                await self._gw_wait(gen, self.pgconn.socket, interval, None)
            except e.QueryCanceled:
                pass
            except Exception as ex:
                logger.warning("query cancellation failed (%s): closing connection", ex)
                self._gw_finish()
                return
        if scope.cancelled_caught:
            logger.warning("query not terminated after cancellation: closing connection")
            self._gw_finish()

    @asynccontextmanager
    async def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> AsyncIterator[AsyncTransaction]:
        """Like psycopg's, but the rollback on error survives a cancel scope.

        Under anyio every await inside a cancelled scope is cancelled again,
        which would abort psycopg's own ROLLBACK half-way and leave the
        connection unusable; the exit path is therefore shielded (with a
        timeout) when the block ends with an exception.
        """
        manager = super().transaction(savepoint_name, force_rollback)
        tx = await manager.__aenter__()
        try:
            yield tx
        except BaseException as ex:
            if abandoning() and not isinstance(ex, Exception):
                # Closed, so psycopg's exit (its rollback) fails at once; it
                # still runs so that its generator is finished.
                self._gw_finish()
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT):
                    try:
                        await manager.__aexit__(type(ex), ex, ex.__traceback__)
                    except Exception as exit_error:
                        logger.debug("transaction exit on a closed connection: %s", exit_error)
                raise
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT) as scope:
                suppress = await manager.__aexit__(type(ex), ex, ex.__traceback__)
            if scope.cancelled_caught:
                logger.warning("rollback did not finish in time: closing connection")
                self._gw_finish()
            if not suppress:
                raise
        else:
            await manager.__aexit__(None, None, None)

    async def cancel_safe(self, *, timeout: float = 30.0) -> None:
        """Ask the server to cancel the running query (without blocking the loop)."""
        if not self._should_cancel():
            return
        if capabilities.has_cancel_safe():
            try:
                await self._gw_wait_conn(
                    self._cancel_gen(), interval=_WAIT_INTERVAL, timeout=timeout or None
                )
            except e._WaitTimeout:
                raise e.CancellationTimeout("cancellation timeout expired") from None
        else:
            await anyio.to_thread.run_sync(self.cancel)

    async def close(self) -> None:
        if self.closed:
            return
        self._gw_finish()

    def _gw_finish(self) -> None:
        if self._gw_trio:
            # Wake any task parked on this socket before the fd goes away.
            import trio

            try:
                trio.lowlevel.notify_closing(self.pgconn.socket)
            except (e.OperationalError, OSError):
                pass  # no socket left to wake anyone on
        self._closed = True
        self.pgconn.finish()

    async def wait_notifies(self) -> list[psycopg.Notify]:
        """Wait for the next NOTIFY batch (for a dedicated LISTEN connection).

        Unlike psycopg's ``notifies()`` async generator this is a plain
        coroutine, so a cancel scope can interrupt it at any point without
        leaving a suspended generator holding the connection lock.
        """
        async with self.lock:
            backlog, self._notifies_backlog = self._notifies_backlog, None
            try:
                if backlog:
                    ready = list(backlog)
                    backlog.clear()
                    return ready
                enc = self.pgconn._encoding
                pgns = await self.wait(generators.notifies(self.pgconn))
                return [
                    psycopg.Notify(n.relname.decode(enc), n.extra.decode(enc), n.be_pid)
                    for n in pgns
                ]
            finally:
                self._notifies_backlog = backlog

    @property
    def is_idle_and_alive(self) -> bool:
        """Cheap health check for an idle pooled connection (no round trip).

        An idle connection has nothing to read. If its socket is readable the
        server sent something unsolicited, almost always a FATAL error before
        closing it (``pg_terminate_backend``, a restart); such a connection is
        reported dead, at worst costing one reconnect in rare benign cases.
        """
        if self.closed or self.broken:
            return False
        if self.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            return not _ready_now(self.pgconn.socket, _WAIT_R)
        except (e.OperationalError, OSError):
            return False


async def _conninfo_attempts(params: ConnDict) -> list[ConnDict]:
    """Split conninfo into single-host attempts, resolving names with anyio."""
    last_exc: Exception | None = None
    attempts: list[ConnDict] = []
    prefer_standby = get_param(params, "target_session_attrs") == "prefer-standby"
    if prefer_standby:
        params = {k: v for k, v in params.items() if k != "target_session_attrs"}
    for attempt in split_attempts(params):
        try:
            attempts.extend(await _resolve_hostnames(attempt))
        except OSError as ex:
            last_exc = e.OperationalError(f"failed to resolve host {attempt.get('host')!r}: {ex}")
    if not attempts:
        assert last_exc is not None
        raise last_exc
    if get_param(params, "load_balance_hosts") == "random":
        shuffle(attempts)
    if prefer_standby:
        attempts = [{**a, "target_session_attrs": "standby"} for a in attempts] + attempts
    return attempts


async def _resolve_hostnames(params: ConnDict) -> list[ConnDict]:
    host = get_param(params, "host")
    if not host or host.startswith("/") or host[1:2] == ":":
        return [params]
    if get_param(params, "hostaddr"):
        return [params]
    if is_ip_address(host):
        return [{**params, "hostaddr": host}]
    port = get_param(params, "port")
    if not port:
        port_def = get_param_def("port")
        port = port_def.compiled if port_def and port_def.compiled else "5432"
    answers = await anyio.getaddrinfo(
        host, int(port), proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM
    )
    return [{**params, "hostaddr": str(item[4][0])} for item in answers]


# --------------------------------------------------------------------------- helpers


def describe_conninfo(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages; never includes the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "the configured database"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "")
    user = params.get("user")
    prefix = f"{user}@" if user else ""
    if host.startswith("/"):
        return f"{prefix}[socket {host}]:{port}/{dbname}"
    return f"{prefix}{host}:{port}/{dbname}"


def _one_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Multiple connection attempts failed")]
    # Several attempts repeat the same reason; keep each reason once.
    seen: list[str] = []
    for ln in lines:
        ln = ln.removeprefix("- ")
        if ln not in seen:
            seen.append(ln)
    return "; ".join(seen).replace("connection failed: ", "", 1)


async def connect(
    conninfo: str,
    *,
    autocommit: bool = True,
    prepare_threshold: int | None = 5,
    row_factory: AsyncRowFactory[Any] | None = None,
    **kwargs: Any,
) -> Connection[Any]:
    """Open a :class:`Connection`; failures become :class:`~gw.errors.ConnectionFailed`.

    The error names user, host, port and database (never the password) and
    says what to check.
    """
    try:
        conn: Connection[Any] = await Connection.connect(
            conninfo,
            autocommit=autocommit,
            prepare_threshold=prepare_threshold,
            row_factory=row_factory,
            **kwargs,
        )
    except psycopg.Error as ex:
        where = describe_conninfo(conninfo)
        reason = _one_line(str(ex)) or type(ex).__name__
        hint = _connection_hint(reason)
        raise ConnectionFailed(
            f"could not connect to PostgreSQL at {where}: {reason.rstrip('.?')}. {hint}"
        ) from None
    except OSError as ex:
        where = describe_conninfo(conninfo)
        raise ConnectionFailed(
            f"could not connect to PostgreSQL at {where}: {ex}. "
            "Check the host name and your network."
        ) from None
    return conn


def _connection_hint(reason: str) -> str:
    low = reason.lower()
    if "password" in low or "authentication" in low or "role" in low:
        return "Check the user name and password in the database URL."
    if "does not exist" in low and "database" in low:
        return "Create the database or fix the database name in the URL."
    if "resolve" in low or "name or service" in low:
        return "Check the host name in the database URL."
    if "refused" in low or "no such file" in low or "timeout" in low or "timed out" in low:
        return "Check that PostgreSQL is running and reachable at that address."
    return "Check the database URL (--database-url or DATABASE_URL)."
