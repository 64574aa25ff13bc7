"""What the SQL backends share: table names, the schema version, log windows, key ranges, entry encoding,
argument checks for versions and leases, and the loop that waits for a lease."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..codec import Codec, JsonDict
from ..errors import (
    ConflictError,
    InvalidKeyError,
    InvalidValueError,
    LockError,
    SchemaVersionError,
    ValueTooLargeError,
)
from ..keys import MAX_KEY_LENGTH, TTL, check_key, ttl_seconds
from ..store import Locked, LogEntry, check_log_args

DEFAULT_TABLE = "sessionware_sessions"

SCHEMA_VERSION = 2
"""The schema this release writes; a table recording a newer one is refused.

1: sessions, logs and meta tables. 2: adds the ``{table}_locks`` table of
leases (opening a version-1 table creates it and records version 2).
"""

SCHEMA_VERSION_NAME = "schema_version"

MAX_TABLE_LENGTH = 50
"""PostgreSQL identifiers stop at 63 bytes; the longest derived name adds ``_logs_exp_idx``."""

MAX_SEQ = 2**63 - 1

MAX_TTL_SECONDS = 1e10
"""About 317 years: far enough for "keep", near enough that every engine can store the timestamp."""

SCAN_PAGE = 500

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Greater than every valid key: keys have at most MAX_KEY_LENGTH code points, none above U+10FFFF.
_AFTER_ALL_KEYS = "\U0010ffff" * (MAX_KEY_LENGTH + 1)


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


def sql_ttl(ttl: TTL) -> float | None:
    """:func:`ttl_seconds`, also refusing durations too long to store as a timestamp."""
    return bounded_ttl(ttl_seconds(ttl))


def bounded_ttl(seconds: float | None) -> float | None:
    """Refuse an already normalised TTL that is too long to store as a timestamp."""
    if seconds is not None and seconds > MAX_TTL_SECONDS:
        raise InvalidValueError("ttl", f"is {seconds:g} seconds, over the limit of {MAX_TTL_SECONDS:g}")
    return seconds


def encode_log_entries(codec: Codec, max_size: int, entries: Sequence[JsonDict], max_len: int | None) -> list[bytes]:
    """Validate the arguments of ``log_append`` and encode every entry before anything is written."""
    check_log_args(entries, max_len)
    encoded = [codec.encode(entry) for entry in entries]
    for data in encoded:
        if len(data) > max_size:
            raise ValueTooLargeError(len(data), max_size)
    return encoded


def log_window(after: int | None, before: int | None, last: int | None) -> tuple[int, int, int | None] | None:
    """Turn ``log_read`` arguments into ``(lo, hi, limit)`` for ``lo < seq < hi``, newest first.

    ``None`` means the window is empty and no query is needed. ``limit`` is
    ``None`` for no limit.
    """
    for name, value in (("after", after), ("before", before), ("last", last)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidValueError(name, f"must be an int or None, not {type(value).__name__}")
    if last is not None and last < 0:
        raise InvalidValueError("last", f"must not be negative, not {last}")
    lo = 0 if after is None else min(max(after, 0), MAX_SEQ)
    hi = MAX_SEQ if before is None else min(max(before, 0), MAX_SEQ)
    if last == 0 or hi - lo <= 1:
        return None
    return lo, hi, last


def entries_from_newest(codec: Codec, key: str, rows: Sequence[tuple[int, bytes]]) -> list[LogEntry]:
    """Decode rows read newest first into entries oldest first."""
    decode = codec.decode
    return [LogEntry(seq, decode(key, bytes(data))) for seq, data in reversed(rows)]


def key_range(prefix: object) -> tuple[str, str] | None:
    """The half-open range ``[low, high)`` of keys starting with ``prefix``, in code-point order.

    ``None`` when no valid key can start with ``prefix``. Comparing within
    this range is exact under binary (``C``) collation, so the prefix is taken
    literally and the primary-key index serves the scan.
    """
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"scan prefix must be a str, not {type(prefix).__name__}")
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


def check_limit(limit: object) -> int | None:
    """Validate the ``limit`` of a scan."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidValueError("limit", f"must be a non-negative int or None, not {limit!r}")
    return limit


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


# -- versions and leases -------------------------------------------------------------------------

LOCK_FIRST_BACKOFF = 0.001
"""A waiter for a held lease first sleeps about this long; each further wait doubles it."""

LOCK_MAX_BACKOFF = 0.02
"""The longest single sleep of a lease waiter, so a released lease is picked up soon."""

RETRY_BACKOFF = 0.025
"""The first retry after a lost connection waits about this long; each further retry doubles it."""

DEFAULT_RETRIES = 3
"""How many times an operation that is safe to repeat is retried after a lost connection."""


def retry_backoff(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (from 0): jittered, exponential."""
    return RETRY_BACKOFF * 2.0**attempt * (0.5 + random.random() / 2)


def check_retries(retries: object) -> int:
    """Validate a store's ``retries`` option."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidValueError("retries", f"must be a non-negative int, not {retries!r}")
    return retries


def check_record(key: str, data: object, max_size: int, ttl: TTL) -> float | None:
    """Validate a versioned or fenced write before anything is sent; return its TTL in seconds."""
    check_key(key)
    if not isinstance(data, bytes):
        raise InvalidValueError("data", f"must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise ValueTooLargeError(len(data), max_size)
    return sql_ttl(ttl)


def check_expected(expected: object) -> int | None:
    """Validate the ``expected`` version of a compare-and-set: ``None`` or an int from 0."""
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 0):
        raise InvalidValueError("expected", f"must be None or a version (an int from 0), not {expected!r}")
    return expected


def conflict(key: str, expected: int) -> ConflictError:
    """The error of a compare-and-set that found another version than ``expected``."""
    found = "a record" if expected == 0 else "another version or no record"
    return ConflictError(f"session {key!r} changed: expected version {expected}, found {found}")


def seconds_arg(name: str, value: object, *, zero: bool) -> float:
    """A finite, positive (``zero``: non-negative) number of seconds, else :class:`InvalidValueError`."""
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        seconds = float(value)
        if math.isfinite(seconds) and (seconds > 0 or (zero and seconds == 0)) and seconds <= MAX_TTL_SECONDS:
            return seconds
    kind = "non-negative" if zero else "positive"
    raise InvalidValueError(name, f"must be a {kind} number of seconds up to {MAX_TTL_SECONDS:g}, not {value!r}")


LockAttempt = Callable[[], Awaitable["Locked | float | None"]]
"""One try at a lease: the :class:`Locked` result, or the seconds the holder's lease still runs (``None``: unknown)."""


async def wait_for_lease(key: str, wait: float, attempt: LockAttempt) -> Locked:
    """Call ``attempt`` until it takes the lease, backing off without blocking; :class:`LockError` after ``wait``.

    Sleeps grow exponentially with jitter, never past the holder's expiry
    (when known) nor past the deadline; the last try is made at the deadline.
    """
    deadline = time.monotonic() + wait
    delay = LOCK_FIRST_BACKOFF
    while True:
        got = await attempt()
        if isinstance(got, Locked):
            return got
        now = time.monotonic()
        if now >= deadline:
            raise LockError(f"session {key!r} is locked by another holder; gave up after {wait}s")
        pause = delay * (0.5 + random.random())
        if got is not None:
            pause = min(pause, max(got, LOCK_FIRST_BACKOFF / 2))
        await asyncio.sleep(min(pause, deadline - now))
        delay = min(delay * 2, LOCK_MAX_BACKOFF)
