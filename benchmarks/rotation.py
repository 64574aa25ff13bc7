"""How fast ``rotate_keys`` re-seals log entries on each backend: one log of ``--entries`` entries sealed with an
old key, re-sealed with a new one, then a rerun that finds nothing to do. Run:
``python benchmarks/rotation.py [--entries 20000] [--backends memory,sqlite,redis,postgres]``."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
import uuid
from typing import Any

from sessionware import EncryptedStore, KeyRing, open_store, rotate_keys

REDIS_URL = os.environ.get("SESSIONWARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get("SESSIONWARE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
OLD = base64.urlsafe_b64encode(bytes(range(32))).decode()
NEW = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()


def url_for(backend: str, folder: str) -> str:
    name = uuid.uuid4().hex[:10]
    return {
        "memory": "memory://",
        "sqlite": f"sqlite:///{folder}/{name}.db",
        "redis": f"{REDIS_URL}?prefix=bench{name}",
        "postgres": f"{POSTGRES_URL}?table=bench_rotation_{name}",
    }[backend]


async def measure(backend: str, entries: int, folder: str) -> str:
    inner: Any = open_store(url_for(backend, folder))
    try:
        old = EncryptedStore(inner, KeyRing({"old": OLD}))
        message = {"role": "user", "content": "a message of about a hundred bytes " * 3}
        for start in range(0, entries, 1000):
            await old.log_append("log:bench", [message] * min(1000, entries - start))
        both = EncryptedStore(inner, KeyRing({"new": NEW, "old": OLD}))
        began = time.perf_counter()
        done = await rotate_keys(both, logs=["log:bench"])
        took = time.perf_counter() - began
        began = time.perf_counter()
        again = await rotate_keys(both, logs=["log:bench"])
        rerun = time.perf_counter() - began
        assert done.entries_resealed == entries
        assert again.entries_current == entries
        return (
            f"{backend:9} re-sealed {entries} entries in {took:.2f} s ({entries / took:,.0f} entries/s); "
            f"rerun (nothing to do) {rerun:.2f} s"
        )
    finally:
        if backend == "redis":
            names = [n async for n in inner.client.scan_iter(match=f"{inner.prefix}:*", count=1000)]
            if names:
                await inner.client.delete(*names)
        elif backend == "postgres":
            await inner.drop_tables()
        await inner.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--backends", default="memory,sqlite,redis,postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            print(await measure(backend, args.entries, folder))


if __name__ == "__main__":
    asyncio.run(main())
