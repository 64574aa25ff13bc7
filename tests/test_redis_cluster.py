"""The Redis store on a real Redis Cluster (3 primaries, 3 replicas) that this module starts once, via RedisCluster.

The cluster's nodes are ``redis-server`` processes on free loopback ports
(see ``tests/redis_cluster.py``); the shared server on 6379 is not involved.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import RedisCluster

from sessionware import open_store
from sessionware.bot import Context, Router, session
from sessionware.errors import InvalidKeyError, InvalidStoreURLError, StoreUnavailableError
from sessionware.stores.redis import RedisSessionStore
from sessionware.stores.redis.drivers import RedisClusterDriver
from sessionware.testing import StoreContract

from .helpers import message
from .redis_cluster import LocalCluster
from .test_redis_faults import Proxy, Writers

PREFIX = "cl"


def unique(prefix: str = PREFIX) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the whole module, started by the first test that needs it and stopped after the last."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    local.start()
    yield local
    local.stop()


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    """A redis-py cluster client, as a user would make it."""
    c = await RedisCluster(host="127.0.0.1", port=cluster.port).initialize()  # knows every node from now on
    yield c
    await c.aclose()


async def drop(client: RedisCluster, prefix: str) -> None:
    """Delete every key under ``prefix`` on every primary."""
    async for name in client.scan_iter(match=prefix + ":*", count=1000):
        await client.delete(name)


@pytest.fixture
async def store(client: RedisCluster) -> AsyncIterator[RedisSessionStore]:
    """A store under a fresh prefix over the user's cluster client; its keys are deleted afterwards."""
    prefix = unique()
    opened = RedisSessionStore(client, prefix)
    assert isinstance(opened.driver, RedisClusterDriver)
    yield opened
    await drop(client, prefix)


class TestContractOnCluster(StoreContract):
    """The whole shipped contract suite, through a user's ``redis.asyncio.RedisCluster`` (the ``store`` above)."""


# -- hash slots -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "lease"),
    [
        ("plain", "{prefix}:\x00lockt:{{{prefix}:plain}}"),
        ("user:{42}", "{prefix}:\x00lock:user:{{42}}"),
        ("x{y}z{w}", "{prefix}:\x00lock:x{{y}}z{{w}}"),
        ("a{b", "{prefix}:\x00lockt:{{{prefix}:a{{b}}"),
        ("k*?[1]", "{prefix}:\x00lockt:{{{prefix}:k*?[1]}}"),
    ],
)
async def test_lease_shares_the_records_slot(
    store: RedisSessionStore, client: RedisCluster, key: str, lease: str
) -> None:
    """Lock+read and commit touch the lease and the record in one script: one slot, no CROSSSLOT."""
    name = lease.format(prefix=store.prefix)
    record = f"{store.prefix}:{key}"
    assert client.keyslot(name) == client.keyslot(record)
    await store.set(key, {"n": 1})
    held = await store.lock(key, lease=5, wait=0)
    assert await client.get(name) == held.lease.token.encode()
    assert held.record is not None
    renewed = await store.renew(held.lease)
    await store.commit(renewed, store.codec.encode({"n": 2}))
    assert await client.exists(name) == 0
    assert await store.get(key) == {"n": 2}
    again = await store.lock(key, lease=5, wait=0)
    await store.unlock(again.lease)
    assert await client.exists(name) == 0
    assert [k async for k in store.scan()] == [key]


async def test_agent_keys_keep_one_session_in_one_slot(store: RedisSessionStore, client: RedisCluster) -> None:
    """``agent:s:{ID}`` and friends: record, logs, lease and index of one session hash to slot ``ID``."""
    sid = uuid.uuid4().hex
    keys = [f"agent:s:{{{sid}}}", f"agent:h:{{{sid}}}", f"agent:t:{{{sid}}}", f"agent:u:alice:{sid[:8]}:{{{sid}}}"]
    for key in keys:
        await store.set(key, {"k": key})
        await store.log_append(key, [{"k": key}])
        held = await store.lock(key, lease=5, wait=0)
        await store.commit(held.lease, store.codec.encode({"k": key, "locked": True}))
    names = [k async for k in client.scan_iter(match=store.prefix + ":*")]
    assert len(names) == 2 * len(keys), names  # records and logs; every lease was released
    assert {client.keyslot(n) for n in names} == {client.keyslot(sid)}
    for key in keys:
        assert await store.get(key) == {"k": key, "locked": True}


async def test_a_tag_in_the_prefix_puts_every_key_in_its_slot(client: RedisCluster) -> None:
    prefix = "{" + unique() + "}"
    store = RedisSessionStore(client, prefix)
    try:
        for key in ("a", "b:{7}", "c}"):
            await store.set(key, {"k": key})
            await store.log_append(key, [{"k": key}])
            await store.commit((await store.lock(key, lease=5, wait=0)).lease, store.codec.encode({"k": 1}))
        names = [k async for k in client.scan_iter(match=prefix + ":*")]
        assert len(names) == 6
        assert {client.keyslot(n) for n in names} == {client.keyslot(prefix)}
    finally:
        await drop(client, prefix)


@pytest.mark.parametrize("key", ["a}b", "{}x", "x{}y}", "}{", "end}"])
async def test_keys_that_cannot_share_a_slot_refuse_leases_only(store: RedisSessionStore, key: str) -> None:
    """A ``}`` without a valid hash tag: no lease name can share the record's slot, so leases are refused."""
    with pytest.raises(InvalidKeyError, match="Redis Cluster") as info:
        await store.lock(key, lease=5, wait=0)
    assert "hash tag" in str(info.value)
    await store.set(key, {"n": 1})
    assert await store.get(key) == {"n": 1}
    version = await store.set_versioned(key, b'{"n":2}', expected=None)
    await store.set_versioned(key, b'{"n":3}', expected=version)
    assert await store.log_append(key, [{"n": 1}]) == [1]
    assert [k async for k in store.scan()] == [key]


async def test_a_prefix_opening_a_tag_refuses_leases(client: RedisCluster) -> None:
    prefix = unique("open{")
    store = RedisSessionStore(client, prefix)
    try:
        with pytest.raises(InvalidKeyError, match="prefix"):
            await store.lock("k", lease=5, wait=0)
        await store.set("k", {"n": 1})
        assert await store.get("k") == {"n": 1}
    finally:
        await drop(client, prefix)


async def test_keys_of_many_slots_on_every_primary(
    store: RedisSessionStore, client: RedisCluster, cluster: LocalCluster
) -> None:
    keys = [f"user:{i}" for i in range(300)]
    owners = {cluster.primary_for_slot(client.keyslot(f"{store.prefix}:{k}")).port for k in keys}
    assert len(owners) == 3, "the keys are spread over every primary"
    await asyncio.gather(*(store.set(k, {"k": k}) for k in keys))
    await asyncio.gather(*(store.log_append(k, [{"k": k}]) for k in keys))
    helds = await asyncio.gather(*(store.lock(k, lease=5, wait=0) for k in keys))
    await asyncio.gather(*(store.commit(h.lease, store.codec.encode({"k": h.lease.key, "v": 2})) for h in helds))
    assert await asyncio.gather(*(store.get(k) for k in keys)) == [{"k": k, "v": 2} for k in keys]
    assert sorted([k async for k in store.scan()]) == sorted(keys)
    assert sorted([k async for k in store.scan("user:1")]) == sorted(k for k in keys if k.startswith("user:1"))
    assert len([k async for k in store.scan(limit=250)]) == 250


@pytest.mark.parametrize("isolation", ["local", "distributed"])
async def test_hundred_concurrent_updates_to_one_key_lose_nothing(store: RedisSessionStore, isolation: str) -> None:
    router = Router()
    router.use(session(store, isolation=isolation))  # type: ignore[arg-type]

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        n = ctx.session.get("n", 0)
        await asyncio.sleep(0)  # a handler that awaits something between read and write
        ctx.session["n"] = n + 1

    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(100)))
    assert await store.get("1") == {"n": 100}


# -- redirects, URLs, at most once ------------------------------------------------------------------


async def test_a_stale_slot_map_follows_the_moved_redirect(store: RedisSessionStore, client: RedisCluster) -> None:
    await store.set("k", {"n": 1})
    slot = client.keyslot(f"{store.prefix}:k")
    owner = client.nodes_manager.slots_cache[slot][0]
    other = next(node for node in client.get_primaries() if node.name != owner.name)
    client.nodes_manager.slots_cache[slot] = [other]  # as if the slot had moved since the map was loaded
    assert await store.get("k") == {"n": 1}
    assert client.nodes_manager.slots_cache[slot][0].name == owner.name, "MOVED patched the map"
    client.nodes_manager.slots_cache[slot] = [other]
    await store.commit((await store.lock("k", lease=5, wait=0)).lease, store.codec.encode({"n": 2}))
    assert await store.get("k") == {"n": 2}


async def test_from_url_opens_and_closes_its_own_cluster_client(cluster: LocalCluster, client: RedisCluster) -> None:
    prefix = unique()
    name = unique("swcluster")
    store = RedisSessionStore.from_url(f"{cluster.url}&client_name={name}", prefix=prefix, timeout=5)
    assert isinstance(store.client, RedisCluster)
    assert store.timeout == 5
    await store.set("k", {"n": 1})
    assert await store.get("k") == {"n": 1}

    assert name in cluster.client_names()
    await store.close()
    assert name not in cluster.client_names()
    reopened: Any = open_store(f"{cluster.url}&prefix={prefix}")
    assert await reopened.get("k") == {"n": 1}
    await reopened.close()
    await drop(client, prefix)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:7000?cluster=maybe", "unix:///tmp/redis.sock?cluster=true", "redis://u:hunter2@h/3?cluster=1"],
)
def test_bad_cluster_urls_are_typed(url: str) -> None:
    with pytest.raises(InvalidStoreURLError) as info:
        RedisSessionStore.from_url(url)
    assert "hunter2" not in str(info.value)


def test_decoding_cluster_client_refused() -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisSessionStore(RedisCluster(host="127.0.0.1", port=7000, decode_responses=True))


async def test_a_lost_reply_is_never_sent_again_on_a_cluster(cluster: LocalCluster, client: RedisCluster) -> None:
    """A proxy in front of the key's primary swallows one reply: the write went out once and ran once."""
    prefix = unique()
    slot = client.keyslot("k")  # key "{k}": its record and its log share slot "k"
    owner = cluster.primary_for_slot(slot)
    proxy = Proxy(owner.port)
    await proxy.start()
    first = next(node for node in cluster.live() if node is not owner)

    def through_proxy(address: tuple[str, int]) -> tuple[str, int]:
        return ("127.0.0.1", proxy.port) if address[1] == owner.port else address

    routed = RedisCluster(host="127.0.0.1", port=first.port, address_remap=through_proxy)
    store = RedisSessionStore(routed, prefix)
    try:
        assert await store.log_append("{k}", [{"n": 1}]) == [1]
        await store.set("{k}", {"v": 1})
        writes: list[tuple[bytes, Callable[[], Awaitable[object]]]] = [
            (b"EVALSHA", lambda: store.log_append("{k}", [{"n": 2}])),
            (b"SET", lambda: store.set("{k}", {"v": 2})),
        ]
        for command, write in writes:
            await store.get("{k}")  # a live connection, so the dropped reply is the write's own
            before = proxy.count(command)
            proxy.drop_replies = 1
            with pytest.raises(StoreUnavailableError):
                await write()
            assert proxy.count(command) == before + 1, command
        assert [e.value for e in await store.log_read("{k}")] == [{"n": 1}, {"n": 2}], "the append ran once"
        assert await store.get("{k}") == {"v": 2}
        assert await store.log_append("{k}", [{"n": 3}]) == [3]
    finally:
        await routed.aclose()
        await proxy.close()
        await drop(client, prefix)


# -- several processes, and a primary that dies -----------------------------------------------------


@pytest.mark.slow
async def test_counter_across_processes(cluster: LocalCluster, client: RedisCluster) -> None:
    """4 processes x 25 tasks x 20 increments of one session under distributed isolation: exactly 2000."""
    from .test_multiprocess import PROCESSES, run_workers

    prefix = unique("mp")
    url = f"{cluster.url}&prefix={prefix}"
    tasks, updates = 25, 20
    started = time.monotonic()
    run_workers({"url": url, "mode": "counter", "tasks": tasks, "updates": updates, "isolation": "distributed"})
    store: Any = open_store(url)
    try:
        assert await store.get("1") == {"n": PROCESSES * tasks * updates}
        await store.unlock((await store.lock("1", lease=1, wait=0)).lease)  # every lease was released
    finally:
        await store.close()
        await drop(client, prefix)
    assert time.monotonic() - started < 60


@pytest.mark.slow
async def test_failover_keeps_every_acknowledged_write(cluster: LocalCluster, client: RedisCluster) -> None:
    """Kill a primary (SIGKILL) mid-run: its replica takes over, every acknowledged write and append is there.

    Redis replicates asynchronously, so a write acknowledged in the instant
    before a crash can be lost whatever the client does (Redis's documented
    trade-off). The primary's writes are therefore held (``CLIENT PAUSE``, as
    in a manual failover) until its replica has all it acknowledged; writers
    keep running, those of the held primary wait, and then it is killed.
    """
    prefix = unique()
    store = RedisSessionStore(RedisCluster(host="127.0.0.1", port=cluster.port), prefix, retries=3)
    victim = cluster.primary_for_slot(client.keyslot(f"{prefix}:\x00log:log"))  # the log lives on the victim
    heir = cluster.replica_of(victim)
    writers = Writers(store)
    try:
        await asyncio.sleep(0.5)
        assert writers.acked
        await cluster.drain(victim, heir)
        assert heir.replication()["slave_repl_offset"] > 0, "the replica had the primary's writes"
        cluster.kill(victim)
        started = time.monotonic()
        while cluster.role(heir) != "master" or heir.cluster_info()["cluster_state"] != "ok":
            assert time.monotonic() - started < 20, "the replica was not promoted"
            await asyncio.sleep(0.1)
        promoted, appended = len(writers.acked), len(writers.appended)
        await asyncio.sleep(1.0)
        await writers.stop()
        assert writers.failures, "writes to the dead primary failed, typed, during the failover"
        assert all(exc.__cause__ is not None for exc in writers.failures), "driver errors are chained"
        assert len(writers.acked) > promoted + 8, "the store works again after the failover"
        assert len(writers.appended) > appended + 8, "appends to the promoted replica work again"
        owner = cluster.slot_owners()
        moved = [k for k in writers.acked if owner(client.keyslot(f"{prefix}:{k}")) is heir]
        assert moved, "some acknowledged writes live on the promoted replica"
        await writers.check()
        held = await store.lock(moved[0], lease=5, wait=1)
        await store.commit(held.lease, store.codec.encode({"after": "failover"}))
        assert await store.get(moved[0]) == {"after": "failover"}
    finally:
        await writers.stop()
        await store.client.aclose()
        await drop(client, prefix)
        if victim.process is None:
            cluster.restart(victim)


async def test_an_agent_turn_on_the_cluster_is_one_script_and_lists_by_activity(store: RedisSessionStore) -> None:
    """The record and logs of a session share a slot, so the fenced append is one script; the user's activity
    index lies in another slot and is put by a second."""
    from sessionware.agents import SessionManager

    manager = SessionManager(store)
    first = await manager.create_session("alice")
    second = await manager.create_session("alice")
    await manager.add_message(second.id, "user", "warm")
    sent: list[str] = []
    script = store.driver.script

    async def counted(*args: Any) -> Any:
        sent.append("script")
        return await script(*args)

    store.driver.script = counted  # type: ignore[method-assign,assignment]
    try:
        await manager.add_message(first.id, "user", "hello")
    finally:
        store.driver.script = script  # type: ignore[method-assign]
    assert sent == ["script", "script"]  # the fenced append, then the index put in the user's slot
    page = await manager.list_sessions("alice")
    assert [s.id for s in page.sessions] == [first.id, second.id]
    got = await manager.get_session(first.id)
    assert got is not None
    assert got.message_count == 1
