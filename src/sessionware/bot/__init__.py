"""The bot surface: a message router, the ``session()`` middleware, platform adapters and reply clients.

::

    from sessionware.bot import Router, session

    router = Router()
    router.use(session())                 # ctx.session, loaded before the handlers, saved after
    await router.run_polling(token)       # Telegram's Bot API (pip install 'sessionware[bot]')

The Telegram names (:class:`TelegramClient`, :class:`TelegramPolling`,
:class:`TelegramWebhook`, :class:`TelegramError`,
:class:`TelegramUnavailableError`) are imported on first use: they need httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .adapters import Incoming, TelegramAdapter, UpdateAdapter
from .console import ConsoleClient, ReplyClient
from .router import Context, Router, RouterError
from .session import SessionMiddleware, by_chat, by_user, by_user_in_chat, session

if TYPE_CHECKING:
    from .telegram import TelegramClient, TelegramError, TelegramUnavailableError
    from .transport import TelegramPolling, TelegramWebhook

_LAZY = {
    "TelegramClient": ".telegram",
    "TelegramError": ".telegram",
    "TelegramUnavailableError": ".telegram",
    "TelegramPolling": ".transport",
    "TelegramWebhook": ".transport",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ConsoleClient",
    "Context",
    "Incoming",
    "ReplyClient",
    "Router",
    "RouterError",
    "SessionMiddleware",
    "TelegramAdapter",
    "TelegramClient",
    "TelegramError",
    "TelegramPolling",
    "TelegramUnavailableError",
    "TelegramWebhook",
    "UpdateAdapter",
    "by_chat",
    "by_user",
    "by_user_in_chat",
    "session",
]
