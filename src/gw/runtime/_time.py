"""Time helpers built on a :class:`~gw.runtime.Clock`."""

from __future__ import annotations

from datetime import timedelta

from ._clock import Clock, SystemClock

__all__ = ("Interval", "seconds")

_SYSTEM_CLOCK = SystemClock()


def seconds(value: float | timedelta | None) -> float | None:
    """Normalise a duration given as seconds or a ``timedelta``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class Interval:
    """Ticks every ``period`` seconds on a clock's monotonic time.

    Missed ticks are skipped (a slow consumer gets the next tick on the
    regular grid, not a burst), which is what heartbeats and sweeps want.
    The first tick fires after one period unless ``immediate`` is true.
    """

    def __init__(
        self, period: float, clock: Clock | None = None, *, immediate: bool = False
    ) -> None:
        if period <= 0:
            raise ValueError("Interval period must be positive")
        self.period = period
        self._clock = clock or _SYSTEM_CLOCK
        self._next = self._clock.monotonic() + (0.0 if immediate else period)

    async def tick(self) -> None:
        """Sleep until the next tick."""
        now = self._clock.monotonic()
        if now < self._next:
            await self._clock.sleep(self._next - now)
            now = self._clock.monotonic()
        else:
            await self._clock.sleep(0)
        missed = int((now - self._next) // self.period)
        self._next += (missed + 1) * self.period

    def reset(self) -> None:
        """Restart the grid one period from now."""
        self._next = self._clock.monotonic() + self.period
