"""What is measured: our Router + session() on each backend, and the raw clients and peers doing the same work.

Every subject handles Telegram-shaped update dicts and does the same work per
update (:func:`apply_update`): load the sender's session, increment a counter,
append the text to a list kept to the newest ``keep`` items, save. Each opens
its own fresh namespace and removes it on ``close(drop=True)``. Peers' and
drivers' packages are imported only when their subject opens. W2's subjects
(agent conversations) are in :mod:`benchmarks.harness.turns`.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sessionware.bot import Context, Router, session
from sessionware.bot.adapters import Update
from sessionware.isolation import IsolationName as Isolation
from sessionware.store import BaseSessionStore

from .spaces import StoreSpec, drop_redis_prefix, remove_sqlite_files

Handler = Callable[[Update], Awaitable[object]]


def apply_update(session: dict[str, Any], text: str, keep: int) -> None:
    """The work of one update: count it and keep its text among the newest ``keep``."""
    session["count"] = session.get("count", 0) + 1
    notes = session.get("notes")
    if notes is None:
        notes = session["notes"] = []
    notes.append(text)
    if len(notes) > keep:
        del notes[: len(notes) - keep]


def make_update(update_id: int, user_id: int) -> Update:
    """A Telegram Bot API text message from ``user_id`` in its private chat."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000 + update_id,
            "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Bench"},
            "text": f"note {update_id}",
        },
    }


@dataclass(frozen=True)
class Recipe:
    """How to build one subject in one namespace; picklable, so a child process can build it too."""

    kind: str
    backend: str
    name: str
    workdir: Path
    redis_url: str
    postgres_url: str
    isolation: Isolation = "local"
    """Ours: ``session(isolation=...)``. aiogram: ``"distributed"`` adds ``RedisEventIsolation``."""
    keep: int = 20

    def build(self) -> Subject:
        """A new, unopened subject."""
        return SUBJECTS[self.kind](self)

    def store_spec(self) -> StoreSpec:
        """Where our store of this recipe lives."""
        return StoreSpec(self.backend, self.name, self.workdir, self.redis_url, self.postgres_url)


class Subject(ABC):
    """One implementation of the per-update work, in its own namespace."""

    kind: ClassVar[str]

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    @abstractmethod
    async def open(self) -> None:
        """Connect and create what the subject needs."""

    @abstractmethod
    def handler(self) -> Handler:
        """The coroutine function that handles one update."""

    @abstractmethod
    async def counts(self, user_ids: Sequence[int]) -> int:
        """The sum of the stored counters of ``user_ids`` (to find lost updates)."""

    @abstractmethod
    async def close(self, *, drop: bool) -> None:
        """Release connections; with ``drop``, first remove everything written in the namespace."""


def _sender_and_text(update: Update) -> tuple[int, str]:
    message = update["message"]
    return message["from"]["id"], message["text"]


class Ours(Subject):
    """sessionware: ``Router`` + ``session()`` on one of our stores."""

    kind = "ours"

    async def open(self) -> None:
        """Open our store and a router with the session middleware and one text handler."""
        self.spec = self.recipe.store_spec()
        self.store: BaseSessionStore = self.spec.open()
        keep = self.recipe.keep
        self.router = Router()
        self.router.use(session(self.store, isolation=self.recipe.isolation, lock_wait=300.0))

        @self.router.text()
        async def note(ctx: Context) -> None:
            apply_update(ctx.session, ctx.text or "", keep)

    def handler(self) -> Handler:
        """``router.handle``."""
        return self.router.handle

    async def counts(self, user_ids: Sequence[int]) -> int:
        """Read each user's session back through the store."""
        total = 0
        for user_id in user_ids:
            value = await self.store.get(str(user_id))
            total += 0 if value is None else int(value.get("count", 0))
        return total

    async def close(self, *, drop: bool) -> None:
        """Close the store, dropping its namespace first if asked."""
        if drop:
            await self.spec.drop(self.store)
        else:
            await self.store.close()


class DictJson(Subject):
    """A plain dict of JSON strings, with a stdlib ``json`` round trip per update."""

    kind = "dict+json"

    async def open(self) -> None:
        """Start with an empty dict."""
        self.data: dict[str, str] = {}

    def handler(self) -> Handler:
        """Load, change and store the JSON by hand."""
        data, keep = self.data, self.recipe.keep

        async def handle(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            key = str(user_id)
            raw = data.get(key)
            value = {} if raw is None else json.loads(raw)
            apply_update(value, text, keep)
            data[key] = json.dumps(value)

        return handle

    async def counts(self, user_ids: Sequence[int]) -> int:
        """Decode each stored string."""
        return sum(json.loads(self.data[str(u)])["count"] for u in user_ids if str(u) in self.data)

    async def close(self, *, drop: bool) -> None:
        """Forget the dict."""
        self.data.clear()


class RawSqlite(Subject):
    """sqlite3 called directly in the event loop: SELECT, then an upsert (WAL, synchronous=NORMAL)."""

    kind = "sqlite3"

    @property
    def path(self) -> Path:
        """The subject's database file."""
        return self.recipe.workdir / f"{self.recipe.name}.db"

    async def open(self) -> None:
        """Create the file and its table."""
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE sessions (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)")

    def handler(self) -> Handler:
        """One SELECT and one upsert per update, each its own transaction."""
        execute, keep = self.conn.execute, self.recipe.keep
        select = "SELECT value FROM sessions WHERE key = ?"
        upsert = (
            "INSERT INTO sessions (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )

        async def handle(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            key = str(user_id)
            row = execute(select, (key,)).fetchone()
            value = {} if row is None else json.loads(row[0])
            apply_update(value, text, keep)
            execute(upsert, (key, json.dumps(value).encode()))

        return handle

    async def counts(self, user_ids: Sequence[int]) -> int:
        """Read every row."""
        wanted = {str(u) for u in user_ids}
        rows = self.conn.execute("SELECT key, value FROM sessions").fetchall()
        return sum(json.loads(value)["count"] for key, value in rows if key in wanted)

    async def close(self, *, drop: bool) -> None:
        """Close the connection; with ``drop``, delete the file."""
        self.conn.close()
        if drop:
            remove_sqlite_files(self.path)


def redis_client(url: str) -> Any:
    """redis-py's asyncio client as its users create it by hand: ``Redis.from_url`` with its defaults.

    The default pool (a connection per concurrent command, hiredis parser when
    installed) measured faster here than a ``BlockingConnectionPool``, so it is
    the stronger baseline.
    """
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url)


class RawRedis(Subject):
    """redis-py asyncio by hand: GET, JSON round trip, SET (hiredis parser when installed)."""

    kind = "redis-py"

    async def open(self) -> None:
        """Create the client (it connects on first use)."""
        self.client = redis_client(self.recipe.redis_url)

    def handler(self) -> Handler:
        """GET, change, SET."""
        client, prefix, keep = self.client, self.recipe.name + ":", self.recipe.keep

        async def handle(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            name = f"{prefix}{user_id}"
            raw = await client.get(name)
            value = {} if raw is None else json.loads(raw)
            apply_update(value, text, keep)
            await client.set(name, json.dumps(value))

        return handle

    async def counts(self, user_ids: Sequence[int]) -> int:
        """MGET the users' keys in batches."""
        total = 0
        for start in range(0, len(user_ids), 500):
            names = [f"{self.recipe.name}:{u}" for u in user_ids[start : start + 500]]
            total += sum(json.loads(raw)["count"] for raw in await self.client.mget(names) if raw is not None)
        return total

    async def close(self, *, drop: bool) -> None:
        """Delete the prefix's keys if asked; close the client."""
        try:
            if drop:
                await drop_redis_prefix(self.client, self.recipe.name)
        finally:
            await self.client.aclose()


class Aiogram(Subject):
    """aiogram 3's ``RedisStorage`` (``get_data`` / ``set_data``), optionally under ``RedisEventIsolation``.

    Created with ``RedisStorage.from_url``, aiogram's documented way, with its default client settings.
    """

    kind = "aiogram"

    async def open(self) -> None:
        """Create the storage (and the isolation, for ``isolation="distributed"``)."""
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage

        self.storage = RedisStorage.from_url(
            self.recipe.redis_url, key_builder=DefaultKeyBuilder(prefix=self.recipe.name)
        )
        self.isolation = self.storage.create_isolation() if self.recipe.isolation == "distributed" else None

    def _key(self, user_id: int) -> Any:
        from aiogram.fsm.storage.base import StorageKey

        return StorageKey(bot_id=1, chat_id=user_id, user_id=user_id)

    def handler(self) -> Handler:
        """``get_data``, change, ``set_data``; under ``isolation.lock(key)`` when isolated."""
        from aiogram.fsm.storage.base import StorageKey

        storage, isolation, keep = self.storage, self.isolation, self.recipe.keep

        async def update_data(key: StorageKey, text: str) -> None:
            data = await storage.get_data(key)
            apply_update(data, text, keep)
            await storage.set_data(key, data)

        async def handle(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            key = StorageKey(bot_id=1, chat_id=user_id, user_id=user_id)
            await update_data(key, text)

        if isolation is None:
            return handle
        lock = isolation.lock

        async def handle_isolated(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            key = StorageKey(bot_id=1, chat_id=user_id, user_id=user_id)
            async with lock(key):
                await update_data(key, text)

        return handle_isolated

    async def counts(self, user_ids: Sequence[int]) -> int:
        """``get_data`` for each user."""
        total = 0
        for user_id in user_ids:
            total += int((await self.storage.get_data(self._key(user_id))).get("count", 0))
        return total

    async def close(self, *, drop: bool) -> None:
        """Delete the prefix's keys if asked; close the storage and its client."""
        try:
            if drop:
                await drop_redis_prefix(self.storage.redis, self.recipe.name)
        finally:
            await self.storage.close()


class RawAsyncpg(Subject):
    """asyncpg by hand on a pool: one connection per update, SELECT, then an upsert."""

    kind = "asyncpg"

    async def open(self) -> None:
        """Create the pool (asyncpg's default size, as our store's) and the table."""
        import asyncpg

        self.pool = await asyncpg.create_pool(self.recipe.postgres_url)
        table = self.recipe.name
        await self.pool.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)")
        self.select = f"SELECT value FROM {table} WHERE key = $1"
        self.upsert = (
            f"INSERT INTO {table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )

    def handler(self) -> Handler:
        """Acquire, SELECT, change, upsert, release."""
        pool, select, upsert, keep = self.pool, self.select, self.upsert, self.recipe.keep

        async def handle(update: Update) -> None:
            user_id, text = _sender_and_text(update)
            key = str(user_id)
            async with pool.acquire() as conn:
                raw = await conn.fetchval(select, key)
                value = {} if raw is None else json.loads(raw)
                apply_update(value, text, keep)
                await conn.execute(upsert, key, json.dumps(value).encode())

        return handle

    async def counts(self, user_ids: Sequence[int]) -> int:
        """Read every row."""
        wanted = {str(u) for u in user_ids}
        rows = await self.pool.fetch(f"SELECT key, value FROM {self.recipe.name}")
        return sum(json.loads(row["value"])["count"] for row in rows if row["key"] in wanted)

    async def close(self, *, drop: bool) -> None:
        """Drop the table if asked; close the pool."""
        try:
            if drop:
                await self.pool.execute(f"DROP TABLE IF EXISTS {self.recipe.name}")
        finally:
            await self.pool.close()


SUBJECTS: dict[str, type[Subject]] = {
    cls.kind: cls for cls in (Ours, DictJson, RawSqlite, RawRedis, Aiogram, RawAsyncpg)
}
