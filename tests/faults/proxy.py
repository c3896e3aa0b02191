"""Fault injection: a TCP proxy in front of the test database that a test can break.

``async with db_proxy(db_url) as proxy`` listens on 127.0.0.1 and forwards to
the database (over TCP or its Unix socket); ``proxy.url`` is ``db_url``
through the proxy. Then:

- ``proxy.blackhole()``: the database stops answering. Connections stay
  open and writes succeed, but nothing comes back, and new connections are
  accepted and never answered: a hung server or a network partition.
- ``proxy.sever()``: every connection is dropped and new ones are refused: a
  crashed or restarted server.
- ``proxy.restore()``: forward again (new connections only, after a sever).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class Proxy:
    def __init__(self, target: dict[str, Any]) -> None:
        self._target = target
        self.url = ""
        self._mode = "forward"
        self._blackholed = anyio.Event()
        self._tg: Any = None
        self._scopes: set[anyio.CancelScope] = set()
        self.connections = 0

    def blackhole(self) -> None:
        self._mode = "blackhole"
        self._blackholed.set()

    def sever(self) -> None:
        self._mode = "sever"
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self._mode = "forward"
        self._blackholed = anyio.Event()

    async def _connect_upstream(self) -> ByteStream:
        host = str(self._target.get("host") or "127.0.0.1")
        port = int(self._target.get("port") or 5432)
        if host.startswith("/"):
            return await anyio.connect_unix(f"{host}/.s.PGSQL.{port}")
        return await anyio.connect_tcp(host, port)

    async def _handle(self, client: ByteStream) -> None:
        self.connections += 1
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                async with client:
                    if self._mode == "sever":
                        return
                    if self._mode == "blackhole":
                        await anyio.sleep_forever()
                    upstream = await self._connect_upstream()
                    async with upstream, anyio.create_task_group() as tg:
                        tg.start_soon(self._pump, client, upstream, tg.cancel_scope)
                        tg.start_soon(self._pump, upstream, client, tg.cancel_scope)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            finally:
                self._scopes.discard(scope)

    async def _pump(self, src: ByteStream, dst: ByteStream, scope: anyio.CancelScope) -> None:
        try:
            while True:
                try:
                    data = await src.receive()
                except anyio.EndOfStream:
                    break
                if self._mode == "blackhole":
                    await anyio.sleep_forever()  # swallow it, and everything after
                await dst.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()


@asynccontextmanager
async def db_proxy(db_url: str) -> AsyncIterator[Proxy]:
    target = conninfo_to_dict(db_url)
    proxy = Proxy(target)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    params = {k: v for k, v in target.items() if k not in ("host", "hostaddr", "port")}
    proxy.url = make_conninfo("", **params, host="127.0.0.1", port=str(port))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy._handle)
        try:
            yield proxy
        finally:
            proxy.sever()
            tg.cancel_scope.cancel()
