"""Isolation strategies: how updates of one key are kept apart while its session is loaded, changed and saved.

A strategy is made for one store; ``open(key)`` gives the
:class:`~sessionware.update.SessionUpdate` of a key, which takes the lock
*before* it loads the record (so the record read is the newest) and writes
back through the same hold (so a write can be fenced by it):

- :class:`NoIsolation` (``"none"``): no lock; the racy behaviour of most frameworks.
- :class:`LocalIsolation` (``"local"``): one FIFO lock per key in this process,
  shared by every strategy on the same store here.
- :class:`DistributedIsolation` (``"distributed"``): the local lock, then a store
  lease across processes (taken and read in one step where the backend can),
  renewed every third of its length while held; writes are fenced commits,
  refused with :class:`~sessionware.errors.LeaseExpiredError` if the lease was lost.

:func:`make_isolation` turns the names into strategies; every surface
(``session()``, ``SessionManager``, the command line) updates sessions
through one.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from .codec import Codec, JsonDict
from .errors import InvalidValueError
from .keys import check_seconds
from .locks import KeyedLock
from .store import LockingStore, RawStore, SessionStore
from .update import LeasedUpdate, LeaseStore, LockedUpdate, SessionUpdate, StoreIO

DEFAULT_LEASE = 30.0
DEFAULT_LOCK_WAIT = 30.0

IsolationName = Literal["none", "local", "distributed"]


class Isolation(ABC):
    """How updates of one key are kept apart, for one store; see the module docstring."""

    name: ClassVar[str]

    def __init__(self, store: SessionStore) -> None:
        self.io = StoreIO(store)

    @property
    def store(self) -> SessionStore:
        """The store this strategy reads and writes."""
        return self.io.store

    @property
    def codec(self) -> Codec:
        """How sessions of the store are encoded."""
        return self.io.codec

    @abstractmethod
    def open(self, key: str, *, load: bool = True) -> SessionUpdate:
        """The update of ``key`` (use with ``async with``); ``load=False`` skips reading a key known to be new."""

    async def read(self, key: str) -> JsonDict | None:
        """The stored session of ``key``, decoded, without taking any lock."""
        data = await self.io.load(key)
        return None if data is None else self.io.codec.decode(key, data)

    async def put(self, key: str, value: JsonDict, *, ttl: float | None = None) -> None:
        """Write ``value`` under ``key`` without taking any lock (a record no update reads, e.g. an index entry)."""
        await self.io.write(key, self.io.codec.encode(value), ttl=ttl)

    async def close(self) -> None:  # noqa: B027 - strategies holding nothing have nothing to close
        """Release what the strategy holds (nothing for the built-in ones)."""


class NoIsolation(Isolation):
    """No lock at all: concurrent updates of one key may overwrite each other."""

    name = "none"

    def open(self, key: str, *, load: bool = True) -> SessionUpdate:
        """The update of ``key``, read and written without a lock."""
        return SessionUpdate(self.io, key, load)


_LOCKS: weakref.WeakKeyDictionary[object, KeyedLock] = weakref.WeakKeyDictionary()


def shared_locks(store: object) -> KeyedLock:
    """The per-key lock table of ``store`` in this process, shared by every strategy on it."""
    try:
        locks = _LOCKS.get(store)
        if locks is None:
            locks = _LOCKS[store] = KeyedLock()
    except TypeError:  # a store that cannot be weakly referenced or hashed keeps a table per strategy
        return KeyedLock()
    return locks


class LocalIsolation(Isolation):
    """Updates of one key run one at a time, in arrival order, within this process."""

    name = "local"

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store)
        self.locks = shared_locks(store)

    def open(self, key: str, *, load: bool = True) -> SessionUpdate:
        """The update of ``key``, read and written under the key's lock in this process."""
        return LockedUpdate(self.io, key, load, self.locks)


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
        self.leases: LeaseStore = store
        self.lease = check_seconds("lease", lease)
        self.lock_wait = check_seconds("lock_wait", lock_wait, zero=True)

    def open(self, key: str, *, load: bool = True) -> SessionUpdate:
        """The update of ``key``, read under a lease and written by a fenced commit."""
        return LeasedUpdate(self.io, key, self.locks, self.leases, self.lease, self.lock_wait)


def make_isolation(
    store: SessionStore,
    isolation: IsolationName | Isolation = "local",
    *,
    lease: float = DEFAULT_LEASE,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    allowed: tuple[str, ...] = ("none", "local", "distributed"),
) -> Isolation:
    """The strategy ``isolation`` names, for ``store`` (an :class:`Isolation` passes through as it is)."""
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
    "Isolation",
    "IsolationName",
    "LocalIsolation",
    "NoIsolation",
    "make_isolation",
    "shared_locks",
]
