"""The Redis backend against the real server on 127.0.0.1:6379 (db 9): key layout, isolation, errors, logs."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from sessionware.errors import (
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidValueError,
    SessionDecodeError,
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

REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

OpenStore = Callable[..., Awaitable[RedisSessionStore]]


def unique(prefix: str = "rt") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@pytest.fixture
def backend() -> str:
    """Run conftest's ``store`` / ``make_store`` fixtures on Redis only."""
    return "redis"


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    """A plain client on the test database, for writing and inspecting keys by hand."""
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except redis_errors.ConnectionError:
        await client.aclose()
        message = f"redis is not reachable at {REDIS_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield client
    await client.aclose()


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- capabilities and key layout ---------------------------------------------------------------


async def test_has_every_capability(store: RedisSessionStore) -> None:
    for protocol in (SessionStore, RawStore, ExpiringStore, ScannableStore, ClosableStore, LogStore):
        assert isinstance(store, protocol), protocol.__name__


async def test_record_layout_is_prefix_colon_key(store: RedisSessionStore) -> None:
    await store.set("user:42", {"n": 1})
    assert await store.client.get(f"{store.prefix}:user:42") == b'{"n":1}'
    await store.set("ttl", {"n": 2}, ttl=30)
    assert 29_000 < await store.client.pttl(f"{store.prefix}:ttl") <= 30_000
    await store.delete("user:42")
    assert await store.client.exists(f"{store.prefix}:user:42") == 0


async def test_touch_none_removes_expiry(store: RedisSessionStore) -> None:
    await store.set("t", {"n": 1}, ttl=30)
    assert await store.touch("t", None)
    assert await store.expires_in("t") is None
    assert await store.get("t") == {"n": 1}
    assert not await store.touch("missing", None)
    assert not await store.client.exists(f"{store.prefix}:missing")


async def test_user_client_seed_style(raw: aioredis.Redis) -> None:
    """A client made by the user works, and closing the store leaves that client open."""
    client = aioredis.Redis(host="127.0.0.1", port=6379, db=9)
    prefix = unique()
    store = RedisSessionStore(client, prefix)
    try:
        await store.set("alice", {"step": 2})
        assert await store.get("alice") == {"step": 2}
        assert await raw.get(f"{prefix}:alice") == b'{"step":2}'
        assert await store.log_append("alice", [{"m": 1}]) == [1]
        await store.close()
        assert await client.ping()
        assert await store.get("alice") == {"step": 2}
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
    with pytest.raises(ValueError, match="decode_responses=False"):
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


async def test_scan_skips_logs_and_foreign_bytes(store: RedisSessionStore) -> None:
    await store.set("rec", {})
    await store.log_append("rec", [{"n": 1}])
    await store.log_append("only-a-log", [{"n": 1}])
    await store.client.set(f"{store.prefix}:".encode() + b"\xff\xfe", b"{}")
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


async def test_undecodable_record_is_reported_and_kept(store: RedisSessionStore) -> None:
    name = f"{store.prefix}:broken"
    junk = b"\xff\xfe{not json"
    await store.client.set(name, junk)
    with pytest.raises(SessionDecodeError) as info:
        await store.get("broken")
    assert info.value.key == "broken"
    assert "broken" in str(info.value)
    assert await store.client.get(name) == junk
    assert await store.get_raw("broken") == junk
    await store.client.set(name, b"[1, 2]")
    with pytest.raises(SessionDecodeError, match="broken"):
        await store.get("broken")
    assert await store.client.get(name) == b"[1, 2]"


async def test_undecodable_log_entries_are_reported_and_kept(store: RedisSessionStore) -> None:
    name = f"{store.prefix}:\x00log:broken"
    await store.client.rpush(name, b"1:{bad json")
    with pytest.raises(SessionDecodeError, match="broken"):
        await store.log_read("broken")
    await store.client.rpush(name, b"no frame at all")
    for call in (
        store.log_read("broken"),
        store.log_last_seq("broken"),
        store.log_append("broken", [{"n": 1}]),
    ):
        with pytest.raises(SessionDecodeError) as info:
            await call
        assert info.value.key == "broken"
    assert await store.client.lrange(name, 0, -1) == [b"1:{bad json", b"no frame at all"]


async def test_wrong_type_under_log_key_is_store_error(store: RedisSessionStore) -> None:
    name = f"{store.prefix}:\x00log:str"
    await store.client.set(name, b"a string, not a list")
    with pytest.raises(StoreError) as info:
        await store.log_append("str", [{"n": 1}])
    assert isinstance(info.value.__cause__, redis_errors.ResponseError)
    assert await store.client.get(name) == b"a string, not a list"


# -- an unreachable server --------------------------------------------------------------------


async def test_unreachable_server_is_unavailable() -> None:
    port = closed_port()
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
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
            assert isinstance(info.value.__cause__, redis_errors.ConnectionError)
            assert "redis" in str(info.value)
        with pytest.raises(StoreUnavailableError) as info:
            [k async for k in store.scan()]
        assert isinstance(info.value.__cause__, redis_errors.ConnectionError)
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


# -- logs ------------------------------------------------------------------------------------------


async def test_log_layout_and_single_key(store: RedisSessionStore) -> None:
    assert await store.log_append("chat", [{"n": 1}, {"n": 2}]) == [1, 2]
    names = [k async for k in store.client.scan_iter(match=escape(store.prefix) + ":*")]
    assert names == [f"{store.prefix}:\x00log:chat".encode()]
    assert await store.client.lrange(names[0], 0, -1) == [b'1:{"n":1}', b'2:{"n":2}']


async def test_log_ttl_slides_and_none_keeps_it(store: RedisSessionStore) -> None:
    name = f"{store.prefix}:\x00log:ttl"
    await store.log_append("ttl", [{"n": 1}], ttl=30)
    assert 29_000 < await store.client.pttl(name) <= 30_000
    await store.log_append("ttl", [{"n": 2}])
    assert 29_000 < await store.client.pttl(name) <= 30_000
    await store.log_append("ttl", [{"n": 3}], ttl=100)
    assert 99_000 < await store.client.pttl(name) <= 100_000
    await store.log_append("ttl", [], ttl=200)
    assert 199_000 < await store.client.pttl(name) <= 200_000
    await store.log_append("plain", [{"n": 1}])
    assert await store.client.pttl(f"{store.prefix}:\x00log:plain") == -1


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


async def test_log_large_batch_and_large_numbers(store: RedisSessionStore) -> None:
    seqs = await store.log_append("big", [{"i": i} for i in range(2500)])
    assert seqs == list(range(1, 2501))
    entries = await store.log_read("big", after=1200, before=1300, last=5)
    assert [(e.seq, e.value["i"]) for e in entries] == [(s, s - 1) for s in range(1295, 1300)]
    await store.client.rpush(f"{store.prefix}:\x00log:huge", b'4294967296:{"n":0}')
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


WRITER = """
import asyncio, json, sys
from sessionware.stores.redis import RedisSessionStore

async def main(url, prefix, key, writer, tasks, appends):
    store = RedisSessionStore.from_url(url, prefix=prefix)
    async def task(t):
        seqs = []
        for i in range(appends):
            seqs += await store.log_append(key, [{"w": writer, "t": t, "i": i}], max_len=100_000)
        return seqs
    results = await asyncio.gather(*(task(t) for t in range(tasks)))
    await store.close()
    print(json.dumps(results))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
"""


@pytest.mark.slow
async def test_log_appends_from_several_processes_are_gap_free(store: RedisSessionStore) -> None:
    processes, tasks, appends = 3, 8, 40
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            REDIS_URL,
            store.prefix,
            "shared",
            str(w),
            str(tasks),
            str(appends),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for w in range(processes)
    ]
    outputs = [await asyncio.wait_for(child.communicate(), 120) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
    results = [json.loads(out) for out, _ in outputs]
    total = processes * tasks * appends
    assigned = sorted(s for per_process in results for per_task in per_process for s in per_task)
    assert assigned == list(range(1, total + 1))
    entries = await store.log_read("shared")
    assert [e.seq for e in entries] == list(range(1, total + 1))
    for w, per_process in enumerate(results):
        for t, seqs in enumerate(per_process):
            assert [entries[s - 1].value for s in seqs] == [{"w": w, "t": t, "i": i} for i in range(appends)]
    assert await store.log_last_seq("shared") == total
