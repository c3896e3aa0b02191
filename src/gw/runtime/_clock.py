"""Clocks: the only way gw code reads time.

Everything that depends on time (cron ticks, backoff, poll intervals,
heartbeats, shutdown deadlines) asks a :class:`Clock`, so tests can swap in a
:class:`FakeClock` and move time by hand on either backend.
"""

from __future__ import annotations

import heapq
import itertools
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

__all__ = ("Clock", "FakeClock", "SystemClock")


async def _all_tasks_blocked() -> None:
    """Return once every other task waits on something.

    anyio's asyncio version re-checks every 0.1 s and gives up a round when any
    task is runnable, so a task that wakes every 0.1 s of real time (psycopg's
    wait loop on an idle connection) can keep it in lockstep for seconds. Here
    the check repeats after each pass of the event loop instead.
    """
    import sniffio

    if sniffio.current_async_library() != "asyncio":
        await anyio.wait_all_tasks_blocked()
        return
    import asyncio

    await asyncio.sleep(0)
    this = asyncio.current_task()
    while True:
        for task in asyncio.all_tasks():
            waiter = task._fut_waiter  # type: ignore[attr-defined]
            if task is not this and (waiter is None or waiter.done()):
                break
        else:
            return
        await asyncio.sleep(0)


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

    def move_on_after(self, seconds: float | None) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that expires after ``seconds`` of this clock (None: never).

        Like :func:`anyio.move_on_after`, but on this clock: a worker given a
        fake clock times out its waits (poll interval, local-queue TTL,
        grace period) when the fake clock is advanced.
        """
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

    def move_on_after(self, seconds: float | None) -> anyio.CancelScope:
        return anyio.move_on_after(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that only moves when told to.

    ``await clock.advance(seconds)`` moves both the wall and the monotonic
    clock and wakes every sleeper (and expires every ``move_on_after`` scope)
    whose deadline passed; ``jump(delta)`` moves only the wall clock, the way
    an NTP step or a manual clock change does. Works on asyncio and trio
    alike because sleepers wait on anyio events.
    """

    def __init__(self, start: datetime | None = None, *, monotonic: float = 0.0) -> None:
        if start is None:
            start = datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._wall = start.astimezone(UTC)
        self._mono = monotonic
        # (deadline, seq, wake, is_sleeper): sleepers and timeouts in one heap,
        # so advance() fires them all in deadline order.
        self._due: list[tuple[float, int, Callable[[], None], bool]] = []
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
        seq = self._push(seconds, event.set, sleeper=True)
        try:
            await event.wait()
        finally:
            if not event.is_set():
                self._drop(seq)  # cancelled: keep sleeper_count truthful

    @contextmanager
    def move_on_after(self, seconds: float | None) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            if seconds is None:
                yield scope
                return
            if seconds <= 0:
                scope.cancel()
                yield scope
                return
            seq = self._push(seconds, scope.cancel, sleeper=False)
            try:
                yield scope
            finally:
                self._drop(seq)

    def _push(self, seconds: float, wake: Callable[[], None], *, sleeper: bool) -> int:
        seq = next(self._seq)
        heapq.heappush(self._due, (self._mono + seconds, seq, wake, sleeper))
        self._notify_changed()
        return seq

    def _drop(self, seq: int) -> None:
        for index, entry in enumerate(self._due):
            if entry[1] == seq:
                self._due[index] = self._due[-1]
                self._due.pop()
                heapq.heapify(self._due)
                return

    @property
    def sleeper_count(self) -> int:
        """How many tasks are sleeping on this clock right now."""
        return sum(1 for entry in self._due if entry[3])

    @property
    def timeout_count(self) -> int:
        """How many ``move_on_after`` scopes on this clock are waiting to expire."""
        return sum(1 for entry in self._due if not entry[3])

    def next_deadline(self) -> float | None:
        """The monotonic time at which the next sleeper wakes or timeout expires, if any."""
        return self._due[0][0] if self._due else None

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks sleep on this clock."""
        await self._wait_until(lambda: self.sleeper_count >= count)

    async def wait_for_timeouts(self, count: int = 1) -> None:
        """Wait until at least ``count`` ``move_on_after`` scopes wait on this clock."""
        await self._wait_until(lambda: self.timeout_count >= count)

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    async def advance(self, seconds: float | timedelta) -> None:
        """Move time forward, waking sleepers and expiring timeouts in deadline order."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError("FakeClock.advance() cannot go backwards; use jump()")
        target = self._mono + step
        while self._due and self._due[0][0] <= target:
            deadline, _, wake, _ = heapq.heappop(self._due)
            self._wall += timedelta(seconds=deadline - self._mono)
            self._mono = deadline
            wake()
            # Let the woken task run until it blocks again before later
            # deadlines fire, so wake-ups happen in deadline order.
            await _all_tasks_blocked()
        self._wall += timedelta(seconds=target - self._mono)
        self._mono = target
        await _all_tasks_blocked()

    async def advance_to_next(self) -> float:
        """Advance exactly to the next deadline; return the step taken."""
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
        return f"FakeClock(now={self._wall.isoformat()}, due={len(self._due)})"
