"""The ``session()`` middleware: load ``ctx.session`` before the handlers, save it after, only if changed."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, NoReturn

from ..codec import JsonDict
from ..errors import InvalidValueError, SessionDecodeError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation, IsolationName, make_isolation
from ..keys import TTL, check_key, ttl_seconds
from ..migrations import Migration, MigrationError, Migrations, stored_version
from ..store import ClosableStore, RawStore, SessionStore, accepts_ttl
from ..update import default_quarantine_key
from ..urls import open_store
from .router import Context, Next, RouterError

KeyFunc = Callable[[Context], "str | Awaitable[str | None] | None"]

VERSION_KEY = "$version"
"""Where a session with migrations records the version it is stored at."""


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


def by_user_in_topic(ctx: Context) -> str | None:
    """Key by sender, chat and forum topic: a user has a separate session in each topic (and each chat)."""
    user, chat, thread = by_user(ctx), by_chat(ctx), ctx.incoming.thread_id
    if user is None or chat is None:
        return None
    return f"{chat}:{user}" if thread is None else f"{chat}:{thread}:{user}"


def by_chat_topic(ctx: Context) -> str | None:
    """Key by chat and forum topic: one session shared by everyone in a topic (the chat's, outside topics)."""
    chat, thread = by_chat(ctx), ctx.incoming.thread_id
    if chat is None:
        return None
    return chat if thread is None else f"{chat}:{thread}"


KEY_PRESETS: dict[str, KeyFunc] = {
    "user": by_user,
    "chat": by_chat,
    "user_in_chat": by_user_in_chat,
    "user_in_topic": by_user_in_topic,
    "chat_topic": by_chat_topic,
}


class NoSession(dict[str, Any]):
    """The session of an update that has none (no sender for a per-user key, say): empty, and read-only, so a
    change is refused at once instead of being lost."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise RouterError(NO_SESSION)

    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = __ior__ = _refuse


NO_SESSION = (
    "this update has no session key (e.g. no sender for a per-user session), so ctx.session is empty and read-only; "
    "a change would be lost"
)


class SessionMiddleware:
    """The session middleware: ``router.use(session())`` (``session`` is this class).

    - ``store``: any :class:`SessionStore`, or a store URL for :func:`~sessionware.open_store` (then
      :meth:`close` closes it); defaults to an :class:`InMemorySessionStore`.
    - ``key``: who a session belongs to: a callable ``ctx -> str | None`` (may
      be async) or ``"user"`` (default), ``"chat"``, ``"user_in_chat"``,
      ``"user_in_topic"``, ``"chat_topic"``. A ``None`` key gives an empty,
      read-only session that is never stored: changing it raises
      :class:`~sessionware.bot.RouterError` instead of losing the change.
    - ``initial``: factory of a new session; an untouched initial session is never written.
    - ``ttl``: expiry of written sessions; ``rolling=True`` also extends it on unchanged reads.
    - ``isolation``: ``"local"`` (default) runs updates for one key one at a
      time, in arrival order, in this process; ``"distributed"`` also holds a
      store lease on the key across processes (loaded under the lease, renewed
      while the handler runs, the write fenced: refused with
      :class:`~sessionware.errors.LeaseExpiredError` if the lease was lost);
      ``"none"`` turns isolation off; an :class:`~sessionware.isolation.Isolation`
      object is used as it is.
    - ``lease`` / ``lock_wait``: lease length and how long to wait for it (distributed only).
    - ``on_decode_error``: ``"raise"`` (default) stops the update with
      :class:`~sessionware.errors.SessionDecodeError` and leaves the record
      untouched; ``"quarantine"`` copies the undecodable bytes to
      ``quarantine_key(key)`` (default ``"<key>:quarantined:<ns timestamp>"``),
      logs a warning and starts a fresh session.
    - ``save_on_error``: also save when a handler raised (off: nothing is written).
    - ``migrations``: ``{version: fn}`` run in order on a session stored at an
      older version (0: stored before there were migrations), the result
      written back with the next save; a new session starts at the newest
      version. The version is stored under the key ``"$version"`` of the
      session and never shows in ``ctx.session``.

    The session is written only when its encoding differs from what was read,
    deleted when it became empty, and a store or decode error stops the update
    with a typed error, leaving the stored data as it was.
    """

    def __init__(
        self,
        store: SessionStore | str | None = None,
        *,
        key: KeyFunc | str = by_user,
        initial: Callable[[], JsonDict] | None = None,
        ttl: TTL = None,
        rolling: bool = False,
        isolation: IsolationName | Isolation = "local",
        save_on_error: bool = False,
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        on_decode_error: Literal["raise", "quarantine"] = "raise",
        quarantine_key: Callable[[str], str] | None = None,
        migrations: Mapping[int, Migration] | None = None,
    ) -> None:
        self._owns_store = store is None or isinstance(store, str)
        if store is None:
            from ..stores.memory import InMemorySessionStore

            store = InMemorySessionStore()
        elif isinstance(store, str):
            store = open_store(store)
        self.store: SessionStore = store
        if isinstance(key, str):
            if key not in KEY_PRESETS:
                raise InvalidValueError("key", f"must be a callable or one of {sorted(KEY_PRESETS)}, not {key!r}")
            key = KEY_PRESETS[key]
        if not callable(key):
            raise InvalidValueError("key", f"must be a callable or a preset name, not {type(key).__name__}")
        self.key = key
        self.initial = initial
        self.ttl = ttl_seconds(ttl)
        if self.ttl is not None and not accepts_ttl(store):
            raise InvalidValueError("ttl", f"cannot be used: {type(store).__name__}.set() takes no ttl")
        self.rolling = rolling
        self.save_on_error = save_on_error
        if on_decode_error not in ("raise", "quarantine"):
            raise InvalidValueError("on_decode_error", f"must be 'raise' or 'quarantine', not {on_decode_error!r}")
        if on_decode_error == "quarantine" and not isinstance(store, RawStore):
            raise InvalidValueError("on_decode_error", "'quarantine' needs a store with bytes access (RawStore)")
        self.on_decode_error = on_decode_error
        self.quarantine_key = quarantine_key or default_quarantine_key
        self.updates = make_isolation(store, isolation, lease=lease, lock_wait=lock_wait)
        self.migrations = None if migrations is None else Migrations(migrations)

    async def close(self) -> None:
        """Close the store if this middleware opened it (from a URL, or the in-memory default)."""
        if self._owns_store and isinstance(self.store, ClosableStore):
            await self.store.close()

    @property
    def isolation(self) -> str:
        """The name of the isolation strategy (``"none"``, ``"local"`` or ``"distributed"``)."""
        return self.updates.name

    async def __call__(self, ctx: Context, next: Next) -> None:
        """Load the session, run the rest of the chain, save what changed."""
        key = self.key(ctx)
        if type(key) is not str and inspect.isawaitable(key):
            key = await key
        if key is None:
            empty = ctx.session = NoSession()
            await next()
            if ctx.session is not empty:
                raise RouterError(NO_SESSION)
            return
        async with self.updates.open(check_key(key)) as update:
            try:
                value = update.load()
            except SessionDecodeError as exc:
                if self.on_decode_error != "quarantine":
                    raise
                await update.quarantine(self.quarantine_key(key), exc)
                value = None
            if value is None:
                value = update.fresh(self._stored_form({} if self.initial is None else self.initial()))
            ctx.session = self._migrated(value, key)
            try:
                await next()
            except BaseException:
                if self.save_on_error:
                    await update.save(self._stored_form(ctx.session), ttl=self.ttl)
                raise
            await update.save(self._stored_form(ctx.session), ttl=self.ttl, rolling=self.rolling)

    def _migrated(self, value: JsonDict, key: str) -> JsonDict:
        """The stored value without its version, brought to the newest version by the migrations."""
        if self.migrations is None:
            return value
        version = stored_version(value.pop(VERSION_KEY, None), key=key)
        if version > self.migrations.newest:
            raise MigrationError(
                f"session {key!r} is stored at version {version}, newer than the newest migration "
                f"({self.migrations.newest}) of this application; it was left as it is"
            )
        return self.migrations.apply(value, version, key=key) if version < self.migrations.newest else value

    def _stored_form(self, value: JsonDict) -> JsonDict:
        """What is stored: the session, led by its version when there are migrations (empty stays empty)."""
        if self.migrations is None or not value:
            return value
        return {VERSION_KEY: self.migrations.newest, **value}


session = SessionMiddleware
"""``router.use(session(store, **options))``: the seed's name for :class:`SessionMiddleware`."""


__all__ = [
    "KEY_PRESETS",
    "NoSession",
    "SessionMiddleware",
    "by_chat",
    "by_chat_topic",
    "by_user",
    "by_user_in_chat",
    "by_user_in_topic",
    "session",
]
