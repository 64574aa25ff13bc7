"""Several OS processes update one session through the middleware: distributed isolation loses nothing.

4 processes x 25 concurrent tasks x 20 updates of one counter in one session,
on one SQLite file and on one PostgreSQL table. With ``isolation="distributed"``
the counter ends at exactly 2,000; with ``isolation="local"`` (serialised only
inside each process) the same run loses updates, which is the failure the
store's leases prevent.

Each worker is this module run as ``python -m tests.test_sql_isolation``: it
opens its own store, says ``ready``, waits for ``go`` on stdin so all start
together, runs its updates and prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sessionware import Context, Router, session
from sessionware.store import BaseSessionStore

from .conftest import POSTGRES_URL

PROCESSES = 4
TASKS = 25
UPDATES = 20
TOTAL = PROCESSES * TASKS * UPDATES
HANDLER_PAUSE = 0.001
"""What the handler awaits between reading and writing the counter (an API call, say)."""

REPO = Path(__file__).resolve().parents[1]


def open_store(backend: str, target: str, url: str) -> BaseSessionStore:
    """The worker's own store on the shared file or table."""
    if backend == "sqlite":
        from sessionware.stores.sql.sqlite import SQLiteSessionStore

        return SQLiteSessionStore(target)
    from sessionware.stores.sql.postgres import PostgresSessionStore

    return PostgresSessionStore.from_url(url, table=target, pool_options={"min_size": 2, "max_size": 4})


def update(update_id: int) -> dict[str, Any]:
    """A Telegram-shaped ``/inc`` from user 1: every update goes to the same session."""
    return {
        "update_id": update_id,
        "message": {"message_id": update_id, "from": {"id": 1}, "chat": {"id": 1, "type": "private"}, "text": "/inc"},
    }


async def worker(backend: str, target: str, url: str, isolation: str, worker_id: int) -> dict[str, Any]:
    store = open_store(backend, target, url)
    router = Router()
    router.use(session(store, isolation=isolation, lease=30, lock_wait=120))  # type: ignore[arg-type]

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        n = ctx.session.get("n", 0)
        await asyncio.sleep(HANDLER_PAUSE)
        ctx.session["n"] = n + 1

    await store.get("warm-up")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()

    async def task(t: int) -> int:
        for i in range(UPDATES):
            await router.handle(update(worker_id * 10_000 + t * 100 + i))
        return UPDATES

    done = sum(await asyncio.gather(*(task(t) for t in range(TASKS))))
    elapsed = time.monotonic() - started
    await store.close()
    return {"worker": worker_id, "done": done, "seconds": elapsed}


async def run_workers(backend: str, target: str, url: str, isolation: str) -> list[dict[str, Any]]:
    """Start the workers, release them together, and return their summaries."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.test_sql_isolation",
            backend,
            target,
            url,
            isolation,
            str(w),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for w in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            if line != b"ready\n":
                _, err = await child.communicate()
                pytest.fail(f"worker did not start: {line!r} {err.decode()}")
        outputs = await asyncio.wait_for(asyncio.gather(*(c.communicate(b"go\n") for c in children)), 120)
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]


def leases_left(store: BaseSessionStore) -> int:
    """How many lease rows a SQLite store's file still holds."""
    with closing(sqlite3.connect(store.path)) as conn:  # type: ignore[attr-defined]
        return int(conn.execute(f'SELECT count(*) FROM "{store.table}_locks"').fetchone()[0])  # type: ignore[attr-defined]


async def pg_leases_left(store: BaseSessionStore) -> int:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{store.table}_locks"'))  # type: ignore[attr-defined]
    finally:
        await conn.close()


def target_of(backend: str, store: BaseSessionStore) -> str:
    return str(store.path) if backend == "sqlite" else str(store.table)  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_distributed_isolation_loses_no_update_across_processes(
    backend: str, store: BaseSessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    await store.get("warm-up")
    results = await run_workers(backend, target_of(backend, store), POSTGRES_URL, "distributed")
    assert sum(r["done"] for r in results) == TOTAL
    assert await store.get("1") == {"n": TOTAL}
    left = leases_left(store) if backend == "sqlite" else await pg_leases_left(store)
    assert left == 0, "every lease was released by its commit"
    with capsys.disabled():
        slowest = max(r["seconds"] for r in results)
        print(f"\n{backend} distributed: n={TOTAL} of {TOTAL}, lost 0, slowest worker {slowest:.1f}s")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_local_isolation_loses_updates_across_processes(
    backend: str, store: BaseSessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failure distributed isolation prevents: each process serialises only its own updates."""
    await store.get("warm-up")
    results = await run_workers(backend, target_of(backend, store), POSTGRES_URL, "local")
    assert sum(r["done"] for r in results) == TOTAL, "every update ran and saved without an error"
    got = await store.get("1")
    assert got is not None
    assert got["n"] < TOTAL, "updates from other processes were overwritten"
    with capsys.disabled():
        print(f"\n{backend} local: n={got['n']} of {TOTAL}, lost {TOTAL - got['n']}")


if __name__ == "__main__":
    summary = asyncio.run(worker(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    print(json.dumps(summary), flush=True)
