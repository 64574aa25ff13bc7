"""Running one subject in several OS processes at once, started together, timed by the parent."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from sessionware.bot.adapters import Update

from .measure import Meter, Timing, run_tasks
from .subjects import Recipe

START_TIMEOUT = 120.0
"""Seconds a child may take to start, import and connect."""


def split(total: int, parts: int) -> list[int]:
    """``total`` tasks shared as evenly as possible between ``parts`` processes (none empty)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _child(recipe: Recipe, tasks: int, per_task: int, update: Update, warm: Update, out: Connection, go: Event) -> None:
    try:
        timing = asyncio.run(_child_run(recipe, tasks, per_task, update, warm, out, go))
        out.send(("done", timing.ops, timing.latencies))
    except BaseException as exc:
        out.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


async def _child_run(
    recipe: Recipe, tasks: int, per_task: int, update: Update, warm: Update, out: Connection, go: Event
) -> Timing:
    subject = recipe.build()
    await subject.open()
    try:
        handle = subject.handler()
        await handle(warm)  # connects, creates tables; touches only the warm-up session
        out.send(("ready",))
        await asyncio.to_thread(go.wait)
        return await run_tasks(lambda: handle(update), tasks, per_task)
    finally:
        await subject.close(drop=False)


def _receive(conn: Connection, timeout: float | None) -> tuple[Any, ...]:
    if timeout is not None and not conn.poll(timeout):
        raise TimeoutError(f"a benchmark process sent nothing for {timeout:.0f}s")
    message: tuple[Any, ...] = conn.recv()
    if message[0] == "error":
        raise RuntimeError(f"a benchmark process failed: {message[1]}")
    return message


async def run_in_processes(
    recipe: Recipe,
    *,
    processes: int,
    tasks: int,
    per_task: int,
    update: Update,
    warm: Update,
    meter: Meter | None = None,
) -> Timing:
    """Run ``tasks`` tasks of ``per_task`` updates each, spread over ``processes`` fresh processes.

    Every child builds and opens its own subject from ``recipe`` and warms it
    up; the clock starts when all are ready and stops when the last one ends.
    """
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    children: list[tuple[Any, Connection]] = []
    try:
        for share in split(tasks, processes):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, args=(recipe, share, per_task, update, warm, sender, go), daemon=True
            )
            child.start()
            sender.close()
            children.append((child, receiver))
        for _, receiver in children:
            await asyncio.to_thread(_receive, receiver, START_TIMEOUT)
        start = time.perf_counter()
        go.set()
        results = await asyncio.gather(*(asyncio.to_thread(_receive, r, None) for _, r in children))
        seconds = time.perf_counter() - start
    finally:
        for child, receiver in children:
            if child.is_alive():
                child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join()
            receiver.close()
    latencies = [latency for result in results for latency in result[2]]
    ops = sum(int(result[1]) for result in results)
    if meter is not None:
        meter.done = ops
    return Timing(ops, seconds, latencies)
