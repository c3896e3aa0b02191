"""Synchronisation primitives on anyio (the Rust port's Notify and channel)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ("Notify", "ParkingLot", "channel")

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


class ParkingLot:
    """Tasks park here until unparked; ``unpark(n)`` wakes up to ``n`` of them (FIFO).

    Unlike :class:`Notify` it wakes only as many tasks as there is work for,
    which keeps a pool of idle executors from stampeding on every new job.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: deque[anyio.Event] = deque()

    async def park(self) -> None:
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        finally:
            if not event.is_set():
                self._waiters.remove(event)

    def unpark(self, count: int = 1) -> int:
        """Wake up to ``count`` parked tasks; return how many were woken."""
        woken = 0
        while woken < count and self._waiters:
            self._waiters.popleft().set()
            woken += 1
        return woken

    def unpark_all(self) -> int:
        return self.unpark(len(self._waiters))

    @property
    def parked(self) -> int:
        return len(self._waiters)


def channel(
    max_buffer_size: float = 0,
) -> tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]:
    """A bounded memory channel: ``(send, receive)`` ends; ``math.inf`` for unbounded."""
    return anyio.create_memory_object_stream[T](max_buffer_size)
