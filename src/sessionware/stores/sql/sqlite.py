"""The SQLite store: embedded, persistent, safe for several processes sharing one file."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from ...codec import Codec
from ...errors import InvalidValueError, StoreTimeoutError, StoreUnavailableError, ValueTooLargeError
from ...keys import TTL, check_key
from ...store import DEFAULT_MAX_SIZE, IndexPut, RewriteResult, Versioned
from .._common import Batch, EncodedRewrite, Taken, store_ttl
from ._base import DEFAULT_TABLE, Dialect, SQLSessionStore, SQLStatements, Statement, TableNames, Values

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


def _dialect(n: TableNames) -> Dialect:
    # Expiry is wall-clock seconds since the epoch, which every process on the machine shares; the
    # store passes it as :now. A new row's version starts above every version a deleted row had.
    return Dialect(
        marker="?",
        now=":now",
        clock=":now",
        value="CAST(value AS BLOB)",  # a value written by hand as TEXT still comes back as the stored bytes
        expiry=":now + :ttl",
        lease_end=":now + :ttl",
        seconds_left="expires_at - :now",
        lease_left="expires_at - :now",
        new_version=f"coalesce((SELECT value FROM {n.meta} WHERE name = 'version_floor'), 0) + 1",
        upserted_version="s.version + 1",
        updated_version="version + 1",
        limit="coalesce(:limit, -1)",
    )


class _Statements(SQLStatements):
    """The shared statements in SQLite's spelling, and those only SQLite runs."""

    def __init__(self, n: TableNames) -> None:
        super().__init__(n, _dialect(n))
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
            f"INSERT INTO {n.meta} (name, value) VALUES ('version_floor', 0) ON CONFLICT (name) DO NOTHING",
            # Versions never repeat for a key: a new row starts above every version a deleted row had.
            f'CREATE TRIGGER IF NOT EXISTS "{n.table}_version_floor" AFTER DELETE ON {n.sessions} BEGIN'
            f" UPDATE {n.meta} SET value = max(value, OLD.version) WHERE name = 'version_floor'; END",
            # Leases: one row per key while it is locked; expires_at is wall-clock seconds since the epoch.
            f"CREATE TABLE IF NOT EXISTS {n.locks} (key TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL,"
            " expires_at REAL NOT NULL)",
            *_index_schema(n),
            self.stamp_version,
            self.upgrade_version,
        ]
        self.has_meta = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        self.same_table = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE"
        # Run before purge_logs, which removes the heads this finds.
        self.purge_log = self.statement(
            f"DELETE FROM {n.log} WHERE key IN (SELECT key FROM {n.logs} WHERE expires_at <= :now)"
        )
        self.log_head = self.statement(f"SELECT last_seq, expires_at FROM {n.logs} WHERE key = :key")
        self.log_put_head = self.statement(
            f"INSERT INTO {n.logs} (key, last_seq, expires_at) VALUES (:key, :last, :expires_at)"
            " ON CONFLICT (key) DO UPDATE SET last_seq = excluded.last_seq, expires_at = excluded.expires_at"
        )
        self.log_insert = self.statement(f"INSERT INTO {n.log} (key, seq, value) VALUES (:key, :seq, :data)")
        # A fenced append's claim on a live log: its numbers, only if the highest is still the one expected.
        self.log_claim_at = self.statement(
            f"UPDATE {n.logs} SET last_seq = last_seq + :count, expires_at = coalesce(:expires_at, expires_at)"
            " WHERE key = :key AND last_seq = :last AND (expires_at IS NULL OR expires_at > :now) RETURNING last_seq"
        )


def _index_schema(n: TableNames) -> list[str]:
    """Sorted indexes (schema version 3): one row per member; BINARY collation orders members by code point."""
    return [
        f"CREATE TABLE IF NOT EXISTS {n.index} (key TEXT NOT NULL, member TEXT NOT NULL, score REAL NOT NULL,"
        " expires_at REAL, PRIMARY KEY (key, member))",
        f"CREATE INDEX IF NOT EXISTS {n.index_order_index} ON {n.index} (key, score, member)",
        f"CREATE INDEX IF NOT EXISTS {n.index_expiry_index} ON {n.index} (key, expires_at)",
    ]


def _cursor(conn: sqlite3.Connection, stmt: Statement, values: Values) -> sqlite3.Cursor:
    """Run ``stmt`` with ``values`` as they are (``now`` included)."""
    return conn.execute(stmt.sql, stmt.args(values))


def _now(values: Values) -> Values:
    values["now"] = time.time()
    return values


def _fetch_one(conn: sqlite3.Connection, stmt: Statement, values: Values) -> Any:
    # fetchall: a statement with RETURNING is finished (and reset) before the transaction goes on.
    rows = _cursor(conn, stmt, _now(values)).fetchall()
    return rows[0] if rows else None


def _fetch_all(conn: sqlite3.Connection, stmt: Statement, values: Values) -> list[Any]:
    return _cursor(conn, stmt, _now(values)).fetchall()


class _Refused(Exception):
    """A fenced append found the log changed after it wrote the record: the transaction is rolled back."""


class SQLiteSessionStore(SQLSessionStore[_Statements]):
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
    While another holder has the lease, :meth:`lock` looks at it without
    taking the file's write lock.
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
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not lock_timeout >= 0:
            raise InvalidValueError("lock_timeout", f"must be a non-negative number of seconds, not {lock_timeout!r}")
        super().__init__(table=table, codec=codec, max_size=max_size, timeout=timeout)
        self.path = os.fspath(path)
        self.lock_timeout = lock_timeout
        self._conn: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()

    def _statements(self, names: TableNames) -> _Statements:
        return _Statements(names)

    # -- the update path: one statement each, straight on the open connection ---------------------

    async def get_raw(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None``.

        On an open connection and without a ``timeout`` this runs the one
        statement directly; anything it cannot do that way (the file busy, a
        first use) goes the general way, where a read is safe to repeat.
        """
        conn = self._conn
        if conn is None or self.timeout is not None:
            return await super().get_raw(key)
        try:
            get = self._sql.get
            row = conn.execute(get.sql, get.args({"key": check_key(key), "now": time.time()})).fetchone()
        except sqlite3.Error:
            return await super().get_raw(key)
        return None if row is None else bytes(row[0])

    async def set_raw(self, key: str, data: bytes, *, ttl: TTL = None) -> None:
        """Store already encoded ``data`` under ``key`` (directly, as :meth:`get_raw` reads).

        A plain upsert of the same bytes is safe to repeat, so a try that
        fails here goes the general way, with its retries and error messages.
        """
        conn = self._conn
        if conn is None or self.timeout is not None:
            return await super().set_raw(key, data, ttl=ttl)
        check_key(key)
        if len(data) > self.max_size:
            raise ValueTooLargeError(len(data), self.max_size)
        seconds = store_ttl(ttl)
        try:
            put = self._sql.set
            conn.execute(put.sql, put.args({"key": key, "data": data, "ttl": seconds, "now": time.time()}))
        except sqlite3.Error:
            await super().set_raw(key, data, ttl=seconds)

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
        found = None
        if conn.execute(self._sql.has_meta, (f"{self.names.table}_meta",)).fetchone() is not None:
            found = self._schema_version(conn)
        if self._schema_outdated(found):
            self._transaction(conn, self._create_schema)
            found = self._schema_version(conn)
        self._check_schema(found)
        self._check_case(conn)

    def _check_case(self, conn: sqlite3.Connection) -> None:
        # SQLite folds the case of table names, quoted or not: "Tenant_A" is the table "tenant_a".
        # Checked after the schema exists, so of two stores creating both spellings at once one is refused.
        row = conn.execute(self._sql.same_table, (self.names.table,)).fetchone()
        if row is not None and row[0] != self.names.table:
            raise InvalidValueError(
                "table",
                f"{self.names.table!r} is the existing table {row[0]!r} in {self.path!r} (SQLite ignores the case of "
                f"table names); open it as {row[0]!r} or choose a name that differs in more than case",
            )

    def _schema_version(self, conn: sqlite3.Connection) -> Any:
        row = conn.execute(self._sql.version.sql).fetchone()
        return None if row is None else row[0]

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

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` outside an explicit transaction, retrying while the file is locked."""
        return await self._retry(await self._connection(), fn, *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one write transaction, retrying while the file is locked."""
        return await self._call(self._transaction, fn, *args)

    async def close(self) -> None:
        """Close the connection; every later call raises :class:`~sessionware.errors.StoreClosedError`."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- running statements (no connection to lose: ``safe`` does not matter) ---------------------

    async def _row(self, stmt: Statement, values: Values, *, safe: bool) -> Any:
        return await self._call(_fetch_one, stmt, values)

    async def _rows(self, stmt: Statement, values: Values, *, safe: bool) -> Sequence[Any]:
        return await self._call(_fetch_all, stmt, values)

    async def _purge(self) -> int:
        return await self._write(self._purge_all, {"now": time.time()})

    def _purge_all(self, conn: sqlite3.Connection, values: Values) -> int:
        sql = self._sql
        _cursor(conn, sql.purge_locks, values)
        sessions = _cursor(conn, sql.purge_sessions, values).rowcount
        _cursor(conn, sql.purge_log, values)
        return sessions + len(_cursor(conn, sql.purge_logs, values).fetchall())

    async def _drop_log(self, key: str) -> None:
        await self._write(self._drop_log_rows, {"key": key})

    def _drop_log_rows(self, conn: sqlite3.Connection, values: Values) -> None:
        _cursor(conn, self._sql.log_drop, values)
        _cursor(conn, self._sql.log_clear, values)

    async def _pop(self, key: str) -> Any:
        return await self._write(self._pop_row, {"key": key})

    def _pop_row(self, conn: sqlite3.Connection, values: Values) -> Any:
        # The write transaction holds the file: no append or pop comes in between.
        if _fetch_one(conn, self._sql.log_last_seq, values) is None:
            return None
        return _fetch_one(conn, self._sql.log_pop, values)

    async def _clear(self, key: str) -> int | None:
        return await self._write(self._clear_rows, {"key": key})

    def _clear_rows(self, conn: sqlite3.Connection, values: Values) -> int | None:
        head = _fetch_one(conn, self._sql.log_last_seq, values)
        if head is None:
            return None
        _cursor(conn, self._sql.log_clear, values)
        return int(head[0])

    async def _append(self, key: str, batch: Batch, max_len: int | None) -> list[int]:
        return await self._write(self._append_rows, key, batch, max_len)

    def _append_rows(self, conn: sqlite3.Connection, key: str, batch: Batch, max_len: int | None) -> list[int]:
        sql = self._sql
        now = time.time()
        head = _cursor(conn, sql.log_head, {"key": key}).fetchone()
        last, expires_at = (0, None) if head is None else head
        if expires_at is not None and expires_at <= now:
            _cursor(conn, sql.log_clear, {"key": key})
            last, expires_at = 0, None
        if batch.ttl is not None:
            expires_at = now + batch.ttl
        new_last = last + len(batch.encoded)
        _cursor(conn, sql.log_put_head, {"key": key, "last": new_last, "expires_at": expires_at})
        kept = batch.encoded if max_len is None else batch.encoded[-max_len:]
        first_kept = new_last - len(kept) + 1
        conn.executemany(sql.log_insert.sql, [(key, first_kept + i, data) for i, data in enumerate(kept)])
        if max_len is not None:
            _cursor(conn, sql.log_trim, {"key": key, "keep": max_len})
        return list(range(last + 1, new_last + 1))

    async def _append_fenced(
        self, key: str, batch: Batch, max_len: int | None, last: int, record: Values, index: IndexPut | None
    ) -> int | None:
        try:
            return await self._write(self._append_fenced_rows, key, batch, max_len, last, record, index)
        except _Refused:
            return None

    def _append_fenced_rows(
        self,
        conn: sqlite3.Connection,
        key: str,
        batch: Batch,
        max_len: int | None,
        last: int,
        record: Values,
        index: IndexPut | None,
    ) -> int | None:
        # The write transaction holds the file: record and log stay as compared until it commits, and a
        # refusal after the record was written rolls it back.
        sql = self._sql
        written = _fetch_one(conn, sql.cas_update, record)
        if written is None:
            return None
        now = time.time()
        count = len(batch.encoded)
        if max_len is None and last > 0:
            values = {"key": key, "count": count, "last": last, "now": now}
            values["expires_at"] = None if batch.ttl is None else now + batch.ttl
            if _cursor(conn, sql.log_claim_at, values).fetchall() == []:
                raise _Refused
            conn.executemany(sql.log_insert.sql, [(key, last + 1 + i, data) for i, data in enumerate(batch.encoded)])
        else:
            head = _cursor(conn, sql.log_head, {"key": key}).fetchone()
            live = head is not None and (head[1] is None or head[1] > now)
            if (int(head[0]) if live else 0) != last:
                raise _Refused
            self._append_rows(conn, key, batch, max_len)
        if index is not None:
            self._index_rows(conn, self._index_put_steps(index))
        return int(written[0])

    async def _rewrite(self, key: str, rewrites: list[EncodedRewrite]) -> list[RewriteResult]:
        return await self._write(self._rewrite_rows, key, rewrites)

    def _rewrite_rows(self, conn: sqlite3.Connection, key: str, rewrites: list[EncodedRewrite]) -> list[RewriteResult]:
        # The write transaction holds the file: every entry is compared and written with no writer in between.
        sql = self._sql
        results = []
        for seq, expected, data in rewrites:
            values = {"key": key, "seq": seq, "expected": expected, "data": data}
            if _fetch_one(conn, sql.log_rewrite, values) is not None:
                results.append(RewriteResult.APPLIED)
            elif _fetch_one(conn, sql.log_holds, values) is not None:
                results.append(RewriteResult.CHANGED)
            else:
                results.append(RewriteResult.MISSING)
        return results

    # -- leases ----------------------------------------------------------------------------------

    async def _try_lock(self, key: str, token: str, ttl: float) -> Taken | float:
        return await self._call(self._look_then_take, {"key": key, "token": token, "ttl": ttl})

    def _look_then_take(self, conn: sqlite3.Connection, values: Values) -> Taken | float:
        # A held lease is seen without the file's write lock, so waiters never hold up writers.
        held = _fetch_one(conn, self._sql.lock_left, values)
        if held is not None and held[0] > 0:
            return float(held[0])
        return self._transaction(conn, self._take, values)

    def _take(self, conn: sqlite3.Connection, values: Values) -> Taken | float:
        # Under the write lock: the record read here is the newest, and no writer can come between.
        sql = self._sql
        if _fetch_one(conn, sql.lock_take, values) is None:
            held = _cursor(conn, sql.lock_left, values).fetchall()
            return 0.0 if not held else float(held[0][0])
        row = _cursor(conn, sql.get_versioned, values).fetchone()
        return Taken(None if row is None else Versioned(bytes(row[0]), int(row[1])))

    async def _fenced_write(self, key: str, token: str, data: bytes | None, ttl: float | None) -> int | None:
        values = {"key": key, "token": token, "data": data, "ttl": ttl}
        return await self._write(self._release_then_write, values)

    def _release_then_write(self, conn: sqlite3.Connection, values: Values) -> int | None:
        sql = self._sql
        released = _fetch_one(conn, sql.lock_release, values)
        if released is None or not released[0]:
            return None
        if values["data"] is None:
            _cursor(conn, sql.delete, values)
            return 0
        return int(_cursor(conn, sql.set_returning, values).fetchall()[0][0])

    # -- sorted indexes --------------------------------------------------------------------------

    async def _index_steps(self, key: str, steps: Sequence[tuple[Statement, Values]]) -> None:
        await self._write(self._index_rows, steps)

    @staticmethod
    def _index_rows(conn: sqlite3.Connection, steps: Sequence[tuple[Statement, Values]]) -> None:
        # The write transaction holds the file: no other write comes between the steps.
        for stmt, values in steps:
            _fetch_all(conn, stmt, values)


__all__ = ["DEFAULT_LOCK_TIMEOUT", "SQLiteSessionStore"]
