"""The SQLite store: embedded, persistent, safe for several processes sharing one file."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from ...codec import Codec, JsonDict
from ...errors import InvalidValueError, StoreTimeoutError, StoreUnavailableError
from ...keys import TTL, check_key
from ...store import (
    DEFAULT_MAX_SIZE,
    BaseSessionStore,
    Lease,
    Locked,
    LogEntry,
    Versioned,
)
from .._common import (
    bounded_ttl,
    check_expected,
    check_lease,
    check_record,
    conflict,
    encode_log_entries,
    lease_lost,
    new_token,
    seconds_arg,
    store_ttl,
    wait_for_lease,
)
from ._base import (
    DEFAULT_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_NAME,
    TableNames,
    check_schema_version,
    entries_from_newest,
    log_window,
    scan_pages,
)

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = 5.0
"""Seconds to wait for another connection's write lock before giving up."""

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PROGRESS_STEPS = 10_000
"""SQLite virtual-machine steps between two looks at the clock while a store has a ``timeout``."""

_DEADLINE: ContextVar[float | None] = ContextVar("sessionware_sqlite_deadline", default=None)
"""When the store operation running in this task must end (``time.monotonic()``), if it has a timeout."""
_FIRST_BACKOFF = 0.0005
_MAX_BACKOFF = 0.02


class _Statements:
    """Every statement the store runs, built once per table."""

    def __init__(self, n: TableNames) -> None:
        live = "(expires_at IS NULL OR expires_at > ?)"
        self.schema = [
            f"CREATE TABLE IF NOT EXISTS {n.sessions} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL,"
            " expires_at REAL, version INTEGER NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {n.sessions_expiry_index} ON {n.sessions} (expires_at)"
            " WHERE expires_at IS NOT NULL",
            f"CREATE TABLE IF NOT EXISTS {n.log} (key TEXT NOT NULL, seq INTEGER NOT NULL,"
            " value BLOB NOT NULL, PRIMARY KEY (key, seq))",
            f"CREATE TABLE IF NOT EXISTS {n.logs} (key TEXT PRIMARY KEY NOT NULL,"
            " last_seq INTEGER NOT NULL, expires_at REAL)",
            f"CREATE INDEX IF NOT EXISTS {n.logs_expiry_index} ON {n.logs} (expires_at) WHERE expires_at IS NOT NULL",
            f"CREATE TABLE IF NOT EXISTS {n.meta} (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
            f"INSERT INTO {n.meta} (name, value) VALUES ('{SCHEMA_VERSION_NAME}', {SCHEMA_VERSION}),"
            " ('version_floor', 0) ON CONFLICT (name) DO NOTHING",
            # Versions never repeat for a key: a new row starts above every version a deleted row had.
            f'CREATE TRIGGER IF NOT EXISTS "{n.table}_version_floor" AFTER DELETE ON {n.sessions} BEGIN'
            f" UPDATE {n.meta} SET value = max(value, OLD.version) WHERE name = 'version_floor'; END",
            # Leases: one row per key while it is locked; expires_at is wall-clock seconds since the epoch.
            f"CREATE TABLE IF NOT EXISTS {n.locks} (key TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL,"
            " expires_at REAL NOT NULL)",
            # Upgrades an older schema (every statement above is idempotent).
            f"UPDATE {n.meta} SET value = {SCHEMA_VERSION}"
            f" WHERE name = '{SCHEMA_VERSION_NAME}' AND value < {SCHEMA_VERSION}",
        ]
        self.has_meta = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        self.version = f"SELECT value FROM {n.meta} WHERE name = '{SCHEMA_VERSION_NAME}'"
        # CAST: a value written by hand as TEXT still comes back as the exact stored bytes.
        self.get = f"SELECT CAST(value AS BLOB) FROM {n.sessions} WHERE key = ? AND {live}"
        self.set = (
            f"INSERT INTO {n.sessions} (key, value, expires_at, version) VALUES (?, ?, ?,"
            f" coalesce((SELECT value FROM {n.meta} WHERE name = 'version_floor'), 0) + 1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,"
            f" version = {n.sessions}.version + 1"
        )
        self.delete = f"DELETE FROM {n.sessions} WHERE key = ?"
        self.get_versioned = f"SELECT CAST(value AS BLOB), version FROM {n.sessions} WHERE key = ? AND {live}"
        self.set_returning = self.set + " RETURNING version"
        # expected=0: insert, or take over an expired row; a live row makes it return nothing.
        self.cas_create = (
            f"INSERT INTO {n.sessions} (key, value, expires_at, version) VALUES (?, ?, ?,"
            f" coalesce((SELECT value FROM {n.meta} WHERE name = 'version_floor'), 0) + 1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,"
            f" version = {n.sessions}.version + 1"
            f" WHERE {n.sessions}.expires_at IS NOT NULL AND {n.sessions}.expires_at <= ? RETURNING version"
        )
        self.cas_update = (
            f"UPDATE {n.sessions} SET value = ?, expires_at = ?, version = version + 1"
            f" WHERE key = ? AND version = ? AND {live} RETURNING version"
        )
        self.cas_delete = f"DELETE FROM {n.sessions} WHERE key = ? AND version = ? AND {live}"
        self.exists = f"SELECT 1 FROM {n.sessions} WHERE key = ? AND {live}"
        self.lock_holder = f"SELECT expires_at FROM {n.locks} WHERE key = ?"
        # Taken when free, expired, or already ours (a repeated attempt with the same token).
        self.lock_take = (
            f"INSERT INTO {n.locks} (key, token, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at"
            f" WHERE {n.locks}.expires_at <= ? OR {n.locks}.token = excluded.token"
        )
        self.lock_renew = f"UPDATE {n.locks} SET expires_at = ? WHERE key = ? AND token = ? AND expires_at > ?"
        self.lock_release = f"DELETE FROM {n.locks} WHERE key = ? AND token = ? RETURNING expires_at"
        self.lock_drop = f"DELETE FROM {n.locks} WHERE key = ? AND token = ?"
        self.purge_locks = f"DELETE FROM {n.locks} WHERE expires_at <= ?"
        self.expires_at = f"SELECT expires_at FROM {n.sessions} WHERE key = ? AND {live}"
        self.touch = f"UPDATE {n.sessions} SET expires_at = ? WHERE key = ? AND {live}"
        self.scan = (
            f"SELECT key FROM {n.sessions} WHERE key >= ? AND key < ? AND key > ? AND {live} ORDER BY key LIMIT ?"
        )
        self.purge_sessions = f"DELETE FROM {n.sessions} WHERE expires_at <= ?"
        self.purge_log = f"DELETE FROM {n.log} WHERE key IN (SELECT key FROM {n.logs} WHERE expires_at <= ?)"
        self.purge_logs = f"DELETE FROM {n.logs} WHERE expires_at <= ?"
        self.log_head = f"SELECT last_seq, expires_at FROM {n.logs} WHERE key = ?"
        self.log_put_head = (
            f"INSERT INTO {n.logs} (key, last_seq, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET last_seq = excluded.last_seq, expires_at = excluded.expires_at"
        )
        self.log_insert = f"INSERT INTO {n.log} (key, seq, value) VALUES (?, ?, ?)"
        self.log_trim = f"DELETE FROM {n.log} WHERE key = ? AND seq <= ?"
        self.log_clear = f"DELETE FROM {n.log} WHERE key = ?"
        self.log_drop = f"DELETE FROM {n.logs} WHERE key = ?"
        self.log_read = (
            f"SELECT seq, CAST(value AS BLOB) FROM {n.log} WHERE key = ? AND seq > ? AND seq < ?"
            f" AND EXISTS (SELECT 1 FROM {n.logs} WHERE key = ? AND {live}) ORDER BY seq DESC LIMIT ?"
        )
        self.log_last_seq = f"SELECT last_seq FROM {n.logs} WHERE key = ? AND {live}"
        # A log's entries are always one contiguous run of numbers (appends add at the end,
        # trims cut the start), so its length is last_seq - min(seq) + 1: two index lookups.
        self.log_length = (
            f"SELECT last_seq, (SELECT min(seq) FROM {n.log} WHERE key = ?) FROM {n.logs} WHERE key = ? AND {live}"
        )


class SQLiteSessionStore(BaseSessionStore):
    """Sessions and logs in one SQLite file (WAL mode), shared safely by several processes.

    Calls run directly in the event loop: each is a few tens of microseconds,
    several times faster than handing it to a thread. Locks are never waited
    for inside SQLite: when another connection holds the write lock, the store
    retries with ``asyncio.sleep`` backoff for up to ``lock_timeout`` seconds,
    then raises :class:`StoreTimeoutError`, so a busy file never blocks the loop.
    ``timeout`` bounds each call as a whole: waiting for the file and running
    its statements (a statement still running at the deadline is interrupted
    and its transaction rolled back). The connection is opened on first use
    and bound to the thread that opened it.

    A record's version grows by one on every write; a key written again after
    a delete starts above its old versions. A lease is a row of
    ``{table}_locks`` (a random token and an expiry by the wall clock, which
    every process on the machine shares): :meth:`lock` takes it and reads the
    record in one write transaction, :meth:`commit` checks it, writes and
    releases in another, so the read is the newest and no write comes between.
    """

    backend = "sqlite"
    _driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = DEFAULT_TABLE,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size, timeout=timeout)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not lock_timeout >= 0:
            raise InvalidValueError("lock_timeout", f"must be a non-negative number of seconds, not {lock_timeout!r}")
        self.path = os.fspath(path)
        self.names = TableNames.for_table(table)
        self.lock_timeout = lock_timeout
        self._sql = _Statements(self.names)
        self._conn: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()

    @property
    def table(self) -> str:
        """The base name of the store's tables."""
        return self.names.table

    # -- connection and retries ------------------------------------------------------------------

    async def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        async with self._open_lock:
            if self._conn is None:
                try:
                    conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
                except sqlite3.OperationalError as exc:
                    raise StoreUnavailableError(f"sqlite cannot open {self.path!r}: {exc}") from exc
                try:
                    await self._retry(conn, self._prepare)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            return self._conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if conn.execute(self._sql.has_meta, (f"{self.names.table}_meta",)).fetchone() is None:
            self._transaction(conn, self._create_schema)
        row = conn.execute(self._sql.version).fetchone()
        if row is not None:
            check_schema_version(self.backend, self.names.table, row[0])
        if row is None or row[0] < SCHEMA_VERSION:
            self._transaction(conn, self._create_schema)
            row = conn.execute(self._sql.version).fetchone()
        check_schema_version(self.backend, self.names.table, None if row is None else row[0])

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        for statement in self._sql.schema:
            conn.execute(statement)

    @staticmethod
    def _transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return result

    async def _run(self, op: str, aw: Awaitable[T]) -> T:
        """As the base class does; with a ``timeout``, statements running past it are interrupted too."""
        if self.timeout is None:
            return await super()._run(op, aw)
        reset = _DEADLINE.set(time.monotonic() + self.timeout)
        try:
            return await super()._run(op, aw)
        finally:
            _DEADLINE.reset(reset)

    def _interruptible(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)``, stopping its statements once the current operation's deadline passed.

        A call runs in the event loop, where ``asyncio.timeout`` cannot stop
        it; SQLite's progress handler can, and the transaction is rolled back.
        """
        deadline = _DEADLINE.get()
        if deadline is None:
            return fn(conn, *args)
        conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_INTERRUPT and time.monotonic() > deadline:
                raise StoreTimeoutError(
                    f"sqlite statement on {self.path!r} ran past the store's timeout of {self.timeout}s"
                ) from exc
            raise
        finally:
            conn.set_progress_handler(None, 0)

    async def _retry(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)``; while the file is locked elsewhere, back off without blocking."""
        delay = _FIRST_BACKOFF
        deadline: float | None = None
        while True:
            try:
                return self._interruptible(conn, fn, *args)
            except sqlite3.OperationalError as exc:
                code = exc.sqlite_errorcode & 0xFF
                if code == sqlite3.SQLITE_CANTOPEN:
                    raise StoreUnavailableError(f"sqlite cannot open {self.path!r}: {exc}") from exc
                if code not in _BUSY_CODES:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.lock_timeout
                elif now >= deadline:
                    raise StoreTimeoutError(
                        f"sqlite database {self.path!r} stayed locked by another connection for {self.lock_timeout}s"
                    ) from exc
            await asyncio.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - now)))
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._retry(await self._connection(), self._transaction, fn, *args)

    async def _execute(self, sql: str, *params: Any) -> sqlite3.Cursor:
        return await self._retry(await self._connection(), sqlite3.Connection.execute, sql, params)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` outside an explicit transaction, retrying while the file is locked."""
        return await self._retry(await self._connection(), fn, *args)

    async def close(self) -> None:
        """Close the connection (a later call opens it again)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- records ---------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        row = (await self._execute(self._sql.get, key, time.time())).fetchone()
        return None if row is None else bytes(row[0])

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        ttl = bounded_ttl(ttl)
        await self._execute(self._sql.set, key, data, None if ttl is None else time.time() + ttl)

    async def _delete(self, key: str) -> None:
        await self._execute(self._sql.delete, key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        check_key(key)
        now = time.time()
        cursor = await self._run("expires_in", self._execute(self._sql.expires_at, key, now))
        row = cursor.fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - now)

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        check_key(key)
        seconds = store_ttl(ttl)
        now = time.time()
        expires_at = None if seconds is None else now + seconds
        cursor = await self._run("touch", self._execute(self._sql.touch, expires_at, key, now))
        return cursor.rowcount > 0

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (taken literally), in key order."""
        async for key in scan_pages(self._scan_page, prefix, limit):
            yield key

    async def _scan_page(self, low: str, high: str, after: str, size: int) -> list[str]:
        cursor = await self._run("scan", self._execute(self._sql.scan, low, high, after, time.time(), size))
        return [row[0] for row in cursor.fetchall()]

    async def purge_expired(self) -> int:
        """Delete expired sessions, logs and leases; return how many sessions and logs were removed."""
        return await self._run("purge_expired", self._write(self._purge, time.time()))

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        conn.execute(self._sql.purge_locks, (now,))
        sessions = conn.execute(self._sql.purge_sessions, (now,)).rowcount
        conn.execute(self._sql.purge_log, (now,))
        return sessions + conn.execute(self._sql.purge_logs, (now,)).rowcount

    # -- append-only logs ------------------------------------------------------------------------

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically; return their sequence numbers."""
        check_key(key)
        encoded = encode_log_entries(self.codec, self.max_size, entries, max_len)
        seconds = store_ttl(ttl)
        if not encoded and seconds is None and max_len is None:
            return []
        return await self._run("log_append", self._write(self._append, key, encoded, seconds, max_len))

    def _append(
        self, conn: sqlite3.Connection, key: str, encoded: list[bytes], ttl: float | None, max_len: int | None
    ) -> list[int]:
        sql = self._sql
        now = time.time()
        head = conn.execute(sql.log_head, (key,)).fetchone()
        last, expires_at = (0, None) if head is None else head
        if expires_at is not None and expires_at <= now:
            conn.execute(sql.log_clear, (key,))
            last, expires_at = 0, None
        if ttl is not None:
            expires_at = now + ttl
        new_last = last + len(encoded)
        conn.execute(sql.log_put_head, (key, new_last, expires_at))
        kept = encoded if max_len is None else encoded[-max_len:]
        first_kept = new_last - len(kept) + 1
        conn.executemany(sql.log_insert, [(key, first_kept + i, data) for i, data in enumerate(kept)])
        if max_len is not None:
            conn.execute(sql.log_trim, (key, new_last - max_len))
        return list(range(last + 1, new_last + 1))

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N."""
        check_key(key)
        window = log_window(after, before, last)
        if window is None:
            return []
        lo, hi, limit = window
        params = (key, lo, hi, key, time.time(), -1 if limit is None else limit)
        cursor = await self._run("log_read", self._execute(self._sql.log_read, *params))
        return entries_from_newest(self.codec, key, cursor.fetchall())

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        check_key(key)
        cursor = await self._run("log_length", self._execute(self._sql.log_length, key, key, time.time()))
        row = cursor.fetchone()
        if row is None or row[1] is None:
            return 0
        return int(row[0]) - int(row[1]) + 1

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log (0 if it does not exist)."""
        check_key(key)
        cursor = await self._run("log_last_seq", self._execute(self._sql.log_last_seq, key, time.time()))
        row = cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def log_delete(self, key: str) -> None:
        """Remove the whole log; nothing happens if it is missing."""
        check_key(key)
        await self._run("log_delete", self._write(self._drop_log, key))

    def _drop_log(self, conn: sqlite3.Connection, key: str) -> None:
        conn.execute(self._sql.log_clear, (key,))
        conn.execute(self._sql.log_drop, (key,))

    # -- versions (compare-and-set) --------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version, or ``None``."""
        check_key(key)
        return await self._run("get_versioned", self._call(self._read_versioned, key))

    def _read_versioned(self, conn: sqlite3.Connection, key: str) -> Versioned | None:
        row = conn.execute(self._sql.get_versioned, (key, time.time())).fetchone()
        return None if row is None else Versioned(bytes(row[0]), int(row[1]))

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected`` (0: must be missing; ``None``: any).

        One statement: the check and the write cannot be separated by another
        writer. Return the new version; :class:`~sessionware.errors.ConflictError`
        and nothing written if someone wrote in between.
        """
        seconds = check_record(key, data, self.max_size, ttl)
        check_expected(expected)
        version = await self._run("set_versioned", self._call(self._cas_write, key, data, seconds, expected))
        if version is None:
            raise conflict(key, expected or 0)
        return version

    def _cas_write(
        self, conn: sqlite3.Connection, key: str, data: bytes, ttl: float | None, expected: int | None
    ) -> int | None:
        sql = self._sql
        now = time.time()
        expires_at = None if ttl is None else now + ttl
        if expected is None:
            rows = conn.execute(sql.set_returning, (key, data, expires_at)).fetchall()
        elif expected == 0:
            rows = conn.execute(sql.cas_create, (key, data, expires_at, now)).fetchall()
        else:
            rows = conn.execute(sql.cas_update, (data, expires_at, key, expected, now)).fetchall()
        return int(rows[0][0]) if rows else None

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``; else raise ``ConflictError``."""
        check_key(key)
        check_expected(expected)
        if not await self._run("delete_versioned", self._call(self._cas_delete, key, expected)):
            raise conflict(key, expected or 0)

    def _cas_delete(self, conn: sqlite3.Connection, key: str, expected: int | None) -> bool:
        if expected is None:
            conn.execute(self._sql.delete, (key,))
            return True
        if expected == 0:
            return conn.execute(self._sql.exists, (key, time.time())).fetchone() is None
        return conn.execute(self._sql.cas_delete, (key, expected, time.time())).rowcount > 0

    # -- leases ----------------------------------------------------------------------------------

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` and read the record in one transaction; wait up to ``wait`` seconds.

        The lease is a row of ``{table}_locks`` with a random token and an
        expiry by the wall clock; a row that expired is taken over. While
        another holder has it, waits with jittered exponential backoff (never
        past that holder's expiry) without taking the file's write lock, then
        raises :class:`~sessionware.errors.LockError` once ``wait`` has passed.
        """
        check_key(key)
        seconds = seconds_arg("lease", lease, zero=False)
        patience = seconds_arg("wait", wait, zero=True)

        async def attempt() -> Locked | float | None:
            token = new_token()
            started = time.monotonic()
            got = await self._run("lock", self._call(self._try_lock, key, token, seconds))
            if isinstance(got, float):
                return got
            return Locked(Lease(key, token, seconds, started), got[0])

        return await wait_for_lease(key, patience, attempt)

    def _try_lock(self, conn: sqlite3.Connection, key: str, token: str, ttl: float) -> tuple[Versioned | None] | float:
        """``(record,)`` when the lease was taken, else the seconds the holder's lease still runs."""
        holder = conn.execute(self._sql.lock_holder, (key,)).fetchone()
        if holder is not None and holder[0] > time.time():
            return float(holder[0]) - time.time()
        return self._transaction(conn, self._take_lock, key, token, ttl)

    def _take_lock(self, conn: sqlite3.Connection, key: str, token: str, ttl: float) -> tuple[Versioned | None] | float:
        # Under the write lock: the record read here is the newest, and no writer can come between.
        now = time.time()
        if conn.execute(self._sql.lock_take, (key, token, now + ttl, now)).rowcount == 0:
            holder = conn.execute(self._sql.lock_holder, (key,)).fetchone()
            return 0.0 if holder is None else float(holder[0]) - now
        return (self._read_versioned(conn, key),)

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``; raise ``LeaseExpiredError`` if it was lost."""
        lease = check_lease(lease)
        started = time.monotonic()
        if not await self._run("renew", self._call(self._renew, lease.key, lease.token, lease.ttl)):
            raise lease_lost(lease.key, renewing=True)
        return Lease(lease.key, lease.token, lease.ttl, started)

    def _renew(self, conn: sqlite3.Connection, key: str, token: str, ttl: float) -> bool:
        now = time.time()
        return conn.execute(self._sql.lock_renew, (now + ttl, key, token, now)).rowcount > 0

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release in one transaction, if the lease is still held.

        Return the new version (0 after a delete). A lease that expired or was
        taken over writes nothing and raises
        :class:`~sessionware.errors.LeaseExpiredError`.
        """
        lease = check_lease(lease)
        seconds = None if data is None else check_record(lease.key, data, self.max_size, ttl)
        version = await self._run("commit", self._write(self._commit, lease.key, lease.token, data, seconds))
        if version is None:
            raise lease_lost(lease.key)
        return version

    def _commit(
        self, conn: sqlite3.Connection, key: str, token: str, data: bytes | None, ttl: float | None
    ) -> int | None:
        sql = self._sql
        now = time.time()
        # Our own row goes in any case: held, it is released; expired, it is stale.
        released = conn.execute(sql.lock_release, (key, token)).fetchall()
        if not released or released[0][0] <= now:
            return None
        if data is None:
            conn.execute(sql.delete, (key,))
            return 0
        expires_at = None if ttl is None else now + ttl
        return int(conn.execute(sql.set_returning, (key, data, expires_at)).fetchall()[0][0])

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing; one that expired or was taken over is left alone."""
        lease = check_lease(lease)
        await self._run("unlock", self._execute(self._sql.lock_drop, lease.key, lease.token))


__all__ = ["DEFAULT_LOCK_TIMEOUT", "SQLiteSessionStore"]
