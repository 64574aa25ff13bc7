"""The store contract, its optional capabilities, and the base class of sessionware's own backends."""

from __future__ import annotations

import contextlib
import enum
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Protocol, TypeVar, runtime_checkable

from ._deadline import within
from .codec import DEFAULT_CODEC, Codec, JsonDict
from .errors import (
    SessionwareError,
    StoreClosedError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    ValueTooLargeError,
)
from .keys import TTL, check_key, ttl_seconds

T = TypeVar("T")

DEFAULT_MAX_SIZE = 1024 * 1024


@runtime_checkable
class SessionStore(Protocol):
    """What a session store must do (the seed's ``ISessionStore``): a miss is ``None``, deleting a missing
    key is a no-op.

    ``set`` may also take a keyword ``ttl`` (seconds or a ``timedelta``); every
    sessionware backend does. A store whose ``set`` takes only ``(key, value)``
    works wherever no expiry is asked of it.
    """

    async def get(self, key: str) -> JsonDict | None:
        """Return the session stored under ``key``, or ``None``."""
        ...

    async def set(self, key: str, value: JsonDict) -> None:
        """Store ``value`` under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if it is missing."""
        ...


@runtime_checkable
class RawStore(Protocol):
    """A store that hands out the stored bytes, so a caller can skip decoding and re-encoding."""

    codec: Codec

    async def get_raw(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None``."""
        ...

    async def set_raw(self, key: str, data: bytes, *, ttl: TTL = None) -> None:
        """Store already encoded ``data`` under ``key``."""
        ...


@runtime_checkable
class ExpiringStore(Protocol):
    """A store whose records expire: ``set`` takes a ``ttl``, and a key's expiry can be read and extended."""

    async def set(self, key: str, value: JsonDict, *, ttl: TTL = None) -> None:
        """Store ``value`` under ``key``, expiring after ``ttl`` (seconds or a ``timedelta``) if given."""
        ...

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        ...

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        ...


@runtime_checkable
class ScannableStore(Protocol):
    """A store that can list its keys."""

    def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (taken literally, never as a pattern)."""
        ...


@runtime_checkable
class PurgeableStore(Protocol):
    """A store whose expired records stay until purged (SQL backends)."""

    async def purge_expired(self) -> int:
        """Delete expired records and return how many were removed."""
        ...


@runtime_checkable
class ClosableStore(Protocol):
    """A store holding connections or files to release."""

    async def close(self) -> None:
        """Release the store's resources."""
        ...


class LogEntry(NamedTuple):
    """One record of an append-only log: its store-assigned sequence number and its value."""

    seq: int
    value: JsonDict


@runtime_checkable
class LogStore(Protocol):
    """Append-only logs, one per key, with sequence numbers assigned by the store.

    Sequence numbers start at 1 and are gap-free and strictly increasing per
    log, also under concurrent appends from several tasks or processes. Trimming
    to ``max_len`` drops the oldest entries but never reuses a number (nor does
    a pop of :class:`LogEditStore`, which leaves a gap where it took entries). A log's
    keyspace is separate from the session records': ``log_delete(k)`` never
    touches ``get(k)``.
    """

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically; return their sequence numbers.

        ``ttl`` (re)sets the log's expiry (sliding); ``None`` leaves it as it
        is. Appending no entries with a ``ttl`` only resets the expiry of an
        existing log. ``max_len`` trims the log to its newest ``max_len`` entries.
        """
        ...

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N of them."""
        ...

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        ...

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log (0 if it does not exist)."""
        ...

    async def log_delete(self, key: str) -> None:
        """Remove the whole log; nothing happens if it is missing."""
        ...


@runtime_checkable
class LogEditStore(Protocol):
    """Logs whose newest entry can be taken back and whose entries can all be removed.

    Neither ever lets a sequence number come back: after a pop or a clear,
    ``log_last_seq`` still answers the highest number ever assigned and the
    next append continues after it, so a reader's cursor (``after=seq``) never
    meets a new entry under an old number.
    """

    async def log_pop(self, key: str) -> LogEntry | None:
        """Remove the newest entry and return it, atomically; ``None`` if the log holds none.

        Concurrent pops never return the same entry.
        """
        ...

    async def log_clear(self, key: str) -> int:
        """Remove every entry, keeping the numbering and the log's expiry; return ``log_last_seq``.

        A log that does not exist is left so (and 0 returned).
        """
        ...


class RewriteResult(enum.Enum):
    """What :meth:`LogRewriteStore.log_rewrite` did with one entry."""

    APPLIED = "applied"
    """The entry held the expected value (or already the new one) and now holds the new one."""
    CHANGED = "changed"
    """The entry holds another value (changed since it was read): left as it is."""
    MISSING = "missing"
    """No such entry: the log is missing or expired, or the number was never assigned, trimmed, popped or
    cleared."""


class LogRewrite(NamedTuple):
    """One entry to rewrite in place: its number, the value it must still hold, and the value to put there."""

    seq: int
    expected: JsonDict
    value: JsonDict


@runtime_checkable
class LogRewriteStore(Protocol):
    """Logs whose entries can be rewritten in place, each only if it still holds what was read.

    Made for re-encrypting logs (:func:`~sessionware.encryption.rotate_keys`):
    an entry keeps its number and position, the log its length, numbering and
    expiry, and an entry changed or removed meanwhile is never overwritten.
    """

    async def log_rewrite(self, key: str, rewrites: Sequence[LogRewrite]) -> list[RewriteResult]:
        """Rewrite the entries numbered ``rewrite.seq`` atomically; one result per rewrite, in order.

        An entry is rewritten only if its stored bytes are the store codec's
        encoding of ``expected`` (or already of ``value``, so a repeated call
        reports the same); otherwise it is left alone (``CHANGED``), and a
        number the log does not hold is ``MISSING``. Nothing else changes.
        Bad arguments (a number below 1, one given twice, a value over the
        size limit) raise before anything is written.
        """
        ...


class IndexPut(NamedTuple):
    """An :meth:`IndexStore.index_put` to make along with another write."""

    key: str
    member: str
    score: float
    ttl: float | None = None


@runtime_checkable
class FencedAppendStore(Protocol):
    """A log append and a record write in one atomic step, fenced by both: the per-message write of an agent session.

    The manager keeps the record it wrote last; when neither the record nor
    the log changed since, one round trip appends the new entries and writes
    the record that counts them. Anything else writes nothing, and the caller
    goes the long way (read, append, write).
    """

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
        """Append ``entries`` to log ``key`` and write ``data`` to ``record``, if both are as the caller saw them.

        Applied only if the record's version is ``expected`` and the log's
        highest number (``log_last_seq``) is ``last``: the entries then get
        ``last + 1``, ``last + 2``, ... and the record a new version, which
        is returned. Otherwise nothing is written and ``None`` returned.
        ``ttl`` is the record's expiry, ``log_ttl`` (re)sets the log's,
        ``max_len`` trims the log as :meth:`LogStore.log_append` does;
        ``index`` is an :meth:`IndexStore.index_put` made with the write (in
        the same atomic step where the backend can keep the index beside
        the record, right after it otherwise). Bad arguments raise before
        anything is sent.
        """
        ...


class Versioned(NamedTuple):
    """A stored record with its version: an int that changes on every write of the record."""

    data: bytes
    version: int


@runtime_checkable
class VersionedStore(Protocol):
    """Compare-and-set on records.

    Every write of a record (``set`` too) gives it a new version; a missing
    record has version 0. A version is only ever compared for equality.
    """

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version, or ``None``."""
        ...

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected`` (0: must be missing; ``None``: any).

        Return the new version; raise :class:`~sessionware.errors.ConflictError`
        and write nothing if someone wrote in between.
        """
        ...

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``; else raise ``ConflictError``."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock on one key: a random token, valid for ``ttl`` seconds from ``acquired_at``.

    ``acquired_at`` is a reading of ``clock`` (default :func:`time.monotonic`),
    the clock of the store that granted the lease.
    """

    key: str
    token: str
    ttl: float
    acquired_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @property
    def remaining(self) -> float:
        """Seconds of the lease left by the store's clock in this process (the store's expiry is authoritative)."""
        return self.ttl - (self.clock() - self.acquired_at)


class Locked(NamedTuple):
    """What :meth:`LockingStore.lock` returns: the lease and the record read under it."""

    lease: Lease
    record: Versioned | None


@runtime_checkable
class LockingStore(Protocol):
    """Leases on keys that hold across processes, with fenced writes.

    A lease is taken and the record read in one step where the backend can;
    :meth:`commit` writes and releases in one step and refuses (with
    :class:`~sessionware.errors.LeaseExpiredError`, writing nothing) if the
    lease expired in the meantime. Only the holder's token can release or
    renew a lease. A holder that dies loses its lease when it expires.
    """

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` within ``wait`` seconds (else ``LockError``) and read the record."""
        ...

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``; raise ``LeaseExpiredError`` if it was lost."""
        ...

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release, if the lease is still held; return the new version."""
        ...

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing; a lease that already expired or was taken over is left alone."""
        ...


@runtime_checkable
class PinningStore(Protocol):
    """A store that can hold one connection for a stretch of calls, e.g. the load and the save of one update.

    Inside ``async with store.pinned():`` every call this task makes on the
    store runs on one connection, checked out once and released on exit.
    Nested pins reuse the outer connection, and so do tasks started inside
    the block (a lease renewal, say), one call at a time, until it ends. A
    pinned connection that fails is dropped, and the call is retried on a
    fresh one only where the store would retry it anyway.
    """

    def pinned(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one connection for this task's calls until the block ends."""
        ...


# -- sorted indexes --------------------------------------------------------------------------------


@runtime_checkable
class IndexStore(Protocol):
    """Sorted indexes, one per key: members (str) by a float score, read highest score first.

    An index's keyspace is separate from the records' and the logs':
    ``index_delete(k)`` never touches ``get(k)`` or a log of ``k``. Members
    of equal score come in descending member order (by code point, as Redis
    and binary SQL collation order them). An index stays at least until the
    latest expiry any put asked for; a put without a ``ttl`` makes it never
    expire. An expired index reads as empty; removing its last member removes
    the index (a later put starts a new one). Bad arguments raise
    :class:`~sessionware.errors.InvalidKeyError` or
    :class:`~sessionware.errors.InvalidValueError` before anything is written.
    """

    async def index_put(self, key: str, member: str, score: float, *, ttl: TTL = None) -> None:
        """Add ``member`` at ``score``, or move it there; ``ttl`` extends the index's life, ``None`` makes it
        permanent."""
        ...

    async def index_remove(self, key: str, member: str) -> None:
        """Remove ``member``; nothing happens if it is missing."""
        ...

    async def index_page(
        self, key: str, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[tuple[str, float]]:
        """At most ``limit`` ``(member, score)`` pairs, highest score first (ties: member descending).

        ``before=(score, member)`` (the last pair of the previous page, as
        ``(score, member)``) starts strictly after that position; the cost
        grows with ``limit``, not with the index.
        """
        ...

    async def index_delete(self, key: str) -> None:
        """Remove the whole index; nothing happens if it is missing."""
        ...


class BaseSessionStore(ABC):
    """Shared machinery of sessionware's backends: keys, codec, size limit, timeouts, errors.

    A backend implements ``_get``, ``_set`` and ``_delete`` on bytes and lists
    its driver's exceptions in ``_unavailable_errors`` (connection trouble) and
    ``_driver_errors`` (anything else the driver raises); the base class wraps
    them in :class:`StoreUnavailableError` and :class:`StoreError`.
    """

    backend: ClassVar[str] = "store"
    overlapping_calls: ClassVar[bool] = False
    """Whether calls made at once overlap (a network store) rather than run one after another in this process."""
    _unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    _driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self,
        *,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
    ) -> None:
        self.codec: Codec = codec or DEFAULT_CODEC
        self.max_size = max_size
        self.timeout = timeout
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed store raises :class:`StoreClosedError` on every call."""
        return self._closed

    def _closed_error(self, op: str) -> StoreClosedError:
        return StoreClosedError(f"{self.backend} {op} refused: the store was closed")

    async def get(self, key: str) -> JsonDict | None:
        """Return the session stored under ``key``, or ``None``."""
        data = await self.get_raw(key)
        return None if data is None else self.codec.decode(key, data)

    async def set(self, key: str, value: JsonDict, *, ttl: TTL = None) -> None:
        """Store ``value`` under ``key``; invalid or oversized values are refused before any write."""
        check_key(key)
        await self.set_raw(key, self.codec.encode(value), ttl=ttl)

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if it is missing."""
        await self._run("delete", self._delete(check_key(key)))

    async def get_raw(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None``."""
        return await self._run("get", self._get(check_key(key)))

    async def set_raw(self, key: str, data: bytes, *, ttl: TTL = None) -> None:
        """Store already encoded ``data`` under ``key``."""
        check_key(key)
        if len(data) > self.max_size:
            raise ValueTooLargeError(len(data), self.max_size)
        await self._run("set", self._set(key, data, ttl_seconds(ttl)))

    async def close(self) -> None:
        """Release the store's resources; every later call raises :class:`StoreClosedError`."""
        self._closed = True

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abstractmethod
    async def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _set(self, key: str, data: bytes, ttl: float | None) -> None: ...

    @abstractmethod
    async def _delete(self, key: str) -> None: ...

    async def _run(self, op: str, aw: Awaitable[T]) -> T:
        """Await a driver call under the store's timeout, translating driver errors."""
        if self._closed:
            if isinstance(aw, Coroutine):
                aw.close()
            raise self._closed_error(op)
        try:
            if self.timeout is None:
                return await aw
            return await within(self.timeout, aw)
        except SessionwareError:
            raise
        except TimeoutError as exc:
            raise StoreTimeoutError(f"{self.backend} {op} timed out after {self.timeout}s") from exc
        except self._unavailable_errors as exc:
            raise StoreUnavailableError(f"{self.backend} {op} failed: {exc}") from exc
        except self._driver_errors as exc:
            raise StoreError(f"{self.backend} {op} failed: {exc}") from exc

    def _wrap(self, op: str, exc: BaseException) -> StoreError:
        """Translate a driver exception raised outside :meth:`_run` (e.g. while scanning)."""
        if isinstance(exc, self._unavailable_errors):
            return StoreUnavailableError(f"{self.backend} {op} failed: {exc}")
        return StoreError(f"{self.backend} {op} failed: {exc}")


def accepts_ttl(store: object) -> bool:
    """Whether ``store.set`` takes a ``ttl`` keyword (stores written to the bare contract may not)."""
    import inspect

    try:
        params = inspect.signature(store.set).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return True
    return "ttl" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


__all__ = [
    "DEFAULT_MAX_SIZE",
    "BaseSessionStore",
    "ClosableStore",
    "ExpiringStore",
    "FencedAppendStore",
    "IndexPut",
    "IndexStore",
    "Lease",
    "Locked",
    "LockingStore",
    "LogEditStore",
    "LogEntry",
    "LogRewrite",
    "LogRewriteStore",
    "LogStore",
    "PinningStore",
    "PurgeableStore",
    "RawStore",
    "RewriteResult",
    "ScannableStore",
    "SessionStore",
    "Versioned",
    "VersionedStore",
    "accepts_ttl",
]
