"""The SQLite backend on real files: persistence, several processes, corruption, schema versions, locks."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sessionware.errors import (
    ConflictError,
    InvalidKeyError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    SchemaVersionError,
    SessionDecodeError,
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from sessionware.store import Lease
from sessionware.stores.sql._base import SCAN_PAGE, SCHEMA_VERSION
from sessionware.stores.sql.sqlite import SQLiteSessionStore

TABLE = "sessionware_sessions"


def raw(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of our own, as another program would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


async def test_data_persists_across_close_and_reopen(path: Path) -> None:
    first = SQLiteSessionStore(path)
    await first.set("user:1", {"name": "Ada", "n": 2**70})
    await first.set("user:2", {"v": 2}, ttl=60)
    assert await first.log_append("chat:1", [{"m": "hi"}, {"m": "there"}]) == [1, 2]
    await first.close()

    second = SQLiteSessionStore(str(path))
    assert await second.get("user:1") == {"name": "Ada", "n": 2**70}
    left = await second.expires_in("user:2")
    assert left is not None
    assert 50 < left <= 60
    assert [e.value for e in await second.log_read("chat:1")] == [{"m": "hi"}, {"m": "there"}]
    assert await second.log_append("chat:1", [{"m": "again"}]) == [3]
    await second.close()

    # A closed store refuses further calls instead of opening its file again.
    with pytest.raises(StoreClosedError, match="closed"):
        await first.log_last_seq("chat:1")


def test_nothing_is_opened_before_first_use(path: Path) -> None:
    SQLiteSessionStore(path)
    assert not path.exists()


async def test_wal_mode_and_schema_on_first_use(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.get("nothing")
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {TABLE, f"{TABLE}_log", f"{TABLE}_logs", f"{TABLE}_meta", f"{TABLE}_locks", f"{TABLE}_index"}
    assert raw(path, f"SELECT value FROM {TABLE}_meta WHERE name = 'schema_version'") == [(SCHEMA_VERSION,)]
    await store.close()


async def test_versions_grow_with_every_write_and_never_repeat(path: Path) -> None:
    store = SQLiteSessionStore(path)

    def version(key: str) -> int:
        return int(raw(path, f"SELECT version FROM {TABLE} WHERE key = ?", key)[0][0])

    for i in range(3):
        await store.set("k", {"i": i})
    assert version("k") == 3
    assert await store.touch("k", 30)
    assert version("k") == 3, "touch moves the expiry, not the value"
    await store.set("other", {})
    await store.delete("k")
    await store.set("k", {"i": 9})
    assert version("k") == 4, "a key written again after a delete starts above its old versions"
    await store.set("gone", {}, ttl=0.05)
    await store.set("gone", {})
    await store.set("gone", {}, ttl=0.05)
    gone = version("gone")
    await asyncio.sleep(0.2)
    assert await store.purge_expired() == 1
    await store.set("gone", {})
    assert version("gone") > gone
    await store.close()


@pytest.mark.parametrize(
    "stored",
    [b"\xff\xfe\x00garbage", b'{"truncated": [1, 2', b"[1, 2]", "text written by hand"],
    ids=["invalid-bytes", "truncated-json", "not-an-object", "text-value"],
)
async def test_corrupted_value_is_reported_and_left_alone(path: Path, stored: bytes | str) -> None:
    store = SQLiteSessionStore(path)
    await store.set("victim", {"ok": True})
    await store.set("bystander", {"ok": True})
    raw(path, f"UPDATE {TABLE} SET value = ? WHERE key = 'victim'", stored)

    for _ in range(2):
        with pytest.raises(SessionDecodeError) as info:
            await store.get("victim")
        assert info.value.key == "victim"
        assert "victim" in str(info.value)
    assert raw(path, f"SELECT value FROM {TABLE} WHERE key = 'victim'") == [(stored,)]
    expected = stored if isinstance(stored, bytes) else stored.encode()
    assert await store.get_raw("victim") == expected
    assert await store.get("bystander") == {"ok": True}
    await store.close()


async def test_corrupted_log_entry_names_the_log(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.log_append("chat", [{"n": 1}, {"n": 2}])
    raw(path, f"UPDATE {TABLE}_log SET value = ? WHERE key = 'chat' AND seq = 2", b'{"n": ')
    with pytest.raises(SessionDecodeError) as info:
        await store.log_read("chat")
    assert info.value.key == "chat"
    assert [e.value for e in await store.log_read("chat", before=2)] == [{"n": 1}]
    assert raw(path, f"SELECT value FROM {TABLE}_log WHERE key = 'chat' AND seq = 2") == [(b'{"n": ',)]
    await store.close()


async def test_newer_schema_version_is_refused(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.set("k", {"v": 1})
    await store.close()
    raw(path, f"UPDATE {TABLE}_meta SET value = ? WHERE name = 'schema_version'", SCHEMA_VERSION + 1)

    newer = SQLiteSessionStore(path)
    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade sessionware"):
        await newer.get("k")
    with pytest.raises(SchemaVersionError):
        await newer.set("k", {"v": 2})
    await newer.close()
    assert raw(path, f"SELECT value FROM {TABLE} WHERE key = 'k'") == [(b'{"v":1}',)]

    raw(path, f"UPDATE {TABLE}_meta SET value = 'banana' WHERE name = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="unreadable schema version 'banana'"):
        await SQLiteSessionStore(path).get("k")


async def test_purge_expired_counts_and_removes(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.set("gone:1", {"v": 1}, ttl=0.1)
    await store.set("gone:2", {"v": 2}, ttl=0.1)
    await store.set("kept:ttl", {"v": 3}, ttl=60)
    await store.set("kept:forever", {"v": 4})
    await store.log_append("log:gone", [{"n": 1}, {"n": 2}], ttl=0.1)
    await store.log_append("log:kept", [{"n": 1}])
    await asyncio.sleep(0.35)
    # Expired rows are invisible before the purge...
    assert await store.get("gone:1") is None
    assert await store.log_read("log:gone") == []
    assert raw(path, f"SELECT count(*) FROM {TABLE}") == [(4,)]
    # ...and gone after it.
    assert await store.purge_expired() == 3
    assert sorted(r[0] for r in raw(path, f"SELECT key FROM {TABLE}")) == ["kept:forever", "kept:ttl"]
    assert raw(path, f"SELECT key FROM {TABLE}_logs") == [("log:kept",)]
    assert raw(path, f"SELECT key, seq FROM {TABLE}_log") == [("log:kept", 1)]
    assert await store.purge_expired() == 0
    await store.close()


async def test_expired_log_starts_again_from_one(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.log_append("chat", [{"n": i} for i in range(5)], ttl=0.1)
    await asyncio.sleep(0.35)
    assert await store.log_last_seq("chat") == 0
    assert await store.log_length("chat") == 0
    assert await store.log_append("chat", [{"fresh": True}]) == [1]
    assert [(e.seq, e.value) for e in await store.log_read("chat")] == [(1, {"fresh": True})]
    assert await store.log_length("chat") == 1
    await store.close()


async def test_log_ttl_slides_and_empty_append_refreshes_it(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.log_append("chat", [{"n": 1}], ttl=0.1)
    assert await store.log_append("chat", [], ttl=60) == []
    await store.log_append("chat", [{"n": 2}])
    await asyncio.sleep(0.35)
    assert [e.seq for e in await store.log_read("chat")] == [1, 2]
    assert await store.log_append("other", []) == []
    assert await store.log_last_seq("other") == 0
    await store.close()


async def test_trim_inside_one_big_append(path: Path) -> None:
    store = SQLiteSessionStore(path)
    assert await store.log_append("chat", [{"n": i} for i in range(10)], max_len=3) == list(range(1, 11))
    assert [e.seq for e in await store.log_read("chat")] == [8, 9, 10]
    assert await store.log_length("chat") == 3
    assert raw(path, f"SELECT count(*) FROM {TABLE}_log") == [(3,)]
    assert await store.log_append("chat", [], max_len=1) == []
    assert [e.seq for e in await store.log_read("chat")] == [10]
    assert await store.log_last_seq("chat") == 10
    await store.close()


async def test_log_read_arguments_are_checked(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.log_append("chat", [{"n": 1}])
    with pytest.raises(InvalidValueError, match="last"):
        await store.log_read("chat", last=-1)
    with pytest.raises(InvalidValueError, match="after"):
        await store.log_read("chat", after="0")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="before"):
        await store.log_read("chat", before=True)
    assert [e.seq for e in await store.log_read("chat", after=-5, before=2**80)] == [1]
    await store.close()


async def test_last_entries_read_through_the_key_seq_index(path: Path) -> None:
    store = SQLiteSessionStore(path)
    for start in range(0, 3000, 500):
        await store.log_append("long", [{"n": i} for i in range(start, start + 500)])
    assert [e.seq for e in await store.log_read("long", last=3)] == [2998, 2999, 3000]
    read = store.statements.log_read
    args = read.args({"key": "long", "lo": 0, "hi": 2**62, "now": 0.0, "limit": 20})
    plan = " | ".join(str(row[-1]) for row in raw(path, "EXPLAIN QUERY PLAN " + read.sql, *args))
    assert f"SEARCH {TABLE}_log USING INDEX sqlite_autoindex_{TABLE}_log_1 (key=? AND seq>? AND seq<?)" in plan
    assert "TEMP B-TREE" not in plan
    await store.close()


async def test_scan_pages_through_many_keys(path: Path) -> None:
    store = SQLiteSessionStore(path)
    count = SCAN_PAGE * 2 + 7
    for i in range(count):
        await store.set(f"p:{i:05d}", {})
    await store.set("p:expired", {}, ttl=0.05)
    await store.set("q:other", {})
    await asyncio.sleep(0.2)
    keys = [k async for k in store.scan("p:")]
    assert keys == [f"p:{i:05d}" for i in range(count)]
    assert [k async for k in store.scan("p:", limit=SCAN_PAGE + 1)] == keys[: SCAN_PAGE + 1]
    assert [k async for k in store.scan("p:", limit=0)] == []
    await store.close()


def steps(path: Path, sql: str, *params: Any) -> int:
    """How many virtual-machine steps SQLite takes for one statement (counted by its progress handler)."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.set_progress_handler(tick, 1)
        conn.execute(sql, params).fetchall()
    return count


async def test_a_scan_page_costs_the_same_deep_in_the_table(path: Path) -> None:
    store = SQLiteSessionStore(path)
    for i in range(5000):
        await store.set(f"k{i:05d}", {})
    page = store.statements.scan_next
    near = steps(path, page.sql, *page.args({"after": "k00010", "high": "l", "now": 0.0, "size": 100}))
    deep = steps(path, page.sql, *page.args({"after": "k04800", "high": "l", "now": 0.0, "size": 100}))
    assert deep < 2 * near, (near, deep)  # the page seeks to its first key instead of walking from the prefix
    assert [k async for k in store.scan("k")][4998:] == ["k04998", "k04999"]
    await store.close()


async def test_scan_prefix_edges(path: Path) -> None:
    store = SQLiteSessionStore(path)
    for key in ["a\ud7ffz", "a\ue000", "\U0010ffffx", "\U0010ffff", "b"]:
        await store.set(key, {})
    assert [k async for k in store.scan("a\ud7ff")] == ["a\ud7ffz"]
    assert [k async for k in store.scan("\U0010ffff")] == ["\U0010ffff", "\U0010ffffx"]
    assert [k async for k in store.scan("bad\x00prefix")] == []
    with pytest.raises(InvalidKeyError):
        [k async for k in store.scan(b"a")]  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="limit"):
        [k async for k in store.scan("a", limit=-1)]
    await store.close()


@pytest.mark.parametrize("table", ["", "1st", "bad-name", "x; DROP TABLE y", 'q"uote', "a" * 51, None])
def test_table_must_be_a_plain_identifier(path: Path, table: Any) -> None:
    with pytest.raises(InvalidValueError, match="table"):
        SQLiteSessionStore(path, table=table)


async def test_tables_in_one_file_are_independent(path: Path) -> None:
    one = SQLiteSessionStore(path, table="bots")
    two = SQLiteSessionStore(path, table="agents")
    assert one.table == "bots"
    await one.set("k", {"who": "bots"})
    await two.set("k", {"who": "agents"})
    await one.log_append("k", [{"n": 1}])
    assert await one.get("k") == {"who": "bots"}
    assert await two.get("k") == {"who": "agents"}
    assert await two.log_last_seq("k") == 0
    await one.close()
    await two.close()


async def test_ttl_too_long_is_refused_before_a_write(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.set("k", {"kept": True})
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.set("k", {"v": 2}, ttl=1e300)
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.log_append("k", [{"v": 2}], ttl=1e300)
    assert await store.get("k") == {"kept": True}
    assert await store.log_last_seq("k") == 0
    await store.close()


def write_garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)


async def test_a_file_that_is_not_a_database_is_a_store_error(path: Path) -> None:
    write_garbage(path)
    store = SQLiteSessionStore(path)
    with pytest.raises(StoreError, match="not a database") as info:
        await store.get("k")
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    await store.close()


def test_lock_timeout_is_checked(path: Path) -> None:
    for bad in (-1, float("nan"), "5", True):
        with pytest.raises(InvalidValueError, match="lock_timeout"):
            SQLiteSessionStore(path, lock_timeout=bad)  # type: ignore[arg-type]


async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteSessionStore(tmp_path / "no-such-dir" / "x.db")
    with pytest.raises(StoreUnavailableError, match="no-such-dir"):
        await store.get("k")


async def test_a_foreign_lock_never_blocks_the_event_loop(path: Path) -> None:
    store = SQLiteSessionStore(path, lock_timeout=0.4)
    await store.set("k", {"v": 1})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreTimeoutError, match="locked by another connection"):
            await store.set("k", {"v": 2})
        assert ticks >= 5, "the loop kept running while the store waited for the lock"
        # WAL: reads go on under another connection's write lock.
        assert await store.get("k") == {"v": 1}
        impatient = SQLiteSessionStore(path, timeout=0.1)
        with pytest.raises(StoreTimeoutError, match=r"timed out after 0\.1s"):
            await impatient.set("k", {"v": 2})
        await impatient.close()

        pending = asyncio.create_task(store.log_append("chat", [{"n": 1}]))
        await asyncio.sleep(0.1)
        assert not pending.done()
        other.execute("ROLLBACK")
        assert await pending == [1]
    ticking.cancel()
    assert await store.get("k") == {"v": 1}
    await store.close()


# -- versions and leases -------------------------------------------------------------------------


async def test_a_version_1_file_is_upgraded_in_place(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.set("k", {"v": 1})
    await store.log_append("chat", [{"n": 1}])
    await store.close()
    raw(path, f"DROP TABLE {TABLE}_locks")
    raw(path, f"UPDATE {TABLE}_meta SET value = 1 WHERE name = 'schema_version'")

    again = SQLiteSessionStore(path)
    assert await again.get("k") == {"v": 1}
    assert raw(path, f"SELECT value FROM {TABLE}_meta WHERE name = 'schema_version'") == [(SCHEMA_VERSION,)]
    held = await again.lock("k", lease=5, wait=0)
    assert held.record is not None
    await again.commit(held.lease, b'{"v":2}')
    assert await again.get("k") == {"v": 2}
    assert [e.value for e in await again.log_read("chat")] == [{"n": 1}]
    await again.close()


async def test_lease_rows_do_not_accumulate(path: Path) -> None:
    store = SQLiteSessionStore(path)

    def lease_rows() -> list[tuple[Any, ...]]:
        return raw(path, f"SELECT key, token FROM {TABLE}_locks ORDER BY key")

    for i in range(5):
        held = await store.lock(f"k{i}", lease=5, wait=0)
        await store.commit(held.lease, b'{"i":1}')
        await store.unlock((await store.lock(f"k{i}", lease=5, wait=0)).lease)
    assert lease_rows() == []

    stale = await store.lock("stale", lease=0.05, wait=0)
    lonely = await store.lock("lonely", lease=0.05, wait=0)
    await asyncio.sleep(0.2)
    taker = await store.lock("stale", lease=5, wait=0)
    assert lease_rows() == [("lonely", lonely.lease.token), ("stale", taker.lease.token)]
    with pytest.raises(LeaseExpiredError):
        await store.commit(stale.lease, b"{}")
    await store.unlock(stale.lease)
    assert lease_rows() == [("lonely", lonely.lease.token), ("stale", taker.lease.token)], "a stale token frees nothing"
    assert await store.purge_expired() == 0, "leases are not records; the count leaves them out"
    assert lease_rows() == [("stale", taker.lease.token)]
    with pytest.raises(LeaseExpiredError):
        await store.commit(lonely.lease, b"{}")
    await store.commit(taker.lease, None)
    assert lease_rows() == []
    assert await store.get("stale") is None
    await store.close()


async def test_leases_exclude_other_connections_and_hand_over_the_newest_record(path: Path) -> None:
    one, two = SQLiteSessionStore(path), SQLiteSessionStore(path)
    await one.set("k", {"n": 1})
    held = await one.lock("k", lease=5, wait=0)
    with pytest.raises(LockError, match=r"gave up after 0\.05s"):
        await two.lock("k", lease=5, wait=0.05)
    waiting = asyncio.create_task(two.lock("k", lease=5, wait=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    version = await one.commit(held.lease, one.codec.encode({"n": 2}))
    got = await waiting
    assert got.record is not None
    assert (got.record.data, got.record.version) == (b'{"n":2}', version)
    await two.commit(got.lease, two.codec.encode({"n": 3}))
    assert await one.get("k") == {"n": 3}
    await one.close()
    await two.close()


async def test_waiting_for_a_lease_never_takes_the_write_lock(path: Path) -> None:
    store = SQLiteSessionStore(path, lock_timeout=5)
    held = await store.lock("k", lease=5, wait=0)
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(LockError):
            await store.lock("k", lease=5, wait=0.2)
        assert time.monotonic() - started < 1, "the waiter looked at the lease without the write lock"
        other.execute("ROLLBACK")
    await store.unlock(held.lease)
    await store.close()


async def test_an_expired_record_counts_as_missing_for_compare_and_set(path: Path) -> None:
    store = SQLiteSessionStore(path)
    old = await store.set_versioned("k", b"{}", expected=None, ttl=0.05)
    await asyncio.sleep(0.2)
    assert await store.get_versioned("k") is None
    with pytest.raises(ConflictError):
        await store.set_versioned("k", b'{"n":1}', expected=old)
    await store.delete_versioned("k", expected=0)
    new = await store.set_versioned("k", b'{"n":1}', expected=0)
    assert new > old
    with pytest.raises(ConflictError, match="expected version 0"):
        await store.delete_versioned("k", expected=0)
    with pytest.raises(ConflictError):
        await store.delete_versioned("missing", expected=3)
    await store.close()


async def test_version_and_lease_arguments_are_checked(path: Path) -> None:
    store = SQLiteSessionStore(path)
    await store.set("k", {"kept": True})
    for expected in (-1, True, 1.5, "1"):
        with pytest.raises(InvalidValueError, match="expected"):
            await store.set_versioned("k", b"{}", expected=expected)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="expected"):
            await store.delete_versioned("k", expected=expected)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="data"):
        await store.set_versioned("k", "{}", expected=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.set_versioned("k", b"{}", expected=None, ttl=1e300)
    for lease in (0, -1, float("inf"), float("nan"), True, "5"):
        with pytest.raises(InvalidValueError, match="lease"):
            await store.lock("k", lease=lease, wait=0)  # type: ignore[arg-type]
    for wait in (-1, float("nan"), None):
        with pytest.raises(InvalidValueError, match="wait"):
            await store.lock("k", lease=5, wait=wait)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        await store.lock("", lease=5, wait=0)
    held = await store.lock("k", lease=5, wait=0)
    with pytest.raises(InvalidValueError, match="lease"):
        await store.commit(("k", held.lease.token), b"{}")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="lease"):
        await store.renew(Lease("k", "", 5))
    with pytest.raises(InvalidValueError, match="ttl"):
        await store.commit(held.lease, b"{}", ttl=-1)
    assert raw(path, f"SELECT token FROM {TABLE}_locks") == [(held.lease.token,)], "a refused commit keeps the lease"
    await store.commit(held.lease, None)
    assert await store.get("k") is None
    await store.close()
