"""The bot surface: a message router, the ``session()`` middleware, platform adapters and reply clients.

::

    from sessionware.bot import Router, session

    router = Router()
    router.use(session())                 # ctx.session, loaded before the handlers, saved after
"""

from .adapters import Incoming, TelegramAdapter, UpdateAdapter
from .console import ConsoleClient, ReplyClient
from .router import Context, Router, RouterError
from .session import SessionMiddleware, by_chat, by_user, by_user_in_chat, session

__all__ = [
    "ConsoleClient",
    "Context",
    "Incoming",
    "ReplyClient",
    "Router",
    "RouterError",
    "SessionMiddleware",
    "TelegramAdapter",
    "UpdateAdapter",
    "by_chat",
    "by_user",
    "by_user_in_chat",
    "session",
]
