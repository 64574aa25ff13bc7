"""What the SQL backends share: table names, the schema version, log windows, key ranges and paged scans."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ...codec import Codec
from ...errors import InvalidValueError, SchemaVersionError
from ...keys import MAX_KEY_LENGTH
from ...store import LogEntry
from .._common import MAX_SEQ, check_limit, check_prefix, check_window

DEFAULT_TABLE = "sessionware_sessions"

SCHEMA_VERSION = 2
"""The schema this release writes; a table recording a newer one is refused.

1: sessions, logs and meta tables. 2: adds the ``{table}_locks`` table of
leases (opening a version-1 table creates it and records version 2).
"""

SCHEMA_VERSION_NAME = "schema_version"

MAX_TABLE_LENGTH = 50
"""PostgreSQL identifiers stop at 63 bytes; the longest derived name adds ``_logs_exp_idx``."""


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


def log_window(after: int | None, before: int | None, last: int | None) -> tuple[int, int, int | None] | None:
    """Turn ``log_read`` arguments into ``(lo, hi, limit)`` for ``lo < seq < hi``, newest first.

    ``None`` means the window is empty and no query is needed. ``limit`` is
    ``None`` for no limit.
    """
    after, before, last = check_window(after, before, last)
    lo = 0 if after is None else min(max(after, 0), MAX_SEQ)
    hi = MAX_SEQ if before is None else min(max(before, 0), MAX_SEQ)
    if last == 0 or hi - lo <= 1:
        return None
    return lo, hi, last


def entries_from_newest(codec: Codec, key: str, rows: Sequence[tuple[int, bytes]]) -> list[LogEntry]:
    """Decode rows read newest first into entries oldest first."""
    decode = codec.decode
    return [LogEntry(seq, decode(key, bytes(data))) for seq, data in reversed(rows)]


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
