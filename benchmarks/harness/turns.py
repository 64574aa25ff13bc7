"""W2's subjects: one agent turn on our SessionManager, on the agent frameworks' own stores and ours under them,
and by hand with the raw clients.

A turn is what an agent does per exchange: append the user's message and the
reply (about 200 characters each, in one call) and read the newest ``window``
messages back, oldest first. Conversations are created empty and filled in
bulk through :meth:`TurnSubject.append_bulk` before the timed turns. Every
subject stores each message as JSON and decodes what it reads. Each opens its
own fresh namespace and removes it on ``close(drop=True)``; peers' and
drivers' packages are imported only when their subject opens.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from sessionware.store import BaseSessionStore

from .spaces import StoreSpec, drop_redis_prefix, remove_sqlite_files
from .subjects import redis_client

Message = dict[str, str]
C = TypeVar("C")

MESSAGE_CHARS = 200
_FILLER = (
    "Could you compare the trade-offs of write-ahead logging and rollback journals for a small service, "
    "including durability, concurrency of readers and writers, checkpoint pauses and recovery time after a crash? "
)


def exchange(number: int) -> list[Message]:
    """Exchange ``number`` of a conversation: a user message and the reply, ``MESSAGE_CHARS`` characters each."""
    return [
        {"role": "user", "content": f"question {number}: {_FILLER}"[:MESSAGE_CHARS]},
        {"role": "assistant", "content": f"answer {number}: {_FILLER}"[:MESSAGE_CHARS]},
    ]


def history(start: int, count: int) -> list[Message]:
    """``count`` messages of consecutive exchanges, the first one being exchange ``start``'s user message."""
    messages: list[Message] = []
    number = start
    while len(messages) < count:
        messages.extend(exchange(number))
        number += 1
    return messages[:count]


@dataclass(frozen=True)
class TurnRecipe:
    """How to build one W2 subject in one namespace."""

    kind: str
    backend: str
    name: str
    workdir: Path
    redis_url: str
    postgres_url: str
    window: int = 20

    def build(self) -> TurnSubject[Any]:
        """A new, unopened subject."""
        return TURN_SUBJECTS[self.kind](self)

    def store_spec(self) -> StoreSpec:
        """Where our store of this recipe lives."""
        return StoreSpec(self.backend, self.name, self.workdir, self.redis_url, self.postgres_url)

    @property
    def sqlite_path(self) -> Path:
        """The database file of a SQLite subject."""
        return self.workdir / f"{self.name}.db"


class TurnSubject(ABC, Generic[C]):
    """One implementation of a conversation store, in its own namespace; ``C`` is its conversation handle."""

    kind: ClassVar[str]

    def __init__(self, recipe: TurnRecipe) -> None:
        self.recipe = recipe

    @abstractmethod
    async def open(self) -> None:
        """Connect and create what the subject needs."""

    @abstractmethod
    async def create(self, number: int) -> C:
        """Start conversation ``number`` (unique within the subject), empty."""

    @abstractmethod
    async def append_bulk(self, conversation: C, messages: list[Message]) -> None:
        """Append many messages at once, the subject's own bulk path (prefill, not timed)."""

    @abstractmethod
    async def turn(self, conversation: C, messages: list[Message]) -> tuple[int, str]:
        """Append ``messages`` and read the newest ``window``; return how many were read and the newest content."""

    @abstractmethod
    async def stored(self, conversation: C) -> int:
        """How many messages the conversation holds (read back through the subject)."""

    @abstractmethod
    async def close(self, *, drop: bool) -> None:
        """Release connections; with ``drop``, first remove everything written in the namespace."""


class OursTurns(TurnSubject[tuple[str, str]]):
    """sessionware: ``SessionManager`` on one of our stores; ``add_messages`` then ``history(last=window)``."""

    kind = "ours"

    async def open(self) -> None:
        """Open our store and a manager on it."""
        from sessionware.agents import SessionManager

        self.spec = self.recipe.store_spec()
        self.store: BaseSessionStore = self.spec.open()
        self.manager = SessionManager(self.store)

    async def create(self, number: int) -> tuple[str, str]:
        """``create_session`` for user ``user-<number>``; the handle is (session id, user id)."""
        user = f"user-{number}"
        session = await self.manager.create_session(user)
        return session.id, user

    async def append_bulk(self, conversation: tuple[str, str], messages: list[Message]) -> None:
        """One ``add_messages`` call."""
        session_id, user = conversation
        await self.manager.add_messages(session_id, messages, user_id=user)

    async def turn(self, conversation: tuple[str, str], messages: list[Message]) -> tuple[int, str]:
        """``add_messages`` and ``history(last=window)``, both checking that the session is the user's."""
        session_id, user = conversation
        manager = self.manager
        await manager.add_messages(session_id, messages, user_id=user)
        window = await manager.history(session_id, last=self.recipe.window, user_id=user)
        return len(window), window[-1].text

    async def stored(self, conversation: tuple[str, str]) -> int:
        """The length of the whole history."""
        session_id, user = conversation
        return len(await self.manager.history(session_id, user_id=user))

    async def close(self, *, drop: bool) -> None:
        """Close the store, dropping its namespace first if asked."""
        if drop:
            await self.spec.drop(self.store)
        else:
            await self.store.close()


class OpenAIAgentsTurns(TurnSubject[Any]):
    """What the openai-agents sessions share: a turn is ``add_items`` then ``get_items(limit=window)``."""

    async def append_bulk(self, conversation: Any, messages: list[Message]) -> None:
        """One ``add_items`` call."""
        await conversation.add_items(messages)

    async def turn(self, conversation: Any, messages: list[Message]) -> tuple[int, str]:
        """``add_items`` and ``get_items(limit=window)``."""
        await conversation.add_items(messages)
        items = await conversation.get_items(limit=self.recipe.window)
        return len(items), str(items[-1]["content"])

    async def stored(self, conversation: Any) -> int:
        """The length of ``get_items()``."""
        return len(await conversation.get_items())


class OpenAISqlite(OpenAIAgentsTurns):
    """openai-agents' ``SQLiteSession`` on one database file, one session object per conversation, kept open."""

    kind = "openai-sqlite"

    async def open(self) -> None:
        """Import the session class; the file is created by the first session."""
        from agents.memory import SQLiteSession

        self.session_class: Any = SQLiteSession
        self.sessions: list[Any] = []

    async def create(self, number: int) -> Any:
        """``SQLiteSession("conversation-<number>", path)``."""
        session = self.session_class(f"conversation-{number}", self.recipe.sqlite_path)
        self.sessions.append(session)
        return session

    async def close(self, *, drop: bool) -> None:
        """Close every session; with ``drop``, delete the file."""
        for session in self.sessions:
            session.close()
        if drop:
            remove_sqlite_files(self.recipe.sqlite_path)


class OpenAIRedis(OpenAIAgentsTurns):
    """openai-agents' ``RedisSession`` (``agents.extensions.memory``), one per conversation, on one shared client.

    The client is redis-py's ``Redis.from_url`` with its defaults, passed to
    every session as openai-agents documents for applications that manage
    their own client.
    """

    kind = "openai-redis"

    async def open(self) -> None:
        """Create the shared client (it connects on first use)."""
        from agents.extensions.memory import RedisSession

        self.session_class: Any = RedisSession
        self.client = redis_client(self.recipe.redis_url)

    async def create(self, number: int) -> Any:
        """``RedisSession("conversation-<number>", redis_client=client, key_prefix=<namespace>)``."""
        return self.session_class(f"conversation-{number}", redis_client=self.client, key_prefix=self.recipe.name)

    async def close(self, *, drop: bool) -> None:
        """Delete the prefix's keys if asked; close the client."""
        try:
            if drop:
                await drop_redis_prefix(self.client, self.recipe.name)
        finally:
            await self.client.aclose()


class OursOpenAITurns(OpenAIAgentsTurns):
    """sessionware's openai-agents ``SessionwareSession`` on one of our stores, one per conversation, one manager.

    A turn is the SDK's: ``add_items`` then ``get_items(limit=window)``, each checking that the session is the user's.
    """

    kind = "ours-openai"

    async def open(self) -> None:
        """Open our store and a manager on it."""
        from sessionware.agents import SessionManager
        from sessionware.integrations.openai_agents import SessionwareSession

        self.session_class: Any = SessionwareSession
        self.spec = self.recipe.store_spec()
        self.store: BaseSessionStore = self.spec.open()
        self.manager = SessionManager(self.store)

    async def create(self, number: int) -> Any:
        """``SessionwareSession("conversation-<number>-...", manager, user_id="user-<number>")``, created by its
        first ``add_items``."""
        return self.session_class(f"conversation-{number:08d}-w2", self.manager, user_id=f"user-{number}")

    async def close(self, *, drop: bool) -> None:
        """Close the store, dropping its namespace first if asked."""
        if drop:
            await self.spec.drop(self.store)
        else:
            await self.store.close()


class _OursStore:
    """Our store of a recipe and a manager on it, dropped on ``close(drop=True)``."""

    recipe: TurnRecipe

    async def _open_manager(self) -> Any:
        from sessionware.agents import SessionManager

        self.spec = self.recipe.store_spec()
        self.store: BaseSessionStore = self.spec.open()
        self.manager = SessionManager(self.store)
        return self.manager

    async def close(self, *, drop: bool) -> None:
        """Close the store, dropping its namespace first if asked."""
        if drop:
            await self.spec.drop(self.store)
        else:
            await self.store.close()


def pydantic_messages(messages: list[Message]) -> list[Any]:
    """The exchange's messages as Pydantic AI's: a user prompt request, a text response."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    return [
        ModelRequest(parts=[UserPromptPart(m["content"])])
        if m["role"] == "user"
        else ModelResponse(parts=[TextPart(m["content"])])
        for m in messages
    ]


def _pydantic_newest(messages: list[Any]) -> str:
    return str(messages[-1].parts[0].content)


class OursPydanticTurns(_OursStore, TurnSubject[tuple[Any, str]]):
    """sessionware's ``PydanticAIHistory`` on one of our stores, one per user: ``append`` then ``load(last=window)``."""

    kind = "ours-pydantic"

    async def open(self) -> None:
        """Open our store and a manager on it."""
        from sessionware.integrations.pydantic_ai import PydanticAIHistory

        self.history_class: Any = PydanticAIHistory
        await self._open_manager()

    async def create(self, number: int) -> tuple[Any, str]:
        """User ``user-<number>``'s history and conversation ``conversation-<number>`` (started by its first append)."""
        return self.history_class(self.manager, user_id=f"user-{number}"), f"conversation-{number}"

    async def append_bulk(self, conversation: tuple[Any, str], messages: list[Message]) -> None:
        """One ``append`` of all the Pydantic AI messages."""
        history, conversation_id = conversation
        await history.append(conversation_id, pydantic_messages(messages))

    async def turn(self, conversation: tuple[Any, str], messages: list[Message]) -> tuple[int, str]:
        """``append`` the exchange, ``load(last=window)``."""
        history, conversation_id = conversation
        await history.append(conversation_id, pydantic_messages(messages))
        loaded = await history.load(conversation_id, last=self.recipe.window)
        return len(loaded), _pydantic_newest(loaded)

    async def stored(self, conversation: tuple[Any, str]) -> int:
        """How many messages ``load()`` returns."""
        history, conversation_id = conversation
        return len(await history.load(conversation_id))


class PydanticMemory(TurnSubject[list[Any]]):
    """pydantic-ai's ``InMemoryConversationStore``: a turn ``save``s the conversation with the exchange added, then
    ``load(limit=window)``s it (the conversation to continue next turn)."""

    kind = "pydantic-memory"

    async def open(self) -> None:
        """Create the store."""
        from pydantic_ai.conversation import Conversation
        from pydantic_ai.conversation_store import InMemoryConversationStore

        self.conversation_class: Any = Conversation
        self.store: Any = InMemoryConversationStore()

    async def create(self, number: int) -> list[Any]:
        """A new ``Conversation("conversation-<number>")``, held in a one-item list (the handle)."""
        return [self.conversation_class(conversation_id=f"conversation-{number}")]

    async def append_bulk(self, conversation: list[Any], messages: list[Message]) -> None:
        """One ``save`` with all the messages added."""
        conversation[0].messages.extend(pydantic_messages(messages))
        await self.store.save(conversation[0])

    async def turn(self, conversation: list[Any], messages: list[Message]) -> tuple[int, str]:
        """``save`` with the exchange added, ``load(limit=window)``."""
        current = conversation[0]
        current.messages.extend(pydantic_messages(messages))
        await self.store.save(current)
        loaded = await self.store.load(current.conversation_id, limit=self.recipe.window)
        conversation[0] = loaded
        return len(loaded.messages), _pydantic_newest(loaded.messages)

    async def stored(self, conversation: list[Any]) -> int:
        """How many messages ``load()`` returns."""
        loaded = await self.store.load(conversation[0].conversation_id)
        return len(loaded.messages)

    async def close(self, *, drop: bool) -> None:
        """Nothing to release."""


class OursPydanticStore(PydanticMemory):
    """sessionware's ``SessionwareConversationStore`` (Pydantic AI's ``ConversationStore``) on one of our stores:
    the same turn as ``pydantic-memory``, ``save`` then ``load(limit=window)``."""

    kind = "ours-pydantic-store"

    async def open(self) -> None:
        """Open our store and the conversation store on it."""
        from pydantic_ai.conversation import Conversation

        from sessionware.integrations.pydantic_ai import SessionwareConversationStore

        self.conversation_class = Conversation
        self.spec = self.recipe.store_spec()
        self.sessions: BaseSessionStore = self.spec.open()
        self.store = SessionwareConversationStore(self.sessions)

    async def close(self, *, drop: bool) -> None:
        """Close our store, dropping its namespace first if asked."""
        if drop:
            await self.spec.drop(self.sessions)
        else:
            await self.sessions.close()


def adk_events(messages: list[Message]) -> list[Any]:
    """The exchange's messages as ADK events: the user's, then the agent's."""
    from google.adk.events.event import Event
    from google.genai import types

    return [
        Event(
            author="user" if m["role"] == "user" else "assistant",
            invocation_id="w2",
            content=types.Content(
                role="user" if m["role"] == "user" else "model", parts=[types.Part(text=m["content"])]
            ),
        )
        for m in messages
    ]


class ADKTurns(TurnSubject[list[Any]]):
    """What the ADK session services share: a turn is ``append_event`` of each event, then ``get_session`` of the
    newest ``window`` events (the session the next turn appends to). The handle is a one-item list of it."""

    APP = "w2"
    service: Any

    async def create(self, number: int) -> list[Any]:
        """``create_session`` for user ``user-<number>``."""
        session = await self.service.create_session(
            app_name=self.APP, user_id=f"user-{number}", session_id=f"conversation-{number}"
        )
        return [session]

    async def append_bulk(self, conversation: list[Any], messages: list[Message]) -> None:
        """``append_event`` of each message (ADK has no bulk path)."""
        for event in adk_events(messages):
            await self.service.append_event(conversation[0], event)
        conversation[0] = await self._window(conversation[0], 1)

    async def _window(self, session: Any, events: int | None) -> Any:
        from google.adk.sessions.base_session_service import GetSessionConfig

        config = None if events is None else GetSessionConfig(num_recent_events=events)
        return await self.service.get_session(
            app_name=session.app_name, user_id=session.user_id, session_id=session.id, config=config
        )

    async def turn(self, conversation: list[Any], messages: list[Message]) -> tuple[int, str]:
        """``append_event`` both, ``get_session(num_recent_events=window)``."""
        session = conversation[0]
        for event in adk_events(messages):
            await self.service.append_event(session, event)
        session = conversation[0] = await self._window(session, self.recipe.window)
        return len(session.events), str(session.events[-1].content.parts[0].text)

    async def stored(self, conversation: list[Any]) -> int:
        """How many events ``get_session`` returns."""
        return len((await self._window(conversation[0], None)).events)


class OursADKTurns(_OursStore, ADKTurns):
    """sessionware's ``SessionwareSessionService`` on one of our stores (prefilled by our own bulk path,
    ``add_messages`` of the events' history messages)."""

    kind = "ours-adk"

    async def open(self) -> None:
        """Open our store, a manager and the service on it."""
        from sessionware.integrations.adk import SessionwareSessionService, event_entries

        self.event_entries: Any = event_entries
        self.service = SessionwareSessionService(await self._open_manager())

    async def append_bulk(self, conversation: list[Any], messages: list[Message]) -> None:
        """One ``add_messages`` of every event's history messages (the session's revision moves: read it again)."""
        from sessionware.integrations.adk import _owner, _stored_id

        session = conversation[0]
        entries = [entry for event in adk_events(messages) for entry in self.event_entries(event)]
        await self.manager.add_messages(
            _stored_id(session.app_name, session.user_id, session.id),
            entries,
            user_id=_owner(session.app_name, session.user_id),
        )
        conversation[0] = await self._window(session, 1)


class ADKMemory(ADKTurns):
    """google-adk's ``InMemorySessionService``."""

    kind = "adk-memory"

    async def open(self) -> None:
        """Create the service."""
        from google.adk.sessions import InMemorySessionService

        self.service = InMemorySessionService()

    async def close(self, *, drop: bool) -> None:
        """Nothing to release."""


class ADKSqlite(ADKTurns):
    """google-adk's ``SqliteSessionService`` on one database file (aiosqlite)."""

    kind = "adk-sqlite"

    async def open(self) -> None:
        """Create the service; its file and tables appear with the first session."""
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        self.service = SqliteSessionService(str(self.recipe.sqlite_path))

    async def close(self, *, drop: bool) -> None:
        """Close the service; with ``drop``, delete the file."""
        await self.service.close()
        if drop:
            remove_sqlite_files(self.recipe.sqlite_path)


def asyncpg_url(url: str) -> str:
    """A ``postgresql://`` URL in SQLAlchemy's spelling for the asyncpg driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {url!r}")
    return f"postgresql+asyncpg://{rest}"


class OpenAISQLAlchemy(OpenAIAgentsTurns):
    """openai-agents' ``SQLAlchemySession`` on PostgreSQL (asyncpg driver), one per conversation, on one engine.

    The engine is ``create_async_engine(url)`` with SQLAlchemy's default pool
    (5 connections plus 10 overflow); the sessions create their tables.
    """

    kind = "openai-sqlalchemy"

    async def open(self) -> None:
        """Create the engine (it connects on first use)."""
        from agents.extensions.memory import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine

        self.session_class: Any = SQLAlchemySession
        self.engine: Any = create_async_engine(asyncpg_url(self.recipe.postgres_url))
        self.tables = (f"{self.recipe.name}_messages", f"{self.recipe.name}_sessions")

    async def create(self, number: int) -> Any:
        """``SQLAlchemySession("conversation-<number>", engine=engine, create_tables=True, ...)``."""
        messages, sessions = self.tables
        return self.session_class(
            f"conversation-{number}",
            engine=self.engine,
            create_tables=True,
            sessions_table=sessions,
            messages_table=messages,
        )

    async def close(self, *, drop: bool) -> None:
        """Drop the tables if asked; dispose of the engine."""
        try:
            if drop:
                async with self.engine.begin() as conn:
                    await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(self.tables)}")
        finally:
            await self.engine.dispose()


def _values(count: int, first: int = 1) -> str:
    """``($1, $2), ($3, $4), ...`` for ``count`` rows of two parameters."""
    return ", ".join(f"(${first + 2 * i}, ${first + 2 * i + 1})" for i in range(count))


class RawSqliteTurns(TurnSubject[str]):
    """sqlite3 called directly in the event loop, one row per message (WAL, synchronous=NORMAL, autocommit).

    A turn is one multi-row INSERT of both messages, then ``SELECT ... ORDER BY
    id DESC LIMIT window`` on an index of (conversation, id).
    """

    kind = "sqlite3"

    async def open(self) -> None:
        """Create the file, its table and index."""
        self.conn = sqlite3.connect(self.recipe.sqlite_path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, data TEXT NOT NULL)"
        )
        self.conn.execute("CREATE INDEX messages_conversation ON messages (conversation, id)")
        self.inserts: dict[int, str] = {}
        self.select = "SELECT data FROM messages WHERE conversation = ? ORDER BY id DESC LIMIT ?"

    def _insert(self, count: int) -> str:
        sql = self.inserts.get(count)
        if sql is None:
            rows = ", ".join(["(?, ?)"] * count)
            sql = self.inserts[count] = f"INSERT INTO messages (conversation, data) VALUES {rows}"
        return sql

    async def create(self, number: int) -> str:
        """The conversation's key; rows appear with its first message."""
        return f"conversation-{number}"

    async def append_bulk(self, conversation: str, messages: list[Message]) -> None:
        """``executemany`` in one transaction."""
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO messages (conversation, data) VALUES (?, ?)",
            [(conversation, json.dumps(m)) for m in messages],
        )
        self.conn.execute("COMMIT")

    async def turn(self, conversation: str, messages: list[Message]) -> tuple[int, str]:
        """One INSERT of all ``messages`` (atomic), one SELECT of the newest ``window``."""
        params: list[str] = []
        for message in messages:
            params += (conversation, json.dumps(message))
        self.conn.execute(self._insert(len(messages)), params)
        rows = self.conn.execute(self.select, (conversation, self.recipe.window)).fetchall()
        items = [json.loads(data) for (data,) in reversed(rows)]
        return len(items), str(items[-1]["content"])

    async def stored(self, conversation: str) -> int:
        """COUNT the conversation's rows."""
        row = self.conn.execute("SELECT count(*) FROM messages WHERE conversation = ?", (conversation,)).fetchone()
        return int(row[0])

    async def close(self, *, drop: bool) -> None:
        """Close the connection; with ``drop``, delete the file."""
        self.conn.close()
        if drop:
            remove_sqlite_files(self.recipe.sqlite_path)


class RawRedisTurns(TurnSubject[str]):
    """redis-py asyncio by hand: ``RPUSH`` of both messages, then ``LRANGE key -window -1``."""

    kind = "redis-py"

    async def open(self) -> None:
        """Create the client (it connects on first use)."""
        self.client = redis_client(self.recipe.redis_url)

    async def create(self, number: int) -> str:
        """The conversation's list key."""
        return f"{self.recipe.name}:conversation-{number}"

    async def append_bulk(self, conversation: str, messages: list[Message]) -> None:
        """One ``RPUSH`` of every message."""
        await self.client.rpush(conversation, *[json.dumps(m) for m in messages])

    async def turn(self, conversation: str, messages: list[Message]) -> tuple[int, str]:
        """``RPUSH`` both, ``LRANGE`` the newest ``window``."""
        client = self.client
        await client.rpush(conversation, *[json.dumps(m) for m in messages])
        raw = await client.lrange(conversation, -self.recipe.window, -1)
        items = [json.loads(data) for data in raw]
        return len(items), str(items[-1]["content"])

    async def stored(self, conversation: str) -> int:
        """``LLEN``."""
        return int(await self.client.llen(conversation))

    async def close(self, *, drop: bool) -> None:
        """Delete the prefix's keys if asked; close the client."""
        try:
            if drop:
                await drop_redis_prefix(self.client, self.recipe.name)
        finally:
            await self.client.aclose()


class RawAsyncpgTurns(TurnSubject[str]):
    """asyncpg by hand on a pool, one row per message: a multi-row INSERT, then ``ORDER BY id DESC LIMIT window``."""

    kind = "asyncpg"

    async def open(self) -> None:
        """Create the pool (asyncpg's default size, as our store's), the table and its index."""
        import asyncpg

        self.pool = await asyncpg.create_pool(self.recipe.postgres_url)
        table = self.recipe.name
        await self.pool.execute(
            f"CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, conversation TEXT NOT NULL, data TEXT NOT NULL)"
        )
        await self.pool.execute(f"CREATE INDEX {table}_conversation ON {table} (conversation, id)")
        self.inserts: dict[int, str] = {}
        self.select = f"SELECT data FROM {table} WHERE conversation = $1 ORDER BY id DESC LIMIT $2"

    def _insert(self, count: int) -> str:
        sql = self.inserts.get(count)
        if sql is None:
            sql = self.inserts[count] = f"INSERT INTO {self.recipe.name} (conversation, data) VALUES {_values(count)}"
        return sql

    async def create(self, number: int) -> str:
        """The conversation's key; rows appear with its first message."""
        return f"conversation-{number}"

    async def append_bulk(self, conversation: str, messages: list[Message]) -> None:
        """``executemany`` (one transaction)."""
        await self.pool.executemany(
            f"INSERT INTO {self.recipe.name} (conversation, data) VALUES ($1, $2)",
            [(conversation, json.dumps(m)) for m in messages],
        )

    async def turn(self, conversation: str, messages: list[Message]) -> tuple[int, str]:
        """On one pooled connection: INSERT all ``messages`` (one statement), SELECT the newest ``window``."""
        params: list[str] = []
        for message in messages:
            params += (conversation, json.dumps(message))
        async with self.pool.acquire() as conn:
            await conn.execute(self._insert(len(messages)), *params)
            rows = await conn.fetch(self.select, conversation, self.recipe.window)
        items = [json.loads(row[0]) for row in reversed(rows)]
        return len(items), str(items[-1]["content"])

    async def stored(self, conversation: str) -> int:
        """COUNT the conversation's rows."""
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {self.recipe.name} WHERE conversation = $1", conversation)
        )

    async def close(self, *, drop: bool) -> None:
        """Drop the table if asked; close the pool."""
        try:
            if drop:
                await self.pool.execute(f"DROP TABLE IF EXISTS {self.recipe.name}")
        finally:
            await self.pool.close()


TURN_SUBJECTS: dict[str, type[TurnSubject[Any]]] = {
    cls.kind: cls
    for cls in (
        OursTurns,
        OursOpenAITurns,
        OursPydanticTurns,
        OursADKTurns,
        OpenAISqlite,
        OpenAIRedis,
        OpenAISQLAlchemy,
        PydanticMemory,
        OursPydanticStore,
        ADKMemory,
        ADKSqlite,
        RawSqliteTurns,
        RawRedisTurns,
        RawAsyncpgTurns,
    )
}
