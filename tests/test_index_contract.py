"""Sorted indexes (:class:`~sessionware.store.IndexStore`) on every backend, against the real servers.

The contract runs over conftest's ``store`` (memory, SQLite, Redis through both
clients, PostgreSQL) and on the Redis Cluster of ``test_redis_cluster``; then
come each backend's layout (the names other code writes to directly), the SQL
schema upgrade from version 2, and the cost of a page.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import pytest

from sessionware import BaseSessionStore, InMemorySessionStore, PostgresSessionStore, SQLiteSessionStore
from sessionware.errors import InvalidKeyError, InvalidValueError, SessionDecodeError
from sessionware.store import IndexStore, LogStore, PurgeableStore
from sessionware.stores.redis import RedisSessionStore
from sessionware.stores.sql._base import SCHEMA_VERSION
from sessionware.testing import Advance, FakeClock

from .conftest import POSTGRES_URL, REDIS_URL, require_server, unique
from .test_contract import _OnCluster
from .test_redis import count_calls
from .test_redis_cluster import client, cluster

__all__ = ["client", "cluster"]  # the Redis Cluster fixtures, started once for this module too

TTL = 0.3
"""A short expiry; expiries are asserted three TTLs after it (the servers' clocks are real)."""


def indexes(store: object) -> IndexStore:
    assert isinstance(store, IndexStore)
    return store


def in_order(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``pairs`` as an index reads them: highest score first, ties by member descending."""
    return sorted(pairs, key=lambda p: (p[1], p[0]), reverse=True)


async def read_all(store: IndexStore, key: str, limit: int) -> list[tuple[str, float]]:
    """Every pair of the index, page by page with the cursor."""
    pairs: list[tuple[str, float]] = []
    before: tuple[float, str] | None = None
    while True:
        page = await store.index_page(key, limit=limit, before=before)
        assert len(page) <= limit
        pairs += page
        if len(page) < limit:
            return pairs
        before = (page[-1][1], page[-1][0])


class IndexContract:
    """What every IndexStore does; a mixin whose ``store`` (and ``advance``) fixture picks the backend."""

    async def test_a_missing_index_reads_empty(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        assert await x.index_page("ix:none", limit=10) == []
        assert await x.index_page("ix:none", limit=10, before=(1.0, "a")) == []
        await x.index_remove("ix:none", "a")
        await x.index_delete("ix:none")
        assert await x.index_page("ix:none", limit=10) == []

    async def test_highest_score_first_ties_by_member_descending(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        # Members compare by code point everywhere: U+E000 before an astral character (UTF-16 would
        # put them the other way), accents after every ASCII letter.
        members = ["a", "b", "B", "ab", "z", "é", "\ue000", "\U0001f600", "a b", "~"]
        pairs = [(m, float(i % 3)) for i, m in enumerate(members)] + [("neg", -2.5), ("big", 1e300), ("tiny", 1e-300)]
        random.Random(1).shuffle(pairs)
        for member, score in pairs:
            await x.index_put("ix:o", member, score)
        assert await x.index_page("ix:o", limit=100) == in_order(pairs)
        assert await x.index_page("ix:o", limit=3) == in_order(pairs)[:3]
        assert await x.index_page("ix:o", limit=1) == [("big", 1e300)]

    async def test_ints_and_negative_zero_are_floats(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        await x.index_put("ix:i", "a", 3)
        await x.index_put("ix:i", "b", -0.0)
        await x.index_put("ix:i", "c", 0.0)
        page = await x.index_page("ix:i", limit=10)
        assert page == [("a", 3.0), ("c", 0.0), ("b", 0.0)]
        assert all(type(score) is float and math.copysign(1, score) == 1 for _, score in page)

    async def test_the_cursor_pages_through_1000_members_without_duplicates_or_misses(
        self, store: BaseSessionStore
    ) -> None:
        x = indexes(store)
        rng = random.Random(7)
        # Many ties (a few distinct scores) and some fractional ones, so pages end inside runs of ties.
        pairs = [(f"m{i:04d}", float(rng.choice([0, 1, 2, 3, 1.5, -1])) if i % 5 else i / 7) for i in range(1000)]
        rng.shuffle(pairs)
        for member, score in pairs:
            await x.index_put("ix:big", member, score)
        expected = in_order(pairs)
        for limit in (1000, 7, 64):
            got = await read_all(x, "ix:big", limit)
            assert len(got) == len(set(got)) == 1000
            assert got == expected
        # A cursor at any position gives exactly what follows it.
        for i in (0, 1, 499, 998, 999):
            member, score = expected[i]
            assert await x.index_page("ix:big", limit=5, before=(score, member)) == expected[i + 1 : i + 6]

    async def test_a_put_moves_a_member(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        for member, score in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
            await x.index_put("ix:mv", member, score)
        await x.index_put("ix:mv", "a", 10.0)
        assert await x.index_page("ix:mv", limit=10) == [("a", 10.0), ("c", 3.0), ("b", 2.0)]
        await x.index_put("ix:mv", "a", 2.0)  # now tied with b, and after it (a < b)
        assert await x.index_page("ix:mv", limit=10) == [("c", 3.0), ("b", 2.0), ("a", 2.0)]
        await x.index_put("ix:mv", "a", 2.0)  # the same place again: nothing changes
        assert await x.index_page("ix:mv", limit=10) == [("c", 3.0), ("b", 2.0), ("a", 2.0)]

    async def test_remove(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        for member, score in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
            await x.index_put("ix:rm", member, score)
        await x.index_remove("ix:rm", "b")
        await x.index_remove("ix:rm", "b")  # missing: nothing happens
        await x.index_remove("ix:rm", "zzz")
        assert await x.index_page("ix:rm", limit=10) == [("c", 3.0), ("a", 1.0)]
        await x.index_remove("ix:rm", "a")
        await x.index_remove("ix:rm", "c")
        assert await x.index_page("ix:rm", limit=10) == []
        await x.index_put("ix:rm", "d", 4.0)  # a new index under the same key
        assert await x.index_page("ix:rm", limit=10) == [("d", 4.0)]

    async def test_a_cursor_whose_member_moved_or_went_keeps_its_place(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        for i in range(10):
            await x.index_put("ix:cur", f"m{i}", 1.0)  # all tied
        await x.index_put("ix:cur", "top", 5.0)
        await x.index_put("ix:cur", "low", 0.0)
        first = await x.index_page("ix:cur", limit=4)
        assert first == [("top", 5.0), ("m9", 1.0), ("m8", 1.0), ("m7", 1.0)]
        await x.index_remove("ix:cur", "m7")
        await x.index_put("ix:cur", "m6", 9.0)  # moved above the cursor: not seen again
        rest = await x.index_page("ix:cur", limit=100, before=(1.0, "m7"))
        assert rest == [("m5", 1.0), ("m4", 1.0), ("m3", 1.0), ("m2", 1.0), ("m1", 1.0), ("m0", 1.0), ("low", 0.0)]
        # A cursor that was never in the index: strictly after its (score, member) position.
        assert await x.index_page("ix:cur", limit=2, before=(1.0, "m45")) == [("m4", 1.0), ("m3", 1.0)]
        assert await x.index_page("ix:cur", limit=2, before=(3.0, "zzz")) == [("m9", 1.0), ("m8", 1.0)]
        assert await x.index_page("ix:cur", limit=2, before=(-1.0, "a")) == []
        assert await x.index_page("ix:cur", limit=2, before=(100.0, "a")) == [("m6", 9.0), ("top", 5.0)]

    async def test_delete(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        await x.index_put("ix:del", "a", 1.0)
        await x.index_put("ix:other", "a", 1.0)
        await x.index_delete("ix:del")
        assert await x.index_page("ix:del", limit=10) == []
        assert await x.index_page("ix:other", limit=10) == [("a", 1.0)]
        await x.index_delete("ix:del")

    async def test_indexes_are_their_own_keyspace(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        assert isinstance(store, LogStore)
        await store.set("k", {"v": 1})
        await store.log_append("k", [{"n": 1}])
        await x.index_put("k", "a", 1.0)
        await x.index_delete("k")
        assert await store.get("k") == {"v": 1}
        assert [e.value for e in await store.log_read("k")] == [{"n": 1}]
        await x.index_put("k", "a", 1.0)
        await store.delete("k")
        await store.log_delete("k")
        assert await x.index_page("k", limit=10) == [("a", 1.0)]
        assert [key async for key in store.scan()] == []  # type: ignore[attr-defined]

    async def test_an_index_expires_after_its_ttl(self, store: BaseSessionStore, advance: Advance) -> None:
        x = indexes(store)
        await x.index_put("ix:exp", "a", 1.0, ttl=TTL)
        await x.index_put("ix:exp", "b", 2.0, ttl=TTL)
        assert await x.index_page("ix:exp", limit=10) == [("b", 2.0), ("a", 1.0)]
        await advance(3 * TTL)
        assert await x.index_page("ix:exp", limit=10) == []
        assert await x.index_page("ix:exp", limit=10, before=(5.0, "a")) == []
        # A put after the expiry starts a new index: the old members do not come back.
        await x.index_put("ix:exp", "c", 0.5)
        assert await x.index_page("ix:exp", limit=10) == [("c", 0.5)]
        await advance(3 * TTL)
        assert await x.index_page("ix:exp", limit=10) == [("c", 0.5)]

    async def test_a_later_put_without_ttl_keeps_it(self, store: BaseSessionStore, advance: Advance) -> None:
        x = indexes(store)
        await x.index_put("ix:keep", "a", 1.0, ttl=TTL)
        await x.index_put("ix:keep", "b", 2.0)
        await x.index_put("ix:keep", "c", 3.0, ttl=TTL)  # a ttl after a permanent put does not bring expiry back
        await advance(3 * TTL)
        assert await x.index_page("ix:keep", limit=10) == [("c", 3.0), ("b", 2.0), ("a", 1.0)]
        await x.index_remove("ix:keep", "b")  # the member the permanent put wrote goes: the index stays
        await advance(3 * TTL)
        assert await x.index_page("ix:keep", limit=10) == [("c", 3.0), ("a", 1.0)]

    async def test_the_index_lives_until_the_latest_expiry_asked_for(
        self, store: BaseSessionStore, advance: Advance
    ) -> None:
        x = indexes(store)
        await x.index_put("ix:late", "a", 1.0, ttl=10 * TTL)
        await x.index_put("ix:late", "b", 2.0, ttl=TTL)  # a shorter ttl never shortens the index's life
        await x.index_put("ix:late", "a", 3.0, ttl=TTL)
        await x.index_remove("ix:late", "a")  # nor does removing the member whose put asked for the longest
        await advance(3 * TTL)
        assert await x.index_page("ix:late", limit=10) == [("b", 2.0)]
        await advance(9 * TTL)
        assert await x.index_page("ix:late", limit=10) == []

    async def test_concurrent_removes_never_shorten_the_index(self, store: BaseSessionStore, advance: Advance) -> None:
        x = indexes(store)
        await x.index_put("ix:race", "long", 0.0, ttl=10 * TTL)
        for i in range(20):
            await x.index_put("ix:race", f"m{i:02d}", float(i), ttl=TTL)
        removed = ["long", *(f"m{i:02d}" for i in range(0, 20, 2))]
        await asyncio.gather(*(x.index_remove("ix:race", m) for m in removed))
        await advance(3 * TTL)
        assert await x.index_page("ix:race", limit=100) == [(f"m{i:02d}", float(i)) for i in range(19, 0, -2)]

    async def test_bad_arguments_raise_typed_errors_before_anything_is_written(self, store: BaseSessionStore) -> None:
        x = indexes(store)
        for key in ("", 1, "a\x00b", "k" * 1025):
            with pytest.raises(InvalidKeyError):
                await x.index_put(key, "a", 1.0)  # type: ignore[arg-type]
            with pytest.raises(InvalidKeyError):
                await x.index_page(key, limit=1)  # type: ignore[arg-type]
            with pytest.raises(InvalidKeyError):
                await x.index_remove(key, "a")  # type: ignore[arg-type]
            with pytest.raises(InvalidKeyError):
                await x.index_delete(key)  # type: ignore[arg-type]
        for member in (1, None, b"a", "", "a\x00", "m" * 257, "é" * 257, "\ud800"):
            with pytest.raises(InvalidValueError, match=r"^member") as caught:
                await x.index_put("ix:bad", member, 1.0)  # type: ignore[arg-type]
            assert caught.value.path == "member"
            with pytest.raises(InvalidValueError, match=r"^member"):
                await x.index_remove("ix:bad", member)  # type: ignore[arg-type]
        for score in (math.nan, math.inf, -math.inf, "1", None, True, 10**400):
            with pytest.raises(InvalidValueError, match=r"^score") as caught:
                await x.index_put("ix:bad", "a", score)  # type: ignore[arg-type]
            assert caught.value.path == "score"
        for ttl in (0, -1, math.nan, "1", 1e11):
            with pytest.raises(InvalidValueError, match=r"^ttl"):
                await x.index_put("ix:bad", "a", 1.0, ttl=ttl)  # type: ignore[arg-type]
        for limit in (0, -1, 1.5, "2", None, True):
            with pytest.raises(InvalidValueError, match=r"^limit") as caught:
                await x.index_page("ix:bad", limit=limit)  # type: ignore[arg-type]
            assert caught.value.path == "limit"
        for before in ((1.0,), (1.0, "a", 2), "ab", (math.nan, "a"), ("a", 1.0), (1.0, ""), (1.0, 2)):
            with pytest.raises(InvalidValueError, match=r"^before") as caught:
                await x.index_page("ix:bad", limit=1, before=before)  # type: ignore[arg-type]
            assert caught.value.path == "before"
        assert await x.index_page("ix:bad", limit=10) == []
        # The longest key and member every backend stores (PostgreSQL indexes both in one btree row).
        key, member = "é" * 1024, "\U0001f600" * 128
        await x.index_put(key, member, 1.0)
        assert await x.index_page(key, limit=1) == [(member, 1.0)]
        assert await x.index_page(key, limit=2**40) == [(member, 1.0)]


class TestIndexEveryBackend(IndexContract):
    """Over conftest's ``store``: memory (on a fake clock where time passes), SQLite, Redis (both clients) and
    PostgreSQL."""


@pytest.mark.slow
class TestIndexOnCluster(_OnCluster, IndexContract):
    """On the Redis Cluster: every call touches the index's sorted set alone."""

    async def test_a_hash_tag_in_the_key_keeps_its_slot(self, store: BaseSessionStore, client: Any) -> None:
        assert isinstance(store, RedisSessionStore)
        await store.set("agent:s:{42}", {"v": 1})
        await store.index_put("agent:i:{42}", "a", 1.0)
        name = f"{store.prefix}:\x00x:agent:i:{{42}}"
        assert client.keyslot(name) == client.keyslot(f"{store.prefix}:agent:s:{{42}}")
        assert await client.zscore(name, "a") == 1.0


# -- expiry purge (memory and SQL) -------------------------------------------------------------------


async def test_purge_removes_expired_indexes_only(store: BaseSessionStore, advance: Advance) -> None:
    if not isinstance(store, PurgeableStore):
        pytest.skip("Redis expires its keys itself")
    x = indexes(store)
    await x.index_put("ix:gone", "a", 1.0, ttl=TTL)
    await x.index_put("ix:gone", "b", 1.0, ttl=TTL)
    await x.index_put("ix:kept", "a", 1.0, ttl=TTL)
    await x.index_put("ix:kept", "b", 1.0, ttl=100)
    await x.index_put("ix:forever", "a", 1.0)
    await advance(3 * TTL)
    assert await store.purge_expired() == 1
    assert await store.purge_expired() == 0
    assert await x.index_page("ix:kept", limit=10) == [("b", 1.0), ("a", 1.0)]
    assert await x.index_page("ix:forever", limit=10) == [("a", 1.0)]
    assert await x.index_page("ix:gone", limit=10) == []


# -- memory ----------------------------------------------------------------------------------------


async def test_memory_indexes_count_in_their_session_and_are_evicted_with_it() -> None:
    store = InMemorySessionStore(max_sessions=2)
    await store.set("agent:s:{1}", {"v": 1})
    await store.index_put("agent:i:{1}", "a", 1.0)  # the same session (hash tag): no new unit
    await store.index_put("solo", "a", 1.0)
    assert await store.index_page("agent:i:{1}", limit=1) == [("a", 1.0)]
    await store.index_put("third", "a", 1.0)  # a third session: the least recently used (solo) goes
    assert set(store._indexes) == {"agent:i:{1}", "third"}  # looked at without using {1} again
    await store.index_put("fourth", "a", 1.0)  # and now session {1}, its record and index together
    assert await store.get("agent:s:{1}") is None
    assert await store.index_page("agent:i:{1}", limit=1) == []
    assert await store.index_page("third", limit=1) == [("a", 1.0)]
    assert set(store._units) == {"third", "fourth"}


async def test_memory_expired_indexes_are_dropped_without_being_read() -> None:
    clock = FakeClock()
    store = InMemorySessionStore(clock=clock)
    for i in range(100):
        await store.index_put(f"ix{i}", "a", 1.0, ttl=1)
    await clock.sleep(2)
    await store.set("k", {"v": 1})  # a write drops whatever expired
    assert store._indexes == {}
    assert list(store._units) == ["k"]


# -- Redis -----------------------------------------------------------------------------------------


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisSessionStore]:
    require_server("redis")
    store = RedisSessionStore.from_url(REDIS_URL, prefix=unique("ix-"))
    yield store
    client = store.client
    keys = [k async for k in client.scan_iter(match=f"{store.prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await store.close()


@pytest.fixture
async def raw() -> AsyncIterator[Any]:
    require_server("redis")
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_redis_layout_is_one_sorted_set_with_the_latest_expiry(redis_store: RedisSessionStore, raw: Any) -> None:
    store = redis_store
    name = f"{store.prefix}:\x00x:user:{{7}}"
    await store.index_put("user:{7}", "a", 1.5, ttl=100)
    assert await raw.type(name) == b"zset"
    assert await raw.zrange(name, 0, -1, withscores=True) == [(b"a", 1.5)]
    assert 99_000 < await raw.pttl(name) <= 100_000
    await store.index_put("user:{7}", "b", 2.0, ttl=10)  # shorter: the set keeps its expiry
    assert await raw.pttl(name) > 99_000
    await store.index_put("user:{7}", "c", 3.0, ttl=1000)
    assert await raw.pttl(name) > 999_000
    await store.index_put("user:{7}", "d", 4.0)
    assert await raw.pttl(name) == -1
    await store.index_put("user:{7}", "e", 5.0, ttl=10)
    assert await raw.pttl(name) == -1
    # Written by another program straight into the set: read like the store's own.
    await raw.zadd(name, {"z": 4.0})
    assert await store.index_page("user:{7}", limit=3) == [("e", 5.0), ("z", 4.0), ("d", 4.0)]
    await raw.zadd(name, {b"\xff": 9.0})  # not UTF-8: no str member reads it
    with pytest.raises(SessionDecodeError, match="not UTF-8"):
        await store.index_page("user:{7}", limit=3)
    await store.index_delete("user:{7}")
    assert await raw.exists(name) == 0


async def test_redis_a_page_is_one_round_trip_whatever_the_index_size(redis_store: RedisSessionStore, raw: Any) -> None:
    store = redis_store
    await raw.zadd(f"{store.prefix}:\x00x:big", {f"m{i:05d}": i % 3 for i in range(20_000)})
    await store.index_put("big", "m00000", 0.0)  # loads the scripts
    await store.index_page("big", limit=1)
    calls = count_calls(store)
    page = await store.index_page("big", limit=10)
    assert len(calls) == 1, calls
    calls.clear()
    # A cursor in the middle of 6,667 ties whose member went: bisected, still one call.
    page = await store.index_page("big", limit=3, before=(1.0, "m10000x"))
    assert page == [("m10000", 1.0), ("m09997", 1.0), ("m09994", 1.0)]
    assert len(calls) == 1, calls
    calls.clear()
    await store.index_put("big", "n", 1.0, ttl=5)
    await store.index_remove("big", "n")
    assert len(calls) == 2, calls


# -- SQL layout and the upgrade from schema version 2 ------------------------------------------------


def sqlite_rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


async def test_sqlite_layout_and_a_keyset_page(tmp_path: Path) -> None:
    path = tmp_path / "ix.db"
    store = SQLiteSessionStore(path)
    await store.index_put("k", "a", 1.0, ttl=100)
    await store.index_put("k", "b", 2.0)
    columns = sqlite_rows(path, 'PRAGMA table_info("sessionware_sessions_index")')
    assert [(c[1], c[2], c[3], c[5]) for c in columns] == [
        ("key", "TEXT", 1, 1),
        ("member", "TEXT", 1, 2),
        ("score", "REAL", 1, 0),
        ("expires_at", "REAL", 0, 0),
    ]
    rows = sqlite_rows(path, 'SELECT key, member, score, expires_at IS NULL FROM "sessionware_sessions_index"')
    assert sorted(rows) == [("k", "a", 1.0, 0), ("k", "b", 2.0, 1)]
    plan = sqlite_rows(path, "EXPLAIN QUERY PLAN " + store.index_statements.page_next.sql, "k", 1.0, "a", 1e9, 10)
    assert "sessionware_sessions_index_idx (key=? AND (score,member)<(?,?))" in plan[0][3], plan
    # Written by another program: read like the store's own (NULL expiry: the index never expires).
    sqlite_rows(path, 'INSERT INTO "sessionware_sessions_index" VALUES (?, ?, ?, NULL)', "k", "c", 1.5)
    assert await store.index_page("k", limit=10) == [("b", 2.0), ("c", 1.5), ("a", 1.0)]
    await store.close()


async def test_sqlite_a_version_2_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    store = SQLiteSessionStore(path)
    await store.set("k", {"v": 1})
    await store.log_append("chat", [{"n": 1}])
    await store.close()
    sqlite_rows(path, 'DROP TABLE "sessionware_sessions_index"')
    sqlite_rows(path, "UPDATE sessionware_sessions_meta SET value = 2 WHERE name = 'schema_version'")

    again = SQLiteSessionStore(path)
    assert await again.get("k") == {"v": 1}
    assert sqlite_rows(path, "SELECT value FROM sessionware_sessions_meta WHERE name = 'schema_version'") == [
        (SCHEMA_VERSION,)
    ]
    assert SCHEMA_VERSION == 3
    await again.index_put("ix", "a", 1.0)
    assert await again.index_page("ix", limit=5) == [("a", 1.0)]
    assert [e.value for e in await again.log_read("chat")] == [{"n": 1}]
    await again.close()


@pytest.fixture
async def pg() -> AsyncIterator[tuple[PostgresSessionStore, Any]]:
    require_server("postgres")
    import asyncpg

    store = PostgresSessionStore.from_url(POSTGRES_URL, table=unique("sessionware_ix_"))
    conn = await asyncpg.connect(POSTGRES_URL)
    yield store, conn
    await conn.close()
    await store.drop_tables()
    await store.close()


async def test_postgres_layout_and_a_keyset_page(pg: tuple[PostgresSessionStore, Any]) -> None:
    store, conn = pg
    table = f"{store.table}_index"
    await store.index_put("k", "a", 1.0, ttl=100)
    await store.index_put("k", "b", 2.0)
    columns = await conn.fetch(
        "SELECT column_name, data_type, is_nullable, collation_name FROM information_schema.columns"
        " WHERE table_name = $1 ORDER BY ordinal_position",
        table,
    )
    assert [tuple(c) for c in columns] == [
        ("key", "text", "NO", "C"),
        ("member", "text", "NO", "C"),
        ("score", "double precision", "NO", None),
        ("expires_at", "timestamp with time zone", "YES", None),
    ]
    indexes = {
        r[0]: r[1] for r in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", table)
    }
    assert indexes[f"{table}_pkey"].endswith("(key, member)")
    assert indexes[f"{table}_idx"].endswith("(key, score, member)")
    assert indexes[f"{table}_exp"].endswith("(key, expires_at)")
    # Written by another program: read like the store's own (NULL expiry: the index never expires).
    await conn.execute(f'INSERT INTO "{table}" VALUES ($1, $2, $3, NULL)', "k", "c", 1.5)
    assert await store.index_page("k", limit=10) == [("b", 2.0), ("c", 1.5), ("a", 1.0)]
    await conn.execute(
        f"INSERT INTO \"{table}\" SELECT 'k' || (i % 20), 'm' || i, i % 7, NULL FROM generate_series(1, 40000) i"
    )
    await conn.execute(f'ANALYZE "{table}"')
    stmt = store.index_statements.page_next
    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + stmt.sql, "k1", 3.0, "m5", 10))
    assert f"Index Only Scan Backward using {table}_idx" in plan, plan
    assert "ROW(score, member) < ROW(" in plan, plan


async def test_postgres_a_version_2_table_is_upgraded_in_place(pg: tuple[PostgresSessionStore, Any]) -> None:
    store, conn = pg
    await store.set("k", {"v": 1})
    await store.close()
    await conn.execute(f'DROP TABLE "{store.table}_index"')
    await conn.execute(f"UPDATE \"{store.table}_meta\" SET value = 2 WHERE name = 'schema_version'")
    again = PostgresSessionStore.from_url(POSTGRES_URL, table=store.table)
    try:
        assert await again.get("k") == {"v": 1}
        version = await conn.fetchval(f"SELECT value FROM \"{store.table}_meta\" WHERE name = 'schema_version'")
        assert version == SCHEMA_VERSION == 3
        await again.index_put("ix", "a", 1.0)
        assert await again.index_page("ix", limit=5) == [("a", 1.0)]
    finally:
        await again.close()


def test_the_capability_is_a_runtime_checkable_protocol() -> None:
    assert isinstance(InMemorySessionStore(), IndexStore)
    assert not isinstance(object(), IndexStore)
    assert "IndexStore" in cast(Any, __import__("sessionware.store", fromlist=["__all__"])).__all__
