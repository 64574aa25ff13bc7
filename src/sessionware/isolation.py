"""Holding a store lease for the length of an update: renewal in the background, fenced commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import LeaseExpiredError, SessionwareError
from .keys import TTL
from .store import Lease, LockingStore, Versioned

log = logging.getLogger("sessionware")

DEFAULT_LEASE = 30.0
DEFAULT_LOCK_WAIT = 30.0


class HeldLease:
    """A lease taken with :meth:`LockingStore.lock`, renewed every third of its length until it ends."""

    def __init__(self, store: LockingStore, lease: Lease, record: Versioned | None) -> None:
        self.store = store
        self.lease = lease
        self.record = record
        self.lost: BaseException | None = None
        self._done = False
        self._renewal: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(lease.ttl / 3, self._renew_soon)

    def _renew_soon(self) -> None:
        self._renewal = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        try:
            self.lease = await self.store.renew(self.lease)
        except (SessionwareError, OSError) as exc:
            self.lost = exc
            log.warning("lease on session %r could not be renewed: %s", self.lease.key, exc)
            return
        if not self._done:
            self._timer = asyncio.get_running_loop().call_later(self.lease.ttl / 3, self._renew_soon)

    @property
    def finished(self) -> bool:
        """Whether the lease was committed or released."""
        return self._done

    async def _stop_renewing(self) -> None:
        self._done = True
        self._timer.cancel()
        if self._renewal is not None and not self._renewal.done():
            await self._renewal

    async def commit(self, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release; refused if the lease was lost."""
        await self._stop_renewing()
        try:
            return await self.store.commit(self.lease, data, ttl=ttl)
        except LeaseExpiredError:
            log.warning(
                "lease on session %r expired while its update still ran; the write was refused", self.lease.key
            )
            raise

    async def release(self) -> None:
        """Release without writing."""
        await self._stop_renewing()
        await self.store.unlock(self.lease)


@asynccontextmanager
async def hold(
    store: LockingStore, key: str, *, lease: float = DEFAULT_LEASE, wait: float = DEFAULT_LOCK_WAIT
) -> AsyncIterator[HeldLease]:
    """Take the lease on ``key`` and read its record; release it on exit unless committed."""
    locked = await store.lock(key, lease=lease, wait=wait)
    held = HeldLease(store, locked.lease, locked.record)
    try:
        yield held
    finally:
        if not held.finished:
            await asyncio.shield(held.release())
