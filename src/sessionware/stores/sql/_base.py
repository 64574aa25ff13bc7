"""What the SQL backends share: table names, the schema version, the statements, and every operation's logic.

:class:`SQLSessionStore` holds the logic of every call once. An engine
supplies its :class:`Dialect` (how it spells a parameter, the clock, an
expiry, a new version), the statements only it has, and how it runs them:
one statement for a row or rows (:meth:`SQLSessionStore._row`,
:meth:`SQLSessionStore._rows`), and the few multi-statement steps (taking a
lease, a fenced write, an append, a purge, dropping a log) in its own way.
Statements are written once with named parameters (``:key``) and compiled to
the engine's numbered ones.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from ...codec import Codec, JsonDict
from ...errors import InvalidValueError, SchemaVersionError
from ...keys import MAX_KEY_LENGTH, TTL, check_key
from ...store import (
    DEFAULT_MAX_SIZE,
    BaseSessionStore,
    IndexPut,
    Lease,
    Locked,
    LogEntry,
    LogRewrite,
    RewriteResult,
    Versioned,
)
from .._common import (
    Batch,
    EncodedRewrite,
    Taken,
    bounded_ttl,
    check_expected,
    check_lease,
    check_limit,
    check_prefix,
    check_record,
    conflict,
    encode_rewrites,
    fenced_batch,
    fenced_commit,
    log_batch,
    log_window,
    renew_lease,
    store_ttl,
    take_lease,
)
from .._index import check_member, check_page, check_put

DEFAULT_TABLE = "sessionware_sessions"

SCHEMA_VERSION = 3
"""The schema this release writes; a table recording a newer one is refused.

1: sessions, logs and meta tables. 2: adds the ``{table}_locks`` table of
leases (opening a version-1 table creates it and records version 2).
3: adds the ``{table}_index`` table of sorted indexes (opening an older
table creates whatever it lacks and records version 3).
"""

SCHEMA_VERSION_NAME = "schema_version"

MAX_TABLE_LENGTH = 50
"""PostgreSQL identifiers stop at 63 bytes; the longest derived name adds ``_logs_exp_idx``."""


SCAN_PAGE = 500

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Greater than every valid key: keys have at most MAX_KEY_LENGTH code points, none above U+10FFFF.
_AFTER_ALL_KEYS = "\U0010ffff" * (MAX_KEY_LENGTH + 1)

# A named parameter: a colon and a name, not part of a "::type" cast.
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_]+)\b")


@dataclass(frozen=True, slots=True)
class TableNames:
    """The quoted names of a store's tables and indexes, derived from one validated base name."""

    table: str
    sessions: str
    log: str
    logs: str
    meta: str
    locks: str
    sessions_expiry_index: str
    logs_expiry_index: str
    index: str
    index_order_index: str
    index_expiry_index: str

    @classmethod
    def for_table(cls, table: object) -> TableNames:
        """Validate ``table`` as a plain identifier and derive every name from it."""
        name = check_table(table)
        return cls(
            table=name,
            sessions=f'"{name}"',
            log=f'"{name}_log"',
            logs=f'"{name}_logs"',
            meta=f'"{name}_meta"',
            locks=f'"{name}_locks"',
            sessions_expiry_index=f'"{name}_exp_idx"',
            logs_expiry_index=f'"{name}_logs_exp_idx"',
            index=f'"{name}_index"',
            index_order_index=f'"{name}_index_idx"',
            index_expiry_index=f'"{name}_index_exp"',
        )


def check_table(table: object) -> str:
    """Return ``table`` if it is a plain SQL identifier short enough for every engine."""
    if not isinstance(table, str) or not _IDENTIFIER.fullmatch(table):
        raise InvalidValueError("table", f"must be a plain identifier (letters, digits, underscore), not {table!r}")
    if len(table) > MAX_TABLE_LENGTH:
        raise InvalidValueError("table", f"is {len(table)} characters, over the limit of {MAX_TABLE_LENGTH}")
    return table


def check_schema_version(backend: str, table: str, found: object) -> None:
    """Refuse tables whose recorded schema version this release does not know."""
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise SchemaVersionError(
            f"{backend} table {table!r} records an unreadable schema version {found!r} "
            f"in {table}_meta; this release writes version {SCHEMA_VERSION}"
        )
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{backend} table {table!r} has schema version {found}, but this sessionware release "
            f"knows versions up to {SCHEMA_VERSION}; upgrade sessionware to open it"
        )


def schema_outdated(backend: str, table: str, found: object) -> bool:
    """Whether the schema must be created or upgraded, given the recorded version (``None``: no tables yet).

    A version this release cannot open raises :class:`SchemaVersionError`.
    """
    if found is None:
        return True
    check_schema_version(backend, table, found)
    return isinstance(found, int) and found < SCHEMA_VERSION


# -- statements ----------------------------------------------------------------------------------


class Row(Protocol):
    """A result row as either driver returns it (a tuple, an ``asyncpg.Record``): read by position."""

    def __getitem__(self, index: int, /) -> Any: ...


Values = dict[str, Any]
"""The named parameters of one call; a fresh dict each call, so an engine may add its own (``now``)."""


class Statement:
    """One SQL statement, written with named parameters (``:key``) and compiled to numbered ones (``$1``, ``?1``).

    A name used twice is one parameter. :meth:`args` picks the values a run
    needs, in order, from a mapping that may hold more.
    """

    __slots__ = ("names", "sql", "text")

    def __init__(self, text: str, marker: str) -> None:
        self.text = text  # as written, for building a larger statement around it
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"{marker}{names.index(name) + 1}"

        self.sql = _PARAMETER.sub(number, text)
        self.names = tuple(names)

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters of one run."""
        return tuple([values[name] for name in self.names])

    def __repr__(self) -> str:
        return f"Statement({self.sql!r})"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How an engine spells what the shared statements need.

    ``now`` is the time records expire by, ``clock`` the time leases expire by
    (PostgreSQL reads the clock at each statement for leases, at transaction
    start for records). Expressions may use the parameter ``:ttl`` (seconds).
    """

    marker: str
    """Prefix of a numbered parameter."""
    now: str
    clock: str
    value: str
    """The ``value`` column read as the exact stored bytes."""
    expiry: str
    """``expires_at`` of a record written now with ``:ttl`` (NULL when ``:ttl`` is NULL)."""
    lease_end: str
    """``expires_at`` of a lease taken or renewed now for ``:ttl``."""
    seconds_left: str
    """Seconds from ``now`` to a record's ``expires_at``."""
    lease_left: str
    """Seconds from ``clock`` to a lease's ``expires_at``."""
    new_version: str
    """The version of a newly inserted record (never one the key had before)."""
    upserted_version: str
    """The version of a record an upsert (alias ``s``) rewrites."""
    updated_version: str
    """The version of a record an ``UPDATE`` rewrites."""
    limit: str
    """A ``LIMIT`` from ``:limit`` (NULL: no limit)."""


class SQLStatements:
    """The statements every SQL engine runs, spelt in its :class:`Dialect`; engines add their own."""

    def __init__(self, n: TableNames, d: Dialect) -> None:
        self.names = n
        self.dialect = d
        live = f"(expires_at IS NULL OR expires_at > {d.now})"
        self.live = live
        stmt = self.statement
        self.version = stmt(f"SELECT value FROM {n.meta} WHERE name = '{SCHEMA_VERSION_NAME}'")
        # The last steps of creating the schema (every step is idempotent): record the version, or
        # raise an older one to it.
        self.stamp_version = (
            f"INSERT INTO {n.meta} (name, value) VALUES ('{SCHEMA_VERSION_NAME}', {SCHEMA_VERSION})"
            " ON CONFLICT (name) DO NOTHING"
        )
        self.upgrade_version = (
            f"UPDATE {n.meta} SET value = {SCHEMA_VERSION}"
            f" WHERE name = '{SCHEMA_VERSION_NAME}' AND value < {SCHEMA_VERSION}"
        )
        self.get = stmt(f"SELECT {d.value} FROM {n.sessions} WHERE key = :key AND {live}")
        upsert = (
            f"INSERT INTO {n.sessions} AS s (key, value, expires_at, version)"
            f" VALUES (:key, :data, {d.expiry}, {d.new_version})"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,"
            f" version = {d.upserted_version}"
        )
        self.set = stmt(upsert)
        self.set_returning = stmt(upsert + " RETURNING version")
        # expected=0: insert, or take over an expired row; a live row makes it return nothing.
        self.cas_create = stmt(upsert + f" WHERE s.expires_at <= {d.now} RETURNING version")
        self.cas_update = stmt(
            f"UPDATE {n.sessions} SET value = :data, expires_at = {d.expiry}, version = {d.updated_version}"
            f" WHERE key = :key AND version = :expected AND {live} RETURNING version"
        )
        self.delete = stmt(f"DELETE FROM {n.sessions} WHERE key = :key")
        self.get_versioned = stmt(f"SELECT {d.value}, version FROM {n.sessions} WHERE key = :key AND {live}")
        self.cas_delete = stmt(
            f"DELETE FROM {n.sessions} WHERE key = :key AND version = :expected AND {live} RETURNING 1"
        )
        self.version_of = stmt(f"SELECT version FROM {n.sessions} WHERE key = :key AND {live}")
        self.exists = stmt(f"SELECT 1 FROM {n.sessions} WHERE key = :key AND {live}")
        self.expires_in = stmt(f"SELECT {d.seconds_left} FROM {n.sessions} WHERE key = :key AND {live}")
        self.touch = stmt(f"UPDATE {n.sessions} SET expires_at = {d.expiry} WHERE key = :key AND {live} RETURNING 1")
        # One lower bound per statement, so the primary-key index seeks straight to it on every page.
        self.scan_first = stmt(
            f"SELECT key FROM {n.sessions} WHERE key >= :low AND key < :high AND {live} ORDER BY key LIMIT :size"
        )
        self.scan_next = stmt(
            f"SELECT key FROM {n.sessions} WHERE key > :after AND key < :high AND {live} ORDER BY key LIMIT :size"
        )
        self.purge_sessions = stmt(f"DELETE FROM {n.sessions} WHERE expires_at <= {d.now}")
        # Leases: one row per locked key, a random token and an expiry by the engine's clock.
        # Taken when free, expired, or already ours (a repeated attempt with the same token).
        self.lock_take = stmt(
            f"INSERT INTO {n.locks} AS l (key, token, expires_at) VALUES (:key, :token, {d.lease_end})"
            " ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at"
            f" WHERE l.expires_at <= {d.clock} OR l.token = excluded.token RETURNING 1"
        )
        self.lock_left = stmt(f"SELECT {d.lease_left} FROM {n.locks} WHERE key = :key")
        self.lock_renew = stmt(
            f"UPDATE {n.locks} SET expires_at = {d.lease_end}"
            f" WHERE key = :key AND token = :token AND expires_at > {d.clock} RETURNING 1"
        )
        # Our own row goes in any case (held, it is released; expired, it is stale); says if it was held.
        self.lock_release = stmt(
            f"DELETE FROM {n.locks} WHERE key = :key AND token = :token RETURNING expires_at > {d.clock} AS held"
        )
        self.lock_drop = stmt(f"DELETE FROM {n.locks} WHERE key = :key AND token = :token")
        self.purge_locks = stmt(f"DELETE FROM {n.locks} WHERE expires_at <= {d.clock}")
        self.purge_logs = stmt(f"DELETE FROM {n.logs} WHERE expires_at <= {d.now} RETURNING key")
        self.log_clear = stmt(f"DELETE FROM {n.log} WHERE key = :key")
        # By position, not by number: a pop leaves a gap in the numbers, never in the entries kept.
        self.log_trim = stmt(
            f"DELETE FROM {n.log} WHERE key = :key"
            f" AND seq <= (SELECT seq FROM {n.log} WHERE key = :key ORDER BY seq DESC LIMIT 1 OFFSET :keep)"
        )
        self.log_drop = stmt(f"DELETE FROM {n.logs} WHERE key = :key")
        self.log_read = stmt(
            f"SELECT seq, {d.value} FROM {n.log} WHERE key = :key AND seq > :lo AND seq < :hi"
            f" AND EXISTS (SELECT 1 FROM {n.logs} WHERE key = :key AND {live}) ORDER BY seq DESC LIMIT {d.limit}"
        )
        self.log_last_seq = stmt(f"SELECT last_seq FROM {n.logs} WHERE key = :key AND {live}")
        # Counted: numbers have gaps where a pop was followed by an append, and last_seq (never lowered)
        # is above the newest entry's number after a pop or a clear.
        self.log_length = stmt(
            f"SELECT (SELECT count(*) FROM {n.log} WHERE key = :key) FROM {n.logs} WHERE key = :key AND {live}"
        )
        # Run after the head was found live (and, on PostgreSQL, locked) in the same transaction.
        self.log_pop = stmt(
            f"DELETE FROM {n.log} WHERE key = :key AND seq = (SELECT max(seq) FROM {n.log} WHERE key = :key)"
            f" RETURNING seq, {d.value}"
        )

        # A rewrite in place: only a live log's entry still holding the expected bytes (or already the new ones).
        self.log_rewrite = stmt(
            f"UPDATE {n.log} SET value = :data WHERE key = :key AND seq = :seq"
            f" AND ({d.value} = :expected OR {d.value} = :data)"
            f" AND EXISTS (SELECT 1 FROM {n.logs} WHERE key = :key AND {live}) RETURNING 1"
        )
        self.log_holds = stmt(
            f"SELECT 1 FROM {n.log} WHERE key = :key AND seq = :seq"
            f" AND EXISTS (SELECT 1 FROM {n.logs} WHERE key = :key AND {live})"
        )

    def statement(self, text: str) -> Statement:
        """Compile ``text`` for this engine."""
        return Statement(text, self.dialect.marker)


# -- sorted indexes: statements ----------------------------------------------------------------


class IndexStatements:
    """The statements of sorted indexes (:class:`~sessionware.store.IndexStore`), one row per member.

    An index's expiry is the latest ``expires_at`` of its rows (``NULL``:
    never): a put gives its row the later of the row's old expiry and its
    own, a remove first hands the removed row's expiry to another row, and an
    index with no live row reads as empty (a put deletes its rows first).
    ``greatest`` is the engine's two-argument maximum.
    """

    def __init__(self, n: TableNames, d: Dialect, greatest: str) -> None:
        x = n.index

        def stmt(text: str) -> Statement:
            return Statement(text, d.marker)

        # Two probes of the (key, expires_at) index, whatever the index's size.
        self.live = live = (
            f"(EXISTS (SELECT 1 FROM {x} WHERE key = :key AND expires_at IS NULL)"
            f" OR EXISTS (SELECT 1 FROM {x} WHERE key = :key AND expires_at > {d.now}))"
        )
        self.drop_dead = stmt(f"DELETE FROM {x} WHERE key = :key AND NOT {live}")
        self.put = stmt(
            f"INSERT INTO {x} AS i (key, member, score, expires_at) VALUES (:key, :member, :score, {d.expiry})"
            " ON CONFLICT (key, member) DO UPDATE SET score = excluded.score,"
            " expires_at = CASE WHEN i.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL"
            f" ELSE {greatest}(i.expires_at, excluded.expires_at) END"
        )
        removed = f"(SELECT r.expires_at FROM {x} AS r WHERE r.key = :key AND r.member = :member)"
        self.carry = stmt(
            f"UPDATE {x} SET expires_at = CASE WHEN expires_at IS NULL OR {removed} IS NULL THEN NULL"
            f" ELSE {greatest}(expires_at, {removed}) END"
            f" WHERE key = :key AND member = (SELECT o.member FROM {x} AS o WHERE o.key = :key AND o.member <> :member"
            f" ORDER BY o.member LIMIT 1) AND EXISTS (SELECT 1 FROM {x} AS r WHERE r.key = :key AND r.member = :member)"
        )
        self.remove = stmt(f"DELETE FROM {x} WHERE key = :key AND member = :member")
        self.delete = stmt(f"DELETE FROM {x} WHERE key = :key")
        order = "ORDER BY score DESC, member DESC LIMIT :limit"
        self.page_first = stmt(f"SELECT member, score FROM {x} WHERE key = :key AND {live} {order}")
        self.page_next = stmt(
            f"SELECT member, score FROM {x} WHERE key = :key AND (score, member) < (:score, :member) AND {live} {order}"
        )
        self.purge = stmt(
            f"DELETE FROM {x} WHERE key IN (SELECT e.key FROM {x} AS e WHERE e.expires_at <= {d.now}"
            f" AND NOT EXISTS (SELECT 1 FROM {x} AS l WHERE l.key = e.key"
            f" AND (l.expires_at IS NULL OR l.expires_at > {d.now}))) RETURNING key"
        )


# -- log windows, key ranges and paged scans -----------------------------------------------------


def entries_from_newest(codec: Codec, key: str, rows: Sequence[Row]) -> list[LogEntry]:
    """Decode ``(seq, data)`` rows read newest first into entries oldest first."""
    decode = codec.decode
    return [LogEntry(int(row[0]), decode(key, bytes(row[1]))) for row in reversed(rows)]


def key_range(prefix: str) -> tuple[str, str] | None:
    """The half-open range ``[low, high)`` of keys starting with ``prefix``, in code-point order.

    ``None`` when no valid key can start with ``prefix``. Comparing within
    this range is exact under binary (``C``) collation, so the prefix is taken
    literally and the primary-key index serves the scan.
    """
    check_prefix(prefix)
    if len(prefix) > MAX_KEY_LENGTH or "\x00" in prefix:
        return None
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        return None
    head = prefix.rstrip("\U0010ffff")
    if not head:
        return prefix, _AFTER_ALL_KEYS
    code = ord(head[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return prefix, head[:-1] + chr(code)


PageFetcher = Callable[[str, str, str, int], Awaitable[list[str]]]
"""``fetch(low, high, after, n)``: up to ``n`` live keys with ``low <= key < high`` and ``key > after``, sorted."""


async def scan_pages(fetch: PageFetcher, prefix: str, limit: int | None) -> AsyncIterator[str]:
    """Yield the keys starting with ``prefix`` page by page, so no scan holds a whole table in memory."""
    bounds = key_range(prefix)
    remaining = check_limit(limit)
    if bounds is None:
        return
    low, high = bounds
    after = ""
    while remaining is None or remaining > 0:
        size = SCAN_PAGE if remaining is None else min(SCAN_PAGE, remaining)
        keys = await fetch(low, high, after, size)
        for key in keys:
            yield key
        if len(keys) < size:
            return
        after = keys[-1]
        if remaining is not None:
            remaining -= len(keys)


# -- the shared store ----------------------------------------------------------------------------

S = TypeVar("S", bound=SQLStatements)


class SQLSessionStore(BaseSessionStore, Generic[S]):
    """The logic of every call of the SQL backends; an engine subclass runs the statements.

    Which calls are safe to repeat after a lost connection is decided here
    (the ``safe`` flag handed to the engine); an engine that cannot lose a
    connection ignores it.
    """

    def __init__(
        self,
        *,
        table: str = DEFAULT_TABLE,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size, timeout=timeout)
        self.names = TableNames.for_table(table)
        self._sql = self._statements(self.names)
        self._index_sql = IndexStatements(self.names, self._sql.dialect, self._greatest)

    @property
    def table(self) -> str:
        """The base name of the store's tables."""
        return self.names.table

    @property
    def statements(self) -> S:
        """The statements the store runs, compiled for its engine (to inspect or ``EXPLAIN`` them)."""
        return self._sql

    def _schema_outdated(self, found: object) -> bool:
        """Whether the tables must be created or upgraded, given the version they record (``None``: no tables)."""
        return schema_outdated(self.backend, self.names.table, found)

    def _check_schema(self, found: object) -> None:
        """Refuse to go on with tables recording ``found``, if this release cannot use them."""
        check_schema_version(self.backend, self.names.table, found)

    # -- what an engine supplies -----------------------------------------------------------------

    @abstractmethod
    def _statements(self, names: TableNames) -> S:
        """Build the engine's statements for ``names``."""

    @abstractmethod
    async def _row(self, stmt: Statement, values: Values, *, safe: bool) -> Row | None:
        """Run one statement; its first row, or ``None``."""

    @abstractmethod
    async def _rows(self, stmt: Statement, values: Values, *, safe: bool) -> Sequence[Row]:
        """Run one statement; all its rows."""

    @abstractmethod
    async def _try_lock(self, key: str, token: str, ttl: float) -> Taken | float | None:
        """One try at the lease (safe to repeat with the same token); see :data:`~.._common.TryLock`."""

    @abstractmethod
    async def _fenced_write(self, key: str, token: str, data: bytes | None, ttl: float | None) -> int | None:
        """Release the lease and write (``None``: delete) if it was held, atomically; never repeated once sent."""

    @abstractmethod
    async def _append(self, key: str, batch: Batch, max_len: int | None) -> list[int]:
        """Append ``batch`` atomically and trim to ``max_len``; never repeated once sent."""

    @abstractmethod
    async def _append_fenced(
        self, key: str, batch: Batch, max_len: int | None, last: int, record: Values, index: IndexPut | None
    ) -> int | None:
        """Append, write ``record`` (``key``, ``data``, ``ttl``, ``expected``) and put ``index``, if both are as
        expected; atomically."""

    @abstractmethod
    async def _purge(self) -> int:
        """Delete expired leases, records and logs in one transaction; count the records and logs."""

    @abstractmethod
    async def _drop_log(self, key: str) -> None:
        """Delete a log's head and entries in one transaction."""

    @abstractmethod
    async def _pop(self, key: str) -> Row | None:
        """Delete the newest entry of a live log and return its ``(seq, data)`` row, in one transaction."""

    @abstractmethod
    async def _clear(self, key: str) -> int | None:
        """Delete every entry of a live log in one transaction; its ``last_seq``, or ``None`` if it is not live."""

    @abstractmethod
    async def _rewrite(self, key: str, rewrites: list[EncodedRewrite]) -> list[RewriteResult]:
        """Rewrite entries of a live log in place in one transaction (safe to repeat); one result each."""

    # -- records ---------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        row = await self._row(self._sql.get, {"key": key}, safe=True)
        return None if row is None else bytes(row[0])

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        # Repeating a plain upsert of the same bytes leaves the same record: safe to retry.
        await self._row(self._sql.set, {"key": key, "data": data, "ttl": bounded_ttl(ttl)}, safe=True)

    async def _delete(self, key: str) -> None:
        await self._row(self._sql.delete, {"key": key}, safe=True)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        row = await self._run("expires_in", self._row(self._sql.expires_in, {"key": check_key(key)}, safe=True))
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key`` (``None`` removes it); ``False`` if it is missing."""
        values = {"key": check_key(key), "ttl": store_ttl(ttl)}
        return await self._run("touch", self._row(self._sql.touch, values, safe=True)) is not None

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (taken literally), in key order, a page at a time."""
        async for key in scan_pages(self._scan_page, prefix, limit):
            yield key

    async def _scan_page(self, low: str, high: str, after: str, size: int) -> list[str]:
        # Pages after the first start past the last key seen, which is never below ``low``.
        stmt = self._sql.scan_next if after else self._sql.scan_first
        values = {"low": low, "high": high, "after": after, "size": size}
        return [row[0] for row in await self._run("scan", self._rows(stmt, values, safe=True))]

    async def purge_expired(self) -> int:
        """Delete expired sessions, logs, indexes and leases; return how many sessions, logs and indexes went."""
        return await self._run("purge_expired", self._purge_with_indexes())

    # -- append-only logs ------------------------------------------------------------------------

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` in one transaction and number them; return the numbers.

        Never repeated once sent: after a lost connection the entries may or
        may not be in the log, and :class:`~sessionware.errors.StoreUnavailableError` says so.
        """
        batch = log_batch(self.codec, self.max_size, key, entries, ttl, max_len)
        if batch is None:
            return []
        return await self._run("log_append", self._append(key, batch, max_len))

    async def log_append_fenced(
        self,
        key: str,
        entries: Sequence[JsonDict],
        *,
        last: int,
        record: str,
        expected: int,
        data: bytes,
        ttl: TTL = None,
        log_ttl: TTL = None,
        max_len: int | None = None,
        index: IndexPut | None = None,
    ) -> int | None:
        """Append to ``key`` and write ``record`` in one transaction if neither changed; the new version or ``None``.

        Never repeated once sent (like an append).
        """
        checked = fenced_batch(
            self.codec,
            self.max_size,
            key,
            entries,
            last=last,
            record=record,
            expected=expected,
            data=data,
            ttl=ttl,
            log_ttl=log_ttl,
            max_len=max_len,
            index=index,
        )
        values = {"key": record, "data": data, "ttl": checked.record_ttl, "expected": expected}
        fenced = self._append_fenced(key, checked.batch, max_len, last, values, checked.put)
        return await self._run("log_append_fenced", fenced)

    def _index_put_steps(self, put: IndexPut) -> list[tuple[Statement, Values]]:
        """The statements of an index put (after the index's advisory lock, on PostgreSQL)."""
        sql = self._index_sql
        values: Values = {"key": put.key, "member": put.member, "score": put.score, "ttl": put.ttl}
        return [(sql.drop_dead, values), (sql.put, dict(values))]

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """The entries numbered between ``after`` and ``before`` (both excluded), at most the ``last`` newest.

        One indexed query read backwards from the newest entry, so ``last=N``
        costs N rows whatever the log's length.
        """
        check_key(key)
        window = log_window(after, before, last)
        if window is None:
            return []
        lo, hi, limit = window
        values = {"key": key, "lo": lo, "hi": hi, "limit": limit}
        rows = await self._run("log_read", self._rows(self._sql.log_read, values, safe=True))
        return entries_from_newest(self.codec, key, rows)

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        return await self._count("log_length", self._sql.log_length, key)

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log (0 if it does not exist)."""
        return await self._count("log_last_seq", self._sql.log_last_seq, key)

    async def _count(self, op: str, stmt: Statement, key: str) -> int:
        row = await self._run(op, self._row(stmt, {"key": check_key(key)}, safe=True))
        return 0 if row is None or row[0] is None else int(row[0])

    async def log_delete(self, key: str) -> None:
        """Remove the whole log; nothing happens if it is missing."""
        await self._run("log_delete", self._drop_log(check_key(key)))

    async def log_pop(self, key: str) -> LogEntry | None:
        """Remove the newest entry and return it, in one transaction; ``None`` if the log holds none.

        The log's head keeps ``last_seq``, so the number is never assigned
        again. Never repeated once sent (like an append).
        """
        row = await self._run("log_pop", self._pop(check_key(key)))
        return None if row is None else LogEntry(int(row[0]), self.codec.decode(key, bytes(row[1])))

    async def log_clear(self, key: str) -> int:
        """Remove every entry in one transaction, keeping the head (numbering, expiry); return ``last_seq``."""
        last = await self._run("log_clear", self._clear(check_key(key)))
        return 0 if last is None else int(last)

    async def log_rewrite(self, key: str, rewrites: Sequence[LogRewrite]) -> list[RewriteResult]:
        """Rewrite entries in place in one transaction, each only if it still holds ``expected``; one result each.

        An ``UPDATE`` of the entry's row compares the stored bytes, so a
        concurrent change is never overwritten; the log's head (numbering,
        expiry) is not touched. Safe to repeat: an entry already holding the
        new value is reported rewritten.
        """
        encoded = encode_rewrites(self.codec, self.max_size, key, rewrites)
        if not encoded:
            return []
        return await self._run("log_rewrite", self._rewrite(key, encoded))

    # -- versions (compare-and-set) --------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version, or ``None``."""
        row = await self._run("get_versioned", self._row(self._sql.get_versioned, {"key": check_key(key)}, safe=True))
        return None if row is None else Versioned(bytes(row[0]), int(row[1]))

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected`` (0: must be missing; ``None``: any).

        One statement compares and writes, so no other writer comes between.
        :class:`~sessionware.errors.ConflictError`, with nothing written, if
        the version was another.
        """
        seconds = check_record(key, data, self.max_size, ttl)
        expected = check_expected(expected)
        sql = self._sql
        values = {"key": key, "data": data, "ttl": seconds, "expected": expected}
        if expected is None:
            row = await self._run("set_versioned", self._row(sql.set_returning, values, safe=True))
        else:
            stmt = sql.cas_create if expected == 0 else sql.cas_update
            row = await self._run("set_versioned", self._row(stmt, values, safe=False))
        if row is None:
            raise conflict(key, expected or 0)
        return int(row[0])

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``; else raise ``ConflictError``."""
        check_key(key)
        expected = check_expected(expected)
        if expected is None:
            await self._run("delete_versioned", self._delete(key))
        elif expected == 0:
            if await self._run("delete_versioned", self._row(self._sql.exists, {"key": key}, safe=True)) is not None:
                raise conflict(key, 0)
        else:
            values = {"key": key, "expected": expected}
            if await self._run("delete_versioned", self._row(self._sql.cas_delete, values, safe=False)) is None:
                raise conflict(key, expected)

    # -- leases ----------------------------------------------------------------------------------

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` and read the record under it; wait up to ``wait`` seconds for it.

        While another holder has the lease, waits with jittered exponential
        backoff (never past that holder's expiry), then raises
        :class:`~sessionware.errors.LockError` once ``wait`` has passed.
        """

        async def attempt(token: str, ttl: float) -> Taken | float | None:
            return await self._run("lock", self._try_lock(key, token, ttl))

        return await take_lease(key, lease, wait, attempt)

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``; raise ``LeaseExpiredError`` if it was lost."""
        return await renew_lease(lease, self._extend)

    async def _extend(self, lease: Lease) -> bool:
        values = {"key": lease.key, "token": lease.token, "ttl": lease.ttl}
        return await self._run("renew", self._row(self._sql.lock_renew, values, safe=True)) is not None

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Release the lease and write ``data`` (``None`` deletes) in one step, if the lease was still held.

        The new version comes back (0 after a delete). A lease that expired
        or was taken over writes nothing:
        :class:`~sessionware.errors.LeaseExpiredError`.
        """
        return await fenced_commit(lease, data, ttl, self.max_size, self._commit)

    async def _commit(self, lease: Lease, data: bytes | None, ttl: float | None) -> int | None:
        return await self._run("commit", self._fenced_write(lease.key, lease.token, data, ttl))

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing; one that expired or was taken over is left alone."""
        held = check_lease(lease)
        await self._run("unlock", self._row(self._sql.lock_drop, {"key": held.key, "token": held.token}, safe=True))

    # -- sorted indexes --------------------------------------------------------------------------

    _greatest: ClassVar[str] = "max"
    """The engine's maximum of two values (SQLite's ``max``, PostgreSQL's ``GREATEST``)."""

    @property
    def index_statements(self) -> IndexStatements:
        """The statements of sorted indexes, compiled for the engine (to inspect or ``EXPLAIN`` them)."""
        return self._index_sql

    @abstractmethod
    async def _index_steps(self, key: str, steps: Sequence[tuple[Statement, Values]]) -> None:
        """Run ``steps`` in one transaction that no other index write of ``key`` comes between; never repeated
        once sent."""

    async def index_put(self, key: str, member: str, score: float, *, ttl: TTL = None) -> None:
        """Drop the index's rows if it expired, then upsert the member's row, in one transaction."""
        key, member, score, seconds = check_put(key, member, score, ttl)
        sql = self._index_sql
        values: Values = {"key": key, "member": member, "score": score, "ttl": seconds}
        await self._run("index_put", self._index_steps(key, ((sql.drop_dead, values), (sql.put, dict(values)))))

    async def index_remove(self, key: str, member: str) -> None:
        """Hand the member's expiry to another row, then delete it, in one transaction."""
        values: Values = {"key": check_key(key), "member": check_member(member)}
        sql = self._index_sql
        await self._run("index_remove", self._index_steps(key, ((sql.carry, values), (sql.remove, dict(values)))))

    async def index_page(
        self, key: str, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[tuple[str, float]]:
        """One keyset query on the ``(key, score, member)`` index: ``limit`` rows read from the cursor down."""
        key, limit, cursor = check_page(key, limit, before)
        sql = self._index_sql
        values: Values = {"key": key, "limit": limit}
        if cursor is not None:
            values.update(score=cursor[0], member=cursor[1])
        stmt = sql.page_first if cursor is None else sql.page_next
        rows = await self._run("index_page", self._rows(stmt, values, safe=True))
        return [(str(row[0]), float(row[1])) for row in rows]

    async def index_delete(self, key: str) -> None:
        """Delete every row of the index."""
        await self._run("index_delete", self._row(self._index_sql.delete, {"key": check_key(key)}, safe=True))

    async def _purge_with_indexes(self) -> int:
        """The engine's purge, then expired indexes (one statement); how many records, logs and indexes went."""
        return await self._purge() + await self._purge_indexes()

    async def _purge_indexes(self) -> int:
        rows = await self._rows(self._index_sql.purge, {}, safe=True)
        return len({row[0] for row in rows})


__all__ = [
    "DEFAULT_TABLE",
    "SCAN_PAGE",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_NAME",
    "Dialect",
    "IndexStatements",
    "Row",
    "SQLSessionStore",
    "SQLStatements",
    "Statement",
    "TableNames",
    "Values",
    "check_schema_version",
    "check_table",
    "entries_from_newest",
    "key_range",
    "scan_pages",
    "schema_outdated",
]
