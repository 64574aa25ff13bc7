"""The ``session()`` middleware: load ``ctx.session`` before the handlers, save it after, only if changed."""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from ..codec import JsonDict
from ..errors import InvalidValueError, SessionDecodeError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation, IsolationName, make_isolation
from ..keys import TTL, check_key, ttl_seconds
from ..migrations import Migration, MigrationError, Migrations, stored_version
from ..store import ClosableStore, RawStore, SessionStore, accepts_ttl
from ..update import SessionUpdate, default_quarantine_key
from ..urls import open_store
from .router import Context, Middleware, Next, PendingSession, RouterError, SessionConflictError

if TYPE_CHECKING:
    from pydantic import BaseModel

KeyFunc = Callable[[Context[Any]], "str | Awaitable[str | None] | None"]

VERSION_KEY = "$version"
"""Where a session with migrations records the version it is stored at."""


def by_user(ctx: Context[Any]) -> str | None:
    """Key by the sender's id (the default, as in the seed)."""
    user = ctx.from_user
    return None if not user or user.get("id") is None else str(user["id"])


def by_chat(ctx: Context[Any]) -> str | None:
    """Key by the chat's id: one session shared by everyone in a chat."""
    chat = ctx.chat
    return None if not chat or chat.get("id") is None else str(chat["id"])


def by_user_in_chat(ctx: Context[Any]) -> str | None:
    """Key by sender and chat: a user has a separate session in each chat."""
    user, chat = by_user(ctx), by_chat(ctx)
    return None if user is None or chat is None else f"{chat}:{user}"


def by_user_in_topic(ctx: Context[Any]) -> str | None:
    """Key by sender, chat and forum topic: a user has a separate session in each topic (and each chat)."""
    user, chat, thread = by_user(ctx), by_chat(ctx), ctx.incoming.thread_id
    if user is None or chat is None:
        return None
    return f"{chat}:{user}" if thread is None else f"{chat}:{thread}:{user}"


def by_chat_topic(ctx: Context[Any]) -> str | None:
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


class SessionValidationError(SessionDecodeError):
    """A stored session does not validate as the model of ``session(model=...)``; the record is left as it was.

    ``key`` is the stored key, ``field`` the dotted path of the first invalid field (``""``: the whole value).
    """

    def __init__(self, key: str, model: str, field: str, reason: str) -> None:
        SessionDecodeError.__init__(self, key, f"does not validate as {model}: {field or 'the value'}: {reason}")
        self.field = field
        self.args = (f"session {key!r} does not validate as {model}: field {field!r}: {reason}",)


_CONTEXT_NAMES = frozenset(name for name in dir(Context) if not name.startswith("_")) - {"session"}


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
    - ``property``: the context attribute the session hangs on (default
      ``"session"``); several middlewares with different properties (and keys)
      run on one update, e.g. ``session(store, key="chat", property="chat_session")``.
    - ``prefix``: put before every stored key as given (``"xyz-"`` stores chat 42
      at ``xyz-42``); defaults to none for ``ctx.session`` (the keys of 0.1) and
      to ``"<property>:"`` for any other property. :meth:`Router.use
      <sessionware.bot.Router.use>` refuses a second middleware on the same
      property, or with the same prefix on the same store (the same object or
      URL), with :class:`~sessionware.bot.SessionConflictError`; a key that
      would fall into a longer prefix of another middleware on the store is
      refused when it comes up, so two middlewares never write one stored key.
    - ``lazy``: read the store only on ``await ctx.load_session()`` (``await
      ctx.load_session("chat_session")`` for another property), which returns
      the session and sets the property; until then reading the property
      raises :class:`~sessionware.bot.RouterError`. Assigning a new value first
      writes it without reading; an untouched lazy session costs no store call
      (no lease either).
    - ``model``: a pydantic model: ``ctx.session`` is an instance, validated on
      load after the migrations (a record that does not validate raises
      :class:`SessionValidationError` naming the key and the field, or goes to
      quarantine), stored as ``model_dump(mode="json")`` and written only when
      that changed; a new session is ``initial()`` (a model or a dict) or
      ``model()``. ``None`` as the value deletes the session. Type the router
      ``Router[Model]`` and handlers ``Context[Model]``.

    The session is written only when its encoding differs from what was read,
    deleted when it became empty, and a store or decode error stops the update
    with a typed error, leaving the stored data as it was.
    """

    def __init__(
        self,
        store: SessionStore | str | None = None,
        *,
        key: KeyFunc | str = by_user,
        initial: Callable[[], JsonDict] | Callable[[], BaseModel] | None = None,
        ttl: TTL = None,
        rolling: bool = False,
        isolation: IsolationName | Isolation = "local",
        save_on_error: bool = False,
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        on_decode_error: Literal["raise", "quarantine"] = "raise",
        quarantine_key: Callable[[str], str] | None = None,
        migrations: Mapping[int, Migration] | None = None,
        property: str = "session",
        prefix: str | None = None,
        lazy: bool = False,
        model: type[BaseModel] | None = None,
    ) -> None:
        if not isinstance(property, str) or not property.isidentifier() or keyword.iskeyword(property):
            raise InvalidValueError("property", f"must be a Python identifier, not {property!r}")
        if property.startswith("_") or property in _CONTEXT_NAMES:
            raise InvalidValueError("property", f"{property!r} is taken by the context; choose another name")
        if prefix is None:
            prefix = "" if property == "session" else f"{property}:"
        elif not isinstance(prefix, str):
            raise InvalidValueError("prefix", f"must be a str, not {type(prefix).__name__}")
        self.property = property
        self.prefix = prefix
        self.lazy = bool(lazy)
        self.model = _checked_model(model, initial)
        self._url = store if isinstance(store, str) else None
        self._reserved: tuple[str, ...] = ()
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
        self.initial: Callable[[], Any] | None = initial
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

    def check_siblings(self, middleware: Sequence[Middleware]) -> None:
        """Refuse to join a router next to a session middleware on the same property or key namespace.

        Called by :meth:`Router.use <sessionware.bot.Router.use>` with the middleware added before this one.
        """
        same_store: list[SessionMiddleware] = []
        for other in middleware:
            if not isinstance(other, SessionMiddleware):
                continue
            if other is self:
                raise SessionConflictError(f"this session() middleware (ctx.{self.property}) is already on the router")
            if other.property == self.property:
                raise SessionConflictError(
                    f"two session() middlewares hang ctx.{self.property}; give one of them another property="
                )
            if other.store is self.store or (self._url is not None and other._url == self._url):
                if other.prefix == self.prefix:
                    raise SessionConflictError(
                        f"ctx.{other.property} and ctx.{self.property} would store their sessions under the same "
                        f"key prefix {self.prefix!r} on one store; give one of them another prefix="
                    )
                same_store.append(other)
        for other in same_store:
            if other.prefix.startswith(self.prefix):
                self._reserved += (other.prefix,)
            elif self.prefix.startswith(other.prefix):
                other._reserved += (self.prefix,)

    def _stored_key(self, key: str) -> str:
        stored = check_key(self.prefix + key if self.prefix else key)
        if self._reserved and stored.startswith(self._reserved):
            raise SessionConflictError(
                f"ctx.{self.property} would store key {stored!r}, which lies in the key namespace of another "
                "session() middleware on the same store; nothing was read or written"
            )
        return stored

    async def __call__(self, ctx: Context[Any], next: Next) -> None:
        """Load the session, run the rest of the chain, save what changed."""
        key = self.key(ctx)
        if type(key) is not str and inspect.isawaitable(key):
            key = await key
        if key is None:
            await self._keyless(ctx, next)
            return
        key = self._stored_key(key)
        if self.lazy:
            await self._lazily(ctx, next, key)
            return
        async with self.updates.open(key) as update:
            ctx.hang_session(self.property, await self._open(update, key))
            try:
                await next()
            except BaseException:
                if self.save_on_error:
                    await self._save(update, ctx.current_session(self.property), rolling=False)
                raise
            await self._save(update, ctx.current_session(self.property), rolling=self.rolling)

    async def _keyless(self, ctx: Context[Any], next: Next) -> None:
        """An update without a key: an empty, read-only session that is never stored."""
        empty: Any = NoSession() if self.model is None else self._new_model(self.model)
        before = None if self.model is None else empty.model_dump(mode="json")
        ctx.hang_session(self.property, empty)
        await next()
        after = ctx.current_session(self.property)
        if after is not empty or (before is not None and after.model_dump(mode="json") != before):
            raise RouterError(
                NO_SESSION if self.property == "session" else NO_SESSION.replace("ctx.session", f"ctx.{self.property}")
            )

    async def _lazily(self, ctx: Context[Any], next: Next, key: str) -> None:
        """The update unit is opened (lock, lease, read) only when the session is loaded or written."""
        opened: list[SessionUpdate] = []
        failed: list[BaseException] = []

        async def load() -> Any:
            update = self.updates.open(key)
            await update.__aenter__()
            opened.append(update)
            try:
                return await self._open(update, key)
            except BaseException as exc:
                failed.append(exc)
                raise

        pending = PendingSession(load)
        ctx.hang_session(self.property, pending)
        try:
            try:
                await next()
            except BaseException:
                if self.save_on_error:
                    await self._save_lazy(ctx, key, opened, failed, pending, rolling=False)
                raise
            await self._save_lazy(ctx, key, opened, failed, pending, rolling=self.rolling)
        finally:
            for update in opened:
                await update.__aexit__(None, None, None)

    async def _save_lazy(
        self,
        ctx: Context[Any],
        key: str,
        opened: list[SessionUpdate],
        failed: list[BaseException],
        pending: PendingSession,
        *,
        rolling: bool,
    ) -> None:
        value = ctx.current_session(self.property)
        if value is pending:
            return  # never read, never assigned: no store call
        if failed:
            raise RouterError(
                f"ctx.{self.property} of session {key!r} could not be loaded ({failed[0]}); "
                "the value assigned after that was not saved and the stored record was left as it was"
            )
        if opened:
            await self._save(opened[0], value, rolling=rolling)
            return
        # Assigned before any read: written without reading what it replaces.
        async with self.updates.open(key, load=False) as update:
            encoded = self._encoded(value)
            stored = None if encoded is None else self._stored_form(encoded)
            if not stored:
                update.existed = True  # an empty value deletes whatever is stored
            await update.save(stored, ttl=self.ttl)

    async def _open(self, update: SessionUpdate, key: str) -> Any:
        """The session as handlers see it: the stored one (migrated, validated) or a new one."""
        try:
            value = self._read(update, key)
        except SessionDecodeError as exc:
            if self.on_decode_error != "quarantine":
                raise
            await update.quarantine(self.quarantine_key(key), exc)
            value = None
        if value is None:
            value = self._migrated(update.fresh(self._stored_form(self._initial_value())), key)
            if self.model is not None:
                value = self._validated(self.model, value, key)
        return value

    def _read(self, update: SessionUpdate, key: str) -> Any:
        value = update.load()
        if value is None:
            return None
        value = self._migrated(value, key)
        return value if self.model is None else self._validated(self.model, value, key)

    async def _save(self, update: SessionUpdate, value: Any, *, rolling: bool) -> None:
        encoded = self._encoded(value)
        await update.save(None if encoded is None else self._stored_form(encoded), ttl=self.ttl, rolling=rolling)

    def _new_model(self, model: type[BaseModel]) -> Any:
        initial = self.initial() if self.initial is not None else model()
        return initial if isinstance(initial, model) else model.model_validate(initial)

    def _initial_value(self) -> JsonDict:
        """A new session in its stored form (a model's ``model_dump(mode="json")``)."""
        if self.model is not None:
            dumped: JsonDict = self._new_model(self.model).model_dump(mode="json")
            return dumped
        value: JsonDict = self.initial() if self.initial is not None else {}
        return value

    @staticmethod
    def _validated(model: type[BaseModel], value: JsonDict, key: str) -> Any:
        from pydantic import ValidationError

        try:
            return model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(part) for part in first["loc"])
            raise SessionValidationError(key, model.__name__, field, first["msg"]) from None

    def _encoded(self, value: Any) -> JsonDict | None:
        """What a handler left in the property, as a dict to store (``None``: delete)."""
        model = self.model
        if model is None or value is None:
            return value  # type: ignore[no-any-return]
        if not isinstance(value, model):
            raise InvalidValueError(
                f"ctx.{self.property}",
                f"must be a {model.__name__} (session(model=...)) or None, not {type(value).__name__}",
            )
        dumped: JsonDict = value.model_dump(mode="json")
        return dumped

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


def _checked_model(model: object, initial: object) -> type[BaseModel] | None:
    """``model`` if it is a pydantic model class that can make a new session; refused with the reason otherwise."""
    if model is None:
        return None
    from pydantic import BaseModel

    if not isinstance(model, type) or not issubclass(model, BaseModel):
        raise InvalidValueError("model", f"must be a pydantic model class, not {model!r}")
    if initial is None:
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        if required:
            raise InvalidValueError(
                "initial", f"is needed: {model.__name__} has required fields ({', '.join(required)})"
            )
    return model


session = SessionMiddleware
"""``router.use(session(store, **options))``: the seed's name for :class:`SessionMiddleware`."""


__all__ = [
    "KEY_PRESETS",
    "NoSession",
    "SessionMiddleware",
    "SessionValidationError",
    "by_chat",
    "by_chat_topic",
    "by_user",
    "by_user_in_chat",
    "by_user_in_topic",
    "session",
]
