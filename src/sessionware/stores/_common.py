"""What every backend shares: argument checks, one backoff policy, the wait for a lease, log-entry encoding,
and the messages of the errors they raise.

Backends import from here and never from each other.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import NamedTuple, NoReturn

from ..codec import Codec, JsonDict
from ..errors import (
    ConflictError,
    InvalidKeyError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    StoreClosedError,
    ValueTooLargeError,
)
from ..keys import MAX_SECONDS, TTL, check_key, check_seconds, ttl_seconds
from ..store import IndexPut, Lease, Locked, LogRewrite, Versioned

MAX_TTL_SECONDS = MAX_SECONDS
"""About 317 years: far enough for "keep", near enough that every engine can store the timestamp."""

MAX_SEQ = 2**63 - 1
"""The largest sequence number a log bound may name."""

# -- retries after a lost connection -------------------------------------------------------------

DEFAULT_RETRIES = 3
"""How many times an operation that is safe to repeat is retried after a lost connection."""

RETRY_BACKOFF = 0.025
"""The first retry after a lost connection waits about this long; each further retry doubles it."""


def retry_backoff(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (from 0): jittered, exponential."""
    return RETRY_BACKOFF * 2.0**attempt * (0.5 + random.random() / 2)


DEFAULT_OPERATION_TIMEOUT = 30.0
"""Seconds a call of a networked store (PostgreSQL, Redis) may take, retries included, unless told otherwise."""


def check_timeout(timeout: object) -> float | None:
    """Validate a store's ``timeout`` option: positive seconds, or ``None`` for no limit."""
    return None if timeout is None else check_seconds("timeout", timeout)


def check_retries(retries: object) -> int:
    """Validate a store's ``retries`` option."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidValueError("retries", f"must be a non-negative int, not {retries!r}")
    return retries


# -- argument checks -----------------------------------------------------------------------------


def seconds_arg(name: str, value: object, *, zero: bool) -> float:
    """A finite, positive (``zero``: non-negative) number of seconds, else :class:`InvalidValueError`."""
    return check_seconds(name, value, zero=zero)


def store_ttl(ttl: TTL) -> float | None:
    """:func:`~sessionware.keys.ttl_seconds`, also refusing durations too long to store as a timestamp."""
    return bounded_ttl(ttl_seconds(ttl))


def bounded_ttl(seconds: float | None) -> float | None:
    """Refuse an already normalised TTL that is too long to store as a timestamp."""
    if seconds is not None and seconds > MAX_TTL_SECONDS:
        raise InvalidValueError("ttl", f"is {seconds:g} seconds, over the limit of {MAX_TTL_SECONDS:g}")
    return seconds


def check_size(data: bytes, max_size: int) -> bytes:
    """Refuse encoded data over the store's size limit."""
    if len(data) > max_size:
        raise ValueTooLargeError(len(data), max_size)
    return data


def check_record(key: str, data: object, max_size: int, ttl: TTL) -> float | None:
    """Validate a versioned or fenced write before anything is sent; return its TTL in seconds."""
    check_key(key)
    if not isinstance(data, bytes):
        raise InvalidValueError("data", f"must be bytes, not {type(data).__name__}")
    check_size(data, max_size)
    return store_ttl(ttl)


def check_expected(expected: object) -> int | None:
    """Validate the ``expected`` version of a compare-and-set: ``None`` or an int from 0."""
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 0):
        raise InvalidValueError("expected", f"must be None or a version (an int from 0), not {expected!r}")
    return expected


def check_limit(limit: object) -> int | None:
    """Validate the ``limit`` of a scan."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidValueError("limit", f"must be a non-negative int or None, not {limit!r}")
    return limit


def check_prefix(prefix: object) -> str:
    """Validate the ``prefix`` of a scan (taken literally, never as a pattern)."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"scan prefix must be a str, not {type(prefix).__name__}")
    return prefix


def check_bound(name: str, value: object, *, non_negative: bool = False) -> int | None:
    """Validate one bound of a log window (``after``, ``before``, ``last``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(name, f"must be an int or None, not {type(value).__name__}")
    if non_negative and value < 0:
        raise InvalidValueError(name, f"must not be negative, not {value}")
    return value


def check_window(after: object, before: object, last: object) -> tuple[int | None, int | None, int | None]:
    """Validate the bounds of ``log_read``."""
    return check_bound("after", after), check_bound("before", before), check_bound("last", last, non_negative=True)


def encode_log_entries(codec: Codec, max_size: int, entries: Sequence[JsonDict], max_len: int | None) -> list[bytes]:
    """Validate the arguments of ``log_append`` and encode every entry before anything is written."""
    if isinstance(entries, dict) or not isinstance(entries, Sequence):
        raise InvalidValueError("entries", "must be a sequence of dicts")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise InvalidValueError("max_len", f"must be a positive int, not {max_len!r}")
    return [check_size(codec.encode(entry), max_size) for entry in entries]


class Batch(NamedTuple):
    """A validated ``log_append``: the encoded entries and the log's new TTL in seconds (``None``: keep)."""

    encoded: list[bytes]
    ttl: float | None


def log_batch(
    codec: Codec, max_size: int, key: str, entries: Sequence[JsonDict], ttl: TTL, max_len: int | None
) -> Batch | None:
    """Check every argument of ``log_append`` and encode its entries; ``None`` when it has nothing to do."""
    check_key(key)
    encoded = encode_log_entries(codec, max_size, entries, max_len)
    seconds = store_ttl(ttl)
    if not encoded and seconds is None and max_len is None:
        return None
    return Batch(encoded, seconds)


class FencedBatch(NamedTuple):
    """A validated ``log_append_fenced``: the log's batch, the record's TTL in seconds, the index put."""

    batch: Batch
    record_ttl: float | None
    put: IndexPut | None


def fenced_batch(
    codec: Codec,
    max_size: int,
    key: str,
    entries: Sequence[JsonDict],
    *,
    last: object,
    record: str,
    expected: object,
    data: object,
    ttl: TTL,
    log_ttl: TTL,
    max_len: int | None,
    index: IndexPut | None = None,
) -> FencedBatch:
    """Check every argument of ``log_append_fenced`` and encode its entries before anything is sent."""
    check_key(key)
    record_ttl = check_record(record, data, max_size, ttl)
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise InvalidValueError("last", f"must be a sequence number (an int from 0), not {last!r:.60}")
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 1:
        raise InvalidValueError(
            "expected", f"must be the version of a stored record (an int from 1), not {expected!r:.60}"
        )
    encoded = encode_log_entries(codec, max_size, entries, max_len)
    if not encoded:
        raise InvalidValueError("entries", "must hold at least one entry")
    if index is not None:
        from ._index import check_put

        if not isinstance(index, IndexPut):
            raise InvalidValueError("index", f"must be an IndexPut or None, not {type(index).__name__}")
        index = IndexPut(*check_put(*index))
    return FencedBatch(Batch(encoded, store_ttl(log_ttl)), record_ttl, index)


def log_window(after: object, before: object, last: object) -> tuple[int, int, int | None] | None:
    """Turn ``log_read`` arguments into ``(lo, hi, limit)``: entries with ``lo < seq < hi``, the newest ``limit``.

    ``None`` means the window is empty and nothing need be read. ``limit`` is
    ``None`` for no limit; ``lo`` and ``hi`` are clamped to ``0..MAX_SEQ``.
    """
    low, high, newest = check_window(after, before, last)
    lo = 0 if low is None else min(max(low, 0), MAX_SEQ)
    hi = MAX_SEQ if high is None else min(max(high, 0), MAX_SEQ)
    if newest == 0 or hi - lo <= 1:
        return None
    return lo, hi, newest


class EncodedRewrite(NamedTuple):
    """A validated :class:`~sessionware.store.LogRewrite`: the number, the expected bytes and the new bytes."""

    seq: int
    expected: bytes
    value: bytes


def encode_rewrites(codec: Codec, max_size: int, key: str, rewrites: Sequence[LogRewrite]) -> list[EncodedRewrite]:
    """Check every argument of ``log_rewrite`` and encode both values of each rewrite before anything is written."""
    check_key(key)
    if not isinstance(rewrites, Sequence) or isinstance(rewrites, (str, bytes, dict)):
        raise InvalidValueError("rewrites", "must be a sequence of LogRewrite(seq, expected, value)")
    encoded: list[EncodedRewrite] = []
    seen: set[int] = set()
    for i, rewrite in enumerate(rewrites):
        if not isinstance(rewrite, tuple) or len(rewrite) != 3:
            raise InvalidValueError(f"rewrites[{i}]", "must be a LogRewrite(seq, expected, value)")
        seq, expected, value = rewrite
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
            raise InvalidValueError(f"rewrites[{i}].seq", f"must be a sequence number from 1 to {MAX_SEQ}, not {seq!r}")
        if seq in seen:
            raise InvalidValueError(f"rewrites[{i}].seq", f"entry {seq} is rewritten twice in one call")
        seen.add(seq)
        encoded.append(EncodedRewrite(seq, codec.encode(expected), check_size(codec.encode(value), max_size)))
    return encoded


# -- closing -------------------------------------------------------------------------------------


class Closed:
    """What an in-process store's containers become on ``close()``: every use raises ``StoreClosedError``.

    Swapping the containers costs the open store nothing per call, and no call can reach its data after.
    """

    __slots__ = ("_error",)

    def __init__(self, error: StoreClosedError) -> None:
        self._error = error

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise self._error

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        return self._refuse

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = __bool__ = _refuse


# -- versions ------------------------------------------------------------------------------------


def conflict(key: str, expected: int, found: object = None) -> ConflictError:
    """The error of a compare-and-set that found another version than ``expected`` (0: no record)."""
    if found is not None:
        return ConflictError(f"session {key!r} changed: expected version {expected}, found {found}")
    shown = "a record" if expected == 0 else "another version or no record"
    return ConflictError(f"session {key!r} changed: expected version {expected}, found {shown}")


def require_version(key: str, expected: object, current: int) -> None:
    """Compare on the client: raise :func:`conflict` unless ``expected`` is ``None`` or the ``current`` version."""
    wanted = check_expected(expected)
    if wanted is not None and current != wanted:
        raise conflict(key, wanted, current)


# -- leases --------------------------------------------------------------------------------------

LOCK_FIRST_BACKOFF = 0.001
"""A waiter for a held lease first sleeps about this long; each further wait doubles it."""

LOCK_MAX_BACKOFF = 0.02
"""The longest single sleep of a lease waiter, so a released lease is picked up soon."""


def new_token() -> str:
    """A random lease token (128 bits)."""
    return secrets.token_hex(16)


def check_lease(lease: object) -> Lease:
    """Validate a lease handed back to ``renew``, ``commit`` or ``unlock``."""
    if not isinstance(lease, Lease):
        raise InvalidValueError("lease", f"must be a Lease returned by lock(), not {type(lease).__name__}")
    check_key(lease.key)
    if not isinstance(lease.token, str) or not lease.token:
        raise InvalidValueError("lease", "has no token")
    if isinstance(lease.ttl, bool) or not isinstance(lease.ttl, (int, float)) or not 0 < lease.ttl < float("inf"):
        raise InvalidValueError("lease", f"has an invalid ttl {lease.ttl!r}")
    return lease


def lease_lost(key: str, *, renewing: bool = False) -> LeaseExpiredError:
    """The error of a renewal or a fenced write whose lease expired or was taken over."""
    if renewing:
        return LeaseExpiredError(f"the lease on session {key!r} expired before it was renewed")
    return LeaseExpiredError(
        f"the lease on session {key!r} is no longer held (it expired or was taken over); the write was refused"
    )


class Taken(NamedTuple):
    """One try at a lease took it; ``record`` is what was read under it."""

    record: Versioned | None


TryLock = Callable[[str, float], Awaitable["Taken | float | None"]]
"""``try_lock(token, ttl)``: :class:`Taken` if the lease is now held with ``token`` for ``ttl`` seconds, else the
seconds the holder's lease still runs (``None``: unknown). Trying again with the same token must be harmless."""


async def take_lease(
    key: str, lease: object, wait: object, try_lock: TryLock, *, clock: Callable[[], float] = time.monotonic
) -> Locked:
    """The whole of ``lock()``: check its arguments, then try with a fresh token until taken or ``wait`` runs out.

    The :class:`Lease` handed out is timed by ``clock`` from just before the
    try that took it, so it never outlives the store's own expiry.
    """
    check_key(key)
    seconds = seconds_arg("lease", lease, zero=False)
    patience = seconds_arg("wait", wait, zero=True)

    async def attempt() -> Locked | float | None:
        token = new_token()
        started = clock()
        got = await try_lock(token, seconds)
        if isinstance(got, Taken):
            return Locked(Lease(key, token, seconds, started, clock), got.record)
        return got

    return await wait_for_lease(key, patience, attempt, clock=clock)


async def renew_lease(lease: object, extend: Callable[[Lease], Awaitable[bool]]) -> Lease:
    """The whole of ``renew()``: ``extend(lease)`` says whether the store still held it and pushed its expiry."""
    held = check_lease(lease)
    started = held.clock()
    if not await extend(held):
        raise lease_lost(held.key, renewing=True)
    return replace(held, acquired_at=started)


FencedWrite = Callable[[Lease, "bytes | None", "float | None"], Awaitable["int | None"]]
"""``write(lease, data, ttl)``: release the lease and, if it was still held, write ``data`` (``None`` deletes) with
``ttl`` seconds (``None``: no expiry); return the new version (0 after a delete), or ``None`` if it was not held."""


async def fenced_commit(lease: object, data: bytes | None, ttl: TTL, max_size: int, write: FencedWrite) -> int:
    """The whole of ``commit()``: check the lease and the record, then ``write``; a lost lease raises."""
    held = check_lease(lease)
    seconds = None if data is None else check_record(held.key, data, max_size, ttl)
    version = await write(held, data, seconds)
    if version is None:
        raise lease_lost(held.key)
    return version


LockAttempt = Callable[[], Awaitable["Locked | float | None"]]
"""One try at a lease: the :class:`Locked` result, or the seconds the holder's lease still runs (``None``: unknown)."""


async def wait_for_lease(
    key: str, wait: float, attempt: LockAttempt, *, clock: Callable[[], float] = time.monotonic
) -> Locked:
    """Call ``attempt`` until it takes the lease, backing off without blocking; :class:`LockError` after ``wait``.

    Sleeps grow exponentially with jitter, never past the holder's expiry
    (when known) nor past the deadline; the last try is made at the deadline.
    """
    deadline = clock() + wait
    delay = LOCK_FIRST_BACKOFF
    while True:
        got = await attempt()
        if isinstance(got, Locked):
            return got
        now = clock()
        if now >= deadline:
            raise LockError(f"session {key!r} is locked by another holder; gave up after {wait}s")
        pause = delay * (0.5 + random.random())
        if got is not None:
            pause = min(pause, max(got, LOCK_FIRST_BACKOFF / 2))
        await asyncio.sleep(min(pause, deadline - now))
        delay = min(delay * 2, LOCK_MAX_BACKOFF)


__all__ = [
    "DEFAULT_RETRIES",
    "Batch",
    "Closed",
    "EncodedRewrite",
    "FencedWrite",
    "Taken",
    "TryLock",
    "LOCK_FIRST_BACKOFF",
    "LOCK_MAX_BACKOFF",
    "MAX_SEQ",
    "MAX_TTL_SECONDS",
    "RETRY_BACKOFF",
    "LockAttempt",
    "bounded_ttl",
    "check_bound",
    "check_expected",
    "check_lease",
    "check_limit",
    "check_prefix",
    "check_record",
    "check_retries",
    "check_size",
    "check_window",
    "conflict",
    "encode_log_entries",
    "encode_rewrites",
    "fenced_commit",
    "lease_lost",
    "log_batch",
    "log_window",
    "new_token",
    "renew_lease",
    "fenced_batch",
    "FencedBatch",
    "require_version",
    "retry_backoff",
    "seconds_arg",
    "store_ttl",
    "take_lease",
    "wait_for_lease",
]
