"""The update unit: the one read-modify-write of a session, shared by every surface and integration.

::

    isolation = LocalIsolation(store)              # or make_isolation(store, "distributed"), see isolation.py
    async with isolation.open("42") as update:     # lock (as the strategy says), then load
        value = update.load() or update.fresh({})  # the stored session, decoded, or a new one
        value["visits"] = value.get("visits", 0) + 1
        await update.save(value, ttl=3600)         # written only if its encoding changed

A :class:`SessionUpdate` is made by an isolation strategy and comes in three
variants: no lock, the in-process lock of the key, and that lock plus a
store lease (renewed while held; writes are fenced commits). One save path:
nothing is written when the encoding equals what was read (a rolling TTL is
then only touched), an emptied session is deleted, anything else is written.
The codec is used here and in the stores, nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

from .codec import DEFAULT_CODEC, Codec, JsonCodec, JsonDict
from .errors import LeaseExpiredError, SessionDecodeError, SessionwareError
from .keys import derived_key
from .locks import KeyedLock
from .store import ExpiringStore, Lease, LockingStore, PinningStore, RawStore, SessionStore, accepts_ttl

log = logging.getLogger("sessionware")


def default_quarantine_key(key: str) -> str:
    """Where an undecodable session is kept aside: ``"<key>:quarantined:<nanosecond timestamp>"``.

    A key too long for that keeps its start and a digest of the whole key in place of its end.
    """
    return derived_key(key, f":quarantined:{time.time_ns()}")


class StoreIO:
    """A store's records as bytes, whether or not the store has bytes access (:class:`RawStore`).

    Stores written to the bare seed contract get and set dicts; their values
    go through the codec here, so what a caller changes is never the store's
    own object and what is compared is always an encoding. With bytes access
    the store's own methods are used directly.
    """

    __slots__ = ("codec", "delete", "expiring", "load", "pinning", "raw", "store", "takes_ttl", "write")

    load: Callable[[str], Awaitable[bytes | None]]
    """The stored bytes of a key, or ``None``."""
    write: Callable[..., Awaitable[None]]
    """``write(key, data, ttl=seconds)``: store encoded bytes."""
    delete: Callable[[str], Awaitable[None]]
    """Remove a key."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.raw = isinstance(store, RawStore)
        self.codec: Codec = store.codec if isinstance(store, RawStore) else DEFAULT_CODEC
        self.takes_ttl = accepts_ttl(store)
        self.expiring = isinstance(store, ExpiringStore)
        self.pinning: PinningStore | None = store if isinstance(store, PinningStore) else None
        self.delete = store.delete
        if isinstance(store, RawStore):
            self.load = store.get_raw
            self.write = store.set_raw
        else:
            self.load = self._load_value
            self.write = self._write_value

    async def _load_value(self, key: str) -> bytes | None:
        value = await self.store.get(key)
        return None if value is None else self.codec.encode(value)

    async def _write_value(self, key: str, data: bytes, *, ttl: float | None = None) -> None:
        if ttl is None:
            await self.store.set(key, self.codec.decode(key, data))
        else:
            await self.store.set(key, self.codec.decode(key, data), ttl=ttl)  # type: ignore[call-arg]

    async def touch(self, key: str, ttl: float) -> None:
        """Extend the expiry of ``key`` if the store can."""
        if self.expiring:
            await self.store.touch(key, ttl)  # type: ignore[attr-defined]

    async def put_aside(self, key: str, data: bytes) -> None:
        """Store ``data`` unchanged under another key (quarantining an undecodable record; bytes access only)."""
        await self.store.set_raw(key, data)  # type: ignore[attr-defined]


class SessionUpdate:
    """One session being updated: what was stored, and the save that writes back only what changed.

    Made by an isolation strategy's ``open(key)``; use it with ``async with``,
    which takes the strategy's lock and then reads the record. ``existed``
    says whether a record was stored (even one that could not be decoded).
    This base class holds no lock (``isolation="none"``).
    """

    __slots__ = ("_baseline", "_codec", "_io", "_load", "_pin", "_put", "existed", "key", "stored")

    def __init__(self, io: StoreIO, key: str, load: bool = True) -> None:
        self._io = io
        self._codec = io.codec
        self._load = load
        self._put: Callable[..., Awaitable[None]] = io.write
        self._pin: AbstractAsyncContextManager[None] | None = None
        self._baseline: bytes | None = None
        self.key = key
        self.stored: bytes | None = None
        self.existed = False

    async def __aenter__(self) -> SessionUpdate:
        await self._enter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._exit()

    async def _enter(self) -> None:
        """Pin a connection where the store can (the load and the save then share one), then read."""
        pinning = self._io.pinning
        if pinning is None:
            await self._read()
            return
        self._pin = pinning.pinned()
        await self._pin.__aenter__()
        try:
            await self._read()
        except BaseException:
            await self._exit()
            raise

    async def _read(self) -> None:
        if self._load:
            self.stored = await self._io.load(self.key)
            self.existed = self.stored is not None

    async def _exit(self) -> None:
        pin, self._pin = self._pin, None
        if pin is not None:
            await pin.__aexit__(None, None, None)

    # -- what a caller does with the session -------------------------------------------------------

    def load(self) -> JsonDict | None:
        """The stored session decoded (a fresh copy each call), or ``None`` if there is none.

        Raises :class:`~sessionware.errors.SessionDecodeError` naming the key
        if the stored bytes cannot be decoded; they are left as they are.
        """
        stored = self.stored
        if stored is None:
            return None
        value = self._codec.decode(self.key, stored)
        self._baseline = stored
        return value

    def fresh(self, value: JsonDict) -> JsonDict:
        """A new session made from ``value`` (through the codec, so it is exactly what would be stored).

        When nothing was stored, saving it unchanged writes nothing.
        """
        data = self._codec.encode(value)
        if self.stored is None:
            self._baseline = data
        return self._codec.decode(self.key, data)

    async def quarantine(self, aside: str, error: SessionDecodeError) -> None:
        """Copy the undecodable stored bytes to ``aside`` and log it; the next save replaces the record."""
        if self.stored is None:
            return
        await self._io.put_aside(aside, self.stored)
        self._baseline = None
        log.warning(
            "session %r could not be decoded (%s); kept aside under %r, starting fresh", self.key, error.reason, aside
        )

    async def save(self, value: JsonDict | None, *, ttl: float | None = None, rolling: bool = False) -> bool:
        """Write ``value`` back if its encoding changed; return whether the store was written.

        An empty or ``None`` value deletes a stored record. An unchanged value
        writes nothing; with ``rolling`` (and a ``ttl``) its expiry is extended.
        """
        if not value:
            if self.existed:
                await self._remove()
                self.existed = False
                return True
            return False
        codec = self._codec
        data: bytes | None
        if type(codec) is JsonCodec:
            # The round-trip check runs only on what will be written.
            data = codec.dump(value)
            if data == self._baseline:
                data = None
            elif codec.verify:
                codec.check(value, data)
        else:
            data = codec.encode(value)
            if data == self._baseline:
                data = None
        if data is None:
            if rolling and ttl is not None and self.existed:
                await self._touch(ttl)
            return False
        await self._put(self.key, data, ttl=ttl)
        self._baseline = data
        self.existed = True
        return True

    async def write(self, value: JsonDict, *, ttl: float | None = None) -> None:
        """Write ``value`` as it is, even if unchanged or empty (restoring an export)."""
        await self.write_bytes(self._codec.encode(value), ttl=ttl)

    async def write_bytes(self, data: bytes, *, ttl: float | None = None) -> None:
        """Write already encoded ``data`` as it is (restoring an export of sealed records)."""
        await self._put(self.key, data, ttl=ttl)
        self._baseline = data
        self.existed = True

    async def delete(self) -> bool:
        """Delete the stored record; return whether there was one."""
        return await self.save(None)

    # -- how the record is written: through the hold (``_put(key, data, ttl=)`` writes) -----------

    async def _remove(self) -> None:
        await self._io.delete(self.key)

    async def _touch(self, ttl: float) -> None:
        await self._io.touch(self.key, ttl)


class LockedUpdate(SessionUpdate):
    """The key's in-process lock is taken before the load and released on exit (``isolation="local"``)."""

    __slots__ = ("_locks",)

    def __init__(self, io: StoreIO, key: str, load: bool, locks: KeyedLock) -> None:
        SessionUpdate.__init__(self, io, key, load)
        self._locks = locks

    async def __aenter__(self) -> SessionUpdate:
        locks = self._locks
        turn = locks.take(self.key)
        if turn is not None:
            await locks.wait(self.key, turn)
        try:
            await self._enter()
        except BaseException:
            locks.release(self.key)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._exit()
        finally:
            self._locks.release(self.key)


class LeaseStore(LockingStore, RawStore, Protocol):
    """A store with leases and bytes access, as distributed isolation needs."""


class LeasedUpdate(LockedUpdate):
    """The in-process lock, then a store lease renewed every third of its length; writes are fenced commits.

    A write refused because the lease was lost raises
    :class:`~sessionware.errors.LeaseExpiredError` and writes nothing; a write
    refused before it was sent (too large, a bad TTL) leaves the lease held for
    the exit to release.
    """

    __slots__ = ("_ended", "_lease", "_leases", "_renewal", "_timer", "_ttl", "_wait")

    def __init__(self, io: StoreIO, key: str, locks: KeyedLock, leases: LeaseStore, ttl: float, wait: float) -> None:
        LockedUpdate.__init__(self, io, key, True, locks)
        self._put = self._commit_write
        self._leases = leases
        self._ttl = ttl
        self._wait = wait
        self._ended = False
        self._renewal: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def _read(self) -> None:
        locked = await self._leases.lock(self.key, lease=self._ttl, wait=self._wait)
        self._lease: Lease = locked.lease
        self.stored = None if locked.record is None else locked.record.data
        self.existed = self.stored is not None
        self._timer = asyncio.get_running_loop().call_later(self._ttl / 3, self._renew_soon)

    async def _exit(self) -> None:
        try:
            if not self._ended and self._timer is not None:
                await asyncio.shield(self._release())
        finally:
            await LockedUpdate._exit(self)

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
        self._ended = True

    async def _release(self) -> None:
        self._ended = True
        await self._stop_renewing()
        await self._leases.unlock(self._lease)

    async def _commit_write(self, key: str, data: bytes, *, ttl: float | None) -> None:
        await self._commit(data, ttl)

    async def _remove(self) -> None:
        await self._commit(None, None)

    async def _touch(self, ttl: float) -> None:
        # An expiry needs no fence: release the lease, then extend it.
        await self._release()
        await self._io.touch(self.key, ttl)


__all__ = [
    "LeaseStore",
    "LeasedUpdate",
    "LockedUpdate",
    "SessionUpdate",
    "StoreIO",
    "default_quarantine_key",
]
