"""Clocks: the only way gw code reads time.

Everything that depends on time (cron ticks, backoff, poll intervals,
heartbeats, shutdown deadlines) asks a :class:`Clock`, so tests can swap in a
:class:`FakeClock` and move time by hand on either backend.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import anyio

__all__ = ("Clock", "FakeClock", "SystemClock")


@runtime_checkable
class Clock(Protocol):
    """What gw needs from a clock."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep on the monotonic clock (wall-clock jumps do not shorten it)."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)`` and the event loop's clock.

    Under trio's ``MockClock`` the monotonic side follows virtual time.
    """

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that only moves when told to.

    ``await clock.advance(seconds)`` moves both the wall and the monotonic
    clock and wakes every sleeper whose deadline passed; ``jump(delta)`` moves
    only the wall clock, the way an NTP step or a manual clock change does.
    Works on asyncio and trio alike because sleepers wait on anyio events.
    """

    def __init__(self, start: datetime | None = None, *, monotonic: float = 0.0) -> None:
        if start is None:
            start = datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._wall = start.astimezone(UTC)
        self._mono = monotonic
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()
        self._changed: anyio.Event | None = None

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), event))
        self._notify_changed()
        try:
            await event.wait()
        finally:
            if not event.is_set():
                # Cancelled: drop our entry so sleeper_count stays truthful.
                self._sleepers = [s for s in self._sleepers if s[2] is not event]
                heapq.heapify(self._sleepers)

    @property
    def sleeper_count(self) -> int:
        """How many tasks are sleeping on this clock right now."""
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """The monotonic time at which the next sleeper wakes, if any."""
        return self._sleepers[0][0] if self._sleepers else None

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks sleep on this clock."""
        while len(self._sleepers) < count:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    async def advance(self, seconds: float | timedelta) -> None:
        """Move time forward, waking sleepers in deadline order."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError("FakeClock.advance() cannot go backwards; use jump()")
        target = self._mono + step
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, event = heapq.heappop(self._sleepers)
            self._wall += timedelta(seconds=deadline - self._mono)
            self._mono = deadline
            event.set()
            # Let the woken task run until it blocks again before later
            # deadlines fire, so wake-ups happen in deadline order.
            await anyio.wait_all_tasks_blocked()
        self._wall += timedelta(seconds=target - self._mono)
        self._mono = target
        await anyio.wait_all_tasks_blocked()

    async def advance_to_next(self) -> float:
        """Advance exactly to the next sleeper's deadline; return the step taken."""
        deadline = self.next_deadline()
        if deadline is None:
            return 0.0
        step = deadline - self._mono
        await self.advance(step)
        return step

    def jump(self, delta: timedelta) -> None:
        """Step the wall clock only (forwards or backwards)."""
        self._wall += delta

    def set_wall(self, when: datetime) -> None:
        """Set the wall clock to ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("FakeClock.set_wall() needs a timezone-aware datetime")
        self._wall = when.astimezone(UTC)

    def _notify_changed(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def __repr__(self) -> str:
        return f"FakeClock(now={self._wall.isoformat()}, sleepers={len(self._sleepers)})"
