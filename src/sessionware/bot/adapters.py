"""Adapters turn a platform's update into an :class:`Incoming` event; :class:`TelegramAdapter` is the default."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Protocol

from ..codec import JsonDict

Update = dict[str, Any]
Kind = Literal["command", "text", "callback", "other"]


class Incoming(NamedTuple):
    """What an update says, independent of the platform it came from."""

    kind: Kind
    from_user: JsonDict | None = None
    chat: JsonDict | None = None
    text: str | None = None


class UpdateAdapter(Protocol):
    """Reads a platform's update."""

    def parse(self, update: Update) -> Incoming:
        """Describe ``update`` as an :class:`Incoming` event."""
        ...


class TelegramAdapter:
    """Reads Telegram Bot API update dicts (messages, edited messages, callback queries)."""

    def parse(self, update: Update) -> Incoming:
        """Describe a Telegram update."""
        query = update.get("callback_query")
        if isinstance(query, dict):
            message = query.get("message") or {}
            return Incoming("callback", query.get("from"), message.get("chat"), query.get("data"))
        message = update.get("message") or update.get("edited_message")
        if isinstance(message, dict):
            text = message.get("text")
            kind: Kind = "other"
            if isinstance(text, str):
                kind = "command" if text.startswith("/") else "text"
            return Incoming(kind, message.get("from"), message.get("chat"), text)
        return Incoming("other")


__all__ = ["Incoming", "Kind", "TelegramAdapter", "Update", "UpdateAdapter"]
