"""``/livez`` and ``/readyz`` for orchestrators (``gw worker --health HOST:PORT``).

A tiny HTTP/1.1 server on the worker's own event loop, so that an answer at
all proves the loop is responsive; no web framework (the admin extra is not
needed). ``/livez``: the loop runs (and how late its last tick was).
``/readyz``: the database answers a query within two seconds and, when the
worker listens for new jobs, its LISTEN connection is up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..runtime import (
    TASK_STATUS_IGNORED,
    TaskStatus,
    create_tcp_listener,
    move_on_after,
    open_task_group,
    sleep,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("HealthState", "serve_health")

logger = logging.getLogger("gw.worker")

_REQUEST_LIMIT = 8192
_READ_TIMEOUT = 5.0
_TICK = 1.0
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class HealthState:
    """What the probes report, kept up to date by the worker's parts."""

    listening: bool | None = None
    """LISTEN connected (None: the worker does not listen)."""
    listen_error: str | None = None
    last_tick: float = field(default_factory=time.monotonic)
    lag: float = 0.0
    """How late the loop woke for its last one-second tick (seconds)."""
    stopping: bool = False
    """Shutdown has begun: not ready for more work."""


async def serve_health(
    host: str,
    port: int,
    state: HealthState,
    database_ok: Callable[[], Awaitable[str | None]],
    *,
    task_status: TaskStatus[str] = TASK_STATUS_IGNORED,
) -> None:
    """Serve the probes until cancelled; report ``host:port`` once listening.

    ``database_ok`` returns None when the database answers, else why not.
    """
    listener = await create_tcp_listener(local_host=host, local_port=port)
    async with listener, open_task_group() as tg:
        tg.start_soon(_tick, state)
        sock_host, sock_port = _bound(listener)
        shown = f"[{sock_host}]:{sock_port}" if ":" in sock_host else f"{sock_host}:{sock_port}"
        logger.info("health probes on http://%s (/livez, /readyz)", shown)
        task_status.started(shown)
        await listener.serve(lambda stream: _answer(stream, state, database_ok))


def _bound(listener: Any) -> tuple[str, int]:
    from anyio.abc import SocketAttribute

    first = listener.listeners[0]
    sockname = first.extra(SocketAttribute.local_address)
    return str(sockname[0]), int(sockname[1])


async def _tick(state: HealthState) -> None:
    while True:
        before = time.monotonic()
        await sleep(_TICK)
        now = time.monotonic()
        state.lag = max(0.0, now - before - _TICK)
        state.last_tick = now


async def _answer(
    stream: Any, state: HealthState, database_ok: Callable[[], Awaitable[str | None]]
) -> None:
    async with stream:
        request = b""
        with move_on_after(_READ_TIMEOUT):
            while b"\r\n\r\n" not in request and len(request) < _REQUEST_LIMIT:
                try:
                    chunk = await stream.receive(4096)
                except Exception:
                    return
                request += chunk
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _send(stream, 400, {"status": "bad request"}, head=False)
            return
        method, target = parts[0], parts[1].split("?", 1)[0]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _send(stream, 405, {"status": "method not allowed"}, head=head)
        elif target == "/livez":
            lag = round(state.lag * 1000, 1)
            await _send(stream, 200, {"status": "ok", "loop_lag_ms": lag}, head)
        elif target == "/readyz":
            problem = await database_ok()
            body: dict[str, Any] = {"database": problem or "ok"}
            if state.listening is not None:
                body["listen"] = "ok" if state.listening else (state.listen_error or "down")
            ready = problem is None and state.listening is not False and not state.stopping
            if state.stopping:
                body["worker"] = "shutting down"
            body["status"] = "ok" if ready else "unavailable"
            await _send(stream, 200 if ready else 503, body, head)
        else:
            await _send(stream, 404, {"status": "not found", "paths": ["/livez", "/readyz"]}, head)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


async def _send(stream: Any, status: int, body: dict[str, Any], head: bool) -> None:
    payload = _encoder.encode(body) + b"\n"
    header = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        await stream.send(header if head else header + payload)
    except Exception:
        return  # the prober went away: nothing to tell it
