"""The ``session()`` middleware: load ``ctx.session`` before the handlers, save it after, only if changed."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .codec import DEFAULT_CODEC, Codec, JsonDict
from .errors import InvalidValueError
from .keys import TTL, check_key, ttl_seconds
from .locks import KeyedLock
from .router import Context, Next
from .store import BasicSessionStore, RawStore, accepts_ttl
from .stores.memory import InMemorySessionStore

KeyFunc = Callable[[Context], "str | Awaitable[str | None] | None"]
Isolation = Literal["none", "local"]


def by_user(ctx: Context) -> str | None:
    """Key by the sender's id (the default, as in the seed)."""
    user = ctx.from_user
    return None if not user or user.get("id") is None else str(user["id"])


def by_chat(ctx: Context) -> str | None:
    """Key by the chat's id: one session shared by everyone in a chat."""
    chat = ctx.chat
    return None if not chat or chat.get("id") is None else str(chat["id"])


def by_user_in_chat(ctx: Context) -> str | None:
    """Key by sender and chat: a user has a separate session in each chat."""
    user, chat = by_user(ctx), by_chat(ctx)
    return None if user is None or chat is None else f"{chat}:{user}"


KEY_PRESETS: dict[str, KeyFunc] = {"user": by_user, "chat": by_chat, "user_in_chat": by_user_in_chat}


class SessionMiddleware:
    """Middleware that gives each update ``ctx.session``; build it with :func:`session`."""

    def __init__(
        self,
        store: BasicSessionStore | None = None,
        *,
        key: KeyFunc | str = by_user,
        initial: Callable[[], JsonDict] | None = None,
        ttl: TTL = None,
        rolling: bool = False,
        isolation: Isolation = "local",
        save_on_error: bool = False,
    ) -> None:
        self.store: BasicSessionStore = store if store is not None else InMemorySessionStore()
        if isinstance(key, str):
            if key not in KEY_PRESETS:
                raise InvalidValueError("key", f"must be a callable or one of {sorted(KEY_PRESETS)}, not {key!r}")
            key = KEY_PRESETS[key]
        if not callable(key):
            raise InvalidValueError("key", f"must be a callable or a preset name, not {type(key).__name__}")
        if isolation not in ("none", "local"):
            raise InvalidValueError("isolation", f"must be 'none' or 'local', not {isolation!r}")
        self.key = key
        self.initial = initial
        self.ttl = ttl_seconds(ttl)
        if self.ttl is not None and not accepts_ttl(self.store):
            raise InvalidValueError("ttl", f"cannot be used: {type(self.store).__name__}.set() takes no ttl")
        self.rolling = rolling
        self.isolation = isolation
        self.save_on_error = save_on_error
        self._raw = isinstance(self.store, RawStore)
        self.codec: Codec = self.store.codec if isinstance(self.store, RawStore) else DEFAULT_CODEC
        self._locks = KeyedLock()

    async def __call__(self, ctx: Context, next: Next) -> None:
        """Load the session, run the rest of the chain, save what changed."""
        key = self.key(ctx)
        if inspect.isawaitable(key):
            key = await key
        if key is None:
            ctx.session = {}
            await next()
            return
        check_key(key)
        if self.isolation == "none":
            await self._run(ctx, key, next)
        else:
            async with self._locks.hold(key):
                await self._run(ctx, key, next)

    async def _run(self, ctx: Context, key: str, next: Next) -> None:
        stored = await self._load(key)
        existed = stored is not None
        if stored is None:
            value = self.initial() if self.initial is not None else {}
            stored = self.codec.encode(value)
        ctx.session = self.codec.decode(key, stored)
        try:
            await next()
        except BaseException:
            if self.save_on_error:
                await self._save(ctx, key, stored, existed)
            raise
        await self._save(ctx, key, stored, existed)

    async def _load(self, key: str) -> bytes | None:
        if self._raw:
            return await self.store.get_raw(key)  # type: ignore[attr-defined, no-any-return]
        value = await self.store.get(key)
        return None if value is None else self.codec.encode(value)

    async def _save(self, ctx: Context, key: str, before: bytes, existed: bool) -> None:
        value: Any = ctx.session
        if not value:
            if existed:
                await self.store.delete(key)
            return
        data = self.codec.encode(value)
        if data == before:
            if existed and self.rolling and self.ttl is not None:
                touch = getattr(self.store, "touch", None)
                if touch is not None:
                    await touch(key, self.ttl)
            return
        if self._raw:
            await self.store.set_raw(key, data, ttl=self.ttl)  # type: ignore[attr-defined]
        elif self.ttl is None:
            await self.store.set(key, value)
        else:
            await self.store.set(key, value, ttl=self.ttl)  # type: ignore[call-arg]


def session(
    store: BasicSessionStore | None = None,
    *,
    key: KeyFunc | str = by_user,
    initial: Callable[[], JsonDict] | None = None,
    ttl: TTL = None,
    rolling: bool = False,
    isolation: Isolation = "local",
    save_on_error: bool = False,
) -> SessionMiddleware:
    """The session middleware: ``router.use(session())``.

    - ``store``: any :class:`SessionStore`; defaults to an :class:`InMemorySessionStore`.
    - ``key``: who a session belongs to: a callable ``ctx -> str | None`` (may
      be async) or ``"user"`` (default), ``"chat"``, ``"user_in_chat"``. A
      ``None`` key gives an empty session that is never stored.
    - ``initial``: factory of a new session; an untouched initial session is never written.
    - ``ttl``: expiry of written sessions; ``rolling=True`` also extends it on unchanged reads.
    - ``isolation``: ``"local"`` (default) runs updates for one key one at a
      time, in arrival order, in this process; ``"none"`` turns that off.
    - ``save_on_error``: also save when a handler raised (off: nothing is written).

    The session is written only when its encoding differs from what was read,
    deleted when it became empty, and a store or decode error stops the update
    with a typed error, leaving the stored data as it was.
    """
    return SessionMiddleware(
        store,
        key=key,
        initial=initial,
        ttl=ttl,
        rolling=rolling,
        isolation=isolation,
        save_on_error=save_on_error,
    )
