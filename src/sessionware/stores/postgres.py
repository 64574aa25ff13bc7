"""The PostgreSQL store, on asyncpg: sessions as BYTEA rows, logs as one row per entry."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from ..codec import Codec, JsonDict
from ..errors import InvalidValueError, MissingExtraError, StoreError, StoreUnavailableError
from ..keys import TTL, check_key
from ..store import DEFAULT_MAX_SIZE, BaseSessionStore, LogEntry
from ._sql import (
    DEFAULT_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_NAME,
    TableNames,
    bounded_ttl,
    check_schema_version,
    encode_log_entries,
    entries_from_newest,
    log_window,
    scan_pages,
    sql_ttl,
)

try:
    import asyncpg
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("PostgreSQL", "postgres", "asyncpg") from e

T = TypeVar("T")

Pool = asyncpg.Pool

_LIVE = "(expires_at IS NULL OR expires_at > now())"
_EXPIRY = "now() + {} * interval '1 second'"


class _Statements:
    """Every statement the store runs, built once per table."""

    def __init__(self, n: TableNames) -> None:
        # Versions come from one sequence per table, so a key never sees the same version twice,
        # not even after it was deleted and written again.
        version_seq = f'"{n.table}_version_seq"'
        next_version = f"nextval('{version_seq}')"
        self.schema = f"""
            CREATE SEQUENCE IF NOT EXISTS {version_seq};
            CREATE TABLE IF NOT EXISTS {n.sessions} (
                key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL,
                expires_at TIMESTAMPTZ, version BIGINT NOT NULL);
            CREATE INDEX IF NOT EXISTS {n.sessions_expiry_index} ON {n.sessions} (expires_at)
                WHERE expires_at IS NOT NULL;
            CREATE TABLE IF NOT EXISTS {n.log} (
                key TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, value BYTEA NOT NULL,
                PRIMARY KEY (key, seq));
            CREATE TABLE IF NOT EXISTS {n.logs} (
                key TEXT COLLATE "C" PRIMARY KEY, last_seq BIGINT NOT NULL, expires_at TIMESTAMPTZ);
            CREATE INDEX IF NOT EXISTS {n.logs_expiry_index} ON {n.logs} (expires_at)
                WHERE expires_at IS NOT NULL;
            CREATE TABLE IF NOT EXISTS {n.meta} (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
            INSERT INTO {n.meta} (name, value) VALUES ('{SCHEMA_VERSION_NAME}', {SCHEMA_VERSION})
                ON CONFLICT (name) DO NOTHING;
        """
        self.drop = (
            f"DROP TABLE IF EXISTS {n.sessions}, {n.log}, {n.logs}, {n.meta}; DROP SEQUENCE IF EXISTS {version_seq}"
        )
        self.version = f"SELECT value FROM {n.meta} WHERE name = '{SCHEMA_VERSION_NAME}'"
        self.get = f"SELECT value FROM {n.sessions} WHERE key = $1 AND {_LIVE}"
        self.set = (
            f"INSERT INTO {n.sessions} AS s (key, value, expires_at, version)"
            f" VALUES ($1, $2, {_EXPIRY.format('$3::float8')}, {next_version})"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
            " version = EXCLUDED.version"
        )
        self.delete = f"DELETE FROM {n.sessions} WHERE key = $1"
        self.expires_in = (
            f"SELECT EXTRACT(EPOCH FROM expires_at - now())::float8 FROM {n.sessions} WHERE key = $1 AND {_LIVE}"
        )
        self.touch = (
            f"UPDATE {n.sessions} SET expires_at = {_EXPIRY.format('$2::float8')}"
            f" WHERE key = $1 AND {_LIVE} RETURNING 1"
        )
        self.scan = (
            f"SELECT key FROM {n.sessions} WHERE key >= $1 AND key < $2 AND key > $3 AND {_LIVE} ORDER BY key LIMIT $4"
        )
        self.purge_sessions = f"DELETE FROM {n.sessions} WHERE expires_at <= now()"
        self.purge_logs = f"DELETE FROM {n.logs} WHERE expires_at <= now() RETURNING key"
        self.purge_log = f"DELETE FROM {n.log} WHERE key = ANY($1::text[])"
        # Claims numbers under the per-log row lock, held until the transaction commits; an
        # expired log starts again from 1 (its stale entries are cleared before inserting).
        self.log_claim = (
            f"INSERT INTO {n.logs} AS l (key, last_seq, expires_at)"
            f" VALUES ($1, $2::bigint, {_EXPIRY.format('$3::float8')})"
            " ON CONFLICT (key) DO UPDATE SET"
            " last_seq = CASE WHEN l.expires_at <= now() THEN EXCLUDED.last_seq"
            " ELSE l.last_seq + EXCLUDED.last_seq END,"
            " expires_at = CASE WHEN l.expires_at <= now() THEN EXCLUDED.expires_at"
            " ELSE COALESCE(EXCLUDED.expires_at, l.expires_at) END"
            " RETURNING last_seq"
        )
        self.log_clear = f"DELETE FROM {n.log} WHERE key = $1"
        self.log_insert = (
            f"INSERT INTO {n.log} (key, seq, value)"
            " SELECT $1, $2::bigint + u.i, u.v FROM unnest($3::bytea[]) WITH ORDINALITY AS u(v, i)"
        )
        self.log_trim = f"DELETE FROM {n.log} WHERE key = $1 AND seq <= $2::bigint"
        # The trim only reaches rows older than the ones inserted, so the two cannot collide.
        self.log_insert_trim = (
            f"WITH ins AS ({self.log_insert}) DELETE FROM {n.log} WHERE key = $1 AND seq <= $4::bigint"
        )
        self.log_drop = f"DELETE FROM {n.logs} WHERE key = $1"
        self.log_read = (
            f"SELECT seq, value FROM {n.log} WHERE key = $1 AND seq > $2::bigint AND seq < $3::bigint"
            f" AND EXISTS (SELECT 1 FROM {n.logs} WHERE key = $1 AND {_LIVE})"
            " ORDER BY seq DESC LIMIT $4::bigint"
        )
        self.log_last_seq = f"SELECT last_seq FROM {n.logs} WHERE key = $1 AND {_LIVE}"
        # A log's entries are always one contiguous run of numbers (appends add at the end,
        # trims cut the start), so its length is last_seq - min(seq) + 1: two index lookups.
        self.log_length = (
            f"SELECT l.last_seq - (SELECT min(seq) FROM {n.log} WHERE key = $1) + 1"
            f" FROM {n.logs} AS l WHERE key = $1 AND {_LIVE}"
        )


def _lost_connection(exc: BaseException) -> bool:
    """Whether an ``InterfaceError`` reports a closed connection or pool rather than misuse."""
    return isinstance(exc, asyncpg.InterfaceError) and ("closed" in str(exc) or "closing" in str(exc))


class PostgresSessionStore(BaseSessionStore):
    """Sessions and logs in PostgreSQL tables, through an asyncpg pool.

    Pass a pool (the store never closes it) or a DSN (the store creates its
    pool on first use, with ``pool_options`` for :func:`asyncpg.create_pool`
    over defaults of 1 to 10 connections, and closes it in :meth:`close`).
    Tables are created on first use; a table written by a newer release
    raises :class:`~sessionware.errors.SchemaVersionError`.
    """

    backend = "postgres"
    _unavailable_errors = (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
    )
    _driver_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

    def __init__(
        self,
        pool_or_dsn: Pool | str,
        *,
        table: str = DEFAULT_TABLE,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
        pool_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size, timeout=timeout)
        self.names = TableNames.for_table(table)
        self._sql = _Statements(self.names)
        if isinstance(pool_or_dsn, str):
            self._dsn: str | None = pool_or_dsn
            self._pool: Pool | None = None
        elif isinstance(pool_or_dsn, asyncpg.Pool):
            self._dsn = None
            self._pool = pool_or_dsn
        else:
            raise InvalidValueError(
                "pool_or_dsn", f"must be an asyncpg pool or a DSN string, not {type(pool_or_dsn).__name__}"
            )
        self._pool_options = {"min_size": 1, "max_size": 10, **(pool_options or {})}
        self._ready = False
        self._open_lock = asyncio.Lock()
        digest = hashlib.blake2b(f"sessionware:{self.names.table}".encode(), digest_size=8).digest()
        self._lock_id = int.from_bytes(digest, "big", signed=True)

    @classmethod
    def from_url(cls, url: str, *, table: str = DEFAULT_TABLE, **options: Any) -> PostgresSessionStore:
        """A store on ``postgresql://user@host:port/db``; ``options`` go to the constructor."""
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise InvalidValueError("url", f"must start with postgresql:// or postgres://, not {url!r}")
        return cls(url, table=table, **options)

    @property
    def table(self) -> str:
        """The base name of the store's tables."""
        return self.names.table

    # -- pool, schema and errors -----------------------------------------------------------------

    async def _ready_pool(self) -> Pool:
        pool = self._pool
        if pool is not None and self._ready:
            return pool
        async with self._open_lock:
            if self._pool is None:
                self._pool = await self._create_pool()
            if not self._ready:
                await self._ensure_schema(self._pool)
                self._ready = True
            return self._pool

    async def _create_pool(self) -> Pool:
        return await asyncpg.create_pool(self._dsn, **self._pool_options)

    async def _ensure_schema(self, pool: Pool) -> None:
        async with pool.acquire() as conn:
            try:
                version = await conn.fetchval(self._sql.version)
            except asyncpg.UndefinedTableError:
                version = None
            if version is None:
                async with conn.transaction():
                    # Serialises concurrent first uses: CREATE ... IF NOT EXISTS alone can still
                    # fail when two sessions create the same table at once.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_id)
                    await conn.execute(self._sql.schema)
                    version = await conn.fetchval(self._sql.version)
        check_schema_version(self.backend, self.names.table, version)

    async def _run(self, op: str, aw: Awaitable[T]) -> T:
        """As the base class does, and a closed connection or pool counts as unavailable too."""
        try:
            return await super()._run(op, aw)
        except StoreError as exc:
            cause = exc.__cause__
            if type(exc) is StoreError and cause is not None and _lost_connection(cause):
                raise StoreUnavailableError(str(exc)) from cause
            raise

    async def close(self) -> None:
        """Close the pool if this store created it."""
        pool, owned = self._pool, self._dsn is not None
        if owned:
            self._pool = None
            self._ready = False
        if owned and pool is not None:
            await pool.close()

    async def drop_tables(self) -> None:
        """Drop the store's tables and everything in them."""
        await self._run("drop_tables", self._drop_tables())

    async def _drop_tables(self) -> None:
        pool = self._pool
        if pool is None:
            pool = self._pool = await self._create_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_id)
            await conn.execute(self._sql.drop)
        self._ready = False

    # -- records ---------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        data: bytes | None = await (await self._ready_pool()).fetchval(self._sql.get, key)
        return data

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        await (await self._ready_pool()).execute(self._sql.set, key, data, bounded_ttl(ttl))

    async def _delete(self, key: str) -> None:
        await (await self._ready_pool()).execute(self._sql.delete, key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        check_key(key)
        left = await self._run("expires_in", self._fetchval(self._sql.expires_in, key))
        return None if left is None else max(0.0, float(left))

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        check_key(key)
        seconds = sql_ttl(ttl)
        return await self._run("touch", self._fetchval(self._sql.touch, key, seconds)) is not None

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await (await self._ready_pool()).fetchval(sql, *args)

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (taken literally), in key order."""
        async for key in scan_pages(self._scan_page, prefix, limit):
            yield key

    async def _scan_page(self, low: str, high: str, after: str, size: int) -> list[str]:
        rows = await self._run("scan", self._fetch(self._sql.scan, low, high, after, size))
        return [row[0] for row in rows]

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await (await self._ready_pool()).fetch(sql, *args)

    async def purge_expired(self) -> int:
        """Delete expired sessions and expired logs; return how many sessions and logs were removed."""
        return await self._run("purge_expired", self._purge())

    async def _purge(self) -> int:
        async with (await self._ready_pool()).acquire() as conn, conn.transaction():
            status = await conn.execute(self._sql.purge_sessions)
            keys = [row[0] for row in await conn.fetch(self._sql.purge_logs)]
            if keys:
                await conn.execute(self._sql.purge_log, keys)
        return int(status.rsplit(" ", 1)[-1]) + len(keys)

    # -- append-only logs ------------------------------------------------------------------------

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically; return their sequence numbers."""
        check_key(key)
        encoded = encode_log_entries(self.codec, self.max_size, entries, max_len)
        seconds = sql_ttl(ttl)
        if not encoded and seconds is None and max_len is None:
            return []
        return await self._run("log_append", self._append(key, encoded, seconds, max_len))

    async def _append(self, key: str, encoded: list[bytes], ttl: float | None, max_len: int | None) -> list[int]:
        sql = self._sql
        count = len(encoded)
        async with (await self._ready_pool()).acquire() as conn, conn.transaction():
            last: int = await conn.fetchval(sql.log_claim, key, count, ttl)
            if last == count:
                # A new log or one that expired: whatever entries remain under the key are stale.
                await conn.execute(sql.log_clear, key)
            kept = encoded if max_len is None else encoded[-max_len:]
            if kept:
                start = last - len(kept)
                if max_len is None:
                    await conn.execute(sql.log_insert, key, start, kept)
                else:
                    await conn.execute(sql.log_insert_trim, key, start, kept, last - max_len)
            elif max_len is not None:
                await conn.execute(sql.log_trim, key, last - max_len)
        return list(range(last - count + 1, last + 1))

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N."""
        check_key(key)
        window = log_window(after, before, last)
        if window is None:
            return []
        rows = await self._run("log_read", self._fetch(self._sql.log_read, key, *window))
        return entries_from_newest(self.codec, key, [(row[0], row[1]) for row in rows])

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        check_key(key)
        length = await self._run("log_length", self._fetchval(self._sql.log_length, key))
        return 0 if length is None else int(length)

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log (0 if it does not exist)."""
        check_key(key)
        last = await self._run("log_last_seq", self._fetchval(self._sql.log_last_seq, key))
        return 0 if last is None else int(last)

    async def log_delete(self, key: str) -> None:
        """Remove the whole log; nothing happens if it is missing."""
        check_key(key)
        await self._run("log_delete", self._drop_log(key))

    async def _drop_log(self, key: str) -> None:
        # The head row goes first: deleting it waits for any append holding its lock, and
        # then blocks new appends until commit, so the second statement sees every entry.
        async with (await self._ready_pool()).acquire() as conn, conn.transaction():
            await conn.execute(self._sql.log_drop, key)
            await conn.execute(self._sql.log_clear, key)


__all__ = ["PostgresSessionStore"]
