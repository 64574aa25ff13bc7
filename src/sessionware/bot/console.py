"""Where ``ctx.reply()`` sends text: the :class:`ReplyClient` protocol and a client that prints."""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO


class ReplyClient(Protocol):
    """Where ``ctx.reply()`` sends text."""

    async def send_message(self, chat_id: Any, text: str, **options: Any) -> Any:
        """Send ``text`` to ``chat_id``."""
        ...


class ConsoleClient:
    """A reply client that prints replies, for demos and local runs."""

    def __init__(self, out: TextIO | None = None, *, names: dict[Any, str] | None = None) -> None:
        self.out = out
        self.names = names or {}
        self.sent: list[tuple[Any, str]] = []

    async def send_message(self, chat_id: Any, text: str, **options: Any) -> None:
        """Print ``text`` as the bot's reply in ``chat_id``."""
        self.sent.append((chat_id, text))
        out = self.out or sys.stdout
        print(f"  bot → {self.names.get(chat_id, chat_id)}: {text}", file=out)


__all__ = ["ConsoleClient", "ReplyClient"]
