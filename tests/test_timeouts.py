"""The default operation timeout of the networked stores, against servers made slow for real.

PostgreSQL: another connection holds the row lock a write needs. Redis: the
server is paused (``CLIENT PAUSE``) on a ``redis-server`` of the test's own.
A call past its ``timeout`` raises :class:`StoreTimeoutError`; the store is
usable again as soon as the server is.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sessionware import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore, open_store
from sessionware.errors import StoreTimeoutError, StoreUnavailableError

from .conftest import POSTGRES_URL, require_server, unique
from .pgbouncer import free_port


def test_the_networked_stores_time_out_after_30_seconds_unless_told() -> None:
    assert PostgresSessionStore("postgresql://db.example/app").timeout == 30.0
    assert RedisSessionStore.from_url("redis://127.0.0.1:6390/0").timeout == 30.0
    assert open_store("postgresql://db.example/app?timeout=2").timeout == 2.0
    assert open_store("redis://127.0.0.1:6390/0?timeout=none").timeout is None
    assert RedisSessionStore.from_url("redis://127.0.0.1:6390/0", timeout=None).timeout is None
    # SQLite runs in the event loop, bounded by lock_timeout while it waits for the file; no default timeout.
    assert SQLiteSessionStore(":memory:").timeout is None


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresSessionStore]:
    require_server("postgres")
    store = PostgresSessionStore.from_url(f"{POSTGRES_URL}?timeout=0.5", table=unique("sessionware_timeout_"))
    yield store
    store.timeout = None
    await store.drop_tables()
    await store.close()


async def test_postgres_write_blocked_by_a_row_lock_times_out(pg_store: PostgresSessionStore, admin: Any) -> None:
    await pg_store.set("k", {"v": 1})
    tx = admin.transaction()
    await tx.start()
    await admin.execute(f'SELECT 1 FROM "{pg_store.table}" WHERE key = $1 FOR UPDATE', "k")
    started = time.monotonic()
    try:
        with pytest.raises(StoreTimeoutError, match=r"postgres set timed out after 0\.5s") as caught:
            await pg_store.set("k", {"v": 2})
        assert isinstance(caught.value, StoreUnavailableError)
        waited = time.monotonic() - started
        assert 0.4 < waited < 3
        assert await pg_store.get("k") == {"v": 1}  # reads are not blocked by the row lock
    finally:
        await tx.rollback()
    await pg_store.set("k", {"v": 3})  # the server is free again, and so is the pool
    assert await pg_store.get("k") == {"v": 3}
    # The cancelled statement did not linger on the server.
    stuck = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        f'%"{pg_store.table}"%',
    )
    assert stuck == 0


async def test_postgres_lease_wait_on_a_locked_table_times_out(pg_store: PostgresSessionStore, admin: Any) -> None:
    await pg_store.set("k", {"v": 1})
    async with admin.transaction():
        await admin.execute(f'LOCK TABLE "{pg_store.table}_locks" IN ACCESS EXCLUSIVE MODE')
        with pytest.raises(StoreTimeoutError, match="lock"):
            await pg_store.lock("k", lease=5, wait=5)
    locked = await pg_store.lock("k", lease=5, wait=5)
    await pg_store.unlock(locked.lease)


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own on a free port, so pausing it slows nobody else."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("the timeout tests need redis-server: apt-get install -y redis-server")
    workdir: Path = tmp_path_factory.mktemp("redis-timeout")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            assert process.poll() is None, "redis-server did not start"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("client", ["store client", "redis-py"])
async def test_redis_paused_server_times_out_then_recovers(own_redis: int, client: str) -> None:
    url = f"redis://127.0.0.1:{own_redis}/0"
    if client == "store client":
        store = RedisSessionStore.from_url(f"{url}?timeout=0.3", prefix=unique("to-"))
    else:
        store = RedisSessionStore(aioredis.from_url(url), unique("to-"), timeout=0.3)
    admin = aioredis.from_url(url)
    try:
        await store.set("a", {"v": "a"})
        await admin.client_pause(1500, all=True)
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError, match=r"redis get timed out after 0\.3s"):
            await store.get("a")
        assert time.monotonic() - started < 1.2
        with pytest.raises(StoreTimeoutError):
            await store.set("b", {"v": "b"})
        await asyncio.sleep(1.5)
        # After the pause every reply reaches its own caller: no late reply of a timed-out call is handed on.
        results = await asyncio.gather(*(store.get("a") for _ in range(20)), store.set("c", {"v": "c"}))
        assert results[:20] == [{"v": "a"}] * 20
        assert await store.get("c") == {"v": "c"}
        assert await store.get("b") in (None, {"v": "b"})  # the timed-out set may or may not have run
    finally:
        await admin.client_unpause()
        await admin.aclose()
        if client == "redis-py":
            await store.client.aclose()
        await store.close()


# -- the deadline every store call runs under ----------------------------------------------------


async def test_deadlines_of_different_lengths_each_fire_on_time() -> None:
    from sessionware._deadline import within

    loop = asyncio.get_running_loop()
    started = loop.time()

    async def slow(seconds: float, limit: float) -> float:
        try:
            await within(limit, asyncio.sleep(seconds))
        except TimeoutError:
            return loop.time() - started
        return -1.0

    # A long deadline first, then shorter ones: the one timer is moved earlier for them.
    results = await asyncio.gather(slow(5, 1.0), slow(5, 0.2), slow(0.05, 0.5), slow(5, 0.4))
    assert results[2] == -1.0  # finished before its deadline
    for limit, got in zip((1.0, 0.2, 0.4), (results[0], results[1], results[3]), strict=True):
        assert limit <= got < limit + 0.3, (limit, got)


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    from sessionware._deadline import within

    task = asyncio.create_task(within(10, asyncio.sleep(5)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # And a timed-out call leaves its task uncancelled: the caller goes on awaiting normally.
    with pytest.raises(TimeoutError):
        await within(0.05, asyncio.sleep(5))
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    await asyncio.sleep(0.01)
