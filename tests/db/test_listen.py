from __future__ import annotations

import anyio

from gw.db.connection import connect
from gw.db.listen import Listener, Notification
from tests.helpers import wait_until


async def test_notify_from_another_connection_arrives(db_url: str) -> None:
    async with Listener(db_url, ["jobs:insert", "worker:migrate"]) as listener:
        async with await connect(db_url) as other:
            await other.execute("select pg_notify('jobs:insert', '{\"count\":3}')")
            await other.execute("select pg_notify('worker:migrate', 'm')")
        first = await listener.receive()
        second = await listener.__anext__()
    assert first == Notification("jobs:insert", '{"count":3}', first.pid)
    assert (second.channel, second.payload) == ("worker:migrate", "m")
    assert first.pid > 0


async def test_notifications_sent_before_reading_are_not_lost(db_url: str) -> None:
    async with Listener(db_url, ["jobs:insert"]) as listener:
        async with await connect(db_url) as other:
            for i in range(20):
                await other.execute("select pg_notify('jobs:insert', %s)", (str(i),))
        got = [(await listener.receive()).payload for _ in range(20)]
    assert got == [str(i) for i in range(20)]


async def test_listener_reconnects_after_pg_terminate_backend(db_url: str) -> None:
    connects = 0
    reconnected = anyio.Event()

    def on_connect() -> None:
        nonlocal connects
        connects += 1
        if connects == 2:
            reconnected.set()

    received: list[str] = []
    async with Listener(db_url, ["jobs:insert"], on_connect=on_connect) as listener:
        first_pid = listener.backend_pid
        assert first_pid is not None
        assert connects == 1
        async with await connect(db_url) as admin, anyio.create_task_group() as tg:

            async def consume() -> None:
                async for note in listener:
                    received.append(note.payload)

            tg.start_soon(consume)
            await admin.execute("select pg_terminate_backend(%s)", (first_pid,))
            await reconnected.wait()
            assert listener.backend_pid not in (None, first_pid)
            assert listener.reconnects == 1
            await admin.execute("select pg_notify('jobs:insert', 'after')")
            await wait_until(lambda: received == ["after"])
            tg.cancel_scope.cancel()


async def test_channel_names_are_quoted(db_url: str) -> None:
    # "jobs:insert" is not a plain identifier; a weird one must not break LISTEN.
    async with Listener(db_url, ['we"ird chan']) as listener:
        async with await connect(db_url) as other:
            await other.execute("select pg_notify('we\"ird chan', 'ok')")
        note = await listener.receive()
    assert note.channel == 'we"ird chan'
