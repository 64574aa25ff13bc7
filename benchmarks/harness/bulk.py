"""Bulk prefill of our stores: many sessions written at once, in exactly the form each store writes itself.

The form comes from the store, never from a copy of its format: the first
session is written through the store (``store.set``), its stored form is read
back (the SQL row with every column, the raw Redis string), and the other
sessions are bulk-written in that form, their values encoded by the store's
own ``codec``. Only what a fresh write changes differs between records: the
key, and the version where the store draws one per write (a number from the
table's sequence on PostgreSQL, a random one on Redis; SQLite gives every new
key the same one). A sample is read back through the store afterwards.

- SQLite: ``executemany`` of plain INSERTs, 50,000 rows per transaction, in a
  worker thread on a second connection; then a WAL checkpoint.
- PostgreSQL: versions reserved from the store's own version expression, then
  ``COPY`` (asyncpg's binary ``copy_records_to_table``), 100,000 rows per
  COPY; then ``VACUUM (ANALYZE)``, so no autovacuum starts during a timed run.
- Redis: pipelined SETs on the store's own connection, 10,000 in flight at a
  time.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sessionware.codec import JsonDict
from sessionware.store import BaseSessionStore

from .measure import Meter

if TYPE_CHECKING:
    from sessionware.stores.redis import RedisSessionStore
    from sessionware.stores.sql.postgres import PostgresSessionStore
    from sessionware.stores.sql.sqlite import SQLiteSessionStore

FIRST_KEY = 10_000_000
"""Keys are user ids from here: eight digits up to 90 million sessions, so key order is numeric order."""

SQLITE_BATCH = 50_000
POSTGRES_BATCH = 100_000
REDIS_BATCH = 10_000
SCAN_COUNT = 10_000
SAMPLE = 100
"""Records read back through the store after a prefill, spread over the whole key range."""


def bulk_key(index: int) -> str:
    """The key of the ``index``-th prefilled session (a user id, as the ``session()`` middleware keys it)."""
    return str(FIRST_KEY + index)


class PrefillError(RuntimeError):
    """The store's own record did not have the shape the prefill expects, or did not read back."""


async def prefill(store: BaseSessionStore, count: int, value: JsonDict, meter: Meter, *, postgres_url: str) -> float:
    """Write ``count`` sessions holding ``value`` under keys ``bulk_key(0..count-1)``; return the seconds it took.

    ``meter`` counts the sessions written; a PostgreSQL store is bulk-written
    over a connection of its own to ``postgres_url``. The time covers
    everything from the first write to a store ready to be measured
    (checkpoint, VACUUM), not the read-back check.
    """
    if count < 1:
        raise ValueError(f"count must be positive, not {count}")
    write = _bulk_writer(store, postgres_url)
    start = time.perf_counter()
    await store.set(bulk_key(0), value)
    meter.done = 1
    await write(count, store.codec.encode(value), meter)
    seconds = time.perf_counter() - start
    for index in sorted({round(i * (count - 1) / max(1, SAMPLE - 1)) for i in range(SAMPLE)}):
        if await store.get(bulk_key(index)) != value:
            raise PrefillError(f"prefilled session {bulk_key(index)!r} does not read back through the store")
    return seconds


BulkWriter = Callable[[int, bytes, Meter], Awaitable[None]]
"""Writes the records after the first (already written through the store): ``(count, encoded value, meter)``."""


def _bulk_writer(store: BaseSessionStore, postgres_url: str) -> BulkWriter:
    """The bulk path of ``store``'s backend."""
    if store.backend == "sqlite":
        from sessionware.stores.sql.sqlite import SQLiteSessionStore

        if isinstance(store, SQLiteSessionStore):
            return lambda count, data, meter: _prefill_sqlite(store, count, data, meter)
    elif store.backend == "postgres":
        from sessionware.stores.sql.postgres import PostgresSessionStore

        if isinstance(store, PostgresSessionStore):
            return lambda count, data, meter: _prefill_postgres(store, postgres_url, count, data, meter)
    elif store.backend == "redis":
        from sessionware.stores.redis import RedisSessionStore

        if isinstance(store, RedisSessionStore):
            return lambda count, data, meter: _prefill_redis(store, count, data, meter)
    raise PrefillError(f"no bulk prefill for a {type(store).__name__}")


def _template(columns: Sequence[str], probe: Sequence[Any], data: bytes) -> tuple[list[Any], int, int]:
    """The probe row as a list, with the positions of its key and value columns; its value must be ``data``."""
    if "key" not in columns or "value" not in columns:
        raise PrefillError(f"the store's table has columns {list(columns)}, without key and value")
    row, key, value = list(probe), columns.index("key"), columns.index("value")
    if bytes(row[value]) != data:
        raise PrefillError("the store's row holds other bytes than its codec's encoding")
    return row, key, value


def _rows(template: list[Any], key: int, start: int, stop: int, fill: Callable[[list[Any], int], None]) -> list[Any]:
    rows = []
    for index in range(start, stop):
        row = template.copy()
        row[key] = bulk_key(index)
        fill(row, index)
        rows.append(tuple(row))
    return rows


def _unchanged(row: list[Any], index: int) -> None:
    return None


# -- SQLite ----------------------------------------------------------------------------------------


async def _prefill_sqlite(store: SQLiteSessionStore, count: int, data: bytes, meter: Meter) -> None:
    table = store.names.sessions
    conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        cursor = conn.execute(f"SELECT * FROM {table} WHERE key = ?", (bulk_key(0),))
        columns = [d[0] for d in cursor.description]
        probe = cursor.fetchone()
        if probe is None:
            raise PrefillError("the record written through the store is not in its table")
        # A new key's version is the same for every key (one above the table's floor): the probe's.
        template, key, _ = _template(columns, probe, data)
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(1, count, SQLITE_BATCH):
            stop = min(count, start + SQLITE_BATCH)
            rows = _rows(template, key, start, stop, _unchanged)
            await asyncio.to_thread(_insert_batch, conn, insert, rows)
            meter.done = stop
        await asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _insert_batch(conn: sqlite3.Connection, insert: str, rows: list[Any]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise


# -- PostgreSQL ------------------------------------------------------------------------------------


async def _prefill_postgres(store: PostgresSessionStore, url: str, count: int, data: bytes, meter: Meter) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        probe = await conn.fetchrow(f"SELECT * FROM {store.names.sessions} WHERE key = $1", bulk_key(0))
        if probe is None:
            raise PrefillError("the record written through the store is not in its table")
        columns = list(probe.keys())
        template, key, _ = _template(columns, list(probe.values()), data)
        first = 1
        if count > 1 and "version" in columns:
            # Every write takes a new version from the table's sequence; take one per record the same way.
            reserved = await conn.fetchrow(
                f"SELECT min(v), max(v) FROM (SELECT {store.statements.dialect.new_version} AS v"
                " FROM generate_series(1, $1::int)) AS reserved",
                count - 1,
            )
            low, high = (0, -1) if reserved is None else (int(reserved[0]), int(reserved[1]))
            if high - low != count - 2:
                raise PrefillError(f"versions {low}..{high} reserved for {count - 1} records are not contiguous")
            position, first = columns.index("version"), low - 1

            def version(row: list[Any], index: int) -> None:
                row[position] = first + index

        else:
            version = _unchanged
        for start in range(1, count, POSTGRES_BATCH):
            stop = min(count, start + POSTGRES_BATCH)
            rows = _rows(template, key, start, stop, version)
            await conn.copy_records_to_table(store.table, records=rows, columns=columns)
            meter.done = stop
        await conn.execute(f"VACUUM (ANALYZE) {store.names.sessions}")
    finally:
        await conn.close()


# -- Redis -----------------------------------------------------------------------------------------


async def _prefill_redis(store: RedisSessionStore, count: int, data: bytes, meter: Meter) -> None:
    execute = store.driver.execute
    prefix = f"{store.prefix}:"
    raw = await execute("GET", prefix + bulk_key(0))
    versioned = await store.get_versioned(bulk_key(0))
    if not isinstance(raw, bytes) or versioned is None or versioned.data != data or not raw.endswith(data):
        raise PrefillError(f"the record written through the store is not at {prefix + bulk_key(0)!r} as expected")
    frame = raw[: len(raw) - len(data)].split(b"%d" % versioned.version)
    if len(frame) != 2:
        raise PrefillError(f"cannot find the version {versioned.version} in the record's frame {raw[:40]!r}")
    head, tail = frame
    draw = random.Random().getrandbits
    for start in range(1, count, REDIS_BATCH):
        stop = min(count, start + REDIS_BATCH)
        # Each writer draws a fresh random positive 63-bit version for every record it writes; so does this.
        sets = [
            execute("SET", prefix + bulk_key(index), b"%b%d%b%b" % (head, draw(63) or 1, tail, data))
            for index in range(start, stop)
        ]
        await asyncio.gather(*sets)
        meter.done = stop


async def clear_redis(store: BaseSessionStore) -> None:
    """UNLINK every key under a Redis store's prefix, a SCAN page of 10,000 at a time (other stores: nothing).

    For a bulk-prefilled store, before its usual drop, which deletes 1,000 keys per round trip.
    """
    if store.backend != "redis":
        return
    from sessionware.stores.redis import RedisSessionStore

    if not isinstance(store, RedisSessionStore):
        return
    execute = store.driver.execute
    pattern = f"{store.prefix}:*"
    cursor: bytes | int = 0
    while True:
        cursor, names = await execute("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT)
        if names:
            await execute("UNLINK", *names)
        if int(cursor) == 0:
            return


async def count_records(store: BaseSessionStore, *, postgres_url: str) -> int:
    """How many records ``store`` holds, counted in the database: rows of its table, keys under its prefix.

    Counted without the store's ``scan``, whose SQLite query rereads the
    table from its first key on every page (minutes for a million rows).
    """
    if store.backend == "sqlite":
        from sessionware.stores.sql.sqlite import SQLiteSessionStore

        if isinstance(store, SQLiteSessionStore):
            conn = sqlite3.connect(store.path)
            try:
                return int(conn.execute(f"SELECT count(*) FROM {store.names.sessions}").fetchone()[0])
            finally:
                conn.close()
    elif store.backend == "postgres":
        import asyncpg

        from sessionware.stores.sql.postgres import PostgresSessionStore

        if isinstance(store, PostgresSessionStore):
            pg = await asyncpg.connect(postgres_url)
            try:
                return int(await pg.fetchval(f"SELECT count(*) FROM {store.names.sessions}"))
            finally:
                await pg.close()
    elif store.backend == "redis":
        from sessionware.stores.redis import RedisSessionStore

        if isinstance(store, RedisSessionStore):
            return await _count_redis(store)
    raise PrefillError(f"cannot count the records of a {type(store).__name__}")


async def _count_redis(store: RedisSessionStore) -> int:
    """Record keys under the store's prefix (its logs and leases, at ``prefix:\\x00...``, are not records)."""
    execute = store.driver.execute
    prefix = f"{store.prefix}:".encode()
    cursor: bytes | int = 0
    names: set[bytes] = set()  # SCAN may return a key twice
    while True:
        cursor, page = await execute("SCAN", cursor, "MATCH", prefix + b"*", "COUNT", SCAN_COUNT)
        names.update(name for name in page if name[len(prefix) : len(prefix) + 1] != b"\x00")
        if int(cursor) == 0:
            return len(names)
