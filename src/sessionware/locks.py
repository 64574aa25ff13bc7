"""In-process, per-key FIFO locks whose table holds only the keys in use."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Any

from .errors import NestedUpdateError


class KeyedLock:
    """One FIFO lock per key; an entry lives only while some task holds or waits for it.

    ``async with locks.hold(key):`` serialises everything done under the same
    key in this process, in arrival order, while other keys run freely. A key
    nobody holds is taken without suspending. A task that asks again for a key
    it already holds gets :class:`~sessionware.errors.NestedUpdateError` at
    once, instead of waiting for itself forever.
    """

    __slots__ = ("_holders", "_queues")

    def __init__(self) -> None:
        self._queues: dict[str, deque[tuple[asyncio.Future[None], asyncio.Task[Any] | None]]] = {}
        self._holders: dict[str, asyncio.Task[Any] | None] = {}

    def __len__(self) -> int:
        """Keys currently held or waited for."""
        return len(self._queues)

    def take(self, key: str) -> asyncio.Future[None] | None:
        """Take ``key``'s lock now (``None``), or join its queue: the future resolves once the lock is ours."""
        queue = self._queues.get(key)
        task = asyncio.current_task()
        if queue is None:
            self._queues[key] = deque()
            self._holders[key] = task
            return None
        if task is not None and self._holders.get(key) is task:
            raise NestedUpdateError(
                f"session {key!r} is already being updated by this task; an update of it from inside that update "
                "would wait for itself (make the change in the outer update, or hand it to another task)"
            )
        turn = asyncio.get_running_loop().create_future()
        queue.append((turn, task))
        return turn

    async def wait(self, key: str, turn: asyncio.Future[None]) -> None:
        """Wait for a ``turn`` from :meth:`take`; if cancelled after the lock was handed over, pass it on."""
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release(key)
            raise

    async def acquire(self, key: str) -> None:
        """Take ``key``'s lock, waiting in line if someone holds it."""
        turn = self.take(key)
        if turn is not None:
            await self.wait(key, turn)

    def release(self, key: str) -> None:
        """Hand ``key``'s lock to the next waiter still waiting, or forget the key."""
        queue = self._queues[key]
        while queue:
            turn, task = queue.popleft()
            if not turn.done():
                self._holders[key] = task
                turn.set_result(None)
                return
        del self._queues[key]
        del self._holders[key]

    def hold(self, key: str) -> _Hold:
        """Hold the lock of ``key`` for the duration of an ``async with`` block."""
        return _Hold(self, key)


class _Hold:
    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLock, key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks.acquire(self._key)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._locks.release(self._key)
