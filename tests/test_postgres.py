"""The PostgreSQL backend against the real server: schema, errors, corruption, several processes, purge."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from sessionware.errors import (
    ConflictError,
    InvalidStoreURLError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    SchemaVersionError,
    SessionDecodeError,
    StoreClosedError,
    StoreError,
    StoreUnavailableError,
)
from sessionware.stores.sql._base import SCHEMA_VERSION
from sessionware.stores.sql.postgres import PostgresSessionStore

from .conftest import POSTGRES_URL, require_server, unique

OpenStore = Callable[..., PostgresSessionStore]


@pytest.fixture
async def open_store() -> AsyncIterator[OpenStore]:
    """Stores on fresh tables (one table unless given); every table is dropped afterwards."""
    require_server("postgres")
    stores: list[PostgresSessionStore] = []
    default_table = unique("sessionware_test_")

    def factory(**options: Any) -> PostgresSessionStore:
        options.setdefault("table", default_table)
        store = PostgresSessionStore.from_url(POSTGRES_URL, **options)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        try:
            await store.drop_tables()
        finally:
            await store.close()


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    """A raw connection of our own, as another program would have."""
    require_server("postgres")
    connection = await asyncpg.connect(POSTGRES_URL)
    yield connection
    await connection.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_server_is_unavailable() -> None:
    store = PostgresSessionStore(f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    with pytest.raises(StoreUnavailableError) as info:
        await store.get("k")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreUnavailableError):
        await store.log_append("k", [{"n": 1}])
    await store.close()


async def test_closed_pool_is_unavailable_and_not_ours_to_close(open_store: OpenStore) -> None:
    owner = open_store()
    pool = await asyncpg.create_pool(POSTGRES_URL, min_size=1, max_size=2)
    store = PostgresSessionStore(pool, table=owner.table)
    await store.set("k", {"v": 1})
    await store.close()
    assert await pool.fetchval("SELECT 1") == 1, "close() left the caller's pool open"
    with pytest.raises(StoreClosedError, match="closed"):
        await store.get("k")
    other = PostgresSessionStore(pool, table=owner.table)
    assert await other.get("k") == {"v": 1}
    await pool.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await other.get("k")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidStoreURLError, match="postgresql://"):
        PostgresSessionStore.from_url("mysql://localhost/db")
    with pytest.raises(InvalidValueError, match="pool_or_dsn"):
        PostgresSessionStore(42)  # type: ignore[arg-type]
    for table in ["", "bad-name", "x; DROP TABLE y", 'q"uote', "a" * 51]:
        with pytest.raises(InvalidValueError, match="table"):
            PostgresSessionStore(POSTGRES_URL, table=table)


async def test_schema_created_on_first_use_with_version_row(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    table = store.table
    assert await conn.fetchval("SELECT to_regclass($1)", table) is None
    await store.get("k")
    names = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE $1", table + "%")}
    assert names == {table, f"{table}_log", f"{table}_logs", f"{table}_meta", f"{table}_locks", f"{table}_index"}
    assert await conn.fetchval(f'SELECT value FROM "{table}_meta" WHERE name = $1', "schema_version") == (
        SCHEMA_VERSION
    )
    value_type = await conn.fetchval(
        "SELECT data_type FROM information_schema.columns WHERE table_name = $1 AND column_name = 'value'", table
    )
    assert value_type == "bytea"


async def test_newer_schema_version_is_refused(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    await store.set("k", {"v": 1})
    await conn.execute(f'UPDATE "{store.table}_meta" SET value = $1', SCHEMA_VERSION + 1)
    newer = open_store()
    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade sessionware"):
        await newer.get("k")
    with pytest.raises(SchemaVersionError):
        await newer.set("k", {"v": 2})
    assert await conn.fetchval(f'SELECT value FROM "{store.table}" WHERE key = $1', "k") == b'{"v":1}'


async def test_tables_created_by_several_stores_at_once(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(6)]
    await asyncio.gather(*(s.set(f"k{i}", {"i": i}) for i, s in enumerate(stores)))
    assert await stores[0].get("k5") == {"i": 5}
    seqs = await asyncio.gather(*(s.log_append("shared", [{"i": i}]) for i, s in enumerate(stores)))
    assert sorted(s for batch in seqs for s in batch) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "stored",
    [b"\xff\xfe\x00garbage", b'{"truncated": [1, 2', b"[1, 2]"],
    ids=["invalid-bytes", "truncated-json", "not-an-object"],
)
async def test_corrupted_value_is_reported_and_left_alone(
    open_store: OpenStore, conn: asyncpg.Connection, stored: bytes
) -> None:
    store = open_store()
    await store.set("victim", {"ok": True})
    await store.set("bystander", {"ok": True})
    await conn.execute(f'UPDATE "{store.table}" SET value = $1 WHERE key = $2', stored, "victim")
    for _ in range(2):
        with pytest.raises(SessionDecodeError) as info:
            await store.get("victim")
        assert info.value.key == "victim"
    assert await conn.fetchval(f'SELECT value FROM "{store.table}" WHERE key = $1', "victim") == stored
    assert await store.get_raw("victim") == stored
    assert await store.get("bystander") == {"ok": True}


async def test_corrupted_log_entry_names_the_log(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    await store.log_append("chat", [{"n": 1}, {"n": 2}])
    await conn.execute(f'UPDATE "{store.table}_log" SET value = $1 WHERE seq = 2', b"\x80")
    with pytest.raises(SessionDecodeError) as info:
        await store.log_read("chat")
    assert info.value.key == "chat"
    assert [e.value for e in await store.log_read("chat", last=1, before=2)] == [{"n": 1}]


async def test_versions_grow_with_every_write_and_never_repeat(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()

    async def version(key: str) -> int:
        return int(await conn.fetchval(f'SELECT version FROM "{store.table}" WHERE key = $1', key))

    seen = []
    for i in range(3):
        await store.set("k", {"i": i})
        seen.append(await version("k"))
    assert seen == sorted(set(seen))
    assert await store.touch("k", 30)
    assert await version("k") == seen[-1], "touch moves the expiry, not the value"
    await store.delete("k")
    await store.set("k", {"i": 9})
    assert await version("k") > seen[-1], "a key written again after a delete starts above its old versions"


async def test_purge_expired_counts_and_removes(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    t = store.table
    await store.set("gone:1", {"v": 1}, ttl=0.1)
    await store.set("gone:2", {"v": 2}, ttl=0.1)
    await store.set("kept:ttl", {"v": 3}, ttl=60)
    await store.set("kept:forever", {"v": 4})
    await store.log_append("log:gone", [{"n": 1}, {"n": 2}], ttl=0.1)
    await store.log_append("log:kept", [{"n": 1}])
    await asyncio.sleep(0.35)
    assert await store.get("gone:1") is None
    assert await store.log_read("log:gone") == []
    assert [k async for k in store.scan("gone:")] == []
    assert await conn.fetchval(f'SELECT count(*) FROM "{t}"') == 4
    assert await store.purge_expired() == 3
    assert sorted(r[0] for r in await conn.fetch(f'SELECT key FROM "{t}"')) == ["kept:forever", "kept:ttl"]
    assert [tuple(r) for r in await conn.fetch(f'SELECT key FROM "{t}_logs"')] == [("log:kept",)]
    assert [tuple(r) for r in await conn.fetch(f'SELECT key, seq FROM "{t}_log"')] == [("log:kept", 1)]
    assert await store.purge_expired() == 0


async def test_expired_log_starts_again_from_one(open_store: OpenStore) -> None:
    store = open_store()
    await store.log_append("chat", [{"n": i} for i in range(5)], ttl=0.1, max_len=3)
    await asyncio.sleep(0.35)
    assert await store.log_last_seq("chat") == 0
    assert await store.log_append("chat", [{"fresh": True}]) == [1]
    assert [(e.seq, e.value) for e in await store.log_read("chat")] == [(1, {"fresh": True})]
    assert await store.log_length("chat") == 1
    left = await store.expires_in("chat")
    assert left is None, "the log's ttl does not touch the record of the same key"


async def test_trim_inside_one_big_append(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    assert await store.log_append("chat", [{"n": i} for i in range(10)], max_len=3) == list(range(1, 11))
    assert [e.seq for e in await store.log_read("chat")] == [8, 9, 10]
    assert await store.log_append("chat", [{"n": 10}, {"n": 11}], max_len=3) == [11, 12]
    assert [e.seq for e in await store.log_read("chat")] == [10, 11, 12]
    assert await conn.fetchval(f'SELECT count(*) FROM "{store.table}_log"') == 3
    assert await store.log_append("chat", [], max_len=1) == []
    assert [e.seq for e in await store.log_read("chat")] == [12]
    assert await store.log_last_seq("chat") == 12


async def test_last_entries_read_through_the_key_seq_index(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    for start in range(0, 3000, 500):
        await store.log_append("long", [{"n": i} for i in range(start, start + 500)])
    await store.log_append("other", [{"n": 0}])
    await conn.execute(f'ANALYZE "{store.table}_log"')
    assert [e.seq for e in await store.log_read("long", last=3)] == [2998, 2999, 3000]
    read = store.statements.log_read
    args = read.args({"key": "long", "lo": 0, "hi": 2**62, "limit": 20})
    plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + read.sql, *args))

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    scans = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == f"{store.table}_log"]
    assert [(n["Node Type"], n["Scan Direction"], n["Index Name"]) for n in scans] == [
        ("Index Scan", "Backward", f"{store.table}_log_pkey")
    ]
    assert not [n for n in nodes(plan[0]["Plan"]) if n["Node Type"] == "Sort"]


async def test_scan_is_literal_and_pages(open_store: OpenStore) -> None:
    store = open_store()
    await asyncio.gather(*(store.set(f"p:{i:04d}", {}) for i in range(1100)))
    for key in ["p%", "p_x", "P:upper", "a\ue000"]:
        await store.set(key, {})
    keys = [k async for k in store.scan("p:")]
    assert keys == [f"p:{i:04d}" for i in range(1100)]
    assert len([k async for k in store.scan("", limit=1103)]) == 1103
    assert [k async for k in store.scan("p_")] == ["p_x"]
    assert [k async for k in store.scan("a\ud7ff")] == []


async def test_driver_errors_are_typed(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    await store.set("k", {"v": 1})
    await conn.execute(f'DROP TABLE "{store.table}_logs"')
    with pytest.raises(StoreError, match="log_last_seq failed") as info:
        await store.log_last_seq("k")
    assert isinstance(info.value.__cause__, asyncpg.UndefinedTableError)
    assert await store.get("k") == {"v": 1}


# -- versions and leases -------------------------------------------------------------------------


async def test_a_version_1_table_is_upgraded_in_place(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()
    await store.set("k", {"v": 1})
    await store.close()
    await conn.execute(f'DROP TABLE "{store.table}_locks"')
    await conn.execute(f"UPDATE \"{store.table}_meta\" SET value = 1 WHERE name = 'schema_version'")
    again = open_store()
    assert await again.get("k") == {"v": 1}
    assert await conn.fetchval(f"SELECT value FROM \"{store.table}_meta\" WHERE name = 'schema_version'") == (
        SCHEMA_VERSION
    )
    held = await again.lock("k", lease=5, wait=0)
    await again.commit(held.lease, b'{"v":2}')
    assert await again.get("k") == {"v": 2}


async def test_leases_live_in_an_unlogged_table_by_the_server_clock(
    open_store: OpenStore, conn: asyncpg.Connection
) -> None:
    store = open_store()
    held = await store.lock("k", lease=30, wait=0)
    row = await conn.fetchrow(
        f'SELECT token, EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 AS left FROM "{store.table}_locks"'
    )
    assert row is not None
    assert row["token"] == held.lease.token
    assert 29 < row["left"] <= 30
    persistence = await conn.fetchval("SELECT relpersistence FROM pg_class WHERE relname = $1", f"{store.table}_locks")
    assert persistence == b"u"
    # Expiry follows the server's clock: moving the row's expiry into the past frees the lease at once.
    await conn.execute(f"UPDATE \"{store.table}_locks\" SET expires_at = clock_timestamp() - interval '1 second'")
    with pytest.raises(LeaseExpiredError):
        await store.renew(held.lease)
    taker = await store.lock("k", lease=30, wait=0)
    with pytest.raises(LeaseExpiredError):
        await store.commit(held.lease, b'{"late":true}')
    await store.commit(taker.lease, b'{"n":1}')
    assert await store.get("k") == {"n": 1}


async def test_lease_rows_do_not_accumulate(open_store: OpenStore, conn: asyncpg.Connection) -> None:
    store = open_store()

    async def lease_rows() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await conn.fetch(f'SELECT key, token FROM "{store.table}_locks" ORDER BY key')]

    for i in range(5):
        held = await store.lock(f"k{i}", lease=5, wait=0)
        await store.commit(held.lease, b'{"i":1}')
        await store.unlock((await store.lock(f"k{i}", lease=5, wait=0)).lease)
    assert await lease_rows() == []
    stale = await store.lock("stale", lease=0.05, wait=0)
    lonely = await store.lock("lonely", lease=0.05, wait=0)
    await asyncio.sleep(0.2)
    taker = await store.lock("stale", lease=5, wait=0)
    await store.unlock(stale.lease)
    assert await lease_rows() == [("lonely", lonely.lease.token), ("stale", taker.lease.token)]
    assert await store.purge_expired() == 0, "leases are not records; the count leaves them out"
    assert await lease_rows() == [("stale", taker.lease.token)]
    await store.commit(taker.lease, None)
    assert await lease_rows() == []


@pytest.mark.parametrize("existed", [True, False], ids=["update", "insert"])
async def test_a_lease_taken_while_the_holder_commits_reads_that_commit(
    open_store: OpenStore, conn: asyncpg.Connection, existed: bool
) -> None:
    """The read under a new lease must see the previous holder's write, even when the take waited for it."""
    store = open_store()
    t = store.table
    if existed:
        await store.set("k", {"n": 1})
    held = await store.lock("k", lease=30, wait=0)
    # The holder's commit, held open: it has released the lease row and written the record.
    async with conn.transaction():
        await conn.execute(f'DELETE FROM "{t}_locks" WHERE key = $1 AND token = $2', "k", held.lease.token)
        await conn.execute(
            f'INSERT INTO "{t}" (key, value, version) VALUES ($1, $2, nextval(\'"{t}_version_seq"\'))'
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version",
            "k",
            b'{"n":2}',
        )
        waiting = asyncio.create_task(store.lock("k", lease=30, wait=5))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    got = await waiting
    assert got.record is not None
    assert got.record.data == b'{"n":2}'
    await store.unlock(got.lease)


async def test_leases_exclude_another_pool(open_store: OpenStore) -> None:
    one, two = open_store(), open_store()
    await one.set("k", {"n": 1})
    held = await one.lock("k", lease=5, wait=0)
    with pytest.raises(LockError, match=r"gave up after 0\.05s"):
        await two.lock("k", lease=5, wait=0.05)
    waiting = asyncio.create_task(two.lock("k", lease=5, wait=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    version = await one.commit(held.lease, b'{"n":2}')
    got = await waiting
    assert got.record is not None
    assert (got.record.data, got.record.version) == (b'{"n":2}', version)
    await two.commit(got.lease, b'{"n":3}')
    assert await one.get("k") == {"n": 3}


async def test_an_expired_record_counts_as_missing_for_compare_and_set(open_store: OpenStore) -> None:
    store = open_store()
    old = await store.set_versioned("k", b"{}", expected=None, ttl=0.05)
    await asyncio.sleep(0.2)
    assert await store.get_versioned("k") is None
    with pytest.raises(ConflictError):
        await store.set_versioned("k", b'{"n":1}', expected=old)
    await store.delete_versioned("k", expected=0)
    new = await store.set_versioned("k", b'{"n":1}', expected=0)
    assert new != old
    with pytest.raises(ConflictError, match="expected version 0"):
        await store.delete_versioned("k", expected=0)
    with pytest.raises(ConflictError):
        await store.delete_versioned("missing", expected=3)
    await store.delete_versioned("k", expected=new)
    assert await store.get("k") is None


async def test_version_and_lease_arguments_are_checked(open_store: OpenStore) -> None:
    store = open_store()
    await store.set("k", {"kept": True})
    for expected in (-1, True, "1"):
        with pytest.raises(InvalidValueError, match="expected"):
            await store.set_versioned("k", b"{}", expected=expected)  # type: ignore[arg-type]
    for lease in (0, float("inf"), "5"):
        with pytest.raises(InvalidValueError, match="lease"):
            await store.lock("k", lease=lease, wait=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="wait"):
        await store.lock("k", lease=5, wait=-1)
    with pytest.raises(InvalidValueError, match="retries"):
        PostgresSessionStore(POSTGRES_URL, retries=-1)
    held = await store.lock("k", lease=5, wait=0)
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.commit(held.lease, b"{}", ttl=0)
    with pytest.raises(InvalidValueError, match="lease"):
        await store.unlock(None)  # type: ignore[arg-type]
    await store.unlock(held.lease)
    assert await store.get("k") == {"kept": True}
