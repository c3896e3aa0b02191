from __future__ import annotations

import socket
import struct
import threading
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gw.db.connection import Connection, connect, describe_conninfo
from gw.errors import ConnectionFailed, GwError
from tests.helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator


async def test_execute_fetch_and_types(db_url: str) -> None:
    async with await connect(db_url) as conn:
        assert isinstance(conn, Connection)
        cur = await conn.execute("select 1::int, 'x'::text, '{\"a\": 1}'::jsonb, now()")
        row = await cur.fetchone()
        assert row is not None
        assert row[:3] == (1, "x", {"a": 1})
        assert row[3].tzinfo is not None


async def test_transactions_commit_and_roll_back(db_url: str) -> None:
    async with await connect(db_url) as conn:
        await conn.execute("create table t (x int)")
        async with conn.transaction():
            await conn.execute("insert into t values (1)")
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.execute("insert into t values (2)")
                raise ZeroDivisionError
        cur = await conn.execute("select array_agg(x) from t")
        assert await cur.fetchone() == ([1],)


async def test_pipeline_mode(db_url: str) -> None:
    async with await connect(db_url) as conn:
        async with conn.pipeline():
            cursors = [await conn.execute("select %s::int * 2", (i,)) for i in range(50)]
        assert [(await c.fetchone())[0] for c in cursors] == [i * 2 for i in range(50)]  # type: ignore[index]


async def test_copy_in_and_out(db_url: str) -> None:
    async with await connect(db_url) as conn:
        await conn.execute("create table items (id int, name text)")
        async with conn.cursor() as cur:
            async with cur.copy("copy items (id, name) from stdin") as copy:
                for i in range(1000):
                    await copy.write_row((i, f"item {i}"))
            rows = []
            async with cur.copy("copy (select id, name from items order by id) to stdout") as copy:
                async for row in copy.rows():
                    rows.append(row)
        assert len(rows) == 1000
        assert rows[999] == ("999", "item 999")


async def _active_query_count(admin: Connection[Any], pid: int) -> int:
    cur = await admin.execute(
        "select count(*) from pg_stat_activity where pid = %s and state = 'active'", (pid,)
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_cancel_scope_cancels_the_query_on_the_server(db_url: str) -> None:
    async with await connect(db_url) as conn, await connect(db_url) as admin:
        pid = conn.info.backend_pid
        started = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def long_query() -> None:
                started.set()
                await conn.execute("select pg_sleep(60)")

            tg.start_soon(long_query)
            await started.wait()

            async def running() -> bool:
                return await _active_query_count(admin, pid) == 1

            await wait_until(running)
            tg.cancel_scope.cancel()

        # The server is no longer running it, and the connection is usable.
        assert await _active_query_count(admin, pid) == 0
        cur = await conn.execute("select 42")
        assert await cur.fetchone() == (42,)
        assert conn.info.backend_pid == pid


async def test_cancelled_query_inside_transaction_leaves_a_recoverable_connection(
    db_url: str,
) -> None:
    async with await connect(db_url) as conn:
        with anyio.CancelScope() as scope:
            async with conn.transaction():
                scope.cancel()
                await conn.execute("select pg_sleep(60)")
        assert scope.cancelled_caught
        await conn.rollback()
        cur = await conn.execute("select 1")
        assert await cur.fetchone() == (1,)


async def test_multi_host_conninfo_tries_the_next_host(db_url: str) -> None:
    params = conninfo_to_dict(db_url)
    host = str(params.get("host") or "127.0.0.1")
    port = str(params.get("port") or "5432")
    # First a host where nothing listens, then the real one.
    bad = "/nonexistent-gw-socket-dir" if host.startswith("/") else "127.0.0.1"
    bad_port = port if host.startswith("/") else "1"
    url = make_conninfo(db_url, host=f"{bad},{host}", port=f"{bad_port},{port}")
    async with await connect(url) as conn:
        cur = await conn.execute("select 7")
        assert await cur.fetchone() == (7,)


async def test_host_names_are_resolved_with_anyio(db_url: str) -> None:
    from gw.db.connection import _resolve_hostnames

    attempts = await _resolve_hostnames({"host": "localhost", "port": "5432"})
    assert attempts
    assert all(a["hostaddr"] in ("127.0.0.1", "::1") for a in attempts)
    params = conninfo_to_dict(db_url)
    if str(params.get("host", "")).startswith("/"):
        return  # the embedded server listens on a Unix socket only
    url = make_conninfo(db_url, host="localhost")
    async with await connect(url) as conn:
        cur = await conn.execute("select 1")
        assert await cur.fetchone() == (1,)


async def test_unreachable_host_is_a_one_line_gw_error() -> None:
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/appdb"
    with pytest.raises(ConnectionFailed) as info:
        await connect(url)
    message = str(info.value)
    assert "\n" not in message
    assert "s3cret-pw" not in message
    assert "alice@127.0.0.1:1/appdb" in message
    assert "Check that PostgreSQL is running" in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.fixture
def password_rejecting_server() -> Iterator[int]:
    """A fake PostgreSQL that asks for a password and rejects it (SQLSTATE 28P01)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            with client:
                client.settimeout(5)
                first = client.recv(8)
                length, code = struct.unpack("!ii", first)
                if code == 80877103:  # SSLRequest: say no, then read the real startup
                    client.sendall(b"N")
                    first = client.recv(8)
                    length, code = struct.unpack("!ii", first)
                client.recv(length - 8)
                client.sendall(b"R" + struct.pack("!ii", 8, 3))  # cleartext password please
                client.recv(1024)
                fields = (
                    b'SFATAL\x00C28P01\x00Mpassword authentication failed for user "bob"\x00\x00'
                )
                client.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        listener.close()


async def test_wrong_password_is_a_one_line_gw_error(password_rejecting_server: int) -> None:
    url = f"postgresql://bob:hunter2-secret@127.0.0.1:{password_rejecting_server}/shop?sslmode=disable"
    with pytest.raises(GwError) as info:
        await connect(url)
    message = str(info.value)
    assert isinstance(info.value, ConnectionFailed)
    assert "\n" not in message
    assert "hunter2-secret" not in message
    assert f"bob@127.0.0.1:{password_rejecting_server}/shop" in message
    assert "password authentication failed" in message
    assert "Check the user name and password" in message


def test_describe_conninfo_never_shows_the_password() -> None:
    assert describe_conninfo("postgresql://u:pw@db.example:6543/app") == "u@db.example:6543/app"
    assert "pw" not in describe_conninfo("host=/run/pg user=u password=pw dbname=x")
    assert describe_conninfo("not a url ===") == "the configured database"


def test_sync_psycopg_is_untouched(db_url: str) -> None:
    # gw's subclass must not change stock psycopg behaviour for other users.
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
