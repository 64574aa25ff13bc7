"""Adapters turn a platform's update into an :class:`Incoming` event; :class:`TelegramAdapter` is the default."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Protocol

from ..codec import JsonDict

Update = dict[str, Any]
Kind = Literal["command", "text", "callback", "other"]


class Incoming(NamedTuple):
    """What an update says, independent of the platform it came from.

    ``thread_id`` is the forum topic (Telegram's ``message_thread_id``);
    ``type`` names the platform's kind of update (``"message"``,
    ``"inline_query"``, ``"chat_member"``, ...).
    """

    kind: Kind
    from_user: JsonDict | None = None
    chat: JsonDict | None = None
    text: str | None = None
    thread_id: int | None = None
    type: str | None = None


class UpdateAdapter(Protocol):
    """Reads a platform's update."""

    def parse(self, update: Update) -> Incoming:
        """Describe ``update`` as an :class:`Incoming` event."""
        ...


_MESSAGES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
)
"""Updates that carry a message: sender in ``from`` (or ``sender_chat``), text or a media ``caption``."""

_SENDER_AND_CHAT = ("my_chat_member", "chat_member", "chat_join_request", "message_reaction")
"""Updates with a chat and a user (``from``, or ``user`` for reactions; an anonymous reaction has none)."""

_SENDER_ONLY = (
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "poll_answer",
    "purchased_paid_media",
    "business_connection",
)
"""Updates with a user and no chat (``from``, or ``user`` for poll answers and business connections)."""

_CHAT_ONLY = ("message_reaction_count", "chat_boost", "removed_chat_boost", "deleted_business_messages")
"""Updates about a chat that no single user sent."""


class TelegramAdapter:
    """Reads every kind of Telegram Bot API update dict: who sent it, in which chat and topic, with what text.

    Messages of every kind (also channel and business posts) give their text,
    or the caption of a photo or document, so ``/start look`` under a photo is
    a command too; callback queries give their data; ``inline_query`` its
    query. Updates no user sent (a reaction count, a boost, a poll's state)
    have no ``from_user``, and those outside any chat no ``chat``.
    """

    def parse(self, update: Update) -> Incoming:
        """Describe a Telegram update."""
        for name in _MESSAGES:
            message = update.get(name)
            if isinstance(message, dict):
                return _message(name, message)
        query = update.get("callback_query")
        if isinstance(query, dict):
            message = query.get("message") or {}
            return Incoming(
                "callback",
                query.get("from"),
                message.get("chat"),
                query.get("data"),
                _thread(message),
                "callback_query",
            )
        for name in _SENDER_AND_CHAT:
            event = update.get(name)
            if isinstance(event, dict):
                return Incoming("other", event.get("from") or event.get("user"), event.get("chat"), None, None, name)
        for name in _SENDER_ONLY:
            event = update.get(name)
            if isinstance(event, dict):
                sender = event.get("from") or event.get("user")
                text = event.get("query") if name in ("inline_query", "chosen_inline_result") else None
                return Incoming("other", sender, None, text, None, name)
        for name in _CHAT_ONLY:
            event = update.get(name)
            if isinstance(event, dict):
                return Incoming("other", None, event.get("chat"), None, None, name)
        kind = next((key for key in update if key != "update_id"), None)
        return Incoming("other", type=kind)


def _thread(message: dict[str, Any]) -> int | None:
    thread = message.get("message_thread_id")
    return thread if isinstance(thread, int) and not isinstance(thread, bool) else None


def _message(name: str, message: dict[str, Any]) -> Incoming:
    text = message.get("text")
    if not isinstance(text, str):
        caption = message.get("caption")
        text = caption if isinstance(caption, str) else None
    kind: Kind = "other"
    if text is not None:
        kind = "command" if text.startswith("/") else "text"
    return Incoming(kind, message.get("from"), message.get("chat"), text, _thread(message), name)


__all__ = ["Incoming", "Kind", "TelegramAdapter", "Update", "UpdateAdapter"]
