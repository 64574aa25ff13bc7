"""The update unit: the one read-modify-write of a session, shared by every surface and integration.

::

    updater = Updater(store, isolation="local")
    async with updater.open("42") as update:      # lock (per the isolation strategy), then load
        value = update.load() or update.fresh({})  # the stored session, decoded, or a new one
        value["visits"] = value.get("visits", 0) + 1
        await update.save(value, ttl=3600)        # written only if its encoding changed

One save path: nothing is written when the encoding equals what was read
(a rolling TTL is then only touched), an emptied session is deleted, anything
else is written, and under a lease the write is a fenced commit. The codec is
used here and in the stores, nowhere else.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from .codec import Codec, JsonCodec, JsonDict
from .errors import SessionDecodeError
from .isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Held, Isolation, IsolationName, make_isolation
from .store import SessionStore

log = logging.getLogger("sessionware")


def default_quarantine_key(key: str) -> str:
    """Where an undecodable session is kept aside: ``"<key>:quarantined:<nanosecond timestamp>"``."""
    return f"{key}:quarantined:{time.time_ns()}"


class SessionUpdate:
    """One session being updated: what was stored, and the save that writes back only what changed.

    Made by :meth:`Updater.open`; use it with ``async with``. ``existed`` says
    whether a record was stored (even one that could not be decoded).
    """

    __slots__ = ("_baseline", "_codec", "_held", "existed")

    def __init__(self, held: Held, codec: Codec) -> None:
        self._held = held
        self._codec = codec
        self._baseline: bytes | None = None
        self.existed = False

    async def __aenter__(self) -> SessionUpdate:
        await self._held.__aenter__()
        self.existed = self._held.stored is not None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._held.__aexit__(exc_type, exc, tb)

    @property
    def key(self) -> str:
        """The key being updated."""
        return self._held.key

    @property
    def stored(self) -> bytes | None:
        """The stored bytes read under the hold, or ``None``."""
        return self._held.stored

    def load(self) -> JsonDict | None:
        """The stored session decoded (a fresh copy each call), or ``None`` if there is none.

        Raises :class:`~sessionware.errors.SessionDecodeError` naming the key
        if the stored bytes cannot be decoded; they are left as they are.
        """
        stored = self._held.stored
        if stored is None:
            return None
        value = self._codec.decode(self._held.key, stored)
        self._baseline = stored
        return value

    def fresh(self, value: JsonDict) -> JsonDict:
        """A new session made from ``value`` (through the codec, so it is exactly what would be stored).

        When nothing was stored, saving it unchanged writes nothing.
        """
        data = self._codec.encode(value)
        if self._held.stored is None:
            self._baseline = data
        return self._codec.decode(self._held.key, data)

    async def quarantine(self, aside: str, error: SessionDecodeError) -> None:
        """Copy the undecodable stored bytes to ``aside`` and log it; the next save replaces the record."""
        stored = self._held.stored
        if stored is None:
            return
        await self._held.io.put_aside(aside, stored)
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
                await self._held.delete()
                self.existed = False
                return True
            return False
        data = _changed(self._codec, value, self._baseline)
        if data is None:
            if rolling and ttl is not None and self.existed:
                await self._held.touch(ttl)
            return False
        await self._held.write(data, ttl)
        self._baseline = data
        self.existed = True
        return True

    async def write(self, value: JsonDict, *, ttl: float | None = None) -> None:
        """Write ``value`` as it is, even if unchanged or empty (restoring an export)."""
        data = self._codec.encode(value)
        await self._held.write(data, ttl)
        self._baseline = data
        self.existed = True

    async def delete(self) -> bool:
        """Delete the stored record (fenced under a lease); return whether there was one."""
        return await self.save(None)


def _changed(codec: Codec, value: JsonDict, baseline: bytes | None) -> bytes | None:
    """The encoding of ``value`` if it differs from ``baseline``, else ``None``.

    With the JSON codec the round-trip check runs only on what will be written.
    """
    if type(codec) is JsonCodec:
        data = codec.dump(value)
        if data == baseline:
            return None
        if codec.verify:
            codec.check(value, data)
        return data
    data = codec.encode(value)
    return None if data == baseline else data


class Updater:
    """Updates of sessions in one store under one isolation strategy.

    ``isolation`` is ``"local"`` (default), ``"distributed"``, ``"none"`` or an
    :class:`~sessionware.isolation.Isolation`; ``lease`` and ``lock_wait``
    configure the distributed one.
    """

    __slots__ = ("codec", "isolation", "store")

    def __init__(
        self,
        store: SessionStore,
        *,
        isolation: IsolationName | Isolation = "local",
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        allowed: tuple[str, ...] = ("none", "local", "distributed"),
    ) -> None:
        self.store = store
        self.isolation = make_isolation(store, isolation, lease=lease, lock_wait=lock_wait, allowed=allowed)
        self.codec = self.isolation.io.codec

    def open(self, key: str, *, load: bool = True) -> SessionUpdate:
        """Hold ``key`` and read its record (``load=False``: the key is known to be new)."""
        return SessionUpdate(self.isolation.hold(key, load=load), self.codec)

    async def put(self, key: str, value: JsonDict, *, ttl: float | None = None) -> None:
        """Write ``value`` under ``key`` without taking any lock (a record no update reads, e.g. an index entry)."""
        await self.isolation.io.write(key, self.codec.encode(value), ttl)

    async def read(self, key: str) -> JsonDict | None:
        """The stored session of ``key``, decoded, without taking any lock."""
        data = await self.isolation.io.load(key)
        return None if data is None else self.codec.decode(key, data)


__all__ = ["SessionUpdate", "Updater", "default_quarantine_key"]
