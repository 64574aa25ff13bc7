"""How long ``get_session(id, user_id=...)`` takes for someone else's session and for a missing id, on the
memory store (no network to hide a difference): the ratio should be near 1, so timing does not tell a caller
whether an id exists. Run: ``python benchmarks/ownership.py``."""

from __future__ import annotations

import asyncio
import statistics
import time

from sessionware import InMemorySessionStore, SessionManager


async def main(rounds: int = 7, calls: int = 5_000) -> None:
    manager = SessionManager(InMemorySessionStore())
    bobs = await manager.create_session("bob", metadata={"secret": "x" * 200})
    missing = "M" * 32

    async def timed(session_id: str) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await manager.get_session(session_id, user_id="alice", history=0, tool_invocations=0)
        return (time.perf_counter() - start) / calls

    ratios = []
    for _ in range(rounds):
        foreign, absent = await timed(bobs.id), await timed(missing)
        ratios.append(foreign / absent)
    print(f"someone else's / missing, median of {rounds}: {statistics.median(ratios):.2f}x (target 0.8x-1.25x)")


if __name__ == "__main__":
    asyncio.run(main())
