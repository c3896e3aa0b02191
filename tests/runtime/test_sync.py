from __future__ import annotations

import anyio

from gw.runtime import Notify, channel, current_backend


async def test_notify_keeps_one_permit() -> None:
    notify = Notify()
    notify.notify()
    notify.notify()
    assert notify.pending
    await notify.wait()  # consumes the single stored permit
    assert not notify.pending
    woke = anyio.Event()

    async def waiter() -> None:
        await notify.wait()
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not woke.is_set()  # no second permit was stored
        notify.notify()
    assert woke.is_set()


async def test_notify_wakes_all_current_waiters() -> None:
    notify = Notify()
    woke: list[int] = []

    async def waiter(i: int) -> None:
        await notify.wait()
        woke.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
        await anyio.wait_all_tasks_blocked()
        notify.notify()
    assert sorted(woke) == [0, 1, 2]


async def test_channel_round_trip() -> None:
    send, receive = channel(2)
    async with send, receive:
        await send.send(1)
        await send.send(2)
        assert [await receive.receive(), await receive.receive()] == [1, 2]


async def test_current_backend(anyio_backend: str) -> None:
    assert current_backend() == anyio_backend
