"""SessionManager: persistent agent sessions with append-only history, tool invocations and ownership."""

from __future__ import annotations

import asyncio
import copy
import hmac
import inspect
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from ..codec import DEFAULT_CODEC
from ..errors import ConflictError, InvalidValueError, LeaseExpiredError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, LocalIsolation, make_isolation
from ..keys import TTL, ttl_seconds
from ..migrations import Migration, MigrationError, Migrations
from ..providers.imports import Provider, messages_from_response
from ..store import (
    ClosableStore,
    FencedAppendStore,
    IndexPut,
    IndexStore,
    LockingStore,
    LogEditStore,
    LogEntry,
    LogStore,
    PurgeableStore,
    RawStore,
    ScannableStore,
    SessionStore,
    Versioned,
    VersionedStore,
    accepts_ttl,
)
from ..update import SessionUpdate
from ..urls import open_store
from .errors import MissingCapabilityError, SessionNotFoundError
from .history import TokenCounter, check_window, read_window, window_of
from .keyspace import (
    AgentKeys,
    activity_cursor,
    activity_score,
    check_cursor,
    check_session_id,
    check_user_id,
    cursor_position,
    index_entry,
    new_session_id,
)
from .models import Message, Session, SessionPage, Source, ToolInvocation
from .records import (
    JsonDict,
    SessionRecord,
    invocation_from_entry,
    message_entry,
    message_from_entry,
    metadata_dict,
    tool_entry,
)
from .segments import ChainReader, LogChain, fresh_key, shifted

DEFAULT_HISTORY_WINDOW: int | None = None
"""How many of the newest messages and tool invocations ``get_session`` includes unless told otherwise:
all of them, as the seed's ``getSession`` does."""

MAX_PAGE = 1000

R = TypeVar("R")

Window = int | Literal["all"]
MetadataEditor = Callable[[dict[str, Any]], "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None"]

_CALLER: ContextVar[str | None] = ContextVar("sessionware_caller", default=None)
# Never the owner of a stored session: user ids with a lone surrogate are refused when sessions are created.
_FOREIGN = "\udfff"


@contextmanager
def bound_caller(user_id: str) -> Iterator[None]:
    """Within the block (and tasks it starts), every ``SessionManager`` call acts for ``user_id`` only.

    A call without ``user_id`` checks ownership as if it had been given; one
    naming another user finds nothing (``None``, :class:`SessionNotFoundError`,
    an empty page). ``session_middleware`` binds the caller around each tool.
    """
    token = _CALLER.set(check_user_id(user_id))
    try:
        yield
    finally:
        _CALLER.reset(token)


_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls", "metadata", "is_error", "source"})


class SessionManager:
    """Agent sessions kept in a session store: one record per session, history and tool calls as logs.

    ``store`` is any :class:`~sessionware.SessionStore` that also implements
    :class:`~sessionware.store.LogStore` (all of sessionware's backends do),
    or a store URL for :func:`sessionware.urls.open_store` (the manager then
    owns the store and closes it in :meth:`close`); ``None`` keeps sessions in
    this process's memory. ``ttl`` is the default session lifetime, sliding on
    every write; ``max_messages`` and ``max_tool_invocations`` keep only the
    newest entries of each session; ``history_window`` is how many of the
    newest entries ``get_session`` includes by default (``None``, the
    default: all of them); ``namespace`` prefixes every key
    (see :class:`AgentKeys`). ``metadata_migrations`` (``{version: fn}``) bring
    the metadata of sessions stored at an older version to the newest one
    when they are read; the migrated metadata is written with the session's
    next change, and a new session starts at the newest version.

    Reads and writes that take ``user_id`` check that the session belongs to
    that user; a session owned by someone else behaves exactly like a missing
    one (``None`` from ``get_session``, :class:`SessionNotFoundError` from the
    rest). Writes to one session are serialised within this process; the
    message and tool logs get their sequence numbers from the store.
    """

    def __init__(
        self,
        store: SessionStore | str | None = None,
        *,
        ttl: TTL = None,
        max_messages: int | None = None,
        max_tool_invocations: int | None = None,
        namespace: str = "agent",
        history_window: int | None = DEFAULT_HISTORY_WINDOW,
        isolation: Literal["local", "distributed"] = "local",
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        metadata_migrations: Mapping[int, Migration] | None = None,
    ) -> None:
        self._owns_store = store is None or isinstance(store, str)
        if store is None:
            from ..stores.memory import InMemorySessionStore

            store = InMemorySessionStore()
        elif isinstance(store, str):
            store = open_store(store)
        if not isinstance(store, SessionStore):
            raise MissingCapabilityError(store, "SessionStore (get / set / delete)", "session records")
        if not isinstance(store, LogStore):
            raise MissingCapabilityError(
                store, "LogStore (log_append / log_read / log_delete ...)", "message history and tool invocations"
            )
        self._store: SessionStore = store
        self._codec = store.codec if isinstance(store, RawStore) else DEFAULT_CODEC
        self._logs: LogStore = store
        self._takes_ttl = accepts_ttl(store)
        self._ttl = self._check_ttl(ttl)
        self._max_messages = _positive_or_none(max_messages, "max_messages")
        self._max_tools = _positive_or_none(max_tool_invocations, "max_tool_invocations")
        self._window = check_window(history_window, "history_window")
        self._keys = AgentKeys(namespace)
        if isolation == "distributed" and (not isinstance(store, LockingStore) or not isinstance(store, RawStore)):
            raise MissingCapabilityError(store, "LockingStore (lock / commit ...)", "distributed isolation")
        self._updates = make_isolation(
            store, isolation=isolation, lease=lease, lock_wait=lock_wait, allowed=("local", "distributed")
        )
        self._metadata_migrations = (
            None if metadata_migrations is None else Migrations(metadata_migrations, name="metadata_migrations")
        )
        # The fenced one-round-trip append: with in-process isolation, on a store that has it. The records this
        # manager read or wrote last are kept (bytes and version); one that changed since makes the append miss.
        self._fast: _FastStore | None = None
        if self._updates.name == "local" and isinstance(self._updates, LocalIsolation) and _fast_capable(store):
            self._fast = store  # type: ignore[assignment]
        self._recent: OrderedDict[str, Versioned] = OrderedDict()
        self._index: IndexStore | None = store if isinstance(store, IndexStore) else None

    @property
    def store(self) -> SessionStore:
        """The store sessions are kept in."""
        return self._store

    def for_user(self, user_id: str) -> UserSessions:
        """This manager as ``user_id`` sees it: every call checks that the session is theirs."""
        return UserSessions(self, user_id)

    @property
    def keys(self) -> AgentKeys:
        """The key layout of this manager's namespace."""
        return self._keys

    # -- sessions ------------------------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: TTL = None,
    ) -> Session:
        """Create a session owned by ``user_id``, under a fresh, unguessable id or the ``session_id`` given.

        A chosen ``session_id`` (e.g. a conversation id of your application)
        must have the shape of a session id (22-64 of ``A-Z a-z 0-9 - _``);
        :class:`~sessionware.errors.ConflictError` if a live session has it,
        also when several processes create it at once (exactly one wins).
        ``ttl`` overrides the manager's default lifetime for this session; it
        slides forward on every write and cannot be changed later.
        """
        check_user_id(user_id)
        if _foreign(user_id):
            raise InvalidValueError("user_id", "names another user than the caller this call is bound to")
        chosen = session_id is not None
        session_id = new_session_id() if session_id is None else check_session_id(session_id)
        meta = {} if metadata is None else metadata_dict(metadata)
        seconds = self._ttl if ttl is None else self._check_ttl(ttl)
        now = time.time()
        record = SessionRecord(
            id=session_id,
            user_id=user_id,
            metadata=meta,
            created_at=now,
            updated_at=now,
            ttl=seconds,
            expires_at=None if seconds is None else now + seconds,
            index=index_entry(now, session_id),
            metadata_version=0 if self._metadata_migrations is None else self._metadata_migrations.newest,
        )
        if seconds is not None:
            record.until["i"] = now + 2 * seconds
        key = self._keys.record(session_id)
        if chosen:
            await self._create_exclusive(key, record, seconds)
        elif self._fast is not None:
            async with self._updates.locks.hold(key):  # type: ignore[attr-defined]
                data = self._codec.encode(record.to_json())
                version = await self._fast.set_versioned(key, data, expected=None, ttl=seconds)
                self._remember(session_id, Versioned(data, version))
        else:
            async with self._updates.open(key, load=False) as update:
                await update.save(record.to_json(), ttl=seconds)
        try:
            await self._set(
                self._keys.user_index(user_id, record.index),
                {"id": session_id},
                None if seconds is None else 2 * seconds,
            )
            await self._put_activity(record, now)
        except BaseException:
            await self._store.delete(self._keys.record(session_id))
            raise
        return record.snapshot()

    async def _create_exclusive(self, key: str, record: SessionRecord, ttl: float | None) -> None:
        """Write a new record under a chosen id, refusing one that exists (compare-and-set where the store has it)."""
        session_id = record.id
        async with self._updates.open(key) as update:
            if update.existed:
                raise ConflictError(f"session {session_id!r} already exists")
            # Logs left by an expired session of the same id (they outlive its record) are not this session's.
            # Removed before the record appears, under the session's lock: once it is there, writers may append.
            await self._logs.log_delete(self._keys.history(session_id))
            await self._logs.log_delete(self._keys.tools(session_id))
            store = self._store
            if isinstance(store, VersionedStore) and isinstance(store, RawStore):
                data = store.codec.encode(record.to_json())
                try:
                    version = await store.set_versioned(key, data, expected=0, ttl=ttl)
                except ConflictError:
                    raise ConflictError(f"session {session_id!r} already exists") from None
                if self._fast is not None:
                    self._remember(session_id, Versioned(data, version))
            else:
                await update.save(record.to_json(), ttl=ttl)

    async def get_session(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        history: Window | None = None,
        tool_invocations: Window | None = None,
    ) -> Session | None:
        """A read-only snapshot of the session, or ``None`` if it is missing, expired or not ``user_id``'s.

        The whole retained history and all tool invocations by default, as the
        seed's ``getSession`` returns them (or the manager's
        ``history_window``); ``history=N`` / ``tool_invocations=N`` ask for the
        newest N (``"all"`` for everything, ``0`` for none). A window keeps
        tool calls and their results together (see :meth:`history`).
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        last_messages = self._window_arg(history, "history")
        last_tools = self._window_arg(tool_invocations, "tool_invocations")
        record = await self._load(session_id, owner)
        if record is None:
            return None
        messages: list[Message] = []
        if last_messages != 0:
            chain = self._hchain(record)
            messages = await read_window(ChainReader(self._logs, chain), chain.own, last=last_messages)
        tools = await self._read_tools(record, last=last_tools, before=None)
        return record.snapshot(messages, tools)

    async def update_session(
        self,
        session_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        replace: bool = False,
        remove: Iterable[str] = (),
        user_id: str | None = None,
        expected_version: int | None = None,
    ) -> Session:
        """Change a session's metadata; its ``id`` and ``user_id`` can never change.

        ``metadata`` is merged key by key into the stored metadata (or replaces
        it whole with ``replace=True``); keys in ``remove`` are deleted. The
        change is applied to the freshly loaded record under the session's lock,
        so concurrent updates of different keys are all kept. With
        ``expected_version`` (a snapshot's ``version``) the change is made only
        if nobody wrote the session since; else
        :class:`~sessionware.errors.ConflictError` and nothing is written.
        Returns a snapshot of the session without history
        (``get_session(..., history=0)``).
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        patch = {} if metadata is None else metadata_dict(metadata)
        if isinstance(remove, str) or not isinstance(remove, Iterable):
            raise InvalidValueError("remove", "must be an iterable of metadata keys")
        drop = list(remove)
        expected = _version_arg(expected_version)
        async with self._locked(session_id, owner) as (update, record):
            _require_version(record, expected)
            new = {} if replace else record.metadata
            new.update(patch)
            for key in drop:
                new.pop(key, None)
            record.metadata = new
            await self._save(update, record, time.time())
        return record.snapshot()

    async def edit_metadata(
        self,
        session_id: str,
        edit: MetadataEditor,
        *,
        user_id: str | None = None,
        expected_version: int | None = None,
    ) -> Session:
        """Read-modify-write the metadata atomically (within this process).

        ``edit`` receives a mutable deep copy of the current metadata, loaded
        under the session's lock, and either changes it in place (returning
        ``None``) or returns the new metadata; it may be a coroutine function.
        If it raises, nothing is written. ``expected_version`` works as in
        :meth:`update_session`.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        expected = _version_arg(expected_version)
        async with self._locked(session_id, owner) as (update, record):
            _require_version(record, expected)
            work = copy.deepcopy(record.metadata)
            out = edit(work)
            if inspect.isawaitable(out):
                out = await out
            record.metadata = metadata_dict(work if out is None else out)
            await self._save(update, record, time.time())
        return record.snapshot()

    async def delete_session(self, session_id: str, *, user_id: str | None = None, missing_ok: bool = False) -> None:
        """Delete the session, its history and tool invocations.

        Raises :class:`SessionNotFoundError` if it is missing or not
        ``user_id``'s, unless ``missing_ok``. Cancelled once it has begun, it
        finishes first, so no history outlives its record.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        progress = self._progress()

        async def erase() -> None:
            async with self._begin(progress, session_id, owner) as (update, record):
                await self._erase(update, record.id, record.user_id, record.index, record)

        try:
            await _to_the_end(erase(), progress)
        except SessionNotFoundError:
            if not missing_ok:
                raise

    async def list_sessions(self, user_id: str, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        """One page of ``user_id``'s sessions, newest first, without history.

        Pass ``next_cursor`` back as ``cursor`` for the next page; pages stay
        stable when sessions are created meanwhile. Only ever lists sessions
        of ``user_id``.
        """
        check_user_id(user_id)
        if _foreign(user_id):
            return SessionPage(sessions=(), next_cursor=None)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidValueError("limit", f"must be an int from 1 to {MAX_PAGE}, not {limit!r:.60}")
        after = None if cursor is None else check_cursor(cursor)
        if self._index is not None:
            return await self._page(self._index, user_id, limit, after)
        prefix = self._keys.user_prefix(user_id)
        scanner = self._scanner("list_sessions")
        found = [AgentKeys.entry_of(key[len(prefix) :]) async for key in scanner.scan(prefix)]
        entries = sorted((entry for entry in found if entry is not None), reverse=True)
        if after is not None:
            entries = [entry for entry in entries if entry < after]
        sessions: list[Session] = []
        next_cursor: str | None = None
        for position, entry in enumerate(entries):
            session_id = _session_of(entry)
            record = await self._load(session_id, user_id)
            if record is None:
                await self._store.delete(self._keys.user_index(user_id, entry))
                continue
            if record.index != entry:
                continue
            sessions.append(record.snapshot())
            if len(sessions) == limit:
                if position + 1 < len(entries):
                    next_cursor = entry
                break
        return SessionPage(sessions=tuple(sessions), next_cursor=next_cursor)

    async def _page(self, index: IndexStore, user_id: str, limit: int, after: str | None) -> SessionPage:
        """One page read from the user's activity index: its cost grows with ``limit``, not with their sessions."""
        key = self._keys.activity(user_id)
        if not await self._index_built(index, key):
            await self._build_index(index, user_id)
        before = None if after is None else cursor_position(after)
        sessions: list[Session] = []
        next_cursor: str | None = None
        last = before
        while next_cursor is None:
            want = limit - len(sessions) + 1
            found = await index.index_page(key, limit=want, before=before)
            for member, score in found:
                if member == _BUILT:
                    continue
                if len(sessions) == limit and last is not None:
                    next_cursor = activity_cursor(*last)  # one more is there: the next page starts after ours
                    break
                record = await self._load(member, user_id)
                if record is None:
                    await index.index_remove(key, member)  # expired or deleted: the index forgets it
                    continue
                sessions.append(record.snapshot())
                last = (score, member)
            if len(found) < want:
                break
            before = (found[-1][1], found[-1][0])
        return SessionPage(sessions=tuple(sessions), next_cursor=next_cursor)

    async def _index_built(self, index: IndexStore, key: str) -> bool:
        # The marker is the only member at score 0 (sessions score their activity in µs), and "!built" sorts
        # after everything else there: the one pair right after (0, "!built\x01") is it, if it is there.
        marker = await index.index_page(key, limit=1, before=(0.0, _BUILT + "\x01"))
        return bool(marker) and marker[0][0] == _BUILT

    async def _build_index(self, index: IndexStore, user_id: str) -> None:
        """Fill the activity index from the user's index entries (sessions stored before it, or imported)."""
        key = self._keys.activity(user_id)
        longest: float | None = 0.0
        if isinstance(self._store, ScannableStore):
            prefix = self._keys.user_prefix(user_id)
            entries = [key async for key in self._store.scan(prefix)]
            for entry_key in entries:
                entry = AgentKeys.entry_of(entry_key[len(prefix) :])
                if entry is None:
                    continue
                record = await self._load(_session_of(entry), user_id)
                if record is None or record.index != entry:
                    continue
                ttl = None if record.ttl is None else 2 * record.ttl
                longest = None if ttl is None or longest is None else max(longest, ttl)
                await index.index_put(key, record.id, activity_score(record.updated_at), ttl=ttl)
        if longest == 0.0:  # no session: the marker alone, for a while (a user may come back)
            longest = _EMPTY_INDEX_TTL if self._ttl is None else 2 * self._ttl
        await index.index_put(key, _BUILT, 0.0, ttl=longest)

    async def delete_user_data(self, user_id: str) -> int:
        """Delete every session of ``user_id`` with its history and tool invocations; return how many."""
        check_user_id(user_id)
        if _foreign(user_id):
            return 0
        prefix = self._keys.user_prefix(user_id)
        scanner = self._scanner("delete_user_data")
        keys = [key async for key in scanner.scan(prefix)]
        deleted = 0
        for key in keys:
            entry = AgentKeys.entry_of(key[len(prefix) :])
            if entry is not None:
                session_id = _session_of(entry)
                # Through the update unit, so a writer holding the session (here or, with distributed
                # isolation, in another process) finishes first and cannot write it back afterwards.
                async with self._updates.open(self._keys.record(session_id)) as update:
                    record = self._owned(update.key, update.load(), None)
                    if record is None:
                        await self._erase(update, session_id, user_id, entry)
                    elif _same_user(record.user_id, user_id):
                        await self._erase(update, session_id, user_id, record.index, record, everything=True)
                        deleted += 1
            await self._store.delete(key)
        if self._index is not None:
            await self._index.index_delete(self._keys.activity(user_id))
        return deleted

    # -- history and tool invocations ----------------------------------------------------------------

    async def add_message(
        self,
        session_id: str,
        role: str,
        content: str | Iterable[Any] | None,
        *,
        name: str | None = None,
        tool_call_id: str | None = None,
        tool_calls: Iterable[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        is_error: bool = False,
        source: Source | Mapping[str, Any] | None = None,
        user_id: str | None = None,
    ) -> Message:
        """Append one message; return it with its store-assigned ``seq``.

        ``role`` is system, developer, user, assistant or tool. ``content`` is
        a str or a list of content parts (:mod:`sessionware.providers.parts`,
        as models or mappings; raw bytes in a part's ``data`` are stored
        base64). Assistant messages may carry ``tool_calls`` (:class:`ToolCall`
        objects or ``{"id", "name", "arguments"}`` dicts; OpenAI and Anthropic
        shapes are accepted too) and then ``content`` may be ``None``; tool
        messages need the ``tool_call_id`` they answer, and ``is_error`` marks
        a failed one. ``source`` keeps the provider item the message came from
        (see :meth:`add_response`). The history is never read or rewritten:
        the cost does not grow with its length.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        entry = message_entry(
            role,
            content,
            name=name,
            tool_call_id=tool_call_id,
            tool_calls=tool_calls,
            metadata=metadata,
            is_error=is_error,
            source=source,
        )
        return (await self._append_messages(session_id, owner, [entry]))[0]

    async def add_messages(
        self, session_id: str, messages: Iterable[Mapping[str, Any] | Message], *, user_id: str | None = None
    ) -> list[Message]:
        """Append several messages at once, atomically and in order (e.g. a user turn and the reply).

        Each item is a :class:`Message` or a mapping with the keyword
        arguments of :meth:`add_message` (``role``, ``content``, ``name``,
        ``tool_call_id``, ``tool_calls``, ``metadata``, ``is_error``, ``source``).
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
            raise InvalidValueError("messages", "must be an iterable of messages")
        entries: list[JsonDict] = []
        for i, item in enumerate(messages):
            path = f"messages[{i}]."
            if isinstance(item, Message):
                fields: Mapping[str, Any] = {
                    "role": item.role,
                    "content": item.content,
                    "name": item.name,
                    "tool_call_id": item.tool_call_id,
                    "tool_calls": list(item.tool_calls) or None,
                    "metadata": item.metadata or None,
                    "is_error": item.is_error,
                    "source": item.source,
                }
            elif isinstance(item, Mapping):
                fields = item
                unknown = set(fields) - _MESSAGE_FIELDS
                if unknown:
                    raise InvalidValueError(f"messages[{i}]", f"has unknown fields {sorted(map(str, unknown))}")
            else:
                raise InvalidValueError(f"messages[{i}]", f"must be a mapping or a Message, not {type(item).__name__}")
            entries.append(
                message_entry(
                    fields.get("role"),
                    fields.get("content"),
                    name=fields.get("name"),
                    tool_call_id=fields.get("tool_call_id"),
                    tool_calls=fields.get("tool_calls"),
                    metadata=fields.get("metadata"),
                    is_error=fields.get("is_error", False),
                    source=fields.get("source"),
                    path=path,
                )
            )
        return await self._append_messages(session_id, owner, entries)

    async def add_response(
        self,
        session_id: str,
        response: object,
        *,
        provider: Provider | None = None,
        user_id: str | None = None,
    ) -> list[Message]:
        """Append what a model answered, as it answered it; return the messages with their ``seq``.

        ``response`` is an OpenAI ``ChatCompletion`` or Responses ``Response``,
        an Anthropic ``Message`` or a Gemini ``GenerateContentResponse`` (the
        SDK object or its plain dict form), or a list of that provider's
        request messages or items; ``provider`` (``"openai.chat"``,
        ``"openai.responses"``, ``"anthropic"``, ``"gemini"``) is told from the
        value unless given. Content parts, reasoning with its signature or
        encrypted content, refusals, tool calls and results are all kept, and
        each message keeps the provider's item as its ``source``, so exporting
        to the same provider gives back exactly what it sent. Appended
        atomically, like :meth:`add_messages` (the building blocks are
        :func:`sessionware.providers.messages_from_response` and the per-provider
        readers it uses).
        """
        return await self.add_messages(session_id, messages_from_response(response, provider), user_id=user_id)

    async def history(
        self,
        session_id: str,
        *,
        last: int | None = None,
        max_tokens: int | None = None,
        count_tokens: TokenCounter | None = None,
        before: int | None = None,
        user_id: str | None = None,
    ) -> list[Message]:
        """Messages of the session, oldest first: the efficient way to read a window of a long history.

        ``before`` keeps messages with ``seq < before`` (page backwards with
        the ``seq`` of the first message of the previous window); ``last``
        keeps the newest N; ``max_tokens`` keeps the newest run of messages
        whose tokens, counted by ``count_tokens`` (default: a rough 4
        characters per token), fit the budget. Only the window is read. A
        window never starts with a tool result whose calling assistant message
        is outside it (such results are dropped). With no bounds, the whole
        retained history is returned.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        last = check_window(last, "last")
        before = check_window(before, "before")
        max_tokens = check_window(max_tokens, "max_tokens")
        if count_tokens is not None and not callable(count_tokens):
            raise InvalidValueError("count_tokens", "must be a callable taking a Message and returning an int")
        if max_tokens is None and last != 0 and getattr(self._store, "overlapping_calls", False):
            # The record and the session's own log are read at once (one round trip on a pipelined or pooled
            # store); the entries are used only once the record says they are the whole history and the
            # session is the caller's.
            key = self._keys.history(session_id)
            record, entries = await asyncio.gather(
                self._load(session_id, owner), self._logs.log_read(key, before=before, last=last)
            )
            if record is None:
                raise SessionNotFoundError(session_id)
            if self._hchain(record).shape() == LogChain(key).shape():
                return window_of(key, entries, before=before)
        else:
            record = await self._load(session_id, owner)
        if record is None:
            raise SessionNotFoundError(session_id)
        chain = self._hchain(record)
        return await read_window(
            ChainReader(self._logs, chain),
            chain.own,
            last=last,
            before=before,
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )

    async def history_entries(
        self, session_id: str, *, last: int | None = None, user_id: str | None = None
    ) -> list[LogEntry]:
        """The stored history entries (``seq`` and the stored dict), oldest first, across forks and rewinds.

        For adapters that keep their own item shapes in the history; they must
        read through this rather than the history log key, which holds only a
        forked, rewound or compacted session's own part.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        last = check_window(last, "last")
        record = await self._load(session_id, owner)
        if record is None:
            raise SessionNotFoundError(session_id)
        if last == 0:
            return []
        chain = self._hchain(record)
        return await ChainReader(self._logs, chain).log_read(chain.own, last=last)

    async def track_tool_invocation(
        self,
        session_id: str,
        tool_name: str,
        *,
        call_id: str | None = None,
        arguments: Mapping[str, Any] | str | None = None,
        status: str = "success",
        result: Any = None,
        error: Mapping[str, Any] | None = None,
        started_at: datetime | float | None = None,
        duration: float | None = None,
        user_id: str | None = None,
    ) -> ToolInvocation:
        """Record one tool call on the session; return it with its store-assigned ``seq``.

        ``status`` is success, error, denied or action_required; ``error`` a
        mapping (code, message, ...) or ``None``; ``started_at`` an aware
        datetime or a Unix timestamp (default: now minus ``duration``);
        ``duration`` in seconds. ``arguments`` and ``result`` are stored as
        JSON (pydantic models are dumped, datetimes become ISO strings).
        ``call_id`` defaults to a fresh random id.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        now = time.time()
        if call_id is None:
            call_id = f"call_{secrets.token_urlsafe(12)}"
        elif type(call_id) is not str or not call_id:
            raise InvalidValueError("call_id", f"must be a non-empty str or None, not {call_id!r:.60}")
        entry = tool_entry(
            tool_name,
            call_id=call_id,
            arguments=arguments,
            status=status,
            result=result,
            error=error,
            started_at=_timestamp(started_at, now, duration),
            duration=duration,
        )
        seqs = await self._append_entries(session_id, owner, "t", [entry])
        return invocation_from_entry(self._keys.tools(session_id), LogEntry(seqs[0], entry))

    async def tool_invocations(
        self,
        session_id: str,
        *,
        last: int | None = None,
        before: int | None = None,
        user_id: str | None = None,
    ) -> list[ToolInvocation]:
        """Recorded tool invocations, oldest first; ``last`` / ``before`` window them like :meth:`history`."""
        check_session_id(session_id)
        owner = _opt_user(user_id)
        last = check_window(last, "last")
        before = check_window(before, "before")
        record = await self._load(session_id, owner)
        if record is None:
            raise SessionNotFoundError(session_id)
        return await self._read_tools(record, last=last, before=before)

    async def pop_message(self, session_id: str, *, user_id: str | None = None) -> Message | None:
        """Remove the newest message of the history and return it; ``None`` if the history is empty.

        Like openai-agents' ``pop_item`` (e.g. to retract a user turn before
        editing it). The removal is atomic in the store: concurrent pops never
        return the same message, and one racing an append takes either the
        appended message or the one before it. Its ``seq`` is never given to a
        later message, so a reader paging with ``seq`` never meets a number
        twice. ``message_count`` drops by one, ``version`` and ``updated_at``
        change and the session's expiry slides, as on any write; tool
        invocations are left as they are. An empty history writes nothing.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        logs = self._editable("pop_message")
        key = self._keys.history(session_id)

        async def pop(record: SessionRecord, now: float) -> tuple[LogEntry | None, LogChain | None]:
            chain = self._hchain(record)
            if chain.simple:
                entry = await logs.log_pop(chain.own)
                return (None if entry is None else shifted([entry], chain.offset)[0]), None
            newest = await ChainReader(self._logs, chain).log_read(chain.own, last=1)
            if not newest:
                return None, None
            if newest[0].seq > chain.floor and not chain.shared:
                entry = await logs.log_pop(chain.own)
                return (None if entry is None else shifted([entry], chain.offset)[0]), None
            # The newest message is in a log a fork reads too: hide it instead of removing it.
            cut = chain.cut(newest[0].seq - 1, fresh_key(key), max(record.messages, newest[0].seq))
            return newest[0], cut

        def count(record: SessionRecord, result: tuple[LogEntry | None, LogChain | None], now: float) -> bool:
            entry, cut = result
            if entry is None:
                return False
            record.messages = max(record.messages, entry.seq)
            record.messages_removed += 1
            if cut is not None:
                garbage[:] = self._hchain(record).unreferenced(cut)
                record.history = cut
            return True

        garbage: list[str] = []
        (entry, _), _ = await self._logged_write(session_id, owner, pop, count)
        await self._delete_logs(garbage)
        return None if entry is None else message_from_entry(key, entry)

    async def clear_history(self, session_id: str, *, user_id: str | None = None) -> Session:
        """Erase the conversation: every message and tool invocation; the session itself stays.

        Like openai-agents' ``clear_session``, except that the session (its
        id, owner, metadata, ``created_at`` and lifetime) is kept: only the
        history and the tool log are emptied. ``message_count`` and
        ``tool_invocation_count`` become 0, ``version`` and ``updated_at``
        change and the expiry slides. Numbering goes on: the next message gets
        a ``seq`` above every earlier one. Returns a snapshot without history.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        logs = self._editable("clear_history")
        history, tools = self._keys.history(session_id), self._keys.tools(session_id)

        fresh = fresh_key(history), fresh_key(tools)

        async def empty(chain: LogChain) -> int:
            if chain.simple:
                last = await logs.log_clear(chain.own)
                return last + chain.offset if last else 0
            return -1  # read by forks: replaced by a fresh log

        async def clear(record: SessionRecord, now: float) -> tuple[int, int]:
            return await empty(self._hchain(record)), await empty(self._tchain(record))

        def count(record: SessionRecord, last: tuple[int, int], now: float) -> bool:
            # Every number up to the log's last one is gone; later ones (appended since, when the
            # record is saved again after a lost lease) stay counted.
            garbage.clear()
            if last[0] < 0:
                old = self._hchain(record)
                record.history = LogChain(fresh[0], offset=record.messages)
                garbage.extend(old.unreferenced(record.history))
            record.messages = max(record.messages, last[0])
            record.messages_removed = last[0] if last[0] > 0 else record.messages
            if last[1] < 0:
                old = self._tchain(record)
                record.tool_log = LogChain(fresh[1], offset=record.tools)
                garbage.extend(old.unreferenced(record.tool_log))
            record.tools = max(record.tools, last[1])
            record.tools_removed = last[1] if last[1] > 0 else record.tools
            return True

        garbage: list[str] = []
        _, record = await self._logged_write(session_id, owner, clear, count)
        await self._delete_logs(garbage)
        return record.snapshot()

    async def fork_session(
        self,
        session_id: str,
        *,
        at: int | None = None,
        user_id: str | None = None,
        fork_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """A new session of the same owner that starts as this one did at message ``at`` (default: now).

        Its history is the messages with ``seq <= at``; its tool invocations
        those recorded before the first message after ``at`` was appended (all
        of them when ``at`` is the newest); its metadata a copy of the
        original's, with ``metadata`` merged over it; its lifetime the
        original's. ``forked_from`` of the snapshot is ``{"session_id", "seq"}``.
        ``fork_id`` chooses the new id (as ``create_session``'s ``session_id``).

        Nothing is copied: the fork reads the shared prefix from the original's
        logs, so the cost does not grow with its length (it reads only the
        messages after ``at``). From then on the shared logs are only appended
        to: popping into them, clearing or rewinding either session hides
        entries from that session alone. Deleting the original keeps the logs
        a fork reads (they expire with the fork; ``delete_user_data`` removes
        them); ``max_messages`` trims only logs no fork reads. Both sessions
        then go on independently; the fork's messages get numbers above
        ``at``. A cancelled fork has either been made whole or not at all.
        Returns a snapshot of the fork without history (``get_session`` reads it).
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        at = None if at is None else _seq_arg(at, "at")
        new_id = new_session_id() if fork_id is None else check_session_id(fork_id)
        extra = {} if metadata is None else metadata_dict(metadata)
        progress = self._progress()

        async def fork() -> SessionRecord:
            async with self._begin(progress, session_id, owner) as (update, parent):
                upto = parent.messages if at is None else at
                if upto > parent.messages:
                    raise InvalidValueError("at", f"is {upto}, after the newest message ({parent.messages})")
                hchain, tchain = self._hchain(parent), self._tchain(parent)
                dropped, tools_upto, tools_dropped = await self._after(hchain, tchain, upto, parent.tools)
                now = time.time()
                ttl = parent.ttl
                record = SessionRecord(
                    id=new_id,
                    user_id=parent.user_id,
                    metadata={**copy.deepcopy(parent.metadata), **extra},
                    created_at=now,
                    updated_at=now,
                    ttl=ttl,
                    expires_at=None if ttl is None else now + ttl,
                    index=index_entry(now, new_id),
                    metadata_version=parent.metadata_version,
                    messages=upto,
                    messages_removed=upto - (parent.message_count - dropped),
                    tools=tools_upto,
                    tools_removed=tools_upto - (parent.tool_invocation_count - tools_dropped),
                    history=LogChain(self._keys.history(new_id), offset=upto, base=hchain.prefix(upto, mine=False)),
                    tool_log=LogChain(
                        self._keys.tools(new_id), offset=tools_upto, base=tchain.prefix(tools_upto, mine=False)
                    ),
                )
                shared_logs = {*self._hchain(record).logs(), *self._tchain(record).logs()}
                record.forked_from = {"session_id": parent.id, "seq": upto}
                if ttl is not None:
                    record.until = {"i": now + 2 * ttl, "h": now + 2 * ttl, "t": now + 2 * ttl}
                    for key in shared_logs:
                        await self._logs.log_append(key, [], ttl=2 * ttl)
                # The original learns first that its logs are read by a fork: it never edits them in place again.
                marked = hchain.mark_shared(upto)
                marked = tchain.mark_shared(tools_upto) or marked
                if marked:
                    parent.history, parent.tool_log = hchain, tchain
                    await self._save(update, parent, now)
                await self._create_exclusive(self._keys.record(new_id), record, ttl)
                try:
                    await self._set(
                        self._keys.user_index(record.user_id, record.index),
                        {"id": new_id},
                        None if ttl is None else 2 * ttl,
                    )
                    await self._put_activity(record, now)
                except BaseException:
                    await self._store.delete(self._keys.record(new_id))
                    raise
                return record

        return (await _to_the_end(fork(), progress)).snapshot()

    async def rewind(self, session_id: str, *, to: int, user_id: str | None = None) -> Session:
        """Drop every message with ``seq > to``, and the tool invocations recorded since the first of them.

        Atomic under the session's update unit; the dropped numbers are never
        given again (the next message gets one above every earlier one).
        Nothing is read or rewritten but what is dropped. ``to`` at or after
        the newest message changes nothing. Returns a snapshot without history.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        to = _seq_arg(to, "to")
        fresh = fresh_key(self._keys.history(session_id)), fresh_key(self._keys.tools(session_id))
        garbage: list[str] = []

        async def cut(record: SessionRecord, now: float) -> tuple[int, int, int] | None:
            hchain, tchain = self._hchain(record), self._tchain(record)
            dropped, tools_upto, tools_dropped = await self._after(hchain, tchain, to, record.tools)
            if not dropped:
                return None
            return dropped, tools_upto, tools_dropped

        def count(record: SessionRecord, result: tuple[int, int, int] | None, now: float) -> bool:
            if result is None:
                return False
            dropped, tools_upto, tools_dropped = result
            old = self._hchain(record)
            record.history = old.cut(to, fresh[0], record.messages)
            garbage[:] = old.unreferenced(record.history)
            record.messages_removed += dropped
            if tools_dropped:
                old = self._tchain(record)
                record.tool_log = old.cut(tools_upto, fresh[1], record.tools)
                garbage.extend(old.unreferenced(record.tool_log))
                record.tools_removed += tools_dropped
            return True

        _, record = await self._logged_write(session_id, owner, cut, count)
        await self._delete_logs(garbage)
        return record.snapshot()

    async def compact(
        self,
        session_id: str,
        *,
        keep_last: int,
        summarize: Callable[[list[Message]], Awaitable[str | Message]],
        keep_originals: bool = False,
        user_id: str | None = None,
    ) -> Message | None:
        """Replace all but the newest ``keep_last`` messages by one summary; return it (``None``: nothing to do).

        ``summarize`` gets the older messages, oldest first, and returns the
        summary's text (stored as a system message) or a :class:`Message`
        (its role, content and metadata are used). The boundary moves back so
        a tool call is never parted from its results. The summary takes the
        ``seq`` of the newest message it replaces and its metadata says which
        ones: ``{"compaction": {"from": first seq, "to": last seq, "count": n}}``,
        plus ``"originals"``: the id of a fork holding them when
        ``keep_originals`` (else they are no longer readable). ``summarize``
        runs outside the session's update unit; the replacement is then made
        under it, atomically, and messages appended meanwhile are kept. If the
        older messages changed meanwhile (a pop, rewind, clear or another
        compaction), :class:`~sessionware.errors.ConflictError` and nothing is
        written.
        """
        check_session_id(session_id)
        owner = _opt_user(user_id)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise InvalidValueError("keep_last", f"must be an int >= 0, not {keep_last!r:.60}")
        if not callable(summarize):
            raise InvalidValueError("summarize", "must be an async function taking the messages it replaces")
        record = await self._load(session_id, owner)
        if record is None:
            raise SessionNotFoundError(session_id)
        chain = self._hchain(record)
        messages = await read_window(ChainReader(self._logs, chain), chain.own)
        cut = max(len(messages) - keep_last, 0)
        while 0 < cut < len(messages) and messages[cut].role == "tool":
            cut -= 1
        older = messages[:cut]
        if len(older) < 1:
            return None
        shape, removed = chain.shape(), record.messages_removed
        first, upto = older[0].seq, older[-1].seq
        made = await summarize(list(older))
        info: JsonDict = {"from": first, "to": upto, "count": len(older)}
        if keep_originals:
            originals = await self.fork_session(session_id, at=upto, user_id=owner)
            info["originals"] = originals.id
        if isinstance(made, Message):
            meta = {**metadata_dict(made.metadata), "compaction": info}
            entry = message_entry(made.role, made.content, name=made.name, metadata=meta)
        elif isinstance(made, str):
            entry = message_entry("system", made, metadata={"compaction": info})
        else:
            raise InvalidValueError("summarize", f"must return a str or a Message, not {type(made).__name__}")
        summary_key = fresh_key(self._keys.history(session_id))

        async def write(record: SessionRecord, now: float) -> bool:
            current = self._hchain(record)
            if current.shape() != shape or record.messages_removed != removed:
                raise ConflictError(f"session {session_id!r}: its older messages changed while being summarized")
            entry["ts"] = now
            await self._logs.log_append(summary_key, [entry], ttl=self._log_ttl(record))
            return True

        def count(record: SessionRecord, done: bool, now: float) -> bool:
            old = self._hchain(record)
            record.history = old.compacted(upto, summary_key)
            garbage[:] = old.unreferenced(record.history)
            record.messages_removed += len(older) - 1
            return True

        garbage: list[str] = []
        await self._logged_write(session_id, owner, write, count)
        await self._delete_logs(garbage)
        return message_from_entry(summary_key, LogEntry(upto, entry))

    async def _after(self, hchain: LogChain, tchain: LogChain, upto: int, tools: int) -> tuple[int, int, int]:
        """How many messages follow ``upto``; the last tool seq recorded before them and how many tools follow."""
        later = await ChainReader(self._logs, hchain).log_read(hchain.own, after=upto)
        if not later:
            return 0, tools, 0
        since = float(later[0].value["ts"])
        reader = ChainReader(self._logs, tchain)
        dropped = 0
        boundary = tools
        before: int | None = None
        while True:
            chunk = await reader.log_read(tchain.own, before=before, last=64)
            for entry in reversed(chunk):
                stamp: Any = entry.value.get("ts", entry.value.get("started_at", 0.0))
                if float(stamp) < since:
                    return len(later), boundary, dropped
                dropped += 1
                boundary = entry.seq - 1
            if len(chunk) < 64:
                return len(later), boundary, dropped
            before = chunk[0].seq

    # -- maintenance ---------------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Remove expired records from stores that keep them until purged (SQL); return how many.

        Stores that expire on their own (memory's sweep aside, Redis) need no
        purging; for those without :class:`PurgeableStore` this returns 0.
        """
        if isinstance(self._store, PurgeableStore):
            return await self._store.purge_expired()
        return 0

    async def close(self) -> None:
        """Close the store if this manager opened it (default or URL); a store passed in stays open."""
        if self._owns_store and isinstance(self._store, ClosableStore):
            await self._store.close()

    async def __aenter__(self) -> SessionManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -----------------------------------------------------------------------------------

    async def _load(self, session_id: str, user_id: str | None) -> SessionRecord | None:
        """The stored record, or ``None`` if it is missing or (when ``user_id`` is given) someone else's."""
        key = self._keys.record(session_id)
        fast = self._fast
        if fast is None:
            data = await self._store.get(key)
        else:
            stored = await fast.get_versioned(key)
            data = None if stored is None else self._codec.decode(key, stored.data)
            if stored is not None:
                self._remember(session_id, stored)
        if data is None and user_id is not None:
            # As much work for a missing id as for someone else's, so the time taken does not tell them apart.
            _same_user(SessionRecord.from_json(key, self._codec.decode(key, _DECOY)).user_id, user_id)
        return self._owned(key, data, user_id)

    @asynccontextmanager
    async def _locked(self, session_id: str, user_id: str | None) -> AsyncIterator[tuple[SessionUpdate, SessionRecord]]:
        """Open the session's record through the update unit: held (lock, or lease), loaded, ownership checked."""
        async with self._updates.open(self._keys.record(session_id)) as update:
            record = self._owned(update.key, update.load(), user_id)
            if record is None:
                raise SessionNotFoundError(session_id)
            yield update, record

    async def _save(self, update: SessionUpdate, record: SessionRecord, now: float) -> None:
        """Write the record back, sliding its expiry; logs and index entry are extended first if due."""
        self._recent.pop(record.id, None)
        ttl = record.ttl
        for name in _stamp(record, now):
            assert ttl is not None  # only a session that expires has anything due
            if name == "i":
                await self._set(self._keys.user_index(record.user_id, record.index), {"id": record.id}, 2 * ttl)
            else:
                # An append of no entries only resets the log's expiry (a fork's keeps the shared logs).
                for key in self._chain(record, name).logs():
                    await self._logs.log_append(key, [], ttl=2 * ttl)
            record.until[name] = now + 2 * ttl
        await self._put_activity(record, now)
        await update.save(record.to_json(), ttl=ttl)

    async def _append_messages(self, session_id: str, user_id: str | None, entries: list[JsonDict]) -> list[Message]:
        key = self._keys.history(session_id)
        if not entries:
            if await self._load(session_id, user_id) is None:
                raise SessionNotFoundError(session_id)
            return []
        seqs = await self._append_entries(session_id, user_id, "h", entries)
        return [message_from_entry(key, LogEntry(seq, entry)) for seq, entry in zip(seqs, entries, strict=True)]

    async def _append_entries(
        self, session_id: str, user_id: str | None, log: Literal["h", "t"], entries: list[JsonDict]
    ) -> list[int]:
        """Append to the history (``"h"``) or tool log (``"t"``) and count the entries on the record.

        One fenced round trip when the record this manager kept is still the
        stored one; else the record is read, the log appended and the record
        written, under the session's hold (:meth:`_logged_write`).
        """
        fast = await self._append_fast(session_id, user_id, log, entries)
        if fast is not None:
            return fast

        async def append(record: SessionRecord, now: float) -> list[int]:
            for entry in entries:
                entry["ts"] = now
            chain = self._chain(record, log)
            max_len = None if chain.shared else self._max_len(log)
            seqs = await self._logs.log_append(chain.own, entries, ttl=self._log_ttl(record), max_len=max_len)
            return [seq + chain.offset for seq in seqs]

        def count(record: SessionRecord, seqs: list[int], now: float) -> bool:
            _count(record, log, seqs, now)
            return True

        seqs, _ = await self._logged_write(session_id, user_id, append, count)
        return seqs

    async def _append_fast(
        self, session_id: str, user_id: str | None, log: Literal["h", "t"], entries: list[JsonDict]
    ) -> list[int] | None:
        """The append in one fenced round trip (two if the record must be read first); ``None``: go the long way."""
        fast = self._fast
        if fast is None:
            return None
        key = self._keys.record(session_id)
        async with self._updates.locks.hold(key):  # type: ignore[attr-defined]
            stored = self._recent.get(session_id)
            if stored is None:
                stored = await fast.get_versioned(key)
                if stored is None:
                    return None
            record = self._owned(key, self._codec.decode(key, stored.data), user_id)
            if record is None:
                return None
            chain = self._chain(record, log)
            last = (record.messages if log == "h" else record.tools) - chain.offset
            if last < 0:
                return None
            now = time.time()
            for entry in entries:
                entry["ts"] = now
            seqs = list(range(chain.offset + last + 1, chain.offset + last + 1 + len(entries)))
            _count(record, log, seqs, now)
            if _stamp(record, now):
                return None  # a log or the index entry is due for a longer expiry: the long way does that
            data = self._codec.encode(record.to_json())
            self._recent.pop(session_id, None)
            version = await fast.log_append_fenced(
                chain.own,
                entries,
                last=last,
                record=key,
                expected=stored.version,
                data=data,
                ttl=record.ttl,
                log_ttl=self._log_ttl(record),
                max_len=None if chain.shared else self._max_len(log),
                index=self._activity(record, now),
            )
            if version is None:
                return None
            self._remember(session_id, Versioned(data, version))
            return seqs

    def _remember(self, session_id: str, stored: Versioned) -> None:
        recent = self._recent
        recent[session_id] = stored
        recent.move_to_end(session_id)
        if len(recent) > _RECENT:
            recent.popitem(last=False)

    def _activity(self, record: SessionRecord, now: float) -> IndexPut | None:
        """The put that moves the session to ``now`` in its user's activity index (``None``: no index)."""
        if self._index is None:
            return None
        ttl = None if record.ttl is None else 2 * record.ttl
        return IndexPut(self._keys.activity(record.user_id), record.id, activity_score(now), ttl)

    async def _put_activity(self, record: SessionRecord, now: float) -> None:
        put = self._activity(record, now)
        if put is not None and self._index is not None:
            await self._index.index_put(put.key, put.member, put.score, ttl=put.ttl)

    def _chain(self, record: SessionRecord, log: Literal["h", "t"]) -> LogChain:
        return self._hchain(record) if log == "h" else self._tchain(record)

    def _max_len(self, log: Literal["h", "t"]) -> int | None:
        return self._max_messages if log == "h" else self._max_tools

    async def _logged_write(
        self,
        session_id: str,
        user_id: str | None,
        write: Callable[[SessionRecord, float], Awaitable[R]],
        count: Callable[[SessionRecord, R, float], bool],
    ) -> tuple[R, SessionRecord]:
        """Write a log and then the record, under the session's hold, so that both or neither take effect.

        ``write(record, now)`` changes a log; ``count(record, result, now)``
        brings the record up to date with what it did (``False``: nothing was
        done, nothing is saved); it is applied again to a freshly loaded record
        if the save must be repeated. Once the log write has begun it runs to the
        end: a caller cancelled meanwhile waits for it (then the cancellation
        goes on), so a later read never sees the log changed and the record
        not. A lease lost before the record was saved (distributed isolation)
        cannot undo the log write, so the record is loaded again under a new
        lease and saved: the call succeeds rather than report a write that was
        made as refused.
        """
        progress = self._progress()

        async def run() -> tuple[R, SessionRecord]:
            async with self._begin(progress, session_id, user_id) as (update, record):
                now = time.time()
                result = await write(record, now)
                if not count(record, result, now):
                    return result, record
                try:
                    await self._save(update, record, now)
                except LeaseExpiredError:
                    pass
                else:
                    return result, record
            async with self._locked(session_id, user_id) as (update, record):
                if count(record, result, now):
                    await self._save(update, record, time.time())
            return result, record

        return await _to_the_end(run(), progress)

    def _progress(self) -> _Progress:
        # A write cancelled while its store lease is being taken could leave the lease taken.
        return _Progress(cancel_early=self._updates.name != "distributed")

    @asynccontextmanager
    async def _begin(
        self, progress: _Progress, session_id: str, user_id: str | None
    ) -> AsyncIterator[tuple[SessionUpdate, SessionRecord]]:
        """:meth:`_locked` for a write run by :func:`_to_the_end`: it has begun once this yields."""
        async with self._locked(session_id, user_id) as held:
            if progress.abandoned:
                raise asyncio.CancelledError
            progress.begun = True
            yield held

    def _editable(self, operation: str) -> LogEditStore:
        if not isinstance(self._logs, LogEditStore):
            raise MissingCapabilityError(self._store, "LogEditStore (log_pop / log_clear)", operation)
        return self._logs

    async def _read_tools(self, record: SessionRecord, *, last: int | None, before: int | None) -> list[ToolInvocation]:
        if last == 0:
            return []
        chain = self._tchain(record)
        entries = await ChainReader(self._logs, chain).log_read(chain.own, before=before, last=last)
        return [invocation_from_entry(chain.own, entry) for entry in entries]

    async def _delete_logs(self, keys: list[str]) -> None:
        """Remove logs no session reads any more (after the record stopped naming them)."""
        for key in keys:
            await self._logs.log_delete(key)

    def _hchain(self, record: SessionRecord) -> LogChain:
        return record.history if record.history is not None else LogChain(self._keys.history(record.id))

    def _tchain(self, record: SessionRecord) -> LogChain:
        return record.tool_log if record.tool_log is not None else LogChain(self._keys.tools(record.id))

    async def _erase(
        self,
        update: SessionUpdate,
        session_id: str,
        user_id: str,
        index: str,
        record: SessionRecord | None = None,
        *,
        everything: bool = False,
    ) -> None:
        self._recent.pop(session_id, None)
        await update.delete()
        if record is None:
            logs = [self._keys.history(session_id), self._keys.tools(session_id)]
        else:
            # Logs a fork reads stay (they expire with the fork, or go with delete_user_data).
            logs = [
                *self._hchain(record).owned_logs(everything=everything),
                *self._tchain(record).owned_logs(everything=everything),
            ]
        for key in logs:
            await self._logs.log_delete(key)
        await self._store.delete(self._keys.user_index(user_id, index))
        if self._index is not None:
            await self._index.index_remove(self._keys.activity(user_id), session_id)

    async def _set(self, key: str, value: JsonDict, ttl: float | None) -> None:
        await self._updates.put(key, value, ttl=ttl)

    def _log_ttl(self, record: SessionRecord) -> float | None:
        return None if record.ttl is None else 2 * record.ttl

    def _check_ttl(self, ttl: TTL) -> float | None:
        seconds = ttl_seconds(ttl)
        if seconds is not None and not self._takes_ttl:
            raise MissingCapabilityError(self._store, "set(..., ttl=...)", "session expiry")
        return seconds

    def _owned(self, key: str, data: JsonDict | None, user_id: str | None) -> SessionRecord | None:
        """The record in ``data`` (``None``: missing or someone else's), its metadata migrated to the newest version."""
        record = _owned_record(key, data, user_id)
        migrations = self._metadata_migrations
        if record is not None and migrations is not None and record.metadata_version < migrations.newest:
            record.metadata = metadata_dict(migrations.apply(record.metadata, record.metadata_version, key=key))
            record.metadata_version = migrations.newest
        elif record is not None and migrations is not None and record.metadata_version > migrations.newest:
            raise MigrationError(
                f"session {key!r} has metadata at version {record.metadata_version}, newer than the newest "
                f"migration ({migrations.newest}) of this application"
            )
        return record

    def _window_arg(self, value: Window | None, name: str) -> int | None:
        if value is None:
            return self._window
        if value == "all":
            return None
        return check_window(value, name)

    def _scanner(self, operation: str) -> ScannableStore:
        if not isinstance(self._store, ScannableStore):
            raise MissingCapabilityError(self._store, "ScannableStore (scan)", operation)
        return self._store


_BUILT = "!built"
"""The member that marks a user's activity index as complete (never a session id)."""


_EMPTY_INDEX_TTL = 86_400.0
"""How long the activity index of a user found with no session is kept (it saves looking again)."""

_RECENT = 1024
"""How many records a manager keeps for its one-round-trip appends."""


class _FastStore(FencedAppendStore, VersionedStore, RawStore, Protocol):
    """A store with fenced appends and versions, as the one-round-trip append needs."""


def _fast_capable(store: object) -> bool:
    return isinstance(store, FencedAppendStore) and isinstance(store, VersionedStore) and isinstance(store, RawStore)


def _count(record: SessionRecord, log: Literal["h", "t"], seqs: list[int], now: float) -> None:
    """Bring the record's counter of ``log`` up to the entries just appended, and note the log's new expiry."""
    if log == "h":
        record.messages = max(record.messages, seqs[-1])
    else:
        record.tools = max(record.tools, seqs[-1])
    if record.ttl is not None:
        record.until[log] = now + 2 * record.ttl


def _stamp(record: SessionRecord, now: float) -> list[Literal["h", "t", "i"]]:
    """Mark the record written at ``now``, sliding its expiry; return what would expire before it and must be
    extended: the history or tool log (``"h"``, ``"t"``), the user's index entry (``"i"``)."""
    record.version += 1
    record.updated_at = now
    ttl = record.ttl
    if ttl is None:
        return []
    expires_at = record.expires_at = now + ttl
    due: list[Literal["h", "t", "i"]] = [name for name in ("h", "t") if record.until.get(name, expires_at) < expires_at]
    if record.until.get("i", 0.0) < expires_at:
        due.append("i")
    return due


class _Progress:
    """How far a write run by :func:`_to_the_end` got, and whether its caller gave up before it began."""

    __slots__ = ("abandoned", "begun", "cancel_early")

    def __init__(self, *, cancel_early: bool) -> None:
        self.cancel_early = cancel_early
        self.begun = False
        self.abandoned = False


async def _to_the_end(work: Coroutine[Any, Any, R], progress: _Progress) -> R:
    """Await ``work`` in a task of its own that a cancellation of the caller cannot stop once it has begun.

    A caller cancelled before that cancels the task too where that is safe
    (``cancel_early``: in-process locks only); else the task is marked
    abandoned and ends without writing once it holds the session, for a
    store lease cancelled while being taken could stay taken until it
    expires. Either way the caller waits for the task to finish and is then
    cancelled (the task's own outcome is dropped: the caller asked not to hear it).
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not progress.begun:
            if progress.cancel_early:
                task.cancel()
            else:
                progress.abandoned = True
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except BaseException:  # the task's outcome is not the caller's any more
                break
        if not task.cancelled():
            task.exception()  # retrieved, so it is not reported as never retrieved
        raise


_DECOY = DEFAULT_CODEC.encode(
    SessionRecord(
        id="d" * 32,
        user_id="decoy",
        metadata={"decoy": "x" * 64},
        created_at=0.0,
        updated_at=0.0,
        ttl=None,
        expires_at=None,
        index=index_entry(0.0, "d" * 32),
    ).to_json()
)
"""A stored record's shape, read when an id is missing so that a missing id costs what someone else's does."""


def _owned_record(key: str, data: JsonDict | None, user_id: str | None) -> SessionRecord | None:
    """The record in ``data``, or ``None`` if it is missing or (when ``user_id`` is given) someone else's."""
    if data is None:
        return None
    record = SessionRecord.from_json(key, data)
    if user_id is not None and not _same_user(record.user_id, user_id):
        return None
    return record


def _same_user(owner: str, user_id: str) -> bool:
    """Compare user ids in constant time, so the comparison does not hint at the owner's id."""
    return hmac.compare_digest(owner.encode("utf-8", "surrogatepass"), user_id.encode("utf-8", "surrogatepass"))


def _opt_user(user_id: object) -> str | None:
    owner = None if user_id is None else check_user_id(user_id)
    bound = _CALLER.get()
    if bound is None:
        return owner
    if owner is None or _same_user(owner, bound):
        return bound
    return _FOREIGN


def _foreign(user_id: str) -> bool:
    """Whether a caller is bound (:func:`bound_caller`) and ``user_id`` is someone else."""
    bound = _CALLER.get()
    return bound is not None and not _same_user(user_id, bound)


class UserSessions:
    """A :class:`SessionManager` seen by one user: every call checks that the session is ``user_id``'s.

    Made by :meth:`SessionManager.for_user`; the methods take the manager's
    arguments except ``user_id``. Someone else's session looks missing.
    """

    __slots__ = ("manager", "user_id")

    def __init__(self, manager: SessionManager, user_id: str) -> None:
        self.manager = manager
        self.user_id = check_user_id(user_id)

    async def create_session(self, **options: Any) -> Session:
        """:meth:`SessionManager.create_session` for this user."""
        return await self.manager.create_session(self.user_id, **options)

    async def list_sessions(self, **options: Any) -> SessionPage:
        """:meth:`SessionManager.list_sessions` of this user."""
        return await self.manager.list_sessions(self.user_id, **options)

    async def get_session(self, session_id: str, **options: Any) -> Session | None:
        """:meth:`SessionManager.get_session`, ``None`` unless the session is this user's."""
        return await self.manager.get_session(session_id, user_id=self.user_id, **options)

    async def update_session(self, session_id: str, **options: Any) -> Session:
        """:meth:`SessionManager.update_session` of this user's session."""
        return await self.manager.update_session(session_id, user_id=self.user_id, **options)

    async def edit_metadata(self, session_id: str, edit: MetadataEditor, **options: Any) -> Session:
        """:meth:`SessionManager.edit_metadata` of this user's session."""
        return await self.manager.edit_metadata(session_id, edit, user_id=self.user_id, **options)

    async def delete_session(self, session_id: str, **options: Any) -> None:
        """:meth:`SessionManager.delete_session` of this user's session."""
        await self.manager.delete_session(session_id, user_id=self.user_id, **options)

    async def add_message(self, session_id: str, role: str, content: Any, **options: Any) -> Message:
        """:meth:`SessionManager.add_message` to this user's session."""
        return await self.manager.add_message(session_id, role, content, user_id=self.user_id, **options)

    async def add_messages(self, session_id: str, messages: Iterable[Any]) -> list[Message]:
        """:meth:`SessionManager.add_messages` to this user's session."""
        return await self.manager.add_messages(session_id, messages, user_id=self.user_id)

    async def history(self, session_id: str, **options: Any) -> list[Message]:
        """:meth:`SessionManager.history` of this user's session."""
        return await self.manager.history(session_id, user_id=self.user_id, **options)

    async def track_tool_invocation(self, session_id: str, tool_name: str, **options: Any) -> ToolInvocation:
        """:meth:`SessionManager.track_tool_invocation` on this user's session."""
        return await self.manager.track_tool_invocation(session_id, tool_name, user_id=self.user_id, **options)

    async def tool_invocations(self, session_id: str, **options: Any) -> list[ToolInvocation]:
        """:meth:`SessionManager.tool_invocations` of this user's session."""
        return await self.manager.tool_invocations(session_id, user_id=self.user_id, **options)

    async def pop_message(self, session_id: str) -> Message | None:
        """:meth:`SessionManager.pop_message` of this user's session."""
        return await self.manager.pop_message(session_id, user_id=self.user_id)

    async def clear_history(self, session_id: str) -> Session:
        """:meth:`SessionManager.clear_history` of this user's session."""
        return await self.manager.clear_history(session_id, user_id=self.user_id)

    async def fork_session(self, session_id: str, **options: Any) -> Session:
        """:meth:`SessionManager.fork_session` of this user's session."""
        return await self.manager.fork_session(session_id, user_id=self.user_id, **options)

    async def compact(self, session_id: str, **options: Any) -> Message | None:
        """:meth:`SessionManager.compact` of this user's session."""
        return await self.manager.compact(session_id, user_id=self.user_id, **options)

    async def rewind(self, session_id: str, *, to: int) -> Session:
        """:meth:`SessionManager.rewind` of this user's session."""
        return await self.manager.rewind(session_id, to=to, user_id=self.user_id)


def _seq_arg(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(name, f"must be a message seq (an int >= 0), not {value!r:.60}")
    return value


def _version_arg(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError("expected_version", f"must be a positive int (a snapshot's version), not {value!r:.60}")
    return value


def _require_version(record: SessionRecord, expected: int | None) -> None:
    if expected is not None and record.version != expected:
        raise ConflictError(
            f"session {record.id!r} is at version {record.version}, not the expected {expected}: someone wrote it since"
        )


def _positive_or_none(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(name, f"must be a positive int or None, not {value!r:.60}")
    return value


def _session_of(entry: str) -> str:
    """The session id of a user-index entry (``"<created hex>:<session id>"``)."""
    return entry.partition(":")[2]


def _timestamp(started_at: datetime | float | None, now: float, duration: object) -> float:
    if started_at is None:
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
            return now - float(duration)
        return now
    if isinstance(started_at, datetime):
        if started_at.tzinfo is None:
            raise InvalidValueError("started_at", "must be timezone-aware (e.g. datetime.now(UTC))")
        return started_at.timestamp()
    if isinstance(started_at, bool) or not isinstance(started_at, int | float) or not math.isfinite(started_at):
        raise InvalidValueError("started_at", f"must be a datetime, a Unix timestamp or None, not {started_at!r:.60}")
    return float(started_at)


__all__ = ["DEFAULT_HISTORY_WINDOW", "SessionManager", "UserSessions", "bound_caller"]
