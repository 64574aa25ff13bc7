"""The OpenAI Agents SDK's ``Session`` kept by a SessionManager (``pip install 'sessionware[openai-agents]'``).

::

    import asyncio

    from sessionware import SessionManager
    from sessionware.integrations.openai_agents import SessionwareSession


    async def main() -> None:
        async with SessionManager("sqlite:///agents.db", ttl=7 * 24 * 3600) as manager:
            # user_id comes from your application (who is logged in), never from the model
            session = SessionwareSession("conversation-0001-of-ada", manager, user_id="ada")
            # with an agent: await Runner.run(agent, "Weather in Paris?", session=session)
            await session.add_items([
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "It is sunny."},
            ])
            print(await session.get_items(limit=1))  # [{'role': 'assistant', 'content': 'It is sunny.'}]


    asyncio.run(main())

:class:`SessionwareSession` implements the SDK's ``Session`` protocol
(``session_id``, ``session_settings``, ``get_items``, ``add_items``,
``pop_item``, ``clear_session``) as a thin layer over the agents surface: the
conversation is a sessionware agent session owned by ``user_id``, created
under ``session_id`` on the first ``add_items`` (two first writers at once
make one session), and every item is one message of its history log, so a
turn appends and never rewrites what came before; the items of one
``add_items`` call are appended atomically and stay together, in order,
however many writers run at once (with a manager of
``isolation="distributed"``, across processes too).

The SDK's ``Runner`` reads the items, calls the model, then adds the new
items in separate calls, so two runs of one conversation at once would each
answer on a history without the other's turn. :meth:`SessionwareSession.turn`
holds the conversation for a whole run (``async with session.turn(): await
Runner.run(agent, input, session=session)``, or :meth:`SessionwareSession.run`):
another holder waits, in this process, and with ``isolation="distributed"``
in other processes too, by a store lease renewed while the run lasts.

Each item is stored as the message it means (a user or assistant message
with its content parts, reasoning, a tool call, a tool result, any other
item as an ``openai.responses`` provider part), so the manager's history,
exports and windows read it, and it keeps the item exactly as it was given
as the message's ``source``: ``get_items()`` returns every item exactly as
it was added, ``None`` fields and unknown keys included. An item the history
cannot read as a message (an unknown content part, tool-call arguments that
are not a JSON object) is stored as a provider part holding the item, and
still comes back as it was added. Messages added to the session by other
means (``manager.add_message``) come back converted to Responses items.

Ownership: a session id that belongs to another user is invisible
(``get_items`` returns ``[]``, ``pop_item`` ``None``) and refused for writes
(:class:`~sessionware.agents.SessionNotFoundError`). Any non-empty string
is a ``session_id``: one without the shape of a sessionware id (22-64 of
``A-Z a-z 0-9 - _``) names the session under a digest of it
(:func:`sessionware.integrations._ids.session_id_for`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal, cast

from ..agents.errors import SessionNotFoundError
from ..agents.history import check_window
from ..agents.manager import SessionManager, UserSessions
from ..agents.records import message_entry, message_from_entry, metadata_dict, plain_json
from ..errors import ConflictError, InvalidValueError, MissingExtraError
from ..frozen import thaw
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation
from ..keys import TTL, ttl_seconds
from ..providers.common import as_data
from ..providers.errors import ProviderFormatError
from ..providers.openai import RESPONSES, messages_from_openai_responses, to_openai_responses_items
from ..store import LogEntry
from ._ids import session_id_for
from ._turns import checked_manager, hold_turn, turn_isolation

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("OpenAI Agents SDK", "openai-agents", "agents") from e

_MESSAGE_ROLES = ("system", "developer", "user", "assistant")


class SessionwareSession:
    """An OpenAI Agents SDK session kept by a :class:`~sessionware.SessionManager`, owned by ``user_id``.

    ``session_settings`` (a ``SessionSettings`` or its dict) gives the default
    ``limit`` of :meth:`get_items`, as in the SDK's own sessions; ``ttl`` and
    ``metadata`` are given to the session when the first ``add_items``
    creates it (the manager's default lifetime otherwise). ``isolation``
    says how :meth:`turn` holds the conversation: ``"local"`` (default) in
    this process, ``"distributed"`` across processes by a store lease
    (``lease`` seconds, renewed while held; ``lock_wait`` to get it).
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        manager: SessionManager,
        *,
        user_id: str,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
        ttl: TTL = None,
        metadata: Mapping[str, Any] | None = None,
        isolation: Literal["local", "distributed"] = "local",
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
    ) -> None:
        manager = checked_manager(manager)
        self.session_id = session_id
        self._sid = session_id_for(session_id)
        self.manager = manager
        self.sessions: UserSessions = manager.for_user(user_id)
        self.user_id = self.sessions.user_id
        if session_settings is None:
            self.session_settings = SessionSettings()
        elif isinstance(session_settings, SessionSettings):
            self.session_settings = session_settings
        elif isinstance(session_settings, Mapping):
            unknown = set(session_settings) - {f.name for f in dataclasses.fields(SessionSettings)}
            if unknown:
                raise InvalidValueError("session_settings", f"has unknown fields {sorted(map(str, unknown))}")
            self.session_settings = SessionSettings(**session_settings)
        else:
            raise InvalidValueError(
                "session_settings", f"must be a SessionSettings, a dict or None, not {type(session_settings).__name__}"
            )
        ttl_seconds(ttl)  # checked now rather than at the first add_items
        self._ttl = ttl
        self._metadata = None if metadata is None else metadata_dict(metadata)
        self._key = manager.keys.history(self._sid)
        self._turns: Isolation = turn_isolation(manager, isolation, lease=lease, lock_wait=lock_wait)

    def __repr__(self) -> str:
        return f"SessionwareSession({self.session_id!r}, user_id={self.user_id!r})"

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items (all when ``None`` and ``session_settings.limit`` is ``None``), oldest first.

        Exactly as they were added; ``[]`` for a session that does not exist
        yet, has expired or belongs to someone else.
        """
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        last = check_window(limit, "limit")
        if last == 0:
            return []
        try:  # the owner's check and the read, across forks and rewinds of the session
            entries = await self.manager.history_entries(self._sid, last=last, user_id=self.user_id)
        except SessionNotFoundError:
            return []
        items: list[TResponseInputItem] = []
        for entry in entries:
            items.extend(self._items_of(entry))
        return items

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` atomically and in order, creating the session under ``session_id`` if it is new.

        Raises :class:`~sessionware.agents.SessionNotFoundError` if the id
        belongs to another user, :class:`~sessionware.errors.InvalidValueError`
        naming the item that cannot be stored (nothing is stored then).
        """
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, list | tuple):
            raise InvalidValueError("items", f"must be a list of Responses input items, not {type(items).__name__}")
        if not items:
            return
        messages = [_message_of(item, i) for i, item in enumerate(items)]
        try:
            await self._append(messages)
        except SessionNotFoundError:
            # A ConflictError: created meanwhile by another writer, or someone else's; the second append tells which.
            with suppress(ConflictError):
                await self.sessions.create_session(session_id=self._sid, ttl=self._ttl, metadata=self._metadata)
            await self._append(messages)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the conversation for one run: ``async with session.turn(): await Runner.run(..., session=session)``.

        Another ``turn()`` of the same conversation (any ``SessionwareSession``
        of it on the same store) waits until this one ends; with
        ``isolation="distributed"`` also in other processes.
        """
        async with hold_turn(self._turns, self.manager, self._sid, "turn"):
            yield

    async def run(self, agent: Any, input: Any, **options: Any) -> Any:
        """``Runner.run(agent, input, session=self, **options)`` in one :meth:`turn`; returns the run's result."""
        from agents import Runner

        async with self.turn():
            return await Runner.run(agent, input, session=self, **options)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the newest item and return it as it was added; ``None`` if there is none.

        Atomic in the store: concurrent pops never return the same item.
        ``None`` too for a session that does not exist or is someone else's.
        """
        try:
            message = await self.sessions.pop_message(self._sid)
        except SessionNotFoundError:
            return None
        if message is None:
            return None
        source = message.source
        if source is not None and source.provider == RESPONSES and isinstance(source.item, Mapping):
            return cast(TResponseInputItem, thaw(source.item))
        # A message added by other means that converts to several items is removed whole: return the newest.
        converted = to_openai_responses_items(message, unsupported="drop")
        return cast(TResponseInputItem, converted[-1]) if converted else None

    async def clear_session(self) -> None:
        """Remove every item; the session itself (owner, metadata, lifetime) stays.

        Nothing happens for a session that does not exist or is someone else's.
        """
        with suppress(SessionNotFoundError):
            await self.sessions.clear_history(self._sid)

    async def _append(self, messages: list[dict[str, Any]]) -> None:
        try:
            await self.sessions.add_messages(self._sid, messages)
        except InvalidValueError:
            # Rare: an item the history cannot read as a message. Keep each such item whole, as a provider part.
            kept = [_checked(message, i) for i, message in enumerate(messages)]
            if kept == messages:
                raise
            await self.sessions.add_messages(self._sid, kept)

    def _items_of(self, entry: LogEntry) -> list[TResponseInputItem]:
        source = entry.value.get("source")
        if isinstance(source, dict) and source.get("provider") == RESPONSES and isinstance(source.get("item"), dict):
            return [cast(TResponseInputItem, source["item"])]
        message = message_from_entry(self._key, entry)
        return cast(list[TResponseInputItem], to_openai_responses_items(message, unsupported="drop"))


def _message_of(item: object, index: int) -> dict[str, Any]:
    """The message an item means, keeping the item exactly as given as its source."""
    raw = as_data(item)
    if not isinstance(raw, dict):
        raise InvalidValueError(
            f"items[{index}]", f"must be a Responses input item (a dict), not {type(item).__name__}"
        )
    raw = plain_json(raw, f"items[{index}]")
    try:
        message = messages_from_openai_responses(raw)[0]
    except ProviderFormatError:
        return _opaque(raw)
    message["source"] = {"provider": RESPONSES, "item": raw}
    return message


def _opaque(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a message holding it whole in a provider part (its role kept where it has a message role)."""
    role = item.get("role")
    return {
        "role": role if role in _MESSAGE_ROLES else "assistant",
        "content": [{"type": "provider", "provider": RESPONSES, "data": item}],
        "source": {"provider": RESPONSES, "item": item},
    }


def _checked(message: dict[str, Any], index: int) -> dict[str, Any]:
    """``message`` if the history takes it, else its item kept whole; an item that is not JSON is refused."""
    try:
        message_entry(**message)
    except InvalidValueError:
        item = message["source"]["item"]
        fallback = _opaque(item)
        try:
            message_entry(**fallback)
        except InvalidValueError as exc:
            raise InvalidValueError(f"items[{index}]", f"cannot be stored: {exc}") from None
        return fallback
    return message


__all__ = ["SessionwareSession"]
