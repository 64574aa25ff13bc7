"""The Redis backend against the real server on 127.0.0.1:6379 (db 9): key layout, isolation, errors, logs."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from sessionware.bot import Context, Router, session
from sessionware.errors import (
    ConflictError,
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    SessionDecodeError,
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    ValueTooLargeError,
)
from sessionware.store import (
    ClosableStore,
    ExpiringStore,
    LogStore,
    RawStore,
    ScannableStore,
    SessionStore,
)
from sessionware.stores.redis import RedisSessionStore
from sessionware.stores.redis.resp import ReplyError, RespClient
from sessionware.testing import StoreContract

from .helpers import message

REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

OpenStore = Callable[..., Awaitable[RedisSessionStore]]


def unique(prefix: str = "rt") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@pytest.fixture
def raw(raw_redis: aioredis.Redis) -> aioredis.Redis:
    """A plain client on the test database, for writing and inspecting keys by hand."""
    return raw_redis


@pytest.fixture
async def open_store(raw: aioredis.Redis) -> AsyncIterator[OpenStore]:
    """Open stores with any prefix (glob characters too); their keys are deleted afterwards."""
    opened: list[RedisSessionStore] = []

    async def factory(prefix: str | None = None, **options: Any) -> RedisSessionStore:
        store = RedisSessionStore.from_url(REDIS_URL, prefix=prefix or unique(), **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        names = [k async for k in raw.scan_iter(match=escape(store.prefix) + ":*", count=1000)]
        if names:
            await raw.delete(*names)
        await store.close()


CLIENT_KINDS = ["resp", "redis-py"]


def open_kind(kind: str, prefix: str) -> tuple[RedisSessionStore, aioredis.Redis | None]:
    """A store talking through our own client (``from_url``) or through a redis-py client passed in."""
    if kind == "resp":
        return RedisSessionStore.from_url(REDIS_URL, prefix=prefix), None
    client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=64))
    return RedisSessionStore(client, prefix), client


@pytest.fixture(params=CLIENT_KINDS)
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client the store talks through."""
    return str(request.param)


@pytest.fixture
async def store(client_kind: str, raw: aioredis.Redis) -> AsyncIterator[RedisSessionStore]:
    """A fresh store under a unique prefix on each client kind; its keys are deleted afterwards."""
    prefix = unique("test-")
    opened, client = open_kind(client_kind, prefix)
    yield opened
    names = [k async for k in raw.scan_iter(match=escape(prefix) + ":*", count=1000)]
    if names:
        await raw.delete(*names)
    await opened.close()
    if client is not None:
        await client.aclose()


class TestContractThroughRedisPy(StoreContract):
    """The whole contract suite with a user's redis-py client (``test_contract.py`` covers ``from_url``)."""

    @pytest.fixture
    async def store(self, raw: aioredis.Redis) -> AsyncIterator[RedisSessionStore]:
        prefix = unique("test-")
        opened, client = open_kind("redis-py", prefix)
        yield opened
        names = [k async for k in raw.scan_iter(match=escape(prefix) + ":*", count=1000)]
        if names:
            await raw.delete(*names)
        assert client is not None
        await client.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- capabilities and key layout ---------------------------------------------------------------


async def test_has_every_capability(store: RedisSessionStore) -> None:
    for protocol in (SessionStore, RawStore, ExpiringStore, ScannableStore, ClosableStore, LogStore):
        assert isinstance(store, protocol), protocol.__name__


async def test_record_layout_is_prefix_colon_key(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    await store.set("user:42", {"n": 1})
    stored = await raw.get(f"{store.prefix}:user:42")
    assert isinstance(stored, bytes)
    assert re.fullmatch(rb's1:[1-9][0-9]{0,18}:\{"n":1\}', stored), stored
    await store.set("ttl", {"n": 2}, ttl=30)
    assert 29_000 < await raw.pttl(f"{store.prefix}:ttl") <= 30_000
    await store.delete("user:42")
    assert await raw.exists(f"{store.prefix}:user:42") == 0


async def test_every_write_draws_a_new_version(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    name = f"{store.prefix}:v"
    versions = set()
    for _ in range(50):
        await store.set("v", {"same": "value"})
        got = await store.get_versioned("v")
        assert got is not None
        assert await raw.get(name) == b"s1:%d:%b" % (got.version, got.data)
        assert 0 < got.version < 2**63
        versions.add(got.version)
    assert len(versions) == 50


async def test_touch_none_removes_expiry(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    await store.set("t", {"n": 1}, ttl=30)
    assert await store.touch("t", None)
    assert await store.expires_in("t") is None
    assert await store.get("t") == {"n": 1}
    assert not await store.touch("missing", None)
    assert not await raw.exists(f"{store.prefix}:missing")


async def test_user_client_seed_style(raw: aioredis.Redis) -> None:
    """A client made by the user works, and closing the store leaves that client open."""
    client = aioredis.Redis(host="127.0.0.1", port=6379, db=9)
    prefix = unique()
    store = RedisSessionStore(client, prefix)
    try:
        await store.set("alice", {"step": 2})
        assert await store.get("alice") == {"step": 2}
        stored = await raw.get(f"{prefix}:alice")
        assert isinstance(stored, bytes)
        assert stored.endswith(b':{"step":2}')
        assert await store.log_append("alice", [{"m": 1}]) == [1]
        await store.close()
        assert await client.ping()
        with pytest.raises(StoreClosedError):
            await store.get("alice")
        assert await RedisSessionStore(client, prefix).get("alice") == {"step": 2}
    finally:
        await client.delete(f"{prefix}:alice", f"{prefix}:\x00log:alice")
        await client.aclose()


async def test_from_url_store_closes_its_own_client(raw: aioredis.Redis, open_store: OpenStore) -> None:
    name = unique("swclose")
    store = await open_store(client_name=name)
    await store.set("k", {"v": 1})

    async def connected() -> bool:
        return any(c.get("name") == name for c in await raw.client_list())

    assert await connected()
    await store.close()
    assert not await connected()


def test_default_prefix_is_the_seeds() -> None:
    store = RedisSessionStore(aioredis.Redis(host="127.0.0.1", db=9))
    assert store.prefix == "session"


# -- bad configuration ---------------------------------------------------------------------------


def test_from_url_bad_scheme_is_typed() -> None:
    with pytest.raises(InvalidStoreURLError, match="scheme") as info:
        RedisSessionStore.from_url("http://user:hunter2@127.0.0.1:6379/9")
    assert isinstance(info.value, ValueError)
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_from_url_cluster_false_is_one_server() -> None:
    store = RedisSessionStore.from_url(f"{REDIS_URL}?cluster=false&client_name=x", retries=1, max_size=10)
    assert isinstance(store.client, RespClient)
    assert store.client.client_name == "x"
    assert (store.retries, store.max_size) == (1, 10)
    assert not store.driver.cluster


def test_from_url_not_a_string() -> None:
    with pytest.raises(InvalidStoreURLError):
        RedisSessionStore.from_url(b"redis://127.0.0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "app:session", "a\x00b", 7])
def test_bad_prefix_refused(prefix: Any) -> None:
    with pytest.raises(InvalidKeyError):
        RedisSessionStore.from_url(REDIS_URL, prefix=prefix)
    with pytest.raises(InvalidKeyError):
        RedisSessionStore(aioredis.Redis(host="127.0.0.1", db=9), prefix)


def test_decoding_client_refused() -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisSessionStore(aioredis.Redis(host="127.0.0.1", db=9, decode_responses=True))
    with pytest.raises(TypeError, match="decode_responses"):
        RedisSessionStore.from_url(REDIS_URL, decode_responses=True)


def test_not_a_redis_client_refused() -> None:
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        RedisSessionStore(object())  # type: ignore[arg-type]


# -- isolation: glob characters and prefixes -----------------------------------------------------

GLOB_KEYS = ["k", "k*", "k?", "k[1]", "k1", "k\\", "k\\*", "k]", "k[", "kx"]


async def test_glob_characters_in_keys_stay_literal(store: RedisSessionStore) -> None:
    for i, key in enumerate(GLOB_KEYS):
        await store.set(key, {"i": i})
    await store.delete("k*")
    await store.delete("k?")
    await store.delete("k[1]")
    assert await store.get("k*") is None
    for i, key in enumerate(GLOB_KEYS):
        if key not in ("k*", "k?", "k[1]"):
            assert await store.get(key) == {"i": i}, key
    assert [k async for k in store.scan("k\\")] != []
    assert sorted([k async for k in store.scan("k\\")]) == ["k\\", "k\\*"]
    assert [k async for k in store.scan("k]")] == ["k]"]
    assert [k async for k in store.scan("k[")] == ["k["]
    assert sorted([k async for k in store.scan("k")]) == sorted(set(GLOB_KEYS) - {"k*", "k?", "k[1]"})


@pytest.mark.parametrize("wild", ["*", "?", "[ab]", "\\", "[", "]"])
async def test_glob_characters_in_prefix_stay_literal(open_store: OpenStore, wild: str) -> None:
    base = unique()
    wild_store = await open_store(f"{base}{wild}")
    others = [await open_store(f"{base}{tail}") for tail in ("a", "b", "xyz", "\\a")]
    for other in others:
        await other.set("k", {"other": other.prefix})
        await other.log_append("k", [{"other": other.prefix}])
    assert await wild_store.get("k") is None
    assert [k async for k in wild_store.scan()] == []
    assert await wild_store.log_read("k") == []
    await wild_store.set("mine", {"wild": True})
    await wild_store.delete("k")
    await wild_store.log_delete("k")
    assert [k async for k in wild_store.scan()] == ["mine"]
    for other in others:
        assert await other.get("k") == {"other": other.prefix}
        assert [e.value for e in await other.log_read("k")] == [{"other": other.prefix}]
        assert [k async for k in other.scan()] == ["k"]


async def test_two_prefixes_never_share_keys(open_store: OpenStore) -> None:
    base = unique()
    a = await open_store(base)
    b = await open_store(base + "x")
    await a.set("k", {"store": "a"})
    await b.set("k", {"store": "b"})
    await a.set("x:k", {"store": "a2"})
    await a.log_append("k", [{"store": "a"}])
    assert await b.get("k") == {"store": "b"}
    assert await b.get("x:k") is None
    assert sorted([k async for k in a.scan()]) == ["k", "x:k"]
    assert [k async for k in b.scan()] == ["k"]
    assert await b.log_read("k") == []
    await b.delete("k")
    await b.log_delete("k")
    assert await a.get("k") == {"store": "a"}
    assert [e.value for e in await a.log_read("k")] == [{"store": "a"}]


async def test_scan_skips_logs_and_foreign_bytes(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    await store.set("rec", {})
    await store.log_append("rec", [{"n": 1}])
    await store.log_append("only-a-log", [{"n": 1}])
    await raw.set(f"{store.prefix}:".encode() + b"\xff\xfe", b"{}")
    assert [k async for k in store.scan()] == ["rec"]
    assert [k async for k in store.scan("\x00")] == []


async def test_scan_limit_and_many_keys(store: RedisSessionStore) -> None:
    await asyncio.gather(*(store.set(f"m{i}", {}) for i in range(2500)))
    found = [k async for k in store.scan("m")]
    assert len(found) == len(set(found)) == 2500
    assert len([k async for k in store.scan("m", limit=1001)]) == 1001
    assert [k async for k in store.scan("m", limit=0)] == []
    with pytest.raises(InvalidValueError):
        [k async for k in store.scan("m", limit=-1)]


# -- stored data that cannot be decoded ---------------------------------------------------------


FOREIGN_RECORDS = [
    pytest.param(b"\xff\xfe{not json", "frame", id="junk"),
    pytest.param(b'{"n": 1}', "frame", id="bare-json"),
    pytest.param(b"s2:17:{}", "format 's2'", id="newer-format"),
    pytest.param(b"v1:17:{}", "format 'v1'", id="other-format"),
    pytest.param(b"s1:{}", "frame", id="no-version"),
    pytest.param(b"s1::{}", "frame", id="empty-version"),
    pytest.param(b"s1:0:{}", "frame", id="version-zero"),
    pytest.param(b"s1:007:{}", "frame", id="leading-zero"),
    pytest.param(b"s1:12345678901234567890:{}", "frame", id="version-too-long"),
    pytest.param(b"s1:-5:{}", "frame", id="negative"),
    pytest.param(b"s1:12", "frame", id="truncated"),
    pytest.param(b"", "frame", id="empty"),
]


@pytest.mark.parametrize(("stored", "reason"), FOREIGN_RECORDS)
async def test_foreign_record_is_a_decode_error_and_kept(
    store: RedisSessionStore, raw: aioredis.Redis, stored: bytes, reason: str
) -> None:
    """No frame, an unknown format or a malformed version: every read path names the key; nothing is written.

    A record with no valid ``s1`` frame is handed out by ``get_raw`` and ``lock`` as marked bytes that no
    codec decodes (so the update unit can quarantine it); another release's format is refused there too.
    """
    name = f"{store.prefix}:foreign"
    await raw.set(name, stored)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get("foreign"),
        lambda: store.get_versioned("foreign"),
        lambda: store.set_versioned("foreign", b"{}", expected=0),
        lambda: store.set_versioned("foreign", b"{}", expected=17),
        lambda: store.delete_versioned("foreign", expected=17),
    ]
    if reason == "frame":
        marked = await store.get_raw("foreign")
        assert marked is not None
        assert marked.endswith(stored)
        assert marked != stored
        with pytest.raises(SessionDecodeError):
            store.codec.decode("foreign", marked)
        locked = await store.lock("foreign", lease=5, wait=0)
        assert locked.record is not None
        assert locked.record.data == marked
        await store.unlock(locked.lease)
    else:
        reads += [lambda: store.get_raw("foreign"), lambda: store.lock("foreign", lease=5, wait=0)]
    for read in reads:
        with pytest.raises(SessionDecodeError) as info:
            await read()
        assert info.value.key == "foreign"
        assert "foreign" in str(info.value)
    assert reason in str(await _decode_error(store.get("foreign")))
    assert await raw.get(name) == stored
    assert await raw.exists(f"{store.prefix}:\x00lock:foreign") == 0, "a failed lock+read leaves no lease behind"
    await store.set("foreign", {"fresh": True})
    assert await store.get("foreign") == {"fresh": True}


async def _decode_error(call: Awaitable[object]) -> SessionDecodeError:
    with pytest.raises(SessionDecodeError) as info:
        await call
    return info.value


async def test_undecodable_payload_is_reported_and_kept(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    name = f"{store.prefix}:broken"
    for payload in (b"\xff\xfe{not json", b"[1, 2]", b'{"truncated": [1, 2'):
        stored = b"s1:42:" + payload
        await raw.set(name, stored)
        with pytest.raises(SessionDecodeError) as info:
            await store.get("broken")
        assert info.value.key == "broken"
        assert await store.get_raw("broken") == payload
        assert await store.get_versioned("broken") == (payload, 42)
        assert await raw.get(name) == stored


async def test_undecodable_log_entries_are_reported_and_kept(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    name = f"{store.prefix}:\x00log:broken"
    await raw.rpush(name, b"1:{bad json")
    with pytest.raises(SessionDecodeError, match="broken"):
        await store.log_read("broken")
    await raw.rpush(name, b"no frame at all")
    for call in (
        store.log_read("broken"),
        store.log_last_seq("broken"),
        store.log_append("broken", [{"n": 1}]),
    ):
        with pytest.raises(SessionDecodeError) as info:
            await call
        assert info.value.key == "broken"
    assert await raw.lrange(name, 0, -1) == [b"1:{bad json", b"no frame at all"]


async def test_wrong_type_under_log_key_is_store_error(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    name = f"{store.prefix}:\x00log:str"
    await raw.set(name, b"a string, not a list")
    with pytest.raises(StoreError) as info:
        await store.log_append("str", [{"n": 1}])
    assert isinstance(info.value.__cause__, redis_errors.ResponseError | ReplyError)
    assert await raw.get(name) == b"a string, not a list"


# -- an unreachable server --------------------------------------------------------------------


async def test_unreachable_server_is_unavailable() -> None:
    port = closed_port()
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.get("k"),
            lambda: store.set("k", {"v": 1}),
            lambda: store.delete("k"),
            lambda: store.expires_in("k"),
            lambda: store.log_append("k", [{"n": 1}]),
            lambda: store.log_read("k"),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as info:
                await call()
            assert isinstance(info.value.__cause__, ConnectionError)
            assert "redis" in str(info.value)
        with pytest.raises(StoreUnavailableError) as info:
            [k async for k in store.scan()]
        assert isinstance(info.value.__cause__, ConnectionError)
    finally:
        await store.close()


async def test_silent_server_hits_store_timeout() -> None:
    """A server that accepts connections but never answers: the store's timeout ends the call."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        try:
            for call in (store.get("k"), store.log_append("k", [{"n": 1}])):
                with pytest.raises(StoreTimeoutError) as info:
                    await call
                assert isinstance(info.value, StoreUnavailableError)
                assert isinstance(info.value.__cause__, TimeoutError)
        finally:
            await store.close()


# -- versions and leases --------------------------------------------------------------------------


async def test_lease_layout_and_one_call_each(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    """The lease is one key in the internal keyspace; lock+read and commit+release are one call each."""
    await store.set("k", {"n": 1})
    calls = count_calls(store)
    held = await store.lock("k", lease=5, wait=0)
    assert [c[0] for c in calls] == ["EVALSHA"]
    lease_key = f"{store.prefix}:\x00lock:k"
    assert await raw.get(lease_key) == held.lease.token.encode()
    assert 4_000 < await raw.pttl(lease_key) <= 5_000
    assert [k async for k in store.scan()] == ["k"]
    assert held.record is not None
    assert held.record == await store.get_versioned("k")
    calls.clear()
    version = await store.commit(held.lease, store.codec.encode({"n": 2}), ttl=60)
    assert [c[0] for c in calls] == ["EVALSHA"]
    assert await raw.exists(lease_key) == 0
    assert await raw.get(f"{store.prefix}:k") == b's1:%d:{"n":2}' % version
    assert 59_000 < await raw.pttl(f"{store.prefix}:k") <= 60_000
    again = await store.lock("k", lease=5, wait=0)
    assert await store.commit(again.lease, None) == 0
    assert await raw.exists(lease_key, f"{store.prefix}:k") == 0


@pytest.mark.parametrize("key", ["plain", "user:{42}", "a}b", "{}x", "}{"])
async def test_one_server_keeps_release_01s_lease_name_for_every_key(
    store: RedisSessionStore, raw: aioredis.Redis, key: str
) -> None:
    """Without a cluster there is no slot to share: the lease stays at ``prefix:\\x00lock:key``, as in 0.1."""
    assert not store.driver.cluster
    held = await store.lock(key, lease=5, wait=0)
    assert await raw.get(f"{store.prefix}:\x00lock:{key}") == held.lease.token.encode()
    await store.commit(held.lease, store.codec.encode({"k": key}))
    assert await raw.exists(f"{store.prefix}:\x00lock:{key}") == 0
    assert await store.get(key) == {"k": key}


def count_calls(store: RedisSessionStore) -> list[tuple[Any, ...]]:
    """Record every command the store sends from now on (the commands still run)."""
    calls: list[tuple[Any, ...]] = []
    execute = store.driver.execute

    async def counting(*args: Any) -> Any:
        calls.append(args)
        return await execute(*args)

    store.driver.execute = counting  # scripts go through the driver's execute
    store._exec = counting  # plain commands through the store's bound copy of it
    return calls


@pytest.mark.parametrize(("isolation", "changed", "unchanged"), [("none", 2, 1), ("distributed", 2, 2)])
async def test_distributed_isolation_costs_no_extra_round_trip(
    store: RedisSessionStore, isolation: str, changed: int, unchanged: int
) -> None:
    router = Router()
    router.use(session(store, isolation=isolation))  # type: ignore[arg-type]

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] = ctx.session.get("n", 0) + 1

    @router.command("look")
    async def look(ctx: Context) -> None:
        ctx.state["n"] = ctx.session.get("n")

    await router.handle(message(1, "/inc"))  # loads the scripts on the server
    await router.handle(message(1, "/look"))
    calls = count_calls(store)
    await router.handle(message(1, "/inc"))
    assert len(calls) == changed, calls
    calls.clear()
    await router.handle(message(1, "/look"))
    assert len(calls) == unchanged, calls
    assert await store.get("1") == {"n": 2}


async def test_lock_waits_for_the_holder_to_release(store: RedisSessionStore) -> None:
    first = await store.lock("w", lease=5, wait=0)

    async def release_soon() -> None:
        await asyncio.sleep(0.15)
        await store.commit(first.lease, store.codec.encode({"by": "first"}))

    releaser = asyncio.create_task(release_soon())
    started = time.monotonic()
    second = await store.lock("w", lease=5, wait=5)
    waited = time.monotonic() - started
    await releaser
    assert 0.1 < waited < 2
    assert second.record is not None
    assert store.codec.decode("w", second.record.data) == {"by": "first"}
    await store.unlock(second.lease)


async def test_lock_wait_is_bounded(store: RedisSessionStore) -> None:
    held = await store.lock("b", lease=30, wait=0)
    started = time.monotonic()
    with pytest.raises(LockError, match="'b'"):
        await store.lock("b", lease=5, wait=0)
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    with pytest.raises(LockError):
        await store.lock("b", lease=5, wait=0.3)
    assert 0.3 <= time.monotonic() - started < 1.5
    await store.unlock(held.lease)


async def test_lock_taken_over_once_the_holders_lease_expires(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    """A holder that died never releases: its lease expires and the next waiter gets the key."""
    dead = await store.lock("x", lease=0.2, wait=0)
    started = time.monotonic()
    alive = await store.lock("x", lease=5, wait=10)
    assert time.monotonic() - started < 1.5
    assert await raw.get(f"{store.prefix}:\x00lock:x") == alive.lease.token.encode()
    with pytest.raises(LeaseExpiredError):
        await store.renew(dead.lease)
    await store.unlock(dead.lease)
    assert await raw.get(f"{store.prefix}:\x00lock:x") == alive.lease.token.encode(), "only the owner releases"
    with pytest.raises(LeaseExpiredError):
        await store.commit(dead.lease, store.codec.encode({"n": -1}))
    assert await store.get("x") is None
    await store.commit(alive.lease, store.codec.encode({"n": 1}))
    assert await store.get("x") == {"n": 1}


async def test_renew_extends_the_lease_on_the_server(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    held = await store.lock("r", lease=1, wait=0)
    await asyncio.sleep(0.3)
    renewed = await store.renew(held.lease)
    assert renewed.token == held.lease.token
    assert renewed.acquired_at > held.lease.acquired_at
    assert 900 < await raw.pttl(f"{store.prefix}:\x00lock:r") <= 1000
    await store.unlock(renewed)
    assert await raw.exists(f"{store.prefix}:\x00lock:r") == 0


async def test_compare_and_set_conflicts_name_the_versions(store: RedisSessionStore) -> None:
    v1 = await store.set_versioned("c", b'{"n":1}', expected=0)
    with pytest.raises(ConflictError, match=rf"'c'.*expected version 0, found {v1}"):
        await store.set_versioned("c", b'{"n":2}', expected=0)
    with pytest.raises(ConflictError, match=rf"expected version 5, found {v1}"):
        await store.delete_versioned("c", expected=5)
    await store.delete_versioned("c", expected=v1)
    with pytest.raises(ConflictError, match="found 0"):
        await store.set_versioned("c", b'{"n":3}', expected=v1)
    await store.delete_versioned("c", expected=0)
    assert await store.get("c") is None
    v2 = await store.set_versioned("c", b'{"n":4}', expected=0, ttl=30)
    assert v2 != v1
    left = await store.expires_in("c")
    assert left is not None
    assert 29 < left <= 30


async def test_compare_and_set_under_concurrency_lets_exactly_one_win(store: RedisSessionStore) -> None:
    base = await store.set_versioned("race", b'{"n":0}', expected=0)

    async def attempt(i: int) -> int | None:
        try:
            return await store.set_versioned("race", b'{"n":%d}' % i, expected=base)
        except ConflictError:
            return None

    results = await asyncio.gather(*(attempt(i) for i in range(1, 41)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    got = await store.get_versioned("race")
    assert got is not None
    assert got.version == winners[0]


@pytest.mark.parametrize("lease", [0, -1, float("nan"), float("inf"), "5", True, None])
async def test_bad_lease_refused_before_anything_is_written(
    store: RedisSessionStore, raw: aioredis.Redis, lease: Any
) -> None:
    with pytest.raises(InvalidValueError, match="lease"):
        await store.lock("bad", lease=lease, wait=0)
    assert await raw.exists(f"{store.prefix}:\x00lock:bad") == 0


@pytest.mark.parametrize("wait", [-1, float("nan"), "1", None])
async def test_bad_wait_refused(store: RedisSessionStore, wait: Any) -> None:
    with pytest.raises(InvalidValueError, match="wait"):
        await store.lock("bad", lease=5, wait=wait)


async def test_bad_versioned_writes_refused_before_writing(store: RedisSessionStore) -> None:
    v = await store.set_versioned("keep", b'{"kept":true}', expected=0)
    bad: list[Any] = ["1", -1, True, 1.5]
    for expected in bad:
        with pytest.raises(InvalidValueError, match="expected"):
            await store.set_versioned("keep", b"{}", expected=expected)
        with pytest.raises(InvalidValueError, match="expected"):
            await store.delete_versioned("keep", expected=expected)
    with pytest.raises(InvalidValueError, match="data"):
        await store.set_versioned("keep", "{}", expected=v)  # type: ignore[arg-type]
    with pytest.raises(ValueTooLargeError):
        await store.set_versioned("keep", b" " * (store.max_size + 1), expected=v)
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.set_versioned("keep", b"{}", expected=v, ttl=0)
    held = await store.lock("keep", lease=5, wait=0)
    with pytest.raises(ValueTooLargeError):
        await store.commit(held.lease, b" " * (store.max_size + 1))
    with pytest.raises(InvalidValueError, match="lease"):
        await store.commit("not a lease", b"{}")  # type: ignore[arg-type]
    await store.unlock(held.lease)
    assert await store.get_versioned("keep") == (b'{"kept":true}', v)


# -- logs ------------------------------------------------------------------------------------------


async def test_log_layout_and_single_key(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    assert await store.log_append("chat", [{"n": 1}, {"n": 2}]) == [1, 2]
    names = [k async for k in raw.scan_iter(match=escape(store.prefix) + ":*")]
    assert names == [f"{store.prefix}:\x00log:chat".encode()]
    assert await raw.lrange(names[0], 0, -1) == [b'1:{"n":1}', b'2:{"n":2}']


async def test_log_ttl_slides_and_none_keeps_it(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    name = f"{store.prefix}:\x00log:ttl"
    await store.log_append("ttl", [{"n": 1}], ttl=30)
    assert 29_000 < await raw.pttl(name) <= 30_000
    await store.log_append("ttl", [{"n": 2}])
    assert 29_000 < await raw.pttl(name) <= 30_000
    await store.log_append("ttl", [{"n": 3}], ttl=100)
    assert 99_000 < await raw.pttl(name) <= 100_000
    await store.log_append("ttl", [], ttl=200)
    assert 199_000 < await raw.pttl(name) <= 200_000
    await store.log_append("plain", [{"n": 1}])
    assert await raw.pttl(f"{store.prefix}:\x00log:plain") == -1


async def test_log_numbering_survives_trimming_to_one(store: RedisSessionStore) -> None:
    for i in range(1, 6):
        assert await store.log_append("t", [{"n": i}, {"n": i}], max_len=1) == [2 * i - 1, 2 * i]
    assert [e.seq for e in await store.log_read("t")] == [10]
    assert await store.log_length("t") == 1
    assert await store.log_last_seq("t") == 10
    await store.log_append("t", [], max_len=1)
    assert await store.log_last_seq("t") == 10
    await store.log_delete("t")
    assert await store.log_last_seq("t") == 0
    assert await store.log_append("t", [{"n": 1}]) == [1]


async def test_log_large_batch_and_large_numbers(store: RedisSessionStore, raw: aioredis.Redis) -> None:
    seqs = await store.log_append("big", [{"i": i} for i in range(2500)])
    assert seqs == list(range(1, 2501))
    entries = await store.log_read("big", after=1200, before=1300, last=5)
    assert [(e.seq, e.value["i"]) for e in entries] == [(s, s - 1) for s in range(1295, 1300)]
    await raw.rpush(f"{store.prefix}:\x00log:huge", b'4294967296:{"n":0}')
    assert await store.log_append("huge", [{"n": 1}, {"n": 2}]) == [4294967297, 4294967298]
    assert [e.seq for e in await store.log_read("huge", after=4294967296)] == [4294967297, 4294967298]
    assert await store.log_read("huge", after=2**80) == []
    assert [e.seq for e in await store.log_read("huge", before=2**80, last=1)] == [4294967298]
    assert await store.log_read("huge", before=-5) == []


async def test_log_read_window_of_a_long_log(store: RedisSessionStore) -> None:
    await store.log_append("long", [{"i": i} for i in range(5000)])
    assert [e.seq for e in await store.log_read("long", last=3)] == [4998, 4999, 5000]
    assert [e.seq for e in await store.log_read("long", before=3, last=10)] == [1, 2]
    assert [e.seq for e in await store.log_read("long", after=2500, before=2503)] == [2501, 2502]


async def test_log_bad_arguments(store: RedisSessionStore) -> None:
    await store.log_append("args", [{"n": 1}])
    with pytest.raises(InvalidValueError):
        await store.log_read("args", last=-1)
    with pytest.raises(InvalidValueError):
        await store.log_read("args", after="1")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await store.log_append("args", {"n": 2})  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await store.log_append("args", [{"n": 2}], ttl=0)
    with pytest.raises(ValueTooLargeError):
        await store.log_append("args", [{"n": 2}, {"blob": "x" * store.max_size}])
    with pytest.raises(InvalidKeyError):
        await store.log_append("", [{"n": 2}])
    assert [e.value for e in await store.log_read("args")] == [{"n": 1}]


async def test_log_script_reloaded_when_missing_on_server(store: RedisSessionStore) -> None:
    store._append.sha = "0" * 40
    store._read.sha = "0" * 40
    assert await store.log_append("reload", [{"n": 1}]) == [1]
    assert [e.seq for e in await store.log_read("reload")] == [1]
    assert store._append.sha != "0" * 40
