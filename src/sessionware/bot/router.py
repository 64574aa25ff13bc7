"""A small message router: middleware in onion order, then the first matching handler.

The router core is platform-neutral; an :class:`UpdateAdapter` turns a
platform's update into an :class:`Incoming` event. :class:`TelegramAdapter`
(the default) reads Telegram-shaped update dicts. The Telegram transport
(:mod:`sessionware.bot.transport`, the ``bot`` extra) is reached through
:meth:`Router.run_polling` and :meth:`Router.webhook_app`, imported on use.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, overload

from typing_extensions import TypeVar  # a TypeVar with a default (installed with pydantic)

from ..codec import JsonDict
from ..errors import SessionwareError
from .adapters import Incoming, Kind, TelegramAdapter, Update, UpdateAdapter
from .console import ReplyClient

if TYPE_CHECKING:
    from .telegram import TelegramClient
    from .transport import TelegramPolling, TelegramWebhook

S = TypeVar("S", default=JsonDict)
"""The type of ``ctx.session``: a dict unless the router says otherwise (``Router[Profile]``)."""

Next = Callable[[], Awaitable[None]]
Middleware = Callable[["Context[Any]", Next], Awaitable[None]]
Handler = Callable[["Context[S]"], Awaitable[Any]]
Pattern = str | re.Pattern[str] | None


_MISSING = object()


class RouterError(SessionwareError):
    """A router or middleware was used the wrong way."""


class SessionConflictError(RouterError):
    """Two ``session()`` middlewares would hang the same context property or write the same stored keys."""


class PendingSession:
    """A lazy session not read yet: :meth:`Context.load_session` reads it (once, however many ask)."""

    __slots__ = ("_loader", "_lock", "_value", "loaded")

    def __init__(self, loader: Callable[[], Awaitable[Any]]) -> None:
        self._loader = loader
        self._lock = asyncio.Lock()
        self._value: Any = None
        self.loaded = False

    async def load(self) -> Any:
        """The session, read from the store on the first call."""
        async with self._lock:
            if not self.loaded:
                self._value = await self._loader()
                self.loaded = True
        return self._value


def _unread(name: str) -> RouterError:
    load = "ctx.load_session()" if name == "session" else f"ctx.load_session({name!r})"
    return RouterError(
        f"ctx.{name} is lazy (session(lazy=True)) and not read yet: use `await {load}`, or assign a new value"
    )


class Context(Generic[S]):
    """Everything a middleware or handler sees about one update.

    ``ctx.session`` is the session of the ``session()`` middleware (a dict, or
    the model of ``session(model=...)``); a middleware with
    ``property="chat_session"`` hangs its own on ``ctx.chat_session``. A lazy
    session is read with ``await ctx.load_session()``; reading the property
    before that raises :class:`RouterError`.
    """

    __slots__ = ("_sessions", "client", "incoming", "params", "state", "update")

    def __init__(
        self,
        update: Update,
        incoming: Incoming,
        client: ReplyClient | None = None,
        session: S | None = None,
        state: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.update = update
        self.incoming = incoming
        self.client = client
        self._sessions: dict[str, Any] = {"session": {} if session is None else session}
        self.state: dict[str, Any] = {} if state is None else state
        self.params: dict[str, Any] = {} if params is None else params

    def __repr__(self) -> str:
        sessions = ", ".join(
            f"{name}={'<not read>' if type(value) is PendingSession else repr(value)}"
            for name, value in self._sessions.items()
        )
        return f"Context(incoming={self.incoming!r}, {sessions})"

    @property
    def session(self) -> S:
        """The session (``ctx.session``); :class:`RouterError` if it is lazy and not read yet."""
        value = self._sessions["session"]
        if type(value) is PendingSession:
            raise _unread("session")
        return value  # type: ignore[no-any-return]

    @session.setter
    def session(self, value: S) -> None:
        self._sessions["session"] = value

    def __getattr__(self, name: str) -> Any:
        # Only the properties a session() middleware hung here (ctx.chat_session, say).
        if not name.startswith("_"):
            value = self._sessions.get(name, _MISSING)
            if value is not _MISSING:
                if type(value) is PendingSession:
                    raise _unread(name)
                return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            object.__setattr__(self, name, value)
        except AttributeError:
            if name.startswith("_") or name not in self._sessions:
                raise
            self._sessions[name] = value

    def hang_session(self, name: str, value: Any) -> None:
        """Make ``value`` (or a :class:`PendingSession`) the session ``ctx.<name>`` (for session middlewares)."""
        self._sessions[name] = value

    def current_session(self, name: str = "session") -> Any:
        """The value of ``ctx.<name>`` as it is, a :class:`PendingSession` included (for session middlewares)."""
        return self._sessions[name]

    @overload
    async def load_session(self) -> S: ...

    @overload
    async def load_session(self, name: str) -> Any: ...

    async def load_session(self, name: str = "session") -> Any:
        """Read a lazy session from the store (once) and return it; an eager or assigned one is returned as it is.

        ``name`` is the property of the ``session()`` middleware (default ``"session"``).
        """
        value = self._sessions.get(name, _MISSING)
        if value is _MISSING:
            raise RouterError(f"no session middleware hangs ctx.{name} on this update")
        if type(value) is PendingSession:
            loaded = await value.load()
            if self._sessions.get(name) is value:
                self._sessions[name] = loaded
            return self._sessions[name]
        return value

    @property
    def from_user(self) -> JsonDict | None:
        """The sender of the update (Telegram's ``from``)."""
        return self.incoming.from_user

    @property
    def chat(self) -> JsonDict | None:
        """The chat the update belongs to."""
        return self.incoming.chat

    @property
    def text(self) -> str | None:
        """The message text or callback data."""
        return self.incoming.text

    async def reply(self, text: str, **options: Any) -> Any:
        """Send ``text`` to the chat this update came from."""
        if self.client is None:
            raise RouterError("ctx.reply() needs a client: Router(client=...)")
        chat_id = (self.chat or {}).get("id", (self.from_user or {}).get("id"))
        return await self.client.send_message(chat_id, text, **options)

    async def answer_callback(self, text: str | None = None, **options: Any) -> Any:
        """Answer the callback query of this update (``text``: a notice; ``show_alert=True``: an alert)."""
        if self.incoming.kind != "callback":
            raise RouterError(f"ctx.answer_callback() answers callback queries; this update is {self.incoming.kind!r}")
        answer = getattr(self.client, "answer_callback", None)
        if answer is None:
            raise RouterError("ctx.answer_callback() needs a client with answer_callback(), such as TelegramClient")
        return await answer(self.update, text, **options)


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Kind
    pattern: Pattern
    handler: Handler[Any]

    def match(self, incoming: Incoming) -> dict[str, Any] | None:
        if incoming.kind != self.kind:
            return None
        text = incoming.text or ""
        if self.kind == "command":
            head, _, args = text.partition(" ")
            name = head[1:].split("@", 1)[0]
            if self.pattern is not None and name != self.pattern:
                return None
            return {"command": name, "args": args.strip(), "argv": args.split()}
        if self.pattern is None:
            return {}
        if isinstance(self.pattern, str):
            return {} if text == self.pattern else None
        found = self.pattern.fullmatch(text)
        if found is None:
            return None
        return {"match": found, **found.groupdict()}


class _Next:
    """The ``next`` a middleware gets: runs the rest of the chain, once."""

    __slots__ = ("_called", "_ctx", "_index", "_router")

    def __init__(self, router: Router[Any], ctx: Context[Any], index: int) -> None:
        self._router = router
        self._ctx = ctx
        self._index = index
        self._called = False

    def __call__(self) -> Awaitable[None]:
        if self._called:
            raise RouterError("next() called more than once in one middleware")
        self._called = True
        return self._router._call(self._ctx, self._index)


class Router(Generic[S]):
    """Runs middleware around the first handler whose route matches an update.

    ``router.use(mw)`` adds a middleware ``async def mw(ctx, next)``; each runs
    in the order added and calls ``await next()`` to go on. Handlers are added
    with :meth:`command`, :meth:`text` and :meth:`callback`; the first match
    in registration order runs. ``Router[Profile]`` tells a type checker that
    its handlers' ``ctx.session`` is a ``Profile`` (with ``session(model=Profile)``).
    """

    def __init__(self, *, client: ReplyClient | None = None, adapter: UpdateAdapter | None = None) -> None:
        self.client = client
        self.adapter: UpdateAdapter = adapter or TelegramAdapter()
        self._middleware: list[Middleware] = []
        self._routes: list[_Route] = []

    def use(self, middleware: Middleware) -> Router[S]:
        """Add a middleware; returns the router so calls can be chained.

        A middleware with a ``check_siblings(middleware)`` method (``session()`` has one) is shown those added
        before it and may refuse to join: two ``session()`` middlewares hanging the same property, or sharing
        a key namespace on one store, raise :class:`SessionConflictError`.
        """
        if not callable(middleware):
            raise RouterError(f"middleware must be callable, not {type(middleware).__name__}")
        check: Callable[[Sequence[Middleware]], None] | None = getattr(middleware, "check_siblings", None)
        if check is not None:
            check(tuple(self._middleware))
        self._middleware.append(middleware)
        return self

    def on(self, kind: Kind, pattern: Pattern = None) -> Callable[[Handler[S]], Handler[S]]:
        """Register a handler for updates of ``kind`` matching ``pattern``."""

        def register(handler: Handler[S]) -> Handler[S]:
            if not inspect.iscoroutinefunction(handler):
                raise RouterError(f"handler {handler!r} must be an async function")
            self._routes.append(_Route(kind, pattern, handler))
            return handler

        return register

    def command(self, name: str | None = None) -> Callable[[Handler[S]], Handler[S]]:
        """Handle ``/name`` (also ``/name@bot``); ``ctx.params`` gets ``args`` and ``argv``."""
        return self.on("command", name.lstrip("/") if name else None)

    def text(self, pattern: Pattern = None) -> Callable[[Handler[S]], Handler[S]]:
        """Handle text equal to a string, fully matching a regex (groups go to ``ctx.params``), or any."""
        return self.on("text", pattern)

    def callback(self, pattern: Pattern = None) -> Callable[[Handler[S]], Handler[S]]:
        """Handle callback queries whose data matches ``pattern`` (as for :meth:`text`)."""
        return self.on("callback", pattern)

    def context(self, update: Update) -> Context[S]:
        """Build the context of ``update`` (handy in tests)."""
        if not isinstance(update, dict):
            raise RouterError(f"an update must be a dict, not {type(update).__name__}")
        return Context(update=update, incoming=self.adapter.parse(update), client=self.client)

    async def handle(self, update: Update, *, client: ReplyClient | None = None) -> Context[S]:
        """Run one update through the middleware and its handler; return its context.

        ``client`` is where ``ctx.reply()`` goes for this update (default: the router's).
        """
        ctx = self.context(update)
        if client is not None:
            ctx.client = client
        await self._call(ctx, 0)
        return ctx

    def polling(self, token: str | TelegramClient, **options: Any) -> TelegramPolling:
        """Long polling of the Telegram Bot API for this router, not started: ``await polling.run()``.

        The options are :class:`~sessionware.bot.transport.TelegramPolling`'s
        (``base_url``, ``poll_timeout``, ``allowed_updates``, ``concurrency``, ``key``, ``on_error``, ...).
        """
        from .transport import TelegramPolling

        return TelegramPolling(self, token, **options)

    async def run_polling(self, token: str | TelegramClient, **options: Any) -> None:
        """Receive updates from Telegram by long polling until cancelled (Ctrl-C); see :meth:`polling`."""
        await self.polling(token, **options).run()

    def webhook_app(self, token: str | TelegramClient, *, secret_token: str, **options: Any) -> TelegramWebhook:
        """An ASGI app receiving Telegram's webhook deliveries for this router.

        The options are :class:`~sessionware.bot.transport.TelegramWebhook`'s
        (``base_url``, ``queue_size``, ``ack``, ``concurrency``, ``key``, ``on_error``, ...).
        """
        from .transport import TelegramWebhook

        return TelegramWebhook(self, token, secret_token=secret_token, **options)

    def _call(self, ctx: Context[Any], index: int) -> Awaitable[None]:
        if index == len(self._middleware):
            return self._dispatch(ctx)
        return self._middleware[index](ctx, _Next(self, ctx, index + 1))

    async def _dispatch(self, ctx: Context[Any]) -> None:
        for route in self._routes:
            params = route.match(ctx.incoming)
            if params is not None:
                ctx.params.update(params)
                await route.handler(ctx)
                return


__all__ = [
    "Context",
    "Handler",
    "Middleware",
    "Next",
    "PendingSession",
    "Router",
    "RouterError",
    "SessionConflictError",
]
