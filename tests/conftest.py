"""Fixtures that give each test a fresh store on every backend, against the real servers."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sessionware.store import BaseSessionStore
from sessionware.stores.memory import InMemorySessionStore

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
        from sessionware.stores.sql.sqlite import SQLiteSessionStore

        store = SQLiteSessionStore(tmp_path / f"{unique()}.db", **options)

        async def close_sqlite() -> None:
            await store.close()

        return store, close_sqlite
    if backend == "redis":
        from sessionware.stores.redis import RedisSessionStore

        prefix = unique("test-")
        store = RedisSessionStore.from_url(REDIS_URL, prefix=prefix, **options)

        async def drop_redis() -> None:
            client = store.client  # type: ignore[attr-defined]
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
            await store.close()

        return store, drop_redis
    if backend == "redis-py":
        import redis.asyncio as aioredis

        from sessionware.stores.redis import RedisSessionStore

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
        from sessionware.stores.sql.postgres import PostgresSessionStore

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
async def store(backend: str, tmp_path: Path) -> AsyncIterator[BaseSessionStore]:
    """A fresh store on the current backend, dropped afterwards."""
    s, cleanup = await open_backend(backend, tmp_path)
    try:
        yield s
    finally:
        await cleanup()


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Open extra stores on the current backend with options; all are cleaned up afterwards."""
    cleanups: list[Any] = []

    async def factory(**options: Any) -> BaseSessionStore:
        s, cleanup = await open_backend(backend, tmp_path, **options)
        cleanups.append(cleanup)
        return s

    yield factory
    for cleanup in reversed(cleanups):
        await cleanup()
