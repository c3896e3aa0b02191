"""gw.admin: the admin web UI and JSON API (docs/admin-api.md).

Build an :class:`AdminServerConfig` around a :class:`gw.WorkerUtils` and run
:func:`serve` on its own or inside a worker's task group::

    async with gw.WorkerUtils.connect(url) as utils, anyio.create_task_group() as tg:
        config = AdminServerConfig(utils, auth=AdminAuth.basic(password="s3cret"))
        address = await tg.start(serve, config)   # "127.0.0.1:4000"

:func:`create_app` gives the bare ASGI app (Quart under asyncio, QuartTrio
under trio) for tests or another ASGI server. Importing this package loads
neither Quart nor hypercorn; they load when an app is built.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Literal

import anyio

from ..errors import require_extra

# One clear line instead of a ModuleNotFoundError for quart deep inside.
require_extra("gw.admin (the admin UI)", "admin", "quart", "quart_trio", "hypercorn")

from .config import (  # noqa: E402
    CSRF_HEADER as CSRF_HEADER,
    DEFAULT_HEADER_NAME as DEFAULT_HEADER_NAME,
    DEFAULT_LISTEN as DEFAULT_LISTEN,
    AdminAuth as AdminAuth,
    AdminServerConfig as AdminServerConfig,
)

if TYPE_CHECKING:
    from anyio.abc import TaskStatus
    from quart import Quart

# Seconds past hypercorn's graceful timeout before the admin server is torn down.
_STOP_MARGIN = 5.0

__all__ = (
    "CSRF_HEADER",
    "DEFAULT_HEADER_NAME",
    "DEFAULT_LISTEN",
    "AdminAuth",
    "AdminServerConfig",
    "create_app",
    "serve",
)

logger = logging.getLogger("gw.admin")


def create_app(
    config: AdminServerConfig, *, backend: Literal["asyncio", "trio"] | None = None
) -> Quart:
    """The admin ASGI app: QuartTrio when called under trio, else Quart.

    Each app has its own CSRF token. ``backend`` overrides the detection.
    """
    from ._api import install
    from ._app import make_app, pick_backend

    app = make_app(pick_backend(backend))
    install(app, config, secrets.token_urlsafe(32))
    return app


async def serve(
    config: AdminServerConfig,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    shutdown_trigger: anyio.Event | None = None,
) -> None:
    """Serve the admin UI until cancelled or until ``shutdown_trigger`` is set.

    Reports the bound ``host:port`` through ``task_status`` once the socket
    listens (with ``:0`` it names the port the system picked). Cancellation
    and the trigger both shut hypercorn down gracefully (in-flight requests
    get a few seconds to finish).
    """
    from ._app import GRACEFUL_TIMEOUT, bind_socket, hypercorn_config, serve_app

    app = create_app(config)
    sock = await bind_socket(config.host, config.port)
    try:
        host, port = sock.getsockname()[:2]
        bound = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        stop = anyio.Event()
        stopped = anyio.Event()

        server_scope = anyio.CancelScope(shield=True)

        async def run_server() -> None:
            try:
                # Shielded: hypercorn stops through `stop`, which lets it close
                # connections and run the ASGI shutdown instead of being torn down.
                with server_scope:
                    await serve_app(app, hypercorn_config(sock), stop.wait)
            finally:
                stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            logger.info("gw admin listening on http://%s (auth %s)", bound, config.auth.mode)
            task_status.started(bound)
            try:
                if shutdown_trigger is not None:
                    await shutdown_trigger.wait()
                else:
                    await anyio.sleep_forever()
            finally:
                stop.set()
                # hypercorn gives connections GRACEFUL_TIMEOUT; past a margin
                # on top, the server is torn down after all.
                with anyio.move_on_after(GRACEFUL_TIMEOUT + _STOP_MARGIN, shield=True):
                    await stopped.wait()
                server_scope.cancel()
        logger.info("gw admin on %s stopped", bound)
    finally:
        sock.close()
