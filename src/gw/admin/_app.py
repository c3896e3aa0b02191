"""The backend-specific half of gw.admin: Quart or QuartTrio, hypercorn's
asyncio or trio server. This is the only admin module that may import the
event-loop libraries (ruff's TID251 allows it here).
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any, Literal

import anyio
from hypercorn.config import Config as HyperConfig, Sockets

from ..runtime import current_backend

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from quart import Quart

__all__ = ("bind_socket", "hypercorn_config", "make_app", "serve_app")

Backend = Literal["asyncio", "trio"]

logger = logging.getLogger("gw.admin")

GRACEFUL_TIMEOUT = 5.0


def pick_backend(backend: Backend | None) -> Backend:
    """The requested backend, else the running loop's, else asyncio."""
    if backend is not None:
        return backend
    try:
        return current_backend()
    except RuntimeError:
        return "asyncio"


def make_app(backend: Backend) -> Quart:
    """An empty Quart (asyncio) or QuartTrio (trio) app for the admin routes."""
    if backend == "trio":
        from quart_trio import QuartTrio

        app: Quart = QuartTrio("gw.admin", static_folder=None, template_folder=None)
    else:
        from quart import Quart

        app = Quart("gw.admin", static_folder=None, template_folder=None)
    return app


async def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free port)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _PreboundConfig(HyperConfig):
    """A hypercorn config that serves one socket we bound ourselves, so the
    caller learns the real port (``port 0``) before the first request."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._gw_socket = sock

    def create_sockets(self) -> Any:
        return Sockets(secure_sockets=[], insecure_sockets=[self._gw_socket], quic_sockets=[])


def hypercorn_config(sock: socket.socket) -> HyperConfig:
    config = _PreboundConfig(sock)
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.include_server_header = False
    config.accesslog = None
    # hypercorn logs startup and errors; route it into gw's logger tree.
    config.errorlog = logging.getLogger("gw.admin.hypercorn")
    return config


async def serve_app(
    app: Quart,
    config: HyperConfig,
    shutdown_trigger: Callable[[], Awaitable[None]],
) -> None:
    """Run hypercorn's server for the running backend until the trigger returns."""
    if current_backend() == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(app, config, shutdown_trigger=shutdown_trigger)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(app, config, shutdown_trigger=shutdown_trigger)
