"""``gw admin``: the admin UI and JSON API on hypercorn (also used by ``gw worker --admin``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from cyclopts import Parameter

from ..admin import AdminAuth, AdminServerConfig, serve
from ..admin.config import check_host_name, is_loopback, parse_listen
from ..errors import ConfigurationError
from ..runtime import TASK_STATUS_IGNORED, Event, open_signal_receiver, open_task_group
from ._app import current, open_utils, run, setup_logging
from ._output import emit_json
from ._params import AuthMode, Flag

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.tasks import Task
    from ..core.utils import WorkerUtils
    from ..runtime import TaskStatus

__all__ = ("AdminOptions", "admin", "start_admin")

logger = logging.getLogger("gw.cli")

DEFAULT_HEADER = "x-graphile-worker-admin-token"
ENV_SECRETS = {
    "basic": "GRAPHILE_WORKER_ADMIN_PASSWORD",
    "bearer": "GRAPHILE_WORKER_ADMIN_BEARER_TOKEN",
    "header": "GRAPHILE_WORKER_ADMIN_HEADER_TOKEN",
}


@dataclass(frozen=True)
class AdminOptions:
    listen: str = "127.0.0.1:5678"
    auth: AuthMode = "basic"
    username: str = "admin"
    header_name: str = DEFAULT_HEADER
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def make_auth(self) -> AdminAuth:
        """An AdminAuth; secrets come from the environment, else are generated."""
        secret = os.environ.get(ENV_SECRETS.get(self.auth, ""), "") or None
        if self.auth == "basic":
            return AdminAuth.basic(username=self.username, password=secret)
        if self.auth == "bearer":
            return AdminAuth.bearer(token=secret)
        if self.auth == "header":
            return AdminAuth.header(header_name=self.header_name, token=secret)
        return AdminAuth.none()

    def check(self) -> None:
        """Refuse a bad listen address or unauthenticated non-loopback serving up front."""
        host, _ = parse_listen(self.listen)
        if self.auth == "none" and not is_loopback(host):
            raise ConfigurationError(
                f"--auth none is refused on {self.listen}: it is not a loopback address; "
                "use basic, bearer or header auth"
            )
        for name in self.allowed_hosts:
            try:
                check_host_name(name)
            except ConfigurationError as ex:
                raise ConfigurationError(f"--allowed-host: {ex}") from None


class AdminStarted(msgspec.Struct, frozen=True, kw_only=True):
    """``gw admin --json`` (one line once the server listens)."""

    url: str
    auth: str
    username: str | None
    header_name: str | None
    secret: str | None
    """The generated secret; null when it came from the environment (never echoed)."""
    read_only: bool


def announce(address: str, options: AdminOptions, auth: AdminAuth) -> None:
    """Say where the server listens and how to log in (generated secrets only)."""
    generated = auth.generated
    secret = auth.secret if generated else None
    url = f"http://{address}/"
    if current().json:
        emit_json(
            AdminStarted(
                url=url,
                auth=options.auth,
                username=options.username if options.auth == "basic" else None,
                header_name=options.header_name if options.auth == "header" else None,
                secret=secret,
                read_only=options.read_only,
            )
        )
        return
    mode = " (read-only)" if options.read_only else ""
    lines = [f"gw admin listening on {url}{mode}"]
    env = ENV_SECRETS.get(options.auth)
    where = f"generated: {secret}" if generated else f"from {env}"
    if options.auth == "basic":
        lines.append(f"auth: basic, user {options.username!r}, password {where}")
    elif options.auth == "bearer":
        lines.append(f"auth: bearer token {where}")
    elif options.auth == "header":
        lines.append(f"auth: header {options.header_name}, token {where}")
    else:
        lines.append("auth: none (loopback only)")
    print("\n".join(lines), flush=True)


async def start_admin(
    utils: WorkerUtils,
    options: AdminOptions,
    stop: Event,
    *,
    task_status: TaskStatus[str] = TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin UI until ``stop`` is set; report the bound address when listening."""
    auth = options.make_auth()
    config = AdminServerConfig(
        utils=utils,
        listen=options.listen,
        auth=auth,
        read_only=options.read_only,
        allowed_hosts=options.allowed_hosts,
    )
    async with open_task_group() as tg:
        address = await tg.start(partial(serve, config, shutdown_trigger=stop))
        announce(str(address), options, auth)
        task_status.started(str(address))


async def _stop_on_signal(stop: Event) -> None:
    with open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logger.warning("%s received: shutting down gracefully", signal.Signals(signum).name)
            stop.set()
            return


def admin(
    *,
    listen: Annotated[str, Parameter(metavar="HOST:PORT")] = "127.0.0.1:5678",
    auth: AuthMode = "basic",
    username: Annotated[str, Parameter(metavar="NAME")] = "admin",
    header_name: Annotated[str, Parameter(metavar="NAME")] = DEFAULT_HEADER,
    read_only: Flag = False,
    allowed_host: Annotated[list[str] | None, Parameter(metavar="NAME", negative="")] = None,
    tasks: Annotated[list[str] | None, Parameter(metavar="MODULE[:ATTR]", negative="")] = None,
) -> None:
    """Serve the admin UI and JSON API until Ctrl-C.

    Secrets come from GRAPHILE_WORKER_ADMIN_PASSWORD (basic),
    GRAPHILE_WORKER_ADMIN_BEARER_TOKEN (bearer) or GRAPHILE_WORKER_ADMIN_HEADER_TOKEN
    (header); when unset one is generated and printed once.

    Parameters
    ----------
    listen
        Address to listen on (port 0 picks a free port).
    auth
        How clients authenticate; none is only allowed on loopback addresses.
    username
        The basic-auth user name.
    header_name
        The header carrying the token in header mode.
    read_only
        Refuse every write (403); for shared inspection screens.
    allowed_host
        A host name browsers use to reach the server besides its IP address and
        localhost, e.g. its public name behind a proxy (repeat for more).
    tasks
        Python modules whose @gw.task defaults apply to jobs added in the UI.
    """
    setup_logging(base=logging.INFO)
    options = AdminOptions(
        listen=listen,
        auth=auth,
        username=username,
        header_name=header_name,
        read_only=read_only,
        allowed_hosts=tuple(allowed_host or ()),
    )
    options.check()
    registry: Iterable[Task[..., Any]] = ()
    if tasks:
        from .worker import load_tasks

        registry = load_tasks(tasks)

    async def go() -> None:
        stop = Event()
        async with open_utils(max_pg_conn=5, tasks=registry) as utils, open_task_group() as tg:
            tg.start_soon(_stop_on_signal, stop)
            await start_admin(utils, options, stop)
            tg.cancel_scope.cancel()

    try:
        run(go)
    finally:
        sys.stdout.flush()
