"""Turn cost of SessionManager at 50 and at 5,000 messages per session, per backend, in one run.

A turn is what an agent does per exchange: append the user's message and the
reply (one ``add_messages`` call) and read the last 20 messages
(``history(last=20)``). Sessions of both sizes are prefilled, then measured in
interleaved rounds so that both sizes see the same machine conditions; the
median round is reported. Usage::

    .venv/bin/python benchmarks/agent_turn.py [--backends memory,sqlite,redis,postgres]
        [--sessions 40] [--turns 2] [--rounds 5]

Redis and PostgreSQL are the loopback servers the tests use
(``SESSIONWARE_TEST_REDIS_URL`` / ``SESSIONWARE_TEST_POSTGRES_URL`` override them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sessionware.agents import SessionManager
from sessionware.store import BaseSessionStore
from sessionware.stores.memory import InMemorySessionStore

REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get("SESSIONWARE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SIZES = (50, 5000)
PREFILL_CHUNK = 500

Cleanup = Callable[[], Awaitable[None]]


async def open_store(backend: str, tmp: Path) -> tuple[BaseSessionStore, Cleanup]:
    """A fresh store on ``backend`` and the coroutine function that removes what the run wrote."""
    tag = uuid.uuid4().hex[:10]
    if backend == "memory":
        store: BaseSessionStore = InMemorySessionStore(max_sessions=None)

        async def nothing() -> None:
            return None

        return store, nothing
    if backend == "sqlite":
        from sessionware.stores.sqlite import SQLiteSessionStore

        store = SQLiteSessionStore(tmp / f"bench-{tag}.db")
        return store, store.close
    if backend == "redis":
        from sessionware.stores.redis import RedisSessionStore

        prefix = f"bench-{tag}"
        redis_store = RedisSessionStore.from_url(REDIS_URL, prefix=prefix)

        async def drop_redis() -> None:
            client = redis_store.client
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            for i in range(0, len(keys), 1000):
                await client.delete(*keys[i : i + 1000])
            await redis_store.close()

        return redis_store, drop_redis
    if backend == "postgres":
        from sessionware.stores.postgres import PostgresSessionStore

        pg_store = PostgresSessionStore.from_url(POSTGRES_URL, table=f"sessionware_bench_{tag}")

        async def drop_postgres() -> None:
            await pg_store.drop_tables()
            await pg_store.close()

        return pg_store, drop_postgres
    raise SystemExit(f"unknown backend {backend!r}")


def exchange(n: int) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"question {n}: what should I read next about distributed systems?"},
        {"role": "assistant", "content": f"answer {n}: start with the classic papers, then a textbook. " * 3},
    ]


async def prefill(manager: SessionManager, size: int, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        session = await manager.create_session("bench-user")
        for start in range(0, size, PREFILL_CHUNK):
            batch = [m for n in range(start // 2, (start + PREFILL_CHUNK) // 2) for m in exchange(n)]
            await manager.add_messages(session.id, batch[: size - start])
        ids.append(session.id)
    return ids


async def measure(manager: SessionManager, ids: list[str], turns: int) -> float:
    """Turns per second over ``turns`` turns on each of ``ids``, round robin."""
    started = time.perf_counter()
    for t in range(turns):
        for session_id in ids:
            await manager.add_messages(session_id, exchange(t))
            window = await manager.history(session_id, last=20)
            if len(window) != 20:
                raise RuntimeError(f"expected a window of 20 messages, got {len(window)}")
    return turns * len(ids) / (time.perf_counter() - started)


async def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> tuple[dict[int, float], dict[int, int]]:
    store, cleanup = await open_store(backend, tmp)
    try:
        manager = SessionManager(store)
        sessions = {size: await prefill(manager, size, args.sessions) for size in SIZES}
        rates: dict[int, list[float]] = {size: [] for size in SIZES}
        for _ in range(args.rounds):
            for size in SIZES:
                rates[size].append(await measure(manager, sessions[size], args.turns))
        final = {}
        for size in SIZES:
            session = await manager.get_session(sessions[size][0], history=0)
            final[size] = 0 if session is None else session.message_count
        return {size: statistics.median(r) for size, r in rates.items()}, final
    finally:
        await cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", default="memory,sqlite,redis,postgres")
    parser.add_argument("--sessions", type=int, default=40, help="sessions per size")
    parser.add_argument("--turns", type=int, default=2, help="turns per session per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"turn = add_messages(2) + history(last=20); {args.sessions} sessions per size, "
        f"{args.turns} turn(s) per session per round, median of {args.rounds} interleaved rounds"
    )
    print(f"{'backend':<10} {'turns/s @50':>12} {'turns/s @5000':>14} {'ratio':>7}   messages at end (50 / 5000)")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            try:
                rates, final = await run_backend(backend.strip(), args, Path(tmp))
            except ImportError as exc:
                print(f"{backend:<10} not available: {exc}", file=sys.stderr)
                continue
            small, large = rates[SIZES[0]], rates[SIZES[1]]
            print(
                f"{backend:<10} {small:>12,.0f} {large:>14,.0f} {large / small:>7.2f}"
                f"   {final[SIZES[0]]:,} / {final[SIZES[1]]:,}",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
