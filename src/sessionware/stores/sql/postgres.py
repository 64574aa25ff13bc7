"""The PostgreSQL store, on asyncpg: sessions as BYTEA rows, logs as one row per entry."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...codec import Codec, JsonDict
from ...errors import InvalidValueError, MissingExtraError, StoreError, StoreUnavailableError
from ...keys import TTL, check_key
from ...store import DEFAULT_MAX_SIZE, BaseSessionStore, Lease, Locked, LogEntry, Versioned
from .._common import (
    DEFAULT_RETRIES,
    bounded_ttl,
    check_expected,
    check_lease,
    check_record,
    check_retries,
    conflict,
    encode_log_entries,
    lease_lost,
    new_token,
    retry_backoff,
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

try:
    import asyncpg
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("PostgreSQL", "postgres", "asyncpg") from e

T = TypeVar("T")

Pool = asyncpg.Pool
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[Any]
else:  # the class is generic only in the type stubs
    Connection = asyncpg.pool.PoolConnectionProxy

_LIVE = "(expires_at IS NULL OR expires_at > now())"
_EXPIRY = "now() + {} * interval '1 second'"
# Leases are measured by the server's clock at the moment a statement looks, not at transaction start.
_LEASE_END = "clock_timestamp() + {} * interval '1 second'"


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
            CREATE UNLOGGED TABLE IF NOT EXISTS {n.locks} (
                key TEXT COLLATE "C" PRIMARY KEY, token TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
            UPDATE {n.meta} SET value = {SCHEMA_VERSION}
                WHERE name = '{SCHEMA_VERSION_NAME}' AND value < {SCHEMA_VERSION};
        """
        self.drop = (
            f"DROP TABLE IF EXISTS {n.sessions}, {n.log}, {n.logs}, {n.meta}, {n.locks};"
            f" DROP SEQUENCE IF EXISTS {version_seq}"
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
        self.get_versioned = f"SELECT value, version FROM {n.sessions} WHERE key = $1 AND {_LIVE}"
        self.set_returning = self.set + " RETURNING version"
        # expected=0: insert, or take over an expired row; a live row makes it return nothing.
        self.cas_create = (
            f"INSERT INTO {n.sessions} AS s (key, value, expires_at, version)"
            f" VALUES ($1, $2, {_EXPIRY.format('$3::float8')}, {next_version})"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
            " version = EXCLUDED.version WHERE s.expires_at <= now() RETURNING version"
        )
        self.cas_update = (
            f"UPDATE {n.sessions} SET value = $2, expires_at = {_EXPIRY.format('$3::float8')},"
            f" version = {next_version} WHERE key = $1 AND version = $4::bigint AND {_LIVE} RETURNING version"
        )
        self.cas_delete = f"DELETE FROM {n.sessions} WHERE key = $1 AND version = $2::bigint AND {_LIVE} RETURNING 1"
        self.exists = f"SELECT 1 FROM {n.sessions} WHERE key = $1 AND {_LIVE}"
        # Taken when free, expired, or already ours (a repeated attempt with the same token); else
        # the holder's remaining seconds, as a hint for how long to wait.
        self.lock_take = (
            f"WITH taken AS (INSERT INTO {n.locks} AS l (key, token, expires_at)"
            f" VALUES ($1, $2, {_LEASE_END.format('$3::float8')})"
            " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at"
            " WHERE l.expires_at <= clock_timestamp() OR l.token = EXCLUDED.token RETURNING 1)"
            " SELECT EXISTS (SELECT 1 FROM taken),"
            f" (SELECT EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 FROM {n.locks} WHERE key = $1)"
        )
        self.lock_renew = (
            f"UPDATE {n.locks} SET expires_at = {_LEASE_END.format('$3::float8')}"
            " WHERE key = $1 AND token = $2 AND expires_at > clock_timestamp() RETURNING 1"
        )
        # The lease row goes in any case (held: released; expired: stale); the record is written
        # only if it was still held. One statement, so no other writer comes in between.
        release = (
            f"WITH released AS (DELETE FROM {n.locks} WHERE key = $1 AND token = $2"
            " RETURNING expires_at > clock_timestamp() AS held)"
        )
        self.commit_write = (
            f"{release}, written AS (INSERT INTO {n.sessions} AS s (key, value, expires_at, version)"
            f" SELECT $1::text, $3::bytea, {_EXPIRY.format('$4::float8')}, {next_version} FROM released WHERE held"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
            " version = EXCLUDED.version RETURNING version)"
            " SELECT (SELECT held FROM released), (SELECT version FROM written)"
        )
        self.commit_delete = (
            f"{release}, removed AS (DELETE FROM {n.sessions} WHERE key = $1 AND (SELECT held FROM released))"
            " SELECT (SELECT held FROM released), 0::bigint"
        )
        self.lock_drop = f"DELETE FROM {n.locks} WHERE key = $1 AND token = $2"
        self.purge_locks = f"DELETE FROM {n.locks} WHERE expires_at <= clock_timestamp()"
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
        # The common case in one statement: a live log claims its numbers (row lock) and inserts.
        self.log_append_live = (
            f"WITH claim AS (UPDATE {n.logs} AS l SET last_seq = l.last_seq + $2::bigint,"
            f" expires_at = COALESCE({_EXPIRY.format('$3::float8')}, l.expires_at)"
            " WHERE l.key = $1 AND (l.expires_at IS NULL OR l.expires_at > now()) RETURNING l.last_seq),"
            f" ins AS (INSERT INTO {n.log} (key, seq, value) SELECT $1, c.last_seq - $2::bigint + u.i, u.v"
            " FROM claim c, unnest($4::bytea[]) WITH ORDINALITY AS u(v, i))"
            " SELECT last_seq FROM claim"
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
    """Whether a client-side asyncpg error reports a lost connection or a closed pool rather than misuse."""
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    # A connection that got the server's goodbye (e.g. pg_terminate_backend) while idle but has not
    # yet seen its socket close refuses the next statement this way, before sending it. The store never
    # runs two statements on one connection at once, so this is never misuse here.
    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc)


Op = Callable[[Connection], Awaitable[T]]


async def _light_reset(conn: Connection) -> None:
    """Reset a connection returned to the store's own pool without a round trip.

    The store leaves no session state behind (only transaction-scoped advisory
    locks, no LISTEN, cursors or settings), so asyncpg's default reset query
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) would only
    cost a round trip per call; a transaction left open is still rolled back.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresSessionStore(BaseSessionStore):
    """Sessions and logs in PostgreSQL tables, through an asyncpg pool.

    Pass a pool (the store never closes it) or a DSN (the store creates its
    pool on first use, with ``pool_options`` for :func:`asyncpg.create_pool`
    over defaults of 1 to 10 connections, and closes it in :meth:`close`).
    Tables are created on first use; a table written by a newer release
    raises :class:`~sessionware.errors.SchemaVersionError`.

    Versions come from one sequence per table, so a record's version changes
    on every write and never repeats. A lease is a row of the unlogged
    ``{table}_locks`` table (a random token and an expiry by the server's
    clock); :meth:`lock` takes it in one statement and reads the record in a
    second one, :meth:`commit` checks it, writes and releases in one
    statement. Leases need no durability: losing them in a server crash only
    makes their holders' commits refused.

    Faults: a connection the server closed is dropped by the pool and
    replaced on the next call. Calls that are safe to repeat (reads, plain
    ``set``/``delete``/``touch``, taking, renewing and releasing leases,
    purging) are retried up to ``retries`` times with jittered exponential
    backoff when the connection fails. The others (compare-and-set, ``commit``,
    ``log_append``) are retried only when nothing was sent; once sent, a lost
    connection raises :class:`~sessionware.errors.StoreUnavailableError`
    (the write may or may not have been applied, never twice). ``timeout``
    bounds each call including its retries (each try of a lease wait).
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
        retries: int = DEFAULT_RETRIES,
        pool_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size, timeout=timeout)
        self.names = TableNames.for_table(table)
        self.retries = check_retries(retries)
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
        self._pool_options = {"min_size": 1, "max_size": 10, "reset": _light_reset, **(pool_options or {})}
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

    # -- pool, schema, errors and retries --------------------------------------------------------

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
            if version is not None:
                check_schema_version(self.backend, self.names.table, version)
            if version is None or version < SCHEMA_VERSION:
                async with conn.transaction():
                    # Serialises concurrent first uses: CREATE ... IF NOT EXISTS alone can still
                    # fail when two sessions create the same table at once.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_id)
                    await conn.execute(self._sql.schema)
                    version = await conn.fetchval(self._sql.version)
        check_schema_version(self.backend, self.names.table, version)

    def _connection_failed(self, exc: BaseException) -> bool:
        return isinstance(exc, self._unavailable_errors) or _lost_connection(exc)

    async def _attempts(self, fn: Op[T], *, safe: bool) -> T:
        """Run ``fn`` on a pooled connection; after a lost connection, retry if that cannot do harm.

        A failure before ``fn`` got a connection (connecting, a full or
        restarting server) is always retried; one after it may have sent
        something only when ``safe``.
        """
        attempt = 0
        while True:
            sent = done = False
            pool: Pool | None = None
            try:
                pool = await self._ready_pool()
                async with pool.acquire() as conn:
                    sent = True
                    result = await fn(conn)
                    done = True
                return result
            except Exception as exc:
                if not self._connection_failed(exc):
                    raise
                if done:
                    # fn finished; only handing the connection back failed, and the pool dropped it.
                    return result
                if attempt >= self.retries or (sent and not safe) or (pool is not None and pool.is_closing()):
                    raise
            await asyncio.sleep(retry_backoff(attempt))
            attempt += 1

    async def _call(self, op: str, fn: Op[T], *, safe: bool) -> T:
        return await self._run(op, self._attempts(fn, safe=safe))

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

    async def _fetchval(self, sql: str, *args: Any, safe: bool = True) -> Any:
        return await self._attempts(lambda conn: conn.fetchval(sql, *args), safe=safe)

    async def _fetchrow(self, sql: str, *args: Any, safe: bool = True) -> asyncpg.Record | None:
        return await self._attempts(lambda conn: conn.fetchrow(sql, *args), safe=safe)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._attempts(lambda conn: conn.fetch(sql, *args), safe=True)

    # -- records ---------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        data: bytes | None = await self._fetchval(self._sql.get, key)
        return data

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        # Repeating a plain upsert of the same bytes leaves the same record: safe to retry.
        await self._attempts(lambda conn: conn.execute(self._sql.set, key, data, bounded_ttl(ttl)), safe=True)

    async def _delete(self, key: str) -> None:
        await self._attempts(lambda conn: conn.execute(self._sql.delete, key), safe=True)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        check_key(key)
        left = await self._run("expires_in", self._fetchval(self._sql.expires_in, key))
        return None if left is None else max(0.0, float(left))

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        check_key(key)
        seconds = store_ttl(ttl)
        return await self._run("touch", self._fetchval(self._sql.touch, key, seconds)) is not None

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (taken literally), in key order."""
        async for key in scan_pages(self._scan_page, prefix, limit):
            yield key

    async def _scan_page(self, low: str, high: str, after: str, size: int) -> list[str]:
        rows = await self._run("scan", self._fetch(self._sql.scan, low, high, after, size))
        return [row[0] for row in rows]

    async def purge_expired(self) -> int:
        """Delete expired sessions, logs and leases; return how many sessions and logs were removed."""
        return await self._call("purge_expired", self._purge, safe=True)

    async def _purge(self, conn: Connection) -> int:
        async with conn.transaction():
            await conn.execute(self._sql.purge_locks)
            status = await conn.execute(self._sql.purge_sessions)
            keys = [row[0] for row in await conn.fetch(self._sql.purge_logs)]
            if keys:
                await conn.execute(self._sql.purge_log, keys)
        return int(status.rsplit(" ", 1)[-1]) + len(keys)

    # -- append-only logs ------------------------------------------------------------------------

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically; return their sequence numbers.

        Never repeated once sent: after a lost connection the entries may or
        may not be in the log, and :class:`~sessionware.errors.StoreUnavailableError` says so.
        """
        check_key(key)
        encoded = encode_log_entries(self.codec, self.max_size, entries, max_len)
        seconds = store_ttl(ttl)
        if not encoded and seconds is None and max_len is None:
            return []
        return await self._call(
            "log_append", lambda conn: self._append(conn, key, encoded, seconds, max_len), safe=False
        )

    async def _append(
        self, conn: Connection, key: str, encoded: list[bytes], ttl: float | None, max_len: int | None
    ) -> list[int]:
        sql = self._sql
        count = len(encoded)
        if encoded and max_len is None:
            claimed: int | None = await conn.fetchval(sql.log_append_live, key, count, ttl, encoded)
            if claimed is not None:
                return list(range(claimed - count + 1, claimed + 1))
        async with conn.transaction():
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
        await self._call("log_delete", lambda conn: self._drop_log(conn, key), safe=True)

    async def _drop_log(self, conn: Connection, key: str) -> None:
        # The head row goes first: deleting it waits for any append holding its lock, and
        # then blocks new appends until commit, so the second statement sees every entry.
        async with conn.transaction():
            await conn.execute(self._sql.log_drop, key)
            await conn.execute(self._sql.log_clear, key)

    # -- versions (compare-and-set) --------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version, or ``None``."""
        check_key(key)
        row = await self._run("get_versioned", self._fetchrow(self._sql.get_versioned, key))
        return None if row is None else Versioned(row[0], row[1])

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected`` (0: must be missing; ``None``: any).

        One statement compares and writes. Return the new version;
        :class:`~sessionware.errors.ConflictError` and nothing written if
        someone wrote in between.
        """
        seconds = check_record(key, data, self.max_size, ttl)
        check_expected(expected)
        sql = self._sql
        if expected is None:
            version = await self._run("set_versioned", self._fetchval(sql.set_returning, key, data, seconds))
        elif expected == 0:
            version = await self._run("set_versioned", self._fetchval(sql.cas_create, key, data, seconds, safe=False))
        else:
            version = await self._run(
                "set_versioned", self._fetchval(sql.cas_update, key, data, seconds, expected, safe=False)
            )
        if version is None:
            raise conflict(key, expected or 0)
        return int(version)

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``; else raise ``ConflictError``."""
        check_key(key)
        check_expected(expected)
        if expected is None:
            await self._run("delete_versioned", self._delete(key))
            return
        if expected == 0:
            found = await self._run("delete_versioned", self._fetchval(self._sql.exists, key))
            if found is not None:
                raise conflict(key, 0)
            return
        deleted = await self._run("delete_versioned", self._fetchval(self._sql.cas_delete, key, expected, safe=False))
        if deleted is None:
            raise conflict(key, expected)

    # -- leases ----------------------------------------------------------------------------------

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` and read the record; wait up to ``wait`` seconds for it.

        Two statements on one connection: the take, then the read, so the
        read's snapshot includes whatever the previous holder committed (a
        read in the same statement could predate that commit). While another
        holder has the lease, waits with jittered exponential backoff (never
        past that holder's expiry), then raises
        :class:`~sessionware.errors.LockError` once ``wait`` has passed.
        """
        check_key(key)
        seconds = seconds_arg("lease", lease, zero=False)
        patience = seconds_arg("wait", wait, zero=True)

        async def attempt() -> Locked | float | None:
            token = new_token()
            started = time.monotonic()
            # Safe to repeat: a repeated take with the same token takes the lease it already holds.
            taken, record, left = await self._call(
                "lock", lambda conn: self._try_lock(conn, key, token, seconds), safe=True
            )
            if not taken:
                return left
            return Locked(Lease(key, token, seconds, started), record)

        return await wait_for_lease(key, patience, attempt)

    async def _try_lock(
        self, conn: Connection, key: str, token: str, ttl: float
    ) -> tuple[bool, Versioned | None, float | None]:
        took = await conn.fetchrow(self._sql.lock_take, key, token, ttl)
        if took is None or not took[0]:
            return False, None, None if took is None else took[1]
        row = await conn.fetchrow(self._sql.get_versioned, key)
        return True, None if row is None else Versioned(row[0], row[1]), None

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``; raise ``LeaseExpiredError`` if it was lost."""
        lease = check_lease(lease)
        started = time.monotonic()
        renewed = await self._run("renew", self._fetchval(self._sql.lock_renew, lease.key, lease.token, lease.ttl))
        if renewed is None:
            raise lease_lost(lease.key, renewing=True)
        return Lease(lease.key, lease.token, lease.ttl, started)

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release in one statement, if the lease is still held.

        Return the new version (0 after a delete). A lease that expired or was
        taken over writes nothing and raises
        :class:`~sessionware.errors.LeaseExpiredError`.
        """
        lease = check_lease(lease)
        sql = self._sql
        if data is None:
            row = await self._run("commit", self._fetchrow(sql.commit_delete, lease.key, lease.token, safe=False))
        else:
            seconds = check_record(lease.key, data, self.max_size, ttl)
            row = await self._run(
                "commit", self._fetchrow(sql.commit_write, lease.key, lease.token, data, seconds, safe=False)
            )
        if row is None or not row[0]:
            raise lease_lost(lease.key)
        return int(row[1])

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing; one that expired or was taken over is left alone."""
        lease = check_lease(lease)
        await self._run(
            "unlock",
            self._attempts(lambda conn: conn.execute(self._sql.lock_drop, lease.key, lease.token), safe=True),
        )


__all__ = ["PostgresSessionStore"]
