"""Fixtures that give each test a fresh store on every backend, against the real servers.

Time: a test that asks for ``advance`` (or ``clock``) gets memory stores that
run on its :class:`~sessionware.testing.FakeClock`, and ``await advance(s)``
steps that clock on memory and sleeps ``s`` for real on the other backends.
Every other test's memory store runs on the real monotonic clock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sessionware import BaseSessionStore, InMemorySessionStore
from sessionware.testing import Advance, FakeClock

REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get("SESSIONWARE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

BACKENDS = ["memory", "sqlite", "redis", "redis-py", "postgres"]

START_HINTS = {
    "redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    "redis-py": "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    "postgres": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
}
PORTS = {"redis": 6379, "redis-py": 6379, "postgres": 5432}


def require_server(backend: str) -> None:
    """Skip (or with CI=true, fail) when the backend's server is not listening on loopback."""
    port = PORTS.get(backend)
    if port is None:
        return
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        message = f"{backend} is not running on 127.0.0.1:{port}; {START_HINTS[backend]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def unique(prefix: str = "t") -> str:
    """A name no other test (or test run) uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


StoreFactory = Callable[..., Any]


async def open_backend(backend: str, tmp_path: Path, **options: Any) -> tuple[BaseSessionStore, Any]:
    """Open a fresh, empty store on ``backend``; return it with a cleanup coroutine function."""
    require_server(backend)
    if backend == "memory":
        store: BaseSessionStore = InMemorySessionStore(**options)

        async def nothing() -> None:
            return None

        return store, nothing
    if backend == "sqlite":
        from sessionware import SQLiteSessionStore

        store = SQLiteSessionStore(tmp_path / f"{unique()}.db", **options)

        async def close_sqlite() -> None:
            await store.close()

        return store, close_sqlite
    if backend == "redis":
        from sessionware import RedisSessionStore

        prefix = unique("test-")
        redis_store = RedisSessionStore.from_url(REDIS_URL, prefix=prefix, **options)

        async def drop_redis() -> None:
            client = redis_store.client
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await redis_store.close()

        return redis_store, drop_redis
    if backend == "redis-py":
        import redis.asyncio as aioredis

        from sessionware import RedisSessionStore

        prefix = unique("test-")
        client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=64))
        store = RedisSessionStore(client, prefix, **options)

        async def drop_redis_py() -> None:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

        return store, drop_redis_py
    if backend == "postgres":
        from sessionware import PostgresSessionStore

        table = unique("sessionware_test_")
        store = PostgresSessionStore.from_url(POSTGRES_URL, table=table, **options)

        async def drop_postgres() -> None:
            await store.drop_tables()
            await store.close()

        return store, drop_postgres
    raise ValueError(backend)


@pytest.fixture
async def raw_redis() -> AsyncIterator[Any]:
    """A plain redis-py client on the test database, for writing and inspecting keys by hand."""
    require_server("redis")
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn ("redis-py": the Redis store over a redis-py client the user passes in, as in the seed)."""
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock; memory stores of a test that asks for it (or for ``advance``) run on it."""
    return FakeClock()


@pytest.fixture
def advance(backend: str, clock: FakeClock) -> Advance:
    """Let seconds pass: steps the memory store's fake clock; sleeps for real on the servers."""
    if backend == "memory":
        return clock.sleep

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    return sleep


def _clock_options(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """``clock=`` for a memory store when the test uses the fake clock; nothing otherwise."""
    if backend == "memory" and "clock" in request.fixturenames:
        return {"clock": request.getfixturevalue("clock")}
    return {}


@pytest.fixture
async def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[BaseSessionStore]:
    """A fresh store on the current backend, dropped afterwards."""
    s, cleanup = await open_backend(backend, tmp_path, **_clock_options(backend, request))
    try:
        yield s
    finally:
        await cleanup()


@pytest.fixture
async def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Open extra stores on the current backend with options; all are cleaned up afterwards."""
    cleanups: list[Any] = []
    clock_options = _clock_options(backend, request)

    async def factory(**options: Any) -> BaseSessionStore:
        s, cleanup = await open_backend(backend, tmp_path, **{**clock_options, **options})
        cleanups.append(cleanup)
        return s

    yield factory
    for cleanup in reversed(cleanups):
        await cleanup()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh persistent store that several processes can open, removed afterwards."""
    backend = request.param
    require_server(backend)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    from sessionware import open_store

    if backend == "redis":
        prefix = unique("shared-")
        yield f"{REDIS_URL}?prefix={prefix}"
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    table = unique("sessionware_shared_")
    yield f"{POSTGRES_URL}?table={table}"
    store = open_store(f"{POSTGRES_URL}?table={table}")
    await store.drop_tables()  # type: ignore[attr-defined]
    await store.close()


@pytest.fixture
async def admin() -> AsyncIterator[Any]:
    """A PostgreSQL connection of our own that kills, locks and inspects, as an operator would."""
    require_server("postgres")
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    yield conn
    await conn.close()
