"""The per-key lock serialises one key in arrival order and forgets keys no one uses."""

import asyncio

from sessionware.locks import KeyedLock


async def test_same_key_runs_in_arrival_order_and_other_keys_run_freely() -> None:
    locks = KeyedLock()
    order: list[str] = []
    gate = asyncio.Event()

    async def first() -> None:
        async with locks.hold("a"):
            order.append("a1-start")
            await gate.wait()
            order.append("a1-end")

    async def queued(name: str) -> None:
        async with locks.hold("a"):
            order.append(name)

    async def other() -> None:
        async with locks.hold("b"):
            order.append("b")

    t1 = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(queued(f"a{i}")) for i in range(2, 6)]
    await asyncio.sleep(0)
    await other()
    gate.set()
    await asyncio.gather(t1, *waiters)
    assert order == ["a1-start", "b", "a1-end", "a2", "a3", "a4", "a5"]
    assert len(locks) == 0


async def test_table_does_not_grow_with_keys_seen() -> None:
    locks = KeyedLock()
    for i in range(10_000):
        async with locks.hold(f"user-{i}"):
            pass
    assert len(locks) == 0


async def test_entry_released_when_block_raises_or_is_cancelled() -> None:
    locks = KeyedLock()
    try:
        async with locks.hold("x"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert len(locks) == 0
    gate = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("x"):
            await gate.wait()

    task = asyncio.create_task(holder())
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    assert len(locks) == 1
    waiter.cancel()
    task.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)
    assert len(locks) == 0
