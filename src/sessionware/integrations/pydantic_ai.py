"""Pydantic AI message histories in a :class:`~sessionware.SessionManager` (``pip install 'sessionware[pydantic-ai]'``).

::

    history = PydanticAIHistory(manager, user_id="ada")           # the owner comes from your application
    result = await history.run(agent, "What is the weather?", conversation_id="support-1")
    again = await history.load("support-1")                        # list[ModelMessage], as the runs made them

One conversation is one session of the manager, owned by ``user_id``. Every
``ModelMessage`` is stored losslessly (its ``ModelMessagesTypeAdapter`` form is
the ``source`` of the first history message made from it, provider
``"pydantic-ai"``), and also as plain history messages (system, user, assistant
with its text, thinking and tool calls, one tool message per tool return or
retry), so the rest of sessionware (exports to every provider, windows, the
inspector) reads it too. Messages added to the session by other means load as
the nearest ``ModelRequest`` / ``ModelResponse``.

:meth:`PydanticAIHistory.turn` (used by :meth:`~PydanticAIHistory.run`) holds
the conversation for a whole turn, load to append: in this process, and with
``isolation="distributed"`` across processes by a store lease, so two turns of
one conversation never interleave.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any, Literal

from ..agents.errors import SessionNotFoundError
from ..agents.manager import SessionManager
from ..agents.models import Message
from ..agents.records import message_from_entry
from ..errors import ConflictError, InvalidValueError, MissingExtraError
from ..frozen import thaw
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation
from ..keys import TTL
from ._ids import session_id_for
from ._turns import checked_manager, hold_turn, turn_isolation

try:
    from pydantic_ai import messages as pai
    from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Pydantic AI", "pydantic-ai", "pydantic_ai") from e

PROVIDER = "pydantic-ai"
"""The ``source.provider`` of history messages made from Pydantic AI messages."""

_CONTINUED = {"kind": "continued"}
"""The ``source.item`` of the second and later history messages made from one ``ModelMessage``."""


class Turn:
    """One turn of a conversation held by :meth:`PydanticAIHistory.turn`: the history it started from and what
    it adds (appended atomically when the turn ends without an error)."""

    def __init__(self, messages: list[ModelMessage]) -> None:
        self.messages = messages
        self.new: list[ModelMessage] = []

    def add(self, messages: Sequence[ModelMessage]) -> None:
        """Keep ``messages`` (a run's ``new_messages()``) to append when the turn ends."""
        self.new.extend(messages)


class PydanticAIHistory:
    """Pydantic AI conversations of one user, kept as sessions of ``manager``.

    ``isolation="distributed"`` holds a store lease on a conversation for each
    :meth:`turn` (``lease`` seconds, renewed while the turn runs; ``lock_wait``
    to get it); ``"local"`` (default) keeps turns apart in this process only.
    New sessions get ``ttl`` (default: the manager's) and ``metadata``.
    """

    def __init__(
        self,
        manager: SessionManager,
        *,
        user_id: str,
        isolation: Literal["local", "distributed"] = "local",
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        ttl: TTL = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        manager = checked_manager(manager)
        self.manager = manager
        self.sessions = manager.for_user(user_id)
        self.user_id = user_id
        self.ttl = ttl
        self.metadata = dict(metadata or {})
        self._turns: Isolation = turn_isolation(manager, isolation, lease=lease, lock_wait=lock_wait)

    async def load(self, conversation_id: str, *, last: int | None = None) -> list[ModelMessage]:
        """The conversation's messages, oldest first (``[]`` for a conversation not started yet).

        ``last`` reads only the newest ``last`` history messages (so at most
        that many ``ModelMessage``s), for a long conversation.
        """
        session_id = session_id_for(conversation_id)
        try:
            entries = await self.manager.history_entries(session_id, last=last, user_id=self.user_id)
        except SessionNotFoundError:
            return []
        key = self.manager.keys.history(session_id)
        # The stored items as they are (plain JSON), building a Message only for what came from elsewhere.
        return _model_messages((e.value.get("source"), partial(message_from_entry, key, e)) for e in entries)

    async def append(self, conversation_id: str, messages: Sequence[ModelMessage]) -> list[Message]:
        """Append ``messages`` (a run's ``new_messages()``) atomically, starting the conversation if needed."""
        entries = history_entries(messages)
        if not entries:
            return []
        session_id = session_id_for(conversation_id)
        try:
            return await self.sessions.add_messages(session_id, entries)
        except SessionNotFoundError:
            await self._start(session_id, conversation_id)
            return await self.sessions.add_messages(session_id, entries)

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation (nothing happens if there is none)."""
        await self.sessions.delete_session(session_id_for(conversation_id), missing_ok=True)

    @asynccontextmanager
    async def turn(self, conversation_id: str) -> AsyncIterator[Turn]:
        """Hold the conversation for one turn: ``async with history.turn(id) as turn:`` gives ``turn.messages``
        to run with; what ``turn.add()`` kept is appended when the block ends without an error."""
        async with hold_turn(self._turns, self.manager, session_id_for(conversation_id), "turn"):
            turn = Turn(await self.load(conversation_id))
            yield turn
            if turn.new:
                await self.append(conversation_id, turn.new)

    async def run(self, agent: Any, prompt: Any, *, conversation_id: str, **options: Any) -> Any:
        """``agent.run(prompt, message_history=<the conversation>, **options)`` in one :meth:`turn`, its new
        messages appended; returns the run's result."""
        async with self.turn(conversation_id) as turn:
            result = await agent.run(prompt, message_history=turn.messages, **options)
            turn.add(result.new_messages())
        return result

    async def _start(self, session_id: str, conversation_id: str) -> None:
        metadata = {**self.metadata, "conversation_id": conversation_id}
        with suppress(ConflictError):  # started by a concurrent append; another user's session stays invisible
            await self.sessions.create_session(session_id=session_id, metadata=metadata, ttl=self.ttl)


# -- Pydantic AI messages to history messages -------------------------------------------------------------------


def history_entries(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    """The history messages (``add_messages`` mappings) that keep ``messages`` losslessly."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidValueError("messages", "must be a sequence of Pydantic AI ModelMessage objects")
    entries: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, pai.ModelRequest | pai.ModelResponse):
            raise InvalidValueError(
                f"messages[{i}]", f"must be a ModelRequest or ModelResponse, not {type(message).__name__}"
            )
        dumped = ModelMessagesTypeAdapter.dump_python([message], mode="json")[0]
        made = _request_entries(message) if isinstance(message, pai.ModelRequest) else [_response_entry(message)]
        for j, entry in enumerate(made):
            entry["source"] = {"provider": PROVIDER, "item": dumped if j == 0 else _CONTINUED}
        entries.extend(made)
    return entries


def _request_entries(request: pai.ModelRequest) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for part in request.parts:
        if isinstance(part, pai.SystemPromptPart):
            entries.append({"role": "system", "content": part.content})
        elif isinstance(part, pai.UserPromptPart):
            entries.append({"role": "user", "content": _user_content(part.content)})
        elif isinstance(part, pai.ToolReturnPart):
            entries.append(
                {
                    "role": "tool",
                    "tool_call_id": part.tool_call_id,
                    "name": part.tool_name,
                    "content": part.model_response_str(),
                    "is_error": part.outcome != "success",
                }
            )
        elif isinstance(part, pai.RetryFeedbackPart):
            entries.append({"role": "user", "content": part.model_response()})
        else:
            other.append(_provider_part(part))
    if other or not entries:
        entries.append({"role": "user", "content": other})
    return entries


def _response_entry(response: pai.ModelResponse) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for part in response.parts:
        if isinstance(part, pai.ToolCallPart) and type(part) is pai.ToolCallPart:
            calls.append({"id": part.tool_call_id, "name": part.tool_name, "arguments": part.args_as_dict()})
        elif isinstance(part, pai.TextPart):
            content.append({"type": "text", "text": part.content})
        elif isinstance(part, pai.ThinkingPart):
            content.append(
                {"type": "reasoning", "text": part.content or None, "signature": part.signature, "id": part.id}
            )
        else:
            content.append(_provider_part(part))
    return {"role": "assistant", "content": content or (None if calls else []), "tool_calls": calls or None}


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for item in content:
        if isinstance(item, str):
            parts.append({"type": "text", "text": item})
        elif isinstance(item, pai.ImageUrl):
            parts.append({"type": "image", "url": item.url})
        elif isinstance(item, pai.BinaryContent) and item.is_image:
            parts.append({"type": "image", "data": item.data, "media_type": item.media_type})
        else:
            parts.append(_provider_part(item))
    return parts


def _provider_part(part: Any) -> dict[str, Any]:
    """A part only Pydantic AI knows, as a provider part (its full form is in the message's source)."""
    kind = getattr(part, "part_kind", None) or getattr(part, "kind", None) or type(part).__name__
    return {"type": "provider", "provider": PROVIDER, "data": {"part_kind": str(kind)}}


# -- history messages to Pydantic AI messages -------------------------------------------------------------------


def model_messages(history: Sequence[Message]) -> list[ModelMessage]:
    """The Pydantic AI messages of a history: those stored from Pydantic AI exactly as they were, the rest as
    the nearest request or response."""
    return _model_messages((m.source.model_dump() if m.source else None, partial(_same, m)) for m in history)


def _model_messages(items: Iterable[tuple[Any, Callable[[], Message]]]) -> list[ModelMessage]:
    """``(stored source, the message)`` pairs, in history order, as Pydantic AI messages."""
    dumped: list[Any] = []
    pending: list[Message] = []
    for source, message in items:
        if isinstance(source, Mapping) and source.get("provider") == PROVIDER:
            dumped.extend(_foreign(pending))
            pending.clear()
            if source.get("item") != _CONTINUED:
                dumped.append(source.get("item"))
        else:
            pending.append(message())
    dumped.extend(_foreign(pending))
    return list(ModelMessagesTypeAdapter.validate_python(dumped))


def _same(message: Message) -> Message:
    return message


def _foreign(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages not stored from Pydantic AI (added by the application, imported from a provider)."""
    out: list[dict[str, Any]] = []
    request: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            if request:
                out.append({"kind": "request", "parts": request})
                request = []
            parts: list[dict[str, Any]] = []
            if message.text:
                parts.append({"part_kind": "text", "content": message.text})
            for call in message.tool_calls:
                parts.append(
                    {
                        "part_kind": "tool-call",
                        "tool_name": call.name,
                        "args": thaw(call.arguments),
                        "tool_call_id": call.id,
                    }
                )
            out.append({"kind": "response", "parts": parts, "timestamp": message.created_at})
            continue
        at = {"timestamp": message.created_at}  # when it was stored, so every load reads the same
        if message.role == "tool":
            request.append(
                {
                    "part_kind": "tool-return",
                    "tool_name": message.name or "",
                    "content": message.text,
                    "tool_call_id": message.tool_call_id,
                    **at,
                }
            )
        elif message.role in ("system", "developer"):
            request.append({"part_kind": "system-prompt", "content": message.text, **at})
        else:
            request.append({"part_kind": "user-prompt", "content": message.text, **at})
    if request:
        out.append({"kind": "request", "parts": request})
    return out


from .pydantic_ai_store import SessionwareConversationStore  # noqa: E402 - needs the extra checked above

__all__ = [
    "PROVIDER",
    "PydanticAIHistory",
    "SessionwareConversationStore",
    "Turn",
    "history_entries",
    "model_messages",
    "session_id_for",
]
