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

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .adapters import Incoming, TelegramAdapter, UpdateAdapter
from .console import ConsoleClient, ReplyClient
from .router import Context, PendingSession, Router, RouterError, SessionConflictError
from .session import (
    SessionMiddleware,
    SessionValidationError,
    by_chat,
    by_chat_topic,
    by_user,
    by_user_in_chat,
    by_user_in_topic,
    session,
)

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


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "ConsoleClient",
    "Context",
    "Incoming",
    "PendingSession",
    "ReplyClient",
    "Router",
    "RouterError",
    "SessionConflictError",
    "SessionMiddleware",
    "SessionValidationError",
    "TelegramAdapter",
    "TelegramClient",
    "TelegramError",
    "TelegramPolling",
    "TelegramUnavailableError",
    "TelegramWebhook",
    "UpdateAdapter",
    "by_chat",
    "by_chat_topic",
    "by_user",
    "by_user_in_chat",
    "by_user_in_topic",
    "session",
]
