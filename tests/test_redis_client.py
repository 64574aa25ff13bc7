"""The pipelined asyncio Redis client (``sessionware.stores.redis.resp``) against real servers.

Most tests use the shared server on 127.0.0.1:6379 (db 9, keys under a unique
prefix); tests that stop a server or need a password or a unix socket start
their own private ``redis-server``.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sessionware.stores.redis.resp import (
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    ConnectionFailedError,
    NoScriptError,
    ReplyError,
    RespClient,
)

from .test_redis_faults import PrivateRedis

REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
def raw(raw_redis: aioredis.Redis) -> aioredis.Redis:
    """A plain client on the test database, for writing and inspecting keys by hand."""
    return raw_redis


@pytest.fixture
async def prefix(raw: aioredis.Redis) -> AsyncIterator[str]:
    """A unique key prefix on the test database; its keys are deleted afterwards."""
    name = f"resp-{uuid.uuid4().hex[:12]}:"
    yield name
    keys = [k async for k in raw.scan_iter(match=name + "*", count=1000)]
    if keys:
        await raw.delete(*keys)


@pytest.fixture
async def client(raw: aioredis.Redis) -> AsyncIterator[RespClient]:
    c = RespClient.from_url(REDIS_URL)
    yield c
    await c.aclose()


def private(tmp_path: Path, *extra: str) -> PrivateRedis:
    server = PrivateRedis(tmp_path, durable=False)
    server.extra = list(extra)
    server.start()
    return server


# -- replies ---------------------------------------------------------------------------------------


async def test_reply_types(client: RespClient, prefix: str) -> None:
    k = prefix + "k"
    assert await client.execute("SET", k, b"v") == b"OK"
    assert await client.execute("GET", k) == b"v"
    assert await client.execute("GET", prefix + "missing") is None
    assert await client.execute("INCRBY", prefix + "n", 41) == 41
    assert await client.execute("RPUSH", prefix + "l", "a", b"b", 3, 1.5) == 4
    assert await client.execute("LRANGE", prefix + "l", 0, -1) == [b"a", b"b", b"3", b"1.5"]
    assert await client.execute("EVAL", "return {1, false, 'x', {2}}", 0) == [1, None, b"x", [2]]
    assert await client.ping()


@pytest.mark.parametrize(
    "value",
    [b"", b"\r\n", b"$5\r\nhello\r\n", b"*1\r\n:1\r\n", bytes(range(256)), b"x" * (4 * 1024 * 1024 + 3)],
    ids=["empty", "crlf", "bulk-lookalike", "array-lookalike", "all-bytes", "4MB"],
)
async def test_values_round_trip_byte_for_byte(client: RespClient, prefix: str, value: bytes) -> None:
    await client.execute("SET", prefix + "v", value)
    assert await client.execute("GET", prefix + "v") == value
    assert await client.execute("STRLEN", prefix + "v") == len(value)


async def test_unsupported_argument_is_a_clear_type_error(client: RespClient) -> None:
    with pytest.raises(TypeError, match="str, bytes, int or float"):
        await client.execute("SET", "k", None)
    assert await client.ping(), "a refused argument leaves the connection usable"


# -- pipelining ------------------------------------------------------------------------------------


async def test_concurrent_commands_get_their_own_replies(client: RespClient, prefix: str) -> None:
    """Thousands of coroutines share one connection; every reply reaches the caller it belongs to."""

    async def worker(i: int) -> tuple[int, bytes | None, int]:
        await asyncio.sleep(random.random() / 100)
        key = f"{prefix}{i}"
        await client.execute("SET", key, b"value-%d" % i)
        got = await client.execute("GET", key)
        length = await client.execute("APPEND", key, b"!")
        return i, got, length

    results = await asyncio.gather(*(worker(i) for i in range(3000)))
    for i, got, length in results:
        assert got == b"value-%d" % i
        assert length == len(got) + 1


async def test_commands_of_one_loop_iteration_share_one_write(client: RespClient, prefix: str) -> None:
    """Auto-pipelining: 500 commands issued together reach the server in a handful of writes."""
    await client.ping()
    conn = client._conn
    assert conn is not None
    assert conn.transport is not None
    writes = 0
    write = conn.transport.write

    def counting(data: bytes | bytearray | memoryview) -> None:
        nonlocal writes
        writes += 1
        write(data)

    conn.transport.write = counting  # type: ignore[method-assign]
    replies = await asyncio.gather(*(client.execute("INCR", prefix + "n") for _ in range(500)))
    assert sorted(replies) == list(range(1, 501))
    assert writes <= 3, writes


async def test_error_replies_are_typed_and_do_not_disturb_neighbours(client: RespClient, prefix: str) -> None:
    await client.execute("SET", prefix + "s", b"text")

    async def call(i: int) -> object:
        try:
            if i % 3 == 0:
                return await client.execute("LPUSH", prefix + "s", b"x")  # WRONGTYPE
            if i % 3 == 1:
                return await client.execute("EVALSHA", "0" * 40, 0)  # NOSCRIPT
            return await client.execute("ECHO", b"echo-%d" % i)
        except ReplyError as exc:
            return exc

    results = await asyncio.gather(*(call(i) for i in range(300)))
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert type(result) is ReplyError
            assert result.code == "WRONGTYPE"
        elif i % 3 == 1:
            assert isinstance(result, NoScriptError)
            assert result.code == "NOSCRIPT"
        else:
            assert result == b"echo-%d" % i
    with pytest.raises(ReplyError, match="unknown command"):
        await client.execute("NOSUCHCOMMAND")


async def test_a_cancelled_command_leaves_the_replies_in_step(client: RespClient, prefix: str) -> None:
    await client.execute("SET", prefix + "after", b"mine")
    blocked = asyncio.ensure_future(client.execute("BLPOP", prefix + "empty", "0.3"))
    after = asyncio.ensure_future(client.execute("GET", prefix + "after"))
    await asyncio.sleep(0.05)
    blocked.cancel()
    assert await after == b"mine", "the cancelled command's reply was dropped, not handed to the next caller"
    assert await client.execute("ECHO", b"next") == b"next"


# -- connections -----------------------------------------------------------------------------------


async def test_reconnects_after_the_server_drops_the_connection(
    client: RespClient, raw: aioredis.Redis, prefix: str
) -> None:
    """In-flight commands fail with a typed error when the connection drops; the next command reconnects."""
    await client.execute("CLIENT", "SETNAME", "resp-victim")
    first_id = await client.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(client.execute("BLPOP", prefix + "never", 10))
    await asyncio.sleep(0.05)
    assert await raw.client_kill_filter(_id=first_id) == 1
    with pytest.raises(ConnectionFailedError) as info:
        await asyncio.wait_for(blocked, 5)
    assert not isinstance(info.value, ConnectError), "it had been sent: its outcome is unknown"
    assert await client.execute("ECHO", b"back") == b"back"
    assert await client.execute("CLIENT", "ID") != first_id


async def test_restarted_server_is_reached_again(tmp_path: Path) -> None:
    server = private(tmp_path)
    client = RespClient.from_url(server.url)
    try:
        await client.execute("SET", "k", b"1")
        server.kill()
        await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ConnectError):
            await client.execute("GET", "k")  # the close while idle is noticed before the GET is sent
        with pytest.raises(ConnectError, match=f"127.0.0.1:{server.port}"):
            await client.execute("GET", "k")
        assert time.monotonic() - started < 1, "a refused connection fails at once"
        server.start()
        assert await client.execute("SET", "k", b"2") == b"OK"
        assert await client.execute("GET", "k") == b"2"
    finally:
        await client.aclose()
        server.kill()


async def test_concurrent_callers_share_one_connect(raw: aioredis.Redis) -> None:
    name = f"resp-{uuid.uuid4().hex[:8]}"
    shared = RespClient.from_url(REDIS_URL, client_name=name)
    try:
        await asyncio.gather(*(shared.execute("PING") for _ in range(200)))
        assert sum(1 for c in await raw.client_list() if c.get("name") == name) == 1
    finally:
        await shared.aclose()
    await asyncio.sleep(0.05)
    assert sum(1 for c in await raw.client_list() if c.get("name") == name) == 0, "aclose closes the socket"


async def test_closed_client_refuses_commands(raw: aioredis.Redis) -> None:
    client = RespClient.from_url(REDIS_URL)
    await client.ping()
    pending = asyncio.ensure_future(client.execute("BLPOP", f"resp-never-{uuid.uuid4().hex}", 5))
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await pending
    with pytest.raises(ClientClosedError, match="closed"):
        await client.execute("PING")


async def test_connect_timeout_bounds_a_handshake_that_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = RespClient.from_url(f"redis://127.0.0.1:{port}/3", connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ConnectError, match=r"timed out after 0\.3s"):
            await client.execute("PING")
        assert time.monotonic() - started < 1.5
        await client.aclose()


async def test_stalled_connection_is_dropped() -> None:
    """Commands that get no reply at all for ``stall_timeout`` fail, and the connection is dropped."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = RespClient.from_url(f"redis://127.0.0.1:{port}", stall_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="no reply"):
            await client.execute("PING")
        assert 0.25 < time.monotonic() - started < 2
        assert client._conn is None
        await client.aclose()


# -- URLs, AUTH, SELECT, unix sockets --------------------------------------------------------------


async def test_url_selects_the_database(raw: aioredis.Redis, prefix: str) -> None:
    key = prefix + "db"
    in_db9 = RespClient.from_url(REDIS_URL.rsplit("/", 1)[0] + "/9")
    in_db10 = RespClient.from_url(REDIS_URL.rsplit("/", 1)[0] + "/0?db=10")
    try:
        await in_db9.execute("SET", key, b"nine")
        assert await raw.get(key) == b"nine"
        assert await in_db10.execute("GET", key) is None
    finally:
        await in_db9.aclose()
        await in_db10.aclose()


async def test_password_and_acl_user_from_the_url(tmp_path: Path) -> None:
    server = private(tmp_path, "--requirepass", "s3cret", "--user", "alice", "on", ">w0nder land", "~*", "+@all")
    clients: list[RespClient] = []
    try:
        default = RespClient.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/2")
        alice = RespClient.from_url(f"redis://alice:w0nder%20land@127.0.0.1:{server.port}/2")
        clients += [default, alice]
        await default.execute("SET", "k", b"by-default")
        assert await alice.execute("GET", "k") == b"by-default"
        assert await alice.execute("ACL", "WHOAMI") == b"alice"
        for url in (
            f"redis://:wrong@127.0.0.1:{server.port}/0",
            f"redis://alice:wrong@127.0.0.1:{server.port}/0",
            f"redis://127.0.0.1:{server.port}/2",
        ):
            bad = RespClient.from_url(url)
            clients.append(bad)
            with pytest.raises(AuthenticationError) as info:
                await bad.execute("GET", "k")
            assert "wrong" not in str(info.value)
            assert f"127.0.0.1:{server.port}" in str(info.value)
        bad_db = RespClient.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/99")
        clients.append(bad_db)
        with pytest.raises(AuthenticationError, match="database 99"):
            await bad_db.execute("PING")
    finally:
        for c in clients:
            await c.aclose()
        server.kill()


async def test_unix_socket_url(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = private(tmp_path, "--unixsocket", str(path), "--unixsocketperm", "700")
    client = RespClient.from_url(f"unix://{path}?db=4")
    try:
        await client.execute("SET", "k", b"over a socket")
        tcp = RespClient.from_url(f"redis://127.0.0.1:{server.port}/4")
        assert await tcp.execute("GET", "k") == b"over a socket"
        await tcp.aclose()
    finally:
        await client.aclose()
        server.kill()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1", "unknown scheme"),
        ("redis://", "no host"),
        ("redis://127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1/nine", "database must be an integer"),
        ("redis://127.0.0.1/0?db=-1", "must not be negative"),
        ("redis://127.0.0.1/0?colour=blue", "unknown URL parameter"),
        ("redis://127.0.0.1/0?connect_timeout=soon", "connect_timeout"),
        ("redis://127.0.0.1/0?stall_timeout=0", "stall_timeout"),
        ("unix://", "socket's path"),
    ],
)
def test_bad_urls_are_value_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RespClient.from_url(url)


def test_url_parts_are_read() -> None:
    c = RespClient.from_url("rediss://bob:p%40ss@cache.example:6380/3?client_name=app&connect_timeout=2.5")
    assert (c.host, c.port, c.db, c.username, c.password) == ("cache.example", 6380, 3, "bob", "p@ss")
    assert (c.client_name, c.connect_timeout, c.ssl is not None) == ("app", 2.5, True)
    assert "p@ss" not in c.address
    u = RespClient.from_url("unix:///run/redis.sock?db=2", stall_timeout=None)
    assert (u.path, u.db, u.stall_timeout) == ("/run/redis.sock", 2, None)


# -- conveniences --------------------------------------------------------------------------------


async def test_scan_iter_and_delete(client: RespClient, prefix: str) -> None:
    await asyncio.gather(*(client.execute("SET", f"{prefix}{i}", b"") for i in range(2500)))
    names = {n async for n in client.scan_iter(match=prefix + "*", count=1000)}
    assert len(names) == 2500
    assert await client.delete(*names) == 2500
    assert await client.delete() == 0
    assert [n async for n in client.scan_iter(match=prefix + "*")] == []


def test_missing_hiredis_is_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['hiredis'] = None\n"
        "try:\n    import sessionware.stores.redis.resp\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "MissingExtraError" in done.stdout
    assert "hiredis" in done.stdout
    assert "pip install 'sessionware[redis]'" in done.stdout
