"""A cheap per-call deadline for store operations: one timer per event loop instead of one per call.

``asyncio.timeout`` schedules and cancels a timer for every call, which on the
Redis hot path cost about as much as the command itself. :func:`within`
records the calling task and its deadline in a table; a single timer,
scheduled for the earliest deadline in it, cancels the tasks whose deadline
has passed, and :func:`within` turns that cancellation into ``TimeoutError``
(as ``asyncio.timeout`` does, and only for its own cancellation).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class _Call:
    __slots__ = ("deadline", "fired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False


class _Watch:
    """The calls with a deadline on one event loop, and the one timer that expires them."""

    __slots__ = ("__weakref__", "calls", "handle", "loop", "wakes_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: set[_Call] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.wakes_at = float("inf")

    def add(self, call: _Call) -> None:
        self.calls.add(call)
        if call.deadline < self.wakes_at:
            self._schedule(call.deadline)

    def _schedule(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.wakes_at = when
        self.handle = self.loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self.handle = None
        self.wakes_at = float("inf")
        now = self.loop.time()
        earliest = float("inf")
        for call in self.calls:
            if call.fired:
                continue
            if call.deadline <= now:
                call.fired = True
                call.task.cancel()
            elif call.deadline < earliest:
                earliest = call.deadline
        if earliest != float("inf"):
            self._schedule(earliest)


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


async def within(seconds: float, aw: Awaitable[T]) -> T:
    """Await ``aw``; past ``seconds`` cancel it and raise ``TimeoutError``."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:  # pragma: no cover - store calls always run in a task
        async with asyncio.timeout(seconds):
            return await aw
    watch = _WATCHES.get(loop)
    if watch is None:
        watch = _WATCHES[loop] = _Watch(loop)
    call = _Call(task, loop.time() + seconds)
    cancelling = task.cancelling()
    watch.add(call)
    try:
        result = await aw
    except asyncio.CancelledError:
        if call.fired:
            call.fired = False
            if task.uncancel() <= cancelling:
                raise TimeoutError from None
        raise
    except BaseException:
        if call.fired:
            task.uncancel()
        raise
    finally:
        watch.calls.discard(call)
    if call.fired:  # the cancellation came after the result, too late to interrupt anything
        task.uncancel()
    return result


__all__ = ["within"]
