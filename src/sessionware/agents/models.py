"""The read-only snapshots the SessionManager hands out: Session, Message, ToolInvocation.

Every model is frozen and deeply immutable: sequences are tuples, JSON lists
are :class:`~sessionware.frozen.FrozenList` (a tuple equal to the same
list) and mappings :class:`~sessionware.frozen.FrozenMap` (equal to the
same dict), so changing a snapshot raises at once instead of being silently
lost. Change a session through its :class:`~sessionware.agents.SessionManager`.
``model_dump(mode="json")`` gives plain, mutable dicts and lists.

:class:`ToolCall` is the one tool call both surfaces share (defined in
:mod:`sessionware.providers.calls`); a message holds its calls with the
arguments parsed and frozen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..frozen import FrozenJson, FrozenList, FrozenMap, FrozenObject
from ..providers.calls import ToolCall
from ..providers.parts import Part, text_of

Role = Literal["system", "developer", "user", "assistant", "tool"]
"""Who wrote a message. ``tool`` messages carry a tool result and the ``tool_call_id`` it answers."""

ROLES: tuple[Role, ...] = ("system", "developer", "user", "assistant", "tool")

ToolStatus = Literal["success", "error", "denied", "action_required"]
"""How a tool call ended."""

TOOL_STATUSES: tuple[ToolStatus, ...] = ("success", "error", "denied", "action_required")


class _Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _frozen_call(call: ToolCall) -> ToolCall:
    """``call`` with its arguments as a :class:`FrozenMap`; a call in the history has object arguments."""
    if call.arguments is None:
        raise ValueError(f"tool call {call.id} has arguments that are not a JSON object")
    if isinstance(call.arguments, FrozenMap):
        return call
    return call.model_copy(update={"arguments": FrozenMap(call.arguments)})


HistoryToolCall = Annotated[ToolCall, AfterValidator(_frozen_call)]
"""A :class:`ToolCall` as a message holds it: arguments parsed into a JSON object and deeply frozen."""


class Source(_Snapshot):
    """The provider item a message was imported from: ``provider`` names its format
    (``openai.chat``, ``openai.responses``, ``anthropic``, ``gemini``), ``item`` is the item itself."""

    provider: str
    item: FrozenJson


class Message(_Snapshot):
    """One message of a conversation, numbered by the store.

    ``seq`` starts at 1 and increases without gaps in append order; it is
    assigned by the store, never by a clock. ``content`` is a string, a tuple
    of content parts (:mod:`sessionware.providers.parts`: text, images,
    files, audio, refusals, reasoning, provider-only parts), or ``None`` for
    an assistant message that only calls tools. ``is_error`` marks a tool
    result that reports a failure. ``source`` is the provider item the message
    was imported from, kept as it came, so that exporting to the same
    provider gives it back exactly.
    """

    seq: int
    role: Role
    content: str | tuple[Part, ...] | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[HistoryToolCall, ...] = ()
    is_error: bool = False
    source: Source | None = None
    created_at: datetime
    metadata: FrozenObject = Field(default_factory=FrozenMap)

    @property
    def text(self) -> str:
        """The message's plain text: its string content, or its text parts joined."""
        return text_of(self.content)


class ToolInvocation(_Snapshot):
    """The record of one tool call: what ran, with which arguments, and how it ended.

    ``arguments`` is usually a mapping (a string when the caller passed
    arguments that were not a JSON object); ``duration`` is in seconds.
    """

    seq: int
    call_id: str
    tool_name: str
    arguments: FrozenJson = None
    status: ToolStatus
    result: FrozenJson = None
    error: FrozenObject | None = None
    started_at: datetime
    duration: float | None = None


class Session(_Snapshot):
    """A read-only snapshot of an agent session.

    ``conversation_history`` and ``tool_invocations`` hold the whole retained
    history, oldest first, unless :meth:`SessionManager.get_session` was asked
    for a window (``history=N``); both compare equal to lists of the same
    items. ``message_count`` and ``tool_invocation_count`` count every entry
    ever appended (those trimmed by ``max_messages`` too) less those popped
    or cleared. ``forked_from`` is ``{"session_id", "seq"}`` for a session made by
    :meth:`SessionManager.fork_session`. Read windows of a long history with
    :meth:`SessionManager.history`.

    Nothing here can be changed in place: attribute assignment, ``metadata``
    item assignment and list methods all raise. Use
    :meth:`SessionManager.update_session` (or ``edit_metadata``,
    ``add_message``, ``track_tool_invocation``), which write under the
    session's lock.
    """

    id: str
    user_id: str
    conversation_history: FrozenList[Message] = FrozenList()
    tool_invocations: FrozenList[ToolInvocation] = FrozenList()
    metadata: FrozenObject = Field(default_factory=FrozenMap)
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    ttl: float | None = None
    message_count: int = 0
    tool_invocation_count: int = 0
    version: int = 1
    forked_from: FrozenObject | None = None


class SessionPage(_Snapshot):
    """One page of :meth:`SessionManager.list_sessions`; pass ``next_cursor`` back for the next page."""

    sessions: tuple[Session, ...]
    next_cursor: str | None = None


__all__ = [
    "ROLES",
    "TOOL_STATUSES",
    "HistoryToolCall",
    "Message",
    "Role",
    "Session",
    "SessionPage",
    "Source",
    "ToolCall",
    "ToolInvocation",
    "ToolStatus",
]
