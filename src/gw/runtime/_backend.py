"""Which event loop are we on?"""

from __future__ import annotations

from typing import Literal

import sniffio

__all__ = ("Backend", "current_backend")

Backend = Literal["asyncio", "trio"]


def current_backend() -> Backend:
    """Return ``"asyncio"`` or ``"trio"`` for the running event loop.

    Raises ``RuntimeError`` outside an event loop or on an unsupported one.
    """
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError("gw needs a running asyncio or trio event loop") from None
    if name not in ("asyncio", "trio"):
        raise RuntimeError(f"gw runs on asyncio or trio, not {name!r}")
    return name  # type: ignore[return-value]
