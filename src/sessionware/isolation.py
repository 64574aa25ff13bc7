"""Isolation strategies: how updates of one key are kept apart while its session is loaded, changed and saved.

A strategy's :meth:`Isolation.hold` returns a :class:`Held`: an async context
manager that takes the lock *before* it loads the record (so the record read
is the newest one) and writes back through the same hold (so a write can be
fenced by it). Three strategies:

- :class:`NoIsolation` (``"none"``): no lock; the racy behaviour of most frameworks.
- :class:`LocalIsolation` (``"local"``): one FIFO lock per key in this process,
  shared by everything that updates the same store here.
- :class:`DistributedIsolation` (``"distributed"``): the local lock, then a store
  lease across processes (taken and read in one step where the backend can),
  renewed every third of its length while held; writes are fenced commits,
  refused with :class:`~sessionware.errors.LeaseExpiredError` if the lease was lost.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar, Literal, Protocol

from .codec import DEFAULT_CODEC, Codec
from .errors import InvalidValueError, LeaseExpiredError, SessionwareError
from .locks import KeyedLock
from .store import ExpiringStore, Lease, LockingStore, RawStore, SessionStore, accepts_ttl

log = logging.getLogger("sessionware")

DEFAULT_LEASE = 30.0
DEFAULT_LOCK_WAIT = 30.0

IsolationName = Literal["none", "local", "distributed"]


class StoreIO:
    """A store's records as bytes, whether or not the store has bytes access (:class:`RawStore`).

    Stores written to the bare seed contract get and set dicts; their values
    go through the codec here, so what a caller changes is never the store's
    own object and what is compared is always an encoding.
    """

    __slots__ = ("codec", "expiring", "raw", "store", "takes_ttl")

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.raw = isinstance(store, RawStore)
        self.codec: Codec = store.codec if isinstance(store, RawStore) else DEFAULT_CODEC
        self.takes_ttl = accepts_ttl(store)
        self.expiring = isinstance(store, ExpiringStore)

    async def load(self, key: str) -> bytes | None:
        """The stored bytes of ``key``, or ``None``."""
        if self.raw:
            return await self.store.get_raw(key)  # type: ignore[attr-defined, no-any-return]
        value = await self.store.get(key)
        return None if value is None else self.codec.encode(value)

    async def write(self, key: str, data: bytes, ttl: float | None) -> None:
        """Store encoded ``data`` under ``key``, expiring after ``ttl`` seconds if given."""
        if self.raw:
            await self.store.set_raw(key, data, ttl=ttl)  # type: ignore[attr-defined]
        elif ttl is None:
            await self.store.set(key, self.codec.decode(key, data))
        else:
            await self.store.set(key, self.codec.decode(key, data), ttl=ttl)  # type: ignore[call-arg]

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        await self.store.delete(key)

    async def touch(self, key: str, ttl: float) -> None:
        """Extend the expiry of ``key`` if the store can."""
        if self.expiring:
            await self.store.touch(key, ttl)  # type: ignore[attr-defined]

    async def put_aside(self, key: str, data: bytes) -> None:
        """Store ``data`` unchanged under another key (quarantining an undecodable record; bytes access only)."""
        await self.store.set_raw(key, data)  # type: ignore[attr-defined]


class Held:
    """One key held while its session is updated: the record read under the hold and how to write it back.

    ``async with isolation.hold(key) as held:`` takes the lock, then reads
    ``held.stored``; :meth:`write`, :meth:`delete` and :meth:`touch` go through
    the hold. This base class holds nothing (:class:`NoIsolation`).
    """

    __slots__ = ("_load", "io", "key", "stored")

    def __init__(self, io: StoreIO, key: str, load: bool) -> None:
        self.io = io
        self._load = load
        self.key = key
        self.stored: bytes | None = None

    async def __aenter__(self) -> Held:
        if self._load:
            self.stored = await self.io.load(self.key)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def write(self, data: bytes, ttl: float | None) -> None:
        """Store ``data`` as the key's record."""
        await self.io.write(self.key, data, ttl)

    async def delete(self) -> None:
        """Remove the key's record."""
        await self.io.delete(self.key)

    async def touch(self, ttl: float) -> None:
        """Extend the record's expiry without writing it."""
        await self.io.touch(self.key, ttl)


class _LocalHeld(Held):
    __slots__ = ("_lock",)

    def __init__(self, io: StoreIO, key: str, load: bool, locks: KeyedLock) -> None:
        super().__init__(io, key, load)
        self._lock = locks.hold(key)

    async def __aenter__(self) -> Held:
        await self._lock.__aenter__()
        try:
            if self._load:
                self.stored = await self.io.load(self.key)
        except BaseException:
            await self._lock.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._lock.__aexit__(exc_type, exc, tb)


class _LeaseStore(LockingStore, RawStore, Protocol):
    """A store with leases and bytes access, as distributed isolation needs."""


class _LeaseHeld(_LocalHeld):
    """The local lock, then a store lease renewed in the background until a fenced commit or a release."""

    __slots__ = ("_ended", "_lease", "_leases", "_renewal", "_timer", "_ttl", "_wait")

    def __init__(self, io: StoreIO, key: str, locks: KeyedLock, leases: _LeaseStore, ttl: float, wait: float) -> None:
        super().__init__(io, key, True, locks)
        self._leases = leases
        self._ttl = ttl
        self._wait = wait
        self._ended = False
        self._renewal: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Held:
        await self._lock.__aenter__()
        try:
            locked = await self._leases.lock(self.key, lease=self._ttl, wait=self._wait)
        except BaseException:
            await self._lock.__aexit__(None, None, None)
            raise
        self._lease: Lease = locked.lease
        self.stored = None if locked.record is None else locked.record.data
        self._timer = asyncio.get_running_loop().call_later(self._ttl / 3, self._renew_soon)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self._ended:
                await asyncio.shield(self._release())
        finally:
            await self._lock.__aexit__(exc_type, exc, tb)

    def _renew_soon(self) -> None:
        self._renewal = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        try:
            self._lease = await self._leases.renew(self._lease)
        except (SessionwareError, OSError) as exc:
            log.warning("lease on session %r could not be renewed: %s", self.key, exc)
            return
        if not self._ended:
            self._timer = asyncio.get_running_loop().call_later(self._ttl / 3, self._renew_soon)

    async def _stop_renewing(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        renewal = self._renewal
        if renewal is not None and not renewal.done():
            await renewal

    async def _commit(self, data: bytes | None, ttl: float | None) -> None:
        await self._stop_renewing()
        try:
            await self._leases.commit(self._lease, data, ttl=ttl)
        except LeaseExpiredError:
            self._ended = True  # nothing of ours is left to release
            log.warning("lease on session %r expired while its update still ran; the write was refused", self.key)
            raise
        # A write refused before it was sent (too large, a bad TTL) leaves the lease held, for the exit to release.
        self._ended = True

    async def _release(self) -> None:
        self._ended = True
        await self._stop_renewing()
        await self._leases.unlock(self._lease)

    async def write(self, data: bytes, ttl: float | None) -> None:
        """Write and release in one fenced commit; refused if the lease was lost."""
        await self._commit(data, ttl)

    async def delete(self) -> None:
        """Delete and release in one fenced commit; refused if the lease was lost."""
        await self._commit(None, None)

    async def touch(self, ttl: float) -> None:
        """Release the lease, then extend the record's expiry (an expiry needs no fence)."""
        await self._release()
        await self.io.touch(self.key, ttl)


class Isolation(ABC):
    """How updates of one key are kept apart; see the module docstring.

    ``hold(key)`` returns a :class:`Held` for ``async with``; ``load=False``
    skips reading the record (a key known to be new).
    """

    name: ClassVar[str]

    def __init__(self, store: SessionStore) -> None:
        self.io = StoreIO(store)

    @property
    def store(self) -> SessionStore:
        """The store this strategy reads and writes."""
        return self.io.store

    @abstractmethod
    def hold(self, key: str, *, load: bool = True) -> Held:
        """Hold ``key`` for one update (use with ``async with``)."""

    async def close(self) -> None:  # noqa: B027 - strategies holding nothing have nothing to close
        """Release what the strategy holds (nothing for the built-in ones)."""


class NoIsolation(Isolation):
    """No lock at all: concurrent updates of one key may overwrite each other."""

    name = "none"

    def hold(self, key: str, *, load: bool = True) -> Held:
        """The record of ``key``, read and written without a lock."""
        return Held(self.io, key, load)


_LOCKS: weakref.WeakKeyDictionary[object, KeyedLock] = weakref.WeakKeyDictionary()


def shared_locks(store: object) -> KeyedLock:
    """The per-key lock table of ``store`` in this process, shared by every updater on it."""
    try:
        locks = _LOCKS.get(store)
        if locks is None:
            locks = _LOCKS[store] = KeyedLock()
    except TypeError:  # a store that cannot be weakly referenced or hashed keeps a table of its own
        return KeyedLock()
    return locks


class LocalIsolation(Isolation):
    """Updates of one key run one at a time, in arrival order, within this process."""

    name = "local"

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.locks = shared_locks(store)

    def hold(self, key: str, *, load: bool = True) -> Held:
        """The record of ``key``, read and written under the key's lock in this process."""
        return _LocalHeld(self.io, key, load, self.locks)


class DistributedIsolation(LocalIsolation):
    """Updates of one key run one at a time across processes, under a store lease with fenced writes.

    ``lease``: seconds a lease lasts unless renewed (renewed every third of it
    while held); ``lock_wait``: how long to wait for a lease another holder has.
    """

    name = "distributed"

    def __init__(
        self, store: SessionStore, *, lease: float = DEFAULT_LEASE, lock_wait: float = DEFAULT_LOCK_WAIT
    ) -> None:
        if not isinstance(store, LockingStore) or not isinstance(store, RawStore):
            raise InvalidValueError(
                "isolation", f"'distributed' needs a store with leases; {type(store).__name__} has none"
            )
        super().__init__(store)
        self.leases: _LeaseStore = store
        self.lease = _positive("lease", lease)
        self.lock_wait = _positive("lock_wait", lock_wait, zero=True)

    def hold(self, key: str, *, load: bool = True) -> Held:
        """The record of ``key``, read under a lease and written by a fenced commit."""
        return _LeaseHeld(self.io, key, self.locks, self.leases, self.lease, self.lock_wait)


def _positive(name: str, value: object, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 if zero else value > 0):
        raise InvalidValueError(
            name, f"must be a {'non-negative' if zero else 'positive'} number of seconds, not {value!r}"
        )
    if value == float("inf"):
        raise InvalidValueError(name, "must be finite")
    return float(value)


def make_isolation(
    store: SessionStore,
    isolation: IsolationName | Isolation,
    *,
    lease: float = DEFAULT_LEASE,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    allowed: tuple[str, ...] = ("none", "local", "distributed"),
) -> Isolation:
    """The strategy ``isolation`` names for ``store`` (an :class:`Isolation` passes through)."""
    if isinstance(isolation, Isolation):
        return isolation
    if isolation not in allowed:
        names = ", ".join(repr(name) for name in allowed)
        raise InvalidValueError("isolation", f"must be one of {names} or an Isolation, not {isolation!r}")
    if isolation == "distributed":
        return DistributedIsolation(store, lease=lease, lock_wait=lock_wait)
    if isolation == "local":
        return LocalIsolation(store)
    return NoIsolation(store)


__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_LOCK_WAIT",
    "DistributedIsolation",
    "Held",
    "Isolation",
    "IsolationName",
    "LocalIsolation",
    "NoIsolation",
    "StoreIO",
    "make_isolation",
    "shared_locks",
]
