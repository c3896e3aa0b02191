"""Synchronisation primitives on anyio (the Rust port's Notify and channel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ("Notify", "channel")

T = TypeVar("T")


class Notify:
    """A wake-up signal with one stored permit, like tokio's ``Notify``.

    ``notify()`` wakes every task currently in ``wait()``; when nobody waits,
    the wake-up is kept and the next ``wait()`` returns at once. Several
    notifications before a ``wait()`` collapse into one: the waiter is expected
    to go and look for work, not to count wake-ups.
    """

    __slots__ = ("_event", "_permit")

    def __init__(self) -> None:
        self._permit = False
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        """Wake the waiters (or store a permit for the next one)."""
        self._permit = True
        if self._event is not None:
            self._event.set()
            self._event = None

    @property
    def pending(self) -> bool:
        """True when a notification is stored and not yet consumed."""
        return self._permit

    def clear(self) -> None:
        """Drop a stored permit."""
        self._permit = False

    async def wait(self) -> None:
        """Return once notified, consuming the permit."""
        if not self._permit:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        else:
            await anyio.lowlevel.checkpoint()
        self._permit = False


def channel(
    max_buffer_size: float = 0,
) -> tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]:
    """A bounded memory channel: ``(send, receive)`` ends; ``math.inf`` for unbounded."""
    return anyio.create_memory_object_stream[T](max_buffer_size)
