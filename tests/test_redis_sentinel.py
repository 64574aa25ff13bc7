"""The Redis store through Redis Sentinel (redis-py's ``Sentinel``), against a deployment the tests start.

One master, one replica and three sentinels (tests/redis_sentinel.py). The
store opens ``redis+sentinel://…/mymaster?wait_replicas=1``: every write is
acknowledged only once the replica has it (``WAIT 1``), so a failover, asked
for or after a crash, keeps every acknowledged write. (``wait_replicas`` must
count every replica for that: with two replicas and ``wait_replicas=1``, a
write acknowledged by the replica that is not promoted is lost when it
resyncs from the new master; one run lost 2,943 of 11,679 such writes.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionware import RedisSessionStore, open_store
from sessionware.errors import InvalidStoreURLError, StoreError
from sessionware.stores.redis.drivers import SentinelDriver
from sessionware.testing import StoreContract

from .conftest import unique
from .redis_sentinel import LocalSentinel, Process


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    d = LocalSentinel(tmp_path_factory.mktemp("sentinel"))
    d.start()
    try:
        yield d
    finally:
        d.stop()


class TestContractThroughSentinel(StoreContract):
    """The contract suite on the master the sentinels name, each write waiting for one replica."""

    @pytest.fixture
    async def store(self, deployment: LocalSentinel) -> AsyncIterator[RedisSessionStore]:
        s = open_store(deployment.url(wait_replicas=1), prefix=unique("sentinel-"))
        assert isinstance(s, RedisSessionStore)
        assert isinstance(s.driver, SentinelDriver)
        yield s
        await s.close()


async def test_writes_reach_the_replicas_before_they_are_acknowledged(deployment: LocalSentinel) -> None:
    store = open_store(deployment.url(wait_replicas=1, wait_timeout=5), prefix=unique("sentinel-"))
    assert isinstance(store, RedisSessionStore)
    try:
        for i in range(50):
            await store.set(f"k{i}", {"i": i})
        master = deployment.master()
        for replica in (s for s in deployment.live_servers() if s is not master):
            with replica.client() as c:
                assert c.get(f"{store.prefix}:k49") is not None  # there already, no waiting
    finally:
        await store.close()


async def test_too_few_replicas_is_unavailable_not_acknowledged(deployment: LocalSentinel) -> None:
    """Asking for more replicas than exist: the write runs but is reported as not acknowledged."""
    store = open_store(deployment.url(wait_replicas=5, wait_timeout=0.2), prefix=unique("sentinel-"))
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="wait_replicas"):
            await store.set("k", {"v": 1})
        assert time.monotonic() - started < 5
        assert await store.get("k") == {"v": 1}  # a read waits for nobody
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("redis+sentinel://:secret@127.0.0.1:26379/", "service"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m/x", "database"),
        ("redis+sentinel://:secret@127.0.0.1:notaport/m", "port"),
        ("redis+sentinel://:secret@127.0.0.1:99999/m", "port"),
        ("redis+sentinel://:secret@:26379/m", "host"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m?wait_replicas=-1", "wait_replicas"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m?wait_timeout=0", "wait_timeout"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m?socket_timeout=x", "socket_timeout"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m?bogus=1", "bogus"),
        ("redis+sentinel://:secret@127.0.0.1:26379/m?timeout=later", "timeout"),
    ],
)
def test_a_bad_sentinel_url_is_a_typed_error_naming_the_part(url: str, part: str) -> None:
    with pytest.raises(InvalidStoreURLError, match=part) as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


def test_a_sentinel_url_names_every_sentinel_and_the_service() -> None:
    store = open_store(
        "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2,[::1]:26381/cache/2?prefix=app&wait_replicas=1&timeout=4"
    )
    assert isinstance(store, RedisSessionStore)
    assert isinstance(store.driver, SentinelDriver)
    kwargs = [n.connection_pool.connection_kwargs for n in store.driver.sentinel.sentinels]
    assert [(k["host"], k["port"]) for k in kwargs] == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26381)]
    assert store.driver.pool.service_name == "cache"  # type: ignore[attr-defined]
    assert store.driver.pool.connection_kwargs["db"] == 2
    assert store.driver.pool.connection_kwargs["password"] == "pw"
    assert (store.prefix, store.driver.wait_replicas, store.timeout) == ("app", 1, 4.0)


# -- failover under load -------------------------------------------------------------------------


class Load:
    """Writers of distinct keys and incrementers of one counter under leases, noting what was acknowledged."""

    def __init__(self, store: RedisSessionStore) -> None:
        self.store = store
        self.stop = asyncio.Event()
        self.acked: dict[str, float] = {}
        self.failed = 0
        self.increments = 0
        self.uncertain = 0

    async def writer(self, t: int) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"w{t}:{i}"
            try:
                await self.store.set(key, {"t": t, "i": i})
                self.acked[key] = time.monotonic()
            except StoreError:
                self.failed += 1
                await asyncio.sleep(0.01)
            i += 1

    async def incrementer(self) -> None:
        codec = self.store.codec
        while not self.stop.is_set():
            try:
                locked = await self.store.lock("counter", lease=5, wait=15)
            except StoreError:
                await asyncio.sleep(0.01)
                continue
            n = 0 if locked.record is None else codec.decode("counter", locked.record.data)["n"]
            try:
                await self.store.commit(locked.lease, codec.encode({"n": n + 1}))
                self.increments += 1
            except StoreError:
                self.uncertain += 1  # the commit may or may not have been applied

    async def run(self, fault: Any, *, before: float = 1.0, after: float = 1.5) -> float:
        """Run the load, call ``fault()`` (in a thread) after ``before`` seconds; return when the fault ended.

        The load goes on for ``after`` seconds past the fault, and longer (up to a minute) until 100 writes
        were acknowledged after it, so a slow machine still checks writes made on the new master.
        """
        tasks = [asyncio.create_task(self.writer(t)) for t in range(12)]
        tasks += [asyncio.create_task(self.incrementer()) for _ in range(4)]
        try:
            await asyncio.sleep(before)
            await asyncio.to_thread(fault)
            healed = time.monotonic()
            await asyncio.sleep(after)
            for _ in range(600):
                if sum(at > healed for at in self.acked.values()) >= 100:
                    break
                await asyncio.sleep(0.1)
        finally:
            self.stop.set()
            _, pending = await asyncio.wait(tasks, timeout=60)
            for task in pending:
                task.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        assert not pending, f"{len(pending)} load tasks did not stop within a minute of the end of the load"
        return healed

    async def check(self, url: str, healed: float) -> None:
        """Every acknowledged write is on the new master, read through a fresh store."""
        assert self.acked, "the load wrote nothing"
        assert any(at > healed for at in self.acked.values()), "no write was acknowledged after the failover"
        fresh = open_store(url, prefix=self.store.prefix)
        try:
            values = await asyncio.gather(*(fresh.get(key) for key in self.acked))
            missing = [key for key, value in zip(self.acked, values, strict=True) if value is None]
            times = sorted(self.acked[k] - healed for k in missing)
            assert missing == [], (
                f"{len(missing)} of {len(self.acked)} acknowledged writes lost {times[:3]} {times[-3:]}"
            )
            for key, value in zip(self.acked, values, strict=True):
                t, i = key[1:].split(":")
                assert value == {"t": int(t), "i": int(i)}
            counter = await fresh.get("counter")
            n = 0 if counter is None else counter["n"]
            assert self.increments <= n <= self.increments + self.uncertain
        finally:
            await fresh.close()
        print(
            f"\nsentinel: {len(self.acked)} writes and {self.increments} increments acknowledged, all present; "
            f"{self.failed} writes and {self.uncertain} increments refused or unconfirmed during the failover"
        )


@pytest.fixture
def fresh_deployment(tmp_path: Path) -> Iterator[LocalSentinel]:
    d = LocalSentinel(tmp_path / "sentinel")
    d.start()
    try:
        yield d
    finally:
        d.stop()


async def _fault_under_load(d: LocalSentinel, fault: Callable[[Process], None], *, after: float) -> None:
    """Run the load through ``wait_replicas=1``, call ``fault(old_master)`` mid-load, check nothing acknowledged
    is lost and the store went on writing on the new master."""
    url = d.url(wait_replicas=1)
    store = open_store(url, prefix=unique("fo-"))
    assert isinstance(store, RedisSessionStore)
    old = d.master()

    def fail_over() -> None:
        fault(old)
        d.wait_settled(d.wait_new_master(old))

    load = Load(store)
    healed = await load.run(fail_over, after=after)
    assert d.master() is not old
    await load.check(url, healed)
    await store.close()


@pytest.mark.slow
async def test_a_failover_asked_for_mid_load_loses_no_acknowledged_write(fresh_deployment: LocalSentinel) -> None:
    await _fault_under_load(fresh_deployment, lambda old: fresh_deployment.failover(), after=1.5)


@pytest.mark.slow
async def test_a_master_killed_mid_load_loses_no_acknowledged_write(fresh_deployment: LocalSentinel) -> None:
    d = fresh_deployment

    def crash(old: Process) -> None:
        d.kill(old)
        d.wait_new_master(old)
        # The new master has no replica to acknowledge writes until the crashed server comes back as one.
        d.restart(old)

    await _fault_under_load(d, crash, after=2.0)
