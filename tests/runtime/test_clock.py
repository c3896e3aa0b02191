from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from gw.runtime import FakeClock, Interval, SystemClock
from tests.helpers import trio_mock_clock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    woke: list[tuple[str, float, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic(), clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 30)
        tg.start_soon(sleeper, "early", 10)
        await clock.wait_for_sleepers(2)
        assert clock.next_deadline() == 10
        await clock.advance(60)

    assert [w[0] for w in woke] == ["early", "late"]
    assert [w[1] for w in woke] == [10, 30]
    assert woke[0][2] == datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert clock.now() == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    assert clock.sleeper_count == 0


async def test_fake_clock_jump_moves_only_wall_time() -> None:
    clock = FakeClock()
    before_mono, before_wall = clock.monotonic(), clock.now()
    clock.jump(timedelta(hours=-2))
    assert clock.monotonic() == before_mono
    assert clock.now() == before_wall - timedelta(hours=2)


async def test_cancelled_fake_sleep_is_forgotten() -> None:
    clock = FakeClock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 100)
        await clock.wait_for_sleepers()
        tg.cancel_scope.cancel()
    assert clock.sleeper_count == 0


def test_fake_clock_rejects_naive_and_backwards() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))
    clock = FakeClock()
    with pytest.raises(ValueError, match="backwards"):
        anyio.run(clock.advance, -1)


async def test_interval_skips_missed_ticks() -> None:
    clock = FakeClock()
    interval = Interval(10, clock)
    ticks: list[float] = []
    busy_done = anyio.Event()

    async def ticker() -> None:
        await interval.tick()
        ticks.append(clock.monotonic())
        await busy_done.wait()  # a slow consumer misses the ticks at 20 and 30
        await interval.tick()  # late: returns at once, realigned to the grid
        ticks.append(clock.monotonic())
        await interval.tick()
        ticks.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await clock.wait_for_sleepers()
        await clock.advance(10)
        await clock.advance(25)
        busy_done.set()
        await clock.wait_for_sleepers()
        assert clock.next_deadline() == 40
        await clock.advance_to_next()

    assert ticks == [10, 35, 40]


def test_system_clock_is_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


@pytest.mark.parametrize("anyio_backend", [trio_mock_clock()])
async def test_system_clock_follows_trio_mock_clock() -> None:
    clock = SystemClock()
    start = clock.monotonic()
    await clock.sleep(3600)  # an hour of virtual time, no real waiting
    assert clock.monotonic() - start == pytest.approx(3600)
