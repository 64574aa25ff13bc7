"""Timing loops: N tasks pulling work from a shared queue, per-operation latencies, percentiles."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Meter:
    """How many operations of the current run are done (read by the progress display)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """What one timed run measured: operations, wall time, and each operation's latency in seconds."""

    ops: int
    seconds: float
    latencies: list[float]

    @property
    def ops_per_s(self) -> float:
        """Throughput over the whole run."""
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0-100, nearest rank) of the latencies, in milliseconds."""
        return percentile(sorted(self.latencies), q) * 1000


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def run_queue(
    handle: Callable[[T], Awaitable[object]], items: Sequence[T], concurrency: int, meter: Meter | None = None
) -> Timing:
    """Run ``handle`` on every item with ``concurrency`` tasks pulling from one shared queue."""
    queue = deque(items)
    latencies: list[float] = []
    meter = meter or Meter()

    async def worker() -> None:
        clock, pop, record = time.perf_counter, queue.popleft, latencies.append
        while queue:
            item = pop()
            start = clock()
            await handle(item)
            record(clock() - start)
            meter.done += 1

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Timing(len(items), time.perf_counter() - start, latencies)


async def run_tasks(
    operation: Callable[[], Awaitable[object]], tasks: int, per_task: int, meter: Meter | None = None
) -> Timing:
    """Run ``tasks`` tasks at once, each calling ``operation`` ``per_task`` times in a row."""
    latencies: list[float] = []
    meter = meter or Meter()

    async def worker() -> None:
        clock, record = time.perf_counter, latencies.append
        for _ in range(per_task):
            start = clock()
            await operation()
            record(clock() - start)
            meter.done += 1

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return Timing(tasks * per_task, time.perf_counter() - start, latencies)
