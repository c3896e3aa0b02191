"""Running asyncio-only handlers inside a trio worker (through trio-asyncio).

On asyncio a handler declared with ``loop="asyncio"`` is awaited as usual; on
trio it runs on a trio-asyncio loop that the worker opens for its lifetime,
so libraries that need a running asyncio loop work inside it. trio-asyncio is
slower than either loop alone, so only these handlers go through it.

Importing trio-asyncio changes asyncio for the whole process (its event loop
policy: a later ``asyncio.run`` in the same process gets a trio-asyncio
loop), so gw imports it only when a trio worker has such a task.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ..errors import require_extra
from ._backend import current_backend

__all__ = ("AsyncioBridge", "open_asyncio_bridge")

AsyncioBridge = Callable[..., Awaitable[Any]]
"""``await bridge(fn, *args)`` runs the asyncio coroutine function ``fn(*args)``."""


@asynccontextmanager
async def open_asyncio_bridge(needed: bool) -> AsyncIterator[AsyncioBridge | None]:
    """Yield a bridge when ``needed`` on trio, else None (call the handler directly).

    Cancelling the awaiting trio task cancels the asyncio task (and a timeout
    reaches the handler as ``asyncio.CancelledError``).
    """
    if not needed or current_backend() != "trio":
        yield None
        return
    require_extra("a task with loop='asyncio' on a trio worker", "trio", "trio_asyncio")
    with warnings.catch_warnings():
        # trio-asyncio's own use of asyncio APIs that Python 3.12+ deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        import trio_asyncio

    def bridge(fn: Callable[..., Awaitable[Any]], *args: Any) -> Awaitable[Any]:
        return trio_asyncio.aio_as_trio(fn)(*args)  # type: ignore[no-any-return]

    async with trio_asyncio.open_loop():
        yield bridge
