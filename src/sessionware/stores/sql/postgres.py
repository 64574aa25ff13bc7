"""The PostgreSQL store, on asyncpg: sessions as BYTEA rows, logs as one row per entry."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlunsplit

from ...codec import Codec
from ...errors import InvalidStoreURLError, InvalidValueError, MissingExtraError, StoreError, StoreUnavailableError
from ...keys import check_seconds
from ...store import DEFAULT_MAX_SIZE, IndexPut, RewriteResult, Versioned
from ...urls import redact_url, split_url, url_bool, url_int, url_seconds
from .._common import (
    DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_RETRIES,
    Batch,
    EncodedRewrite,
    Taken,
    check_retries,
    check_timeout,
    retry_backoff,
)
from ._base import DEFAULT_TABLE, Dialect, SQLSessionStore, SQLStatements, Statement, TableNames, Values

try:
    import asyncpg
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("PostgreSQL", "postgres", "asyncpg") from e

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to open one connection (TCP, TLS and the startup handshake) unless ``connect_timeout`` says otherwise."""

POOL_DEFAULTS: Mapping[str, Any] = {
    "min_size": 1,
    "max_size": 10,
    "max_inactive_connection_lifetime": 300.0,
    "timeout": DEFAULT_CONNECT_TIMEOUT,
}
"""What the store's own pool is created with, before ``pool_options`` and the ``pool_*`` settings."""

_URL_INTS = {"pool_min_size": 0, "pool_max_size": 1, "pool_max_queries": 1, "retries": 0}
"""Integer URL query parameters the store reads (and their least value); the rest of the query goes to asyncpg."""
_URL_SECONDS = {"pool_max_idle": True, "connect_timeout": False, "timeout": False}
"""Query parameters of seconds (and whether 0 is allowed)."""

Pool = asyncpg.Pool
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[Any]
else:  # the class is generic only in the type stubs
    Connection = asyncpg.pool.PoolConnectionProxy


def _dialect(n: TableNames) -> Dialect:
    # Records expire by the transaction's clock (now()); leases by the clock at the moment a statement
    # looks (clock_timestamp()). Versions come from one sequence per table, so a key never sees the
    # same version twice, not even after it was deleted and written again.
    version = f"""nextval('"{n.table}_version_seq"')"""
    return Dialect(
        marker="$",
        now="now()",
        clock="clock_timestamp()",
        value="value",
        expiry="now() + :ttl::float8 * interval '1 second'",
        lease_end="clock_timestamp() + :ttl::float8 * interval '1 second'",
        seconds_left="EXTRACT(EPOCH FROM expires_at - now())::float8",
        lease_left="EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8",
        new_version=version,
        upserted_version="excluded.version",
        updated_version=version,
        limit=":limit::bigint",
    )


def _index_schema(n: TableNames) -> str:
    """Sorted indexes (schema version 3): one row per member; members compare by code point (``C``)."""
    return f"""
            CREATE TABLE IF NOT EXISTS {n.index} (
                key TEXT COLLATE "C" NOT NULL, member TEXT COLLATE "C" NOT NULL,
                score DOUBLE PRECISION NOT NULL, expires_at TIMESTAMPTZ, PRIMARY KEY (key, member));
            CREATE INDEX IF NOT EXISTS {n.index_order_index} ON {n.index} (key, score, member);
            CREATE INDEX IF NOT EXISTS {n.index_expiry_index} ON {n.index} (key, expires_at);"""


class _Statements(SQLStatements):
    """The shared statements in PostgreSQL's spelling, and those only PostgreSQL runs."""

    def __init__(self, n: TableNames) -> None:
        d = _dialect(n)
        super().__init__(n, d)
        version_seq = f'"{n.table}_version_seq"'
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
            {self.stamp_version};
            CREATE UNLOGGED TABLE IF NOT EXISTS {n.locks} (
                key TEXT COLLATE "C" PRIMARY KEY, token TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
            {_index_schema(n)}
            {self.upgrade_version};
        """
        self.drop = (
            f"DROP TABLE IF EXISTS {n.sessions}, {n.log}, {n.logs}, {n.meta}, {n.locks}, {n.index};"
            f" DROP SEQUENCE IF EXISTS {version_seq}"
        )
        # One statement takes the lease, or else reports the holder's remaining seconds as a hint for how long
        # to wait. The record is read by a second one, whose snapshot includes the previous holder's commit.
        self.lock_try = self.statement(
            f"WITH taken AS ({self.lock_take.text}) SELECT EXISTS (SELECT 1 FROM taken),"
            f" (SELECT {d.lease_left} FROM {n.locks} WHERE key = :key)"
        )
        # The lease row goes in any case; the record is written only if the lease was still held. One
        # statement, so no other writer comes in between.
        released = f"WITH released AS ({self.lock_release.text})"
        self.commit_write = self.statement(
            f"{released}, written AS (INSERT INTO {n.sessions} AS s (key, value, expires_at, version)"
            f" SELECT :key::text, :data::bytea, {d.expiry}, {d.new_version} FROM released WHERE held"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,"
            " version = excluded.version RETURNING version)"
            " SELECT (SELECT held FROM released), (SELECT version FROM written)"
        )
        self.commit_delete = self.statement(
            f"{released}, removed AS (DELETE FROM {n.sessions} WHERE key = :key AND (SELECT held FROM released))"
            " SELECT (SELECT held FROM released), 0::bigint"
        )
        self.purge_log = self.statement(f"DELETE FROM {n.log} WHERE key = ANY(:keys::text[])")
        # Taken before a pop or a clear: waits for an append holding the head, blocks the next one until
        # commit, and the statements after it see every entry committed before.
        self.log_lock_head = self.statement(self.log_last_seq.text + " FOR UPDATE")
        # Claims numbers under the per-log row lock, held until the transaction commits; an
        # expired log starts again from 1 (its stale entries are cleared before inserting).
        self.log_claim = self.statement(
            f"INSERT INTO {n.logs} AS l (key, last_seq, expires_at) VALUES (:key, :count::bigint, {d.expiry})"
            " ON CONFLICT (key) DO UPDATE SET"
            " last_seq = CASE WHEN l.expires_at <= now() THEN excluded.last_seq"
            " ELSE l.last_seq + excluded.last_seq END,"
            " expires_at = CASE WHEN l.expires_at <= now() THEN excluded.expires_at"
            " ELSE COALESCE(excluded.expires_at, l.expires_at) END"
            " RETURNING last_seq"
        )
        # The common case in one statement: a live log claims its numbers (row lock) and inserts.
        self.log_append_live = self.statement(
            f"WITH claim AS (UPDATE {n.logs} AS l SET last_seq = l.last_seq + :count::bigint,"
            f" expires_at = COALESCE({d.expiry}, l.expires_at)"
            " WHERE l.key = :key AND (l.expires_at IS NULL OR l.expires_at > now()) RETURNING l.last_seq),"
            f" ins AS (INSERT INTO {n.log} (key, seq, value) SELECT :key, c.last_seq - :count::bigint + u.i, u.v"
            " FROM claim c, unnest(:entries::bytea[]) WITH ORDINALITY AS u(v, i))"
            " SELECT last_seq FROM claim"
        )
        # The fenced append without trimming, in one statement: the record row is locked (its version
        # re-checked on the newest row), then the log claims its numbers only if the record matched and its
        # highest number is the one expected, and the record is written only if it did. A live log is
        # claimed by an UPDATE; a log that does not exist yet (expected at 0) by an INSERT, which does nothing
        # if a head is there (an expired log, whose stale entries the transaction path clears first).
        log_expiry = d.expiry.replace(":ttl", ":log_ttl")
        claim_live = (
            f"UPDATE {n.logs} AS l SET last_seq = l.last_seq + :count::bigint,"
            f" expires_at = COALESCE({log_expiry}, l.expires_at)"
            " WHERE l.key = :key AND (l.expires_at IS NULL OR l.expires_at > now())"
            " AND l.last_seq = :last::bigint AND EXISTS (SELECT 1 FROM rec) RETURNING l.last_seq"
        )
        claim_new = (
            f"INSERT INTO {n.logs} (key, last_seq, expires_at) SELECT :key, :count::bigint, {log_expiry}"
            " FROM rec WHERE :last::bigint = 0 ON CONFLICT (key) DO NOTHING RETURNING last_seq"
        )

        def fenced(claim: str) -> Statement:
            return self.statement(
                f"WITH rec AS (SELECT version FROM {n.sessions} WHERE key = :record::text"
                f" AND version = :expected::bigint AND {self.live} FOR UPDATE),"
                f" claim AS ({claim}),"
                f" ins AS (INSERT INTO {n.log} (key, seq, value) SELECT :key, c.last_seq - :count::bigint + u.i, u.v"
                " FROM claim c, unnest(:entries::bytea[]) WITH ORDINALITY AS u(v, i)),"
                f" upd AS (UPDATE {n.sessions} SET value = :data, expires_at = {d.expiry},"
                f" version = {d.updated_version} WHERE key = :record::text AND EXISTS (SELECT 1 FROM claim)"
                " RETURNING version)"
                " SELECT version FROM upd"
            )

        self.log_append_fenced = fenced(claim_live)
        self.log_append_fenced_new = fenced(claim_new)
        self.version_lock = self.statement(self.version_of.text + " FOR UPDATE")
        insert = (
            f"INSERT INTO {n.log} (key, seq, value)"
            " SELECT :key, :start::bigint + u.i, u.v FROM unnest(:entries::bytea[]) WITH ORDINALITY AS u(v, i)"
        )
        self.log_insert = self.statement(insert)
        # The trim only reaches rows older than the ones inserted, so the two cannot collide.
        self.log_insert_trim = self.statement(
            f"WITH ins AS ({insert}) DELETE FROM {n.log} WHERE key = :key AND seq <= (SELECT seq FROM {n.log}"
            " WHERE key = :key ORDER BY seq DESC LIMIT 1 OFFSET :keep::bigint)"
        )

        # Every rewrite of one call in one statement: the UPDATE compares each row's bytes (and re-checks
        # a row a concurrent writer changed first); the SELECT reads the snapshot from before it, to tell an
        # entry that holds another value from one that is not there.
        live_log = f"SELECT 1 FROM {n.logs} WHERE key = :key AND {self.live}"
        self.log_rewrite_batch = self.statement(
            "WITH c AS (SELECT * FROM unnest(:seqs::bigint[], :olds::bytea[], :news::bytea[]) AS c(seq, old, new)),"
            f" u AS (UPDATE {n.log} AS l SET value = c.new FROM c WHERE l.key = :key::text AND l.seq = c.seq"
            f" AND (l.value = c.old OR l.value = c.new) AND EXISTS ({live_log}) RETURNING l.seq)"
            " SELECT c.seq, EXISTS (SELECT 1 FROM u WHERE u.seq = c.seq),"
            f" EXISTS (SELECT 1 FROM {n.log} AS l WHERE l.key = :key::text AND l.seq = c.seq) AND EXISTS ({live_log})"
            " FROM c"
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


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _open(conn: Connection) -> bool:
    """Whether a checked-out connection can still be used (asyncpg takes back one that closed)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # released back to the pool when it closed
        return False


class _Pin:
    """One connection held for a :meth:`PostgresSessionStore.pinned` block, checked out on first use.

    ``lock`` keeps calls from several tasks (e.g. a lease renewal started
    inside the block) to one at a time on it.
    """

    __slots__ = ("closed", "conn", "lock", "pool", "store")

    def __init__(self, store: PostgresSessionStore) -> None:
        self.store = store
        self.conn: Connection | None = None
        self.pool: Pool | None = None
        self.lock = asyncio.Lock()
        self.closed = False

    async def connection(self, pool: Pool) -> Connection:
        """The pinned connection, checked out now if there is none (or it was closed meanwhile)."""
        conn = self.conn
        if conn is not None and (self.pool is not pool or not _open(conn)):
            await self.drop()
            conn = None
        if conn is None:
            conn = self.conn = await pool.acquire()
            self.pool = pool
        return conn

    async def drop(self) -> None:
        """Hand the connection back to its pool (which closes a broken one); the next call checks one out."""
        conn, pool, self.conn = self.conn, self.pool, None
        if conn is None or pool is None:
            return
        # A failed release has terminated the connection; the pool opens a new one when needed.
        with contextlib.suppress(Exception):
            await pool.release(conn)


_PINS: ContextVar[tuple[_Pin, ...]] = ContextVar("sessionware_postgres_pins", default=())
"""The pins open in this context, innermost last (one per store at most)."""


def _pool_settings(
    pool_options: Mapping[str, Any] | None,
    *,
    pgbouncer: bool,
    min_size: object,
    max_size: object,
    max_idle: object,
    max_queries: object,
    connect_timeout: object,
) -> dict[str, Any]:
    """The :func:`asyncpg.create_pool` arguments: defaults, then ``pool_options``, then each setting given."""
    settings: dict[str, Any] = {**POOL_DEFAULTS, "reset": _light_reset, **(pool_options or {})}
    for name, value, least in (("pool_min_size", min_size, 0), ("pool_max_size", max_size, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise InvalidValueError(name, f"must be an int of at least {least}, not {value!r}")
    if min_size is not None:
        settings["min_size"] = min_size
    if max_size is not None:
        settings["max_size"] = max_size
    if max_queries is not None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise InvalidValueError("pool_max_queries", f"must be a positive int, not {max_queries!r}")
        settings["max_queries"] = max_queries
    if max_idle is not None:
        settings["max_inactive_connection_lifetime"] = check_seconds("pool_max_idle", max_idle, zero=True)
    if connect_timeout is not None:
        settings["timeout"] = check_seconds("connect_timeout", connect_timeout)
    if settings["min_size"] > settings["max_size"]:
        name = "pool_min_size" if min_size is not None else "pool_max_size"
        raise InvalidValueError(
            name, f"leaves the pool's min_size {settings['min_size']} above its max_size {settings['max_size']}"
        )
    if pgbouncer:
        # PgBouncer in transaction mode hands each transaction to any server connection: a statement
        # prepared in one is missing in the next. asyncpg then prepares unnamed statements only.
        settings["statement_cache_size"] = 0
    return settings


class PostgresSessionStore(SQLSessionStore[_Statements]):
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

    Every call checks a connection out of the pool and back in, except inside
    :meth:`pinned`, where the calls of a task share one.

    Faults: a connection the server closed is dropped by the pool and
    replaced on the next call. Calls that are safe to repeat (reads, plain
    ``set``/``delete``/``touch``, taking, renewing and releasing leases,
    purging) are retried up to ``retries`` times with jittered exponential
    backoff when the connection fails. The others (compare-and-set, ``commit``,
    ``log_append``) are retried only when nothing was sent; once sent, a lost
    connection raises :class:`~sessionware.errors.StoreUnavailableError`
    (the write may or may not have been applied, never twice). ``timeout``
    bounds each call including its retries (each try of a lease wait):
    30 seconds unless given, ``None`` for no limit; past it
    :class:`~sessionware.errors.StoreTimeoutError` is raised.

    Pool (the store's own, made from a DSN): ``pool_min_size`` (1),
    ``pool_max_size`` (10), ``pool_max_idle`` (seconds an idle connection is
    kept, 300; 0 keeps them), ``pool_max_queries`` (queries before a
    connection is replaced; asyncpg has no limit by age, see PgBouncer's
    ``server_lifetime``), ``connect_timeout`` (10 seconds); they win over
    ``pool_options``, which may hold any other :func:`asyncpg.create_pool`
    argument. ``pgbouncer=True`` for a PgBouncer in transaction (or
    statement) pooling mode: no statement is prepared to outlive its
    transaction (asyncpg's ``statement_cache_size=0``). The store itself
    holds no session state: its locks are rows or transaction-scoped.
    """

    backend = "postgres"
    overlapping_calls = True
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
        timeout: float | None = DEFAULT_OPERATION_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        pool_options: Mapping[str, Any] | None = None,
        pgbouncer: bool = False,
        pool_min_size: int | None = None,
        pool_max_size: int | None = None,
        pool_max_idle: float | None = None,
        pool_max_queries: int | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        super().__init__(table=table, codec=codec, max_size=max_size, timeout=check_timeout(timeout))
        self.retries = check_retries(retries)
        if not isinstance(pgbouncer, bool):
            raise InvalidValueError("pgbouncer", f"must be True or False, not {pgbouncer!r}")
        self.pgbouncer = pgbouncer
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
        self._pool_options = _pool_settings(
            pool_options,
            pgbouncer=pgbouncer,
            min_size=pool_min_size,
            max_size=pool_max_size,
            max_idle=pool_max_idle,
            max_queries=pool_max_queries,
            connect_timeout=connect_timeout,
        )
        self._ready = False
        self._open_lock = asyncio.Lock()
        digest = hashlib.blake2b(f"sessionware:{self.names.table}".encode(), digest_size=8).digest()
        self._lock_id = int.from_bytes(digest, "big", signed=True)

    def _statements(self, names: TableNames) -> _Statements:
        return _Statements(names)

    @property
    def pool_options(self) -> Mapping[str, Any]:
        """What the store's own pool is (or will be) created with: :func:`asyncpg.create_pool` arguments."""
        return dict(self._pool_options)

    @classmethod
    def from_url(cls, url: str, *, table: str = DEFAULT_TABLE, **options: Any) -> PostgresSessionStore:
        """A store on ``postgresql://user@host:port/db?…``; ``options`` go to the constructor and win over the URL.

        The query may hold the store's settings: ``table``, ``timeout``
        (seconds per call, ``none`` for no limit), ``retries``,
        ``pgbouncer=true``, ``pool_min_size``, ``pool_max_size``,
        ``pool_max_idle`` (seconds, 0: never close idle connections),
        ``pool_max_queries`` and ``connect_timeout``. Any other parameter goes
        to asyncpg (``sslmode``, ``sslrootcert``…; an unknown one becomes a
        server setting). A bad value raises
        :class:`~sessionware.errors.InvalidStoreURLError` naming it.
        """
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise InvalidStoreURLError(
                f"a PostgreSQL URL starts with postgresql:// or postgres://, not {redact_url(url)!r}"
            )
        parts = split_url(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        found: dict[str, Any] = {}
        rest: list[tuple[str, str]] = []
        for name, raw in query:
            if name in _URL_INTS:
                found[name] = url_int(url, name, raw, minimum=_URL_INTS[name])
            elif name in _URL_SECONDS:
                found[name] = url_seconds(url, name, raw, zero=_URL_SECONDS[name])
            elif name == "pgbouncer":
                found[name] = url_bool(url, name, raw)
            elif name == "table":
                found[name] = raw
            else:
                rest.append((name, raw))
        found.setdefault("table", table)
        if found.get("pool_max_idle", 0.0) is None:
            found["pool_max_idle"] = 0.0
        if "connect_timeout" in found and found["connect_timeout"] is None:
            raise InvalidStoreURLError(f"connect_timeout in {redact_url(url)!r} must be a number of seconds")
        dsn = urlunsplit(parts._replace(query=urlencode(rest)))
        try:
            return cls(dsn, **{**found, **options})
        except InvalidValueError as exc:
            if exc.path in found and exc.path not in options:
                raise InvalidStoreURLError(f"{exc.path} in {redact_url(url)!r} {exc.reason}") from None
            raise

    # -- pool, schema, errors and retries --------------------------------------------------------

    async def _ready_pool(self) -> Pool:
        if self._closed:
            raise self._closed_error("connect")
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
                version = await conn.fetchval(self._sql.version.sql)
            except asyncpg.UndefinedTableError:
                version = None
            if self._schema_outdated(version):
                async with conn.transaction():
                    # Serialises concurrent first uses: CREATE ... IF NOT EXISTS alone can still
                    # fail when two sessions create the same table at once.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_id)
                    await conn.execute(self._sql.schema)
                    version = await conn.fetchval(self._sql.version.sql)
        self._check_schema(version)

    def _connection_failed(self, exc: BaseException) -> bool:
        return isinstance(exc, self._unavailable_errors) or _lost_connection(exc)

    def _pin(self) -> _Pin | None:
        for pin in _PINS.get():
            if pin.store is self and not pin.closed:
                return pin
        return None

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        """Run this task's calls inside the block on one pooled connection, checked out once.

        The connection is checked out by the first call and handed back when
        the block ends. A nested block reuses it; so do tasks started inside
        the block, one call at a time (a lease renewal, say), until it ends.
        A pinned connection that fails is dropped: the call is retried on a
        fresh one, which stays pinned, only where it would be retried anyway;
        the others raise :class:`~sessionware.errors.StoreUnavailableError`.
        Do not :meth:`close` the store inside the block.
        """
        if self._pin() is not None:
            yield
            return
        pin = _Pin(self)
        reset = _PINS.set((*_PINS.get(), pin))
        try:
            yield
        finally:
            _PINS.reset(reset)
            pin.closed = True
            async with pin.lock:  # a call of another task may still be running on it
                await pin.drop()

    async def _attempts(self, fn: Op[T], *, safe: bool) -> T:
        """Run ``fn`` on a connection (the pinned one, if any); after a lost connection, retry if that cannot harm.

        A failure before ``fn`` got a connection (connecting, a full or
        restarting server) is always retried; one after it may have sent
        something only when ``safe``.
        """
        pin = self._pin()
        attempt = 0
        while True:
            sent = done = False
            pool: Pool | None = None
            try:
                pool = await self._ready_pool()
                if pin is not None and not pin.closed:
                    async with pin.lock:
                        if not pin.closed:
                            conn = await pin.connection(pool)
                            sent = True
                            try:
                                result = await fn(conn)
                            except BaseException:
                                await pin.drop()
                                raise
                            if pin.closed:  # the block ended (in another task) while this call ran
                                await pin.drop()
                            return result
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
        """Close the pool if this store created it; every later call raises
        :class:`~sessionware.errors.StoreClosedError` (no new pool is opened)."""
        self._closed = True
        pool, owned = self._pool, self._dsn is not None
        if owned:
            self._pool = None
            self._ready = False
        if owned and pool is not None:
            await pool.close()

    async def drop_tables(self) -> None:
        """Drop the store's tables and everything in them.

        Also after :meth:`close` on a store made from a DSN (cleaning up after use): one connection is
        opened for the drop and closed again.
        """
        if self._closed and self._dsn is not None:
            self._closed = False
            try:
                await self._run("drop_tables", self._drop_tables())
            finally:
                self._closed = True
                await self.close()
            return
        await self._run("drop_tables", self._drop_tables())

    async def _drop_tables(self) -> None:
        pool = self._pool
        if pool is None:
            pool = self._pool = await self._create_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_id)
            await conn.execute(self._sql.drop)
        self._ready = False

    # -- running statements ----------------------------------------------------------------------

    async def _row(self, stmt: Statement, values: Values, *, safe: bool) -> asyncpg.Record | None:
        args = stmt.args(values)
        return await self._attempts(lambda conn: conn.fetchrow(stmt.sql, *args), safe=safe)

    async def _rows(self, stmt: Statement, values: Values, *, safe: bool) -> Sequence[asyncpg.Record]:
        args = stmt.args(values)
        return await self._attempts(lambda conn: conn.fetch(stmt.sql, *args), safe=safe)

    async def _purge(self) -> int:
        return await self._attempts(self._purge_on, safe=True)

    async def _purge_on(self, conn: Connection) -> int:
        sql = self._sql
        async with conn.transaction():
            await conn.execute(sql.purge_locks.sql)
            sessions = _rowcount(await conn.execute(sql.purge_sessions.sql))
            # Heads first: deleting one waits for an append holding its lock, then blocks new ones.
            keys = [row[0] for row in await conn.fetch(sql.purge_logs.sql)]
            if keys:
                await conn.execute(sql.purge_log.sql, keys)
        return sessions + len(keys)

    async def _drop_log(self, key: str) -> None:
        await self._attempts(lambda conn: self._drop_log_on(conn, key), safe=True)

    async def _drop_log_on(self, conn: Connection, key: str) -> None:
        # The head row goes first: deleting it waits for any append holding its lock, and
        # then blocks new appends until commit, so the second statement sees every entry.
        async with conn.transaction():
            await conn.execute(self._sql.log_drop.sql, key)
            await conn.execute(self._sql.log_clear.sql, key)

    async def _pop(self, key: str) -> asyncpg.Record | None:
        return await self._attempts(lambda conn: self._pop_on(conn, key), safe=False)

    async def _pop_on(self, conn: Connection, key: str) -> asyncpg.Record | None:
        sql = self._sql
        async with conn.transaction():
            if await conn.fetchrow(sql.log_lock_head.sql, key) is None:
                return None
            return await conn.fetchrow(sql.log_pop.sql, key)

    async def _clear(self, key: str) -> int | None:
        # Not repeated once sent: a repeat could remove an entry appended in between.
        return await self._attempts(lambda conn: self._clear_on(conn, key), safe=False)

    async def _clear_on(self, conn: Connection, key: str) -> int | None:
        sql = self._sql
        async with conn.transaction():
            head = await conn.fetchrow(sql.log_lock_head.sql, key)
            if head is None:
                return None
            await conn.execute(sql.log_clear.sql, key)
            return int(head[0])

    async def _append(self, key: str, batch: Batch, max_len: int | None) -> list[int]:
        return await self._attempts(lambda conn: self._append_on(conn, key, batch, max_len), safe=False)

    async def _append_on(self, conn: Connection, key: str, batch: Batch, max_len: int | None) -> list[int]:
        sql = self._sql
        encoded = batch.encoded
        count = len(encoded)
        values: Values = {"key": key, "count": count, "ttl": batch.ttl, "entries": encoded}
        if encoded and max_len is None:
            claimed: int | None = await conn.fetchval(sql.log_append_live.sql, *sql.log_append_live.args(values))
            if claimed is not None:
                return list(range(claimed - count + 1, claimed + 1))
        async with conn.transaction():
            last: int = await conn.fetchval(sql.log_claim.sql, *sql.log_claim.args(values))
            if last == count:
                # A new log or one that expired: whatever entries remain under the key are stale.
                await conn.execute(sql.log_clear.sql, key)
            kept = encoded if max_len is None else encoded[-max_len:]
            # The trim sees the rows from before the insert: of those, max_len - len(kept) stay.
            values.update(entries=kept, start=last - len(kept), keep=(max_len or 0) - len(kept))
            if kept:
                stmt = sql.log_insert if max_len is None else sql.log_insert_trim
                await conn.execute(stmt.sql, *stmt.args(values))
            elif max_len is not None:
                await conn.execute(sql.log_trim.sql, *sql.log_trim.args(values))
        return list(range(last - count + 1, last + 1))

    async def _append_fenced(
        self, key: str, batch: Batch, max_len: int | None, last: int, record: Values, index: IndexPut | None
    ) -> int | None:
        if max_len is None:
            values: Values = {
                **record,
                "record": record["key"],
                "key": key,
                "count": len(batch.encoded),
                "log_ttl": batch.ttl,
                "last": last,
                "entries": batch.encoded,
            }
            stmt = self._sql.log_append_fenced if last else self._sql.log_append_fenced_new
            if index is not None:
                stmt = self._fenced_indexed[stmt.text]
                values.update(ikey=index.key, imember=index.member, iscore=index.score, ittl=index.ttl)
            version: int | None = await self._attempts(
                lambda conn: conn.fetchval(stmt.sql, *stmt.args(values)), safe=False
            )
            if version is not None or last > 0:
                return version
        # A new or expired log, or one to trim: compared under row locks, in one transaction.
        return await self._attempts(
            lambda conn: self._append_fenced_on(conn, key, batch, max_len, last, record, index), safe=False
        )

    async def _append_fenced_on(
        self,
        conn: Connection,
        key: str,
        batch: Batch,
        max_len: int | None,
        last: int,
        record: Values,
        index: IndexPut | None,
    ) -> int | None:
        sql = self._sql
        async with conn.transaction():
            found = await conn.fetchval(sql.version_lock.sql, *sql.version_lock.args(record))
            if found != record["expected"]:
                return None
            head = await conn.fetchval(sql.log_lock_head.sql, *sql.log_lock_head.args({"key": key}))
            if (head or 0) != last:
                return None
            await self._append_on(conn, key, batch, max_len)
            version: int = await conn.fetchval(sql.cas_update.sql, *sql.cas_update.args(record))
            if index is not None:
                await conn.execute(self._index_lock, index.key)
                for step, values in self._index_put_steps(index):
                    await conn.execute(step.sql, *step.args(values))
            return version

    async def _rewrite(self, key: str, rewrites: list[EncodedRewrite]) -> list[RewriteResult]:
        stmt = self._sql.log_rewrite_batch
        values: Values = {
            "key": key,
            "seqs": [r.seq for r in rewrites],
            "olds": [r.expected for r in rewrites],
            "news": [r.value for r in rewrites],
        }
        rows = await self._rows(stmt, values, safe=True)
        found = {
            int(row[0]): (RewriteResult.APPLIED if row[1] else RewriteResult.CHANGED)
            for row in rows
            if row[1] or row[2]
        }
        return [found.get(r.seq, RewriteResult.MISSING) for r in rewrites]

    # -- leases ----------------------------------------------------------------------------------

    async def _try_lock(self, key: str, token: str, ttl: float) -> Taken | float | None:
        # Safe to repeat: a repeated take with the same token takes the lease it already holds.
        values = {"key": key, "token": token, "ttl": ttl}
        return await self._attempts(lambda conn: self._take_then_read(conn, values), safe=True)

    async def _take_then_read(self, conn: Connection, values: Values) -> Taken | float | None:
        sql = self._sql
        took = await conn.fetchrow(sql.lock_try.sql, *sql.lock_try.args(values))
        if took is None or not took[0]:
            return None if took is None else took[1]
        row = await conn.fetchrow(sql.get_versioned.sql, *sql.get_versioned.args(values))
        return Taken(None if row is None else Versioned(row[0], row[1]))

    async def _fenced_write(self, key: str, token: str, data: bytes | None, ttl: float | None) -> int | None:
        stmt = self._sql.commit_delete if data is None else self._sql.commit_write
        row = await self._row(stmt, {"key": key, "token": token, "data": data, "ttl": ttl}, safe=False)
        return None if row is None or not row[0] else int(row[1])

    # -- sorted indexes --------------------------------------------------------------------------

    _greatest = "GREATEST"

    @functools.cached_property
    def _index_lock_id(self) -> int:
        """This table's half of the per-key advisory lock of its indexes."""
        return int.from_bytes(
            hashlib.blake2b(f"sessionware-index:{self.names.table}".encode(), digest_size=4).digest(),
            "big",
            signed=True,
        )

    @functools.cached_property
    def _index_lock(self) -> str:
        """Per key, a transaction-scoped advisory lock (two int4: this table's id, the key's hash)."""
        return f"SELECT pg_advisory_xact_lock({self._index_lock_id}, hashtext($1))"

    @functools.cached_property
    def _fenced_indexed(self) -> dict[str, Statement]:
        """The one-statement fenced appends (by text), then (once the record was written) the index put under
        its lock.

        An index found expired is not emptied first, as ``index_put`` does: its stale members come back,
        naming sessions that are gone.
        """
        return {
            stmt.text: self._with_index(stmt) for stmt in (self._sql.log_append_fenced, self._sql.log_append_fenced_new)
        }

    def _with_index(self, fenced: Statement) -> Statement:
        base = fenced.text
        tail = " SELECT version FROM upd"
        expiry = self._sql.dialect.expiry.replace(":ttl", ":ittl")
        text = (
            base.removesuffix(tail)
            + f", ilock AS (SELECT pg_advisory_xact_lock({self._index_lock_id}, hashtext(:ikey::text)) FROM upd),"
            f" iput AS (INSERT INTO {self.names.index} AS i (key, member, score, expires_at)"
            f" SELECT :ikey::text, :imember::text, :iscore::float8, {expiry} FROM ilock"
            " ON CONFLICT (key, member) DO UPDATE SET score = excluded.score,"
            " expires_at = CASE WHEN i.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL"
            " ELSE GREATEST(i.expires_at, excluded.expires_at) END)" + tail
        )
        return self._sql.statement(text)

    async def _index_steps(self, key: str, steps: Sequence[tuple[Statement, Values]]) -> None:
        await self._attempts(lambda conn: self._index_steps_on(conn, key, steps), safe=False)

    async def _index_steps_on(self, conn: Connection, key: str, steps: Sequence[tuple[Statement, Values]]) -> None:
        # Index writes of one key wait for each other, so a remove's hand-over of its expiry is never lost.
        async with conn.transaction():
            await conn.execute(self._index_lock, key)
            for stmt, values in steps:
                await conn.execute(stmt.sql, *stmt.args(values))


__all__ = ["PostgresSessionStore"]
