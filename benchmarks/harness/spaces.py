"""Fresh, private namespaces for each measured subject: a Redis prefix, a PostgreSQL table, a SQLite file."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionware.store import BaseSessionStore


def unique_name(prefix: str = "swbench") -> str:
    """A name no other run uses (a valid Redis prefix, SQL table name and file stem)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def remove_sqlite_files(path: Path) -> None:
    """Delete a SQLite database and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def drop_redis_prefix(client: Any, prefix: str) -> None:
    """Delete every Redis key under ``prefix:`` (``client`` is a ``redis.asyncio.Redis``)."""
    batch: list[bytes] = []
    async for name in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)


@dataclass(frozen=True)
class StoreSpec:
    """How to open one of our stores in a fresh namespace; picklable, so child processes can open it too."""

    backend: str
    name: str
    workdir: Path
    redis_url: str
    postgres_url: str

    @property
    def shared(self) -> bool:
        """Whether several processes opening this spec reach the same data."""
        return self.backend != "memory"

    @property
    def sqlite_path(self) -> Path:
        """The database file of a SQLite spec."""
        return self.workdir / f"{self.name}.db"

    def open(self) -> BaseSessionStore:
        """Open the store (nothing connects until first use)."""
        if self.backend == "memory":
            from sessionware.stores.memory import InMemorySessionStore

            return InMemorySessionStore()
        if self.backend == "sqlite":
            from sessionware.stores.sql.sqlite import SQLiteSessionStore

            return SQLiteSessionStore(self.sqlite_path)
        if self.backend == "redis":
            from sessionware.stores.redis import RedisSessionStore

            return RedisSessionStore.from_url(self.redis_url, prefix=self.name)
        if self.backend == "postgres":
            from sessionware.stores.sql.postgres import PostgresSessionStore

            return PostgresSessionStore.from_url(self.postgres_url, table=self.name)
        raise ValueError(f"unknown backend {self.backend!r}")

    async def drop(self, store: BaseSessionStore) -> None:
        """Remove everything the store wrote in this namespace, then close it."""
        try:
            if self.backend == "redis":
                await drop_redis_prefix(store.client, self.name)  # type: ignore[attr-defined]
            elif self.backend == "postgres":
                await store.drop_tables()  # type: ignore[attr-defined]
        finally:
            await store.close()
            if self.backend == "sqlite":
                remove_sqlite_files(self.sqlite_path)
