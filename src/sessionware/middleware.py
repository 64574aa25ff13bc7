"""The ``session()`` middleware: load ``ctx.session`` before the handlers, save it after, only if changed."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .codec import DEFAULT_CODEC, Codec, JsonDict
from .errors import InvalidValueError, SessionDecodeError
from .isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, HeldLease, hold
from .keys import TTL, check_key, ttl_seconds
from .locks import KeyedLock
from .router import Context, Next
from .store import BasicSessionStore, ExpiringStore, LockingStore, RawStore, accepts_ttl
from .stores.memory import InMemorySessionStore

log = logging.getLogger("sessionware")

KeyFunc = Callable[[Context], "str | Awaitable[str | None] | None"]
Isolation = Literal["none", "local", "distributed"]


def default_quarantine_key(key: str) -> str:
    """Where an undecodable session is kept aside: ``"<key>:quarantined:<nanosecond timestamp>"``."""
    return f"{key}:quarantined:{time.time_ns()}"


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
    """The session middleware: ``router.use(session())`` (``session`` is this class).

    - ``store``: any :class:`SessionStore`; defaults to an :class:`InMemorySessionStore`.
    - ``key``: who a session belongs to: a callable ``ctx -> str | None`` (may
      be async) or ``"user"`` (default), ``"chat"``, ``"user_in_chat"``. A
      ``None`` key gives an empty session that is never stored.
    - ``initial``: factory of a new session; an untouched initial session is never written.
    - ``ttl``: expiry of written sessions; ``rolling=True`` also extends it on unchanged reads.
    - ``isolation``: ``"local"`` (default) runs updates for one key one at a
      time, in arrival order, in this process; ``"distributed"`` also holds a
      store lease on the key across processes (loaded under the lease, renewed
      while the handler runs, the write fenced: refused with
      :class:`~sessionware.errors.LeaseExpiredError` if the lease was lost);
      ``"none"`` turns isolation off.
    - ``lease`` / ``lock_wait``: lease length and how long to wait for it (distributed only).
    - ``on_decode_error``: ``"raise"`` (default) stops the update with
      :class:`~sessionware.errors.SessionDecodeError` and leaves the record
      untouched; ``"quarantine"`` copies the undecodable bytes to
      ``quarantine_key(key)`` (default ``"<key>:quarantined:<ns timestamp>"``),
      logs a warning and starts a fresh session.
    - ``save_on_error``: also save when a handler raised (off: nothing is written).

    The session is written only when its encoding differs from what was read,
    deleted when it became empty, and a store or decode error stops the update
    with a typed error, leaving the stored data as it was.
    """

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
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        on_decode_error: Literal["raise", "quarantine"] = "raise",
        quarantine_key: Callable[[str], str] | None = None,
    ) -> None:
        self.store: BasicSessionStore = store if store is not None else InMemorySessionStore()
        if isinstance(key, str):
            if key not in KEY_PRESETS:
                raise InvalidValueError("key", f"must be a callable or one of {sorted(KEY_PRESETS)}, not {key!r}")
            key = KEY_PRESETS[key]
        if not callable(key):
            raise InvalidValueError("key", f"must be a callable or a preset name, not {type(key).__name__}")
        if isolation not in ("none", "local", "distributed"):
            raise InvalidValueError("isolation", f"must be 'none', 'local' or 'distributed', not {isolation!r}")
        self._leases: LockingStore | None = None
        if isolation == "distributed":
            if not isinstance(self.store, LockingStore) or not isinstance(self.store, RawStore):
                raise InvalidValueError(
                    "isolation", f"'distributed' needs a store with leases; {type(self.store).__name__} has none"
                )
            self._leases = self.store
        self.lease = lease
        self.lock_wait = lock_wait
        self.key = key
        self.initial = initial
        self.ttl = ttl_seconds(ttl)
        if self.ttl is not None and not accepts_ttl(self.store):
            raise InvalidValueError("ttl", f"cannot be used: {type(self.store).__name__}.set() takes no ttl")
        self.rolling = rolling
        self.isolation = isolation
        self.save_on_error = save_on_error
        if on_decode_error not in ("raise", "quarantine"):
            raise InvalidValueError("on_decode_error", f"must be 'raise' or 'quarantine', not {on_decode_error!r}")
        if on_decode_error == "quarantine" and not isinstance(self.store, RawStore):
            raise InvalidValueError("on_decode_error", "'quarantine' needs a store with bytes access (RawStore)")
        self.on_decode_error = on_decode_error
        self.quarantine_key = quarantine_key or default_quarantine_key
        self._raw = isinstance(self.store, RawStore)
        self.codec: Codec = self.store.codec if isinstance(self.store, RawStore) else DEFAULT_CODEC
        self._locks = KeyedLock()

    async def __call__(self, ctx: Context, next: Next) -> None:
        """Load the session, run the rest of the chain, save what changed."""
        key = self.key(ctx)
        if type(key) is not str and inspect.isawaitable(key):
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
        if self._leases is not None:
            async with hold(self._leases, key, lease=self.lease, wait=self.lock_wait) as held:
                stored = None if held.record is None else held.record.data
                await self._update(ctx, key, next, stored, held)
            return
        await self._update(ctx, key, next, await self._load(key), None)

    async def _update(
        self, ctx: Context, key: str, next: Next, stored: bytes | None, held: HeldLease | None
    ) -> None:
        existed = stored is not None
        baseline = b""  # what the saved session is compared with; b"" always differs
        if stored is not None:
            try:
                ctx.session = self.codec.decode(key, stored)
                baseline = stored
            except SessionDecodeError as exc:
                if self.on_decode_error != "quarantine":
                    raise
                await self._quarantine(key, stored, exc)
                stored = None
        if stored is None:
            fresh = self.codec.encode(self.initial() if self.initial is not None else {})
            ctx.session = self.codec.decode(key, fresh)
            if not existed:
                baseline = fresh
        try:
            await next()
        except BaseException:
            if self.save_on_error:
                await self._save(ctx, key, baseline, existed, held)
            raise
        await self._save(ctx, key, baseline, existed, held)

    async def _quarantine(self, key: str, data: bytes, exc: SessionDecodeError) -> None:
        aside = self.quarantine_key(key)
        await self.store.set_raw(aside, data)  # type: ignore[attr-defined]
        log.warning("session %r could not be decoded (%s); kept aside under %r, starting fresh", key, exc.reason, aside)

    async def _load(self, key: str) -> bytes | None:
        if self._raw:
            return await self.store.get_raw(key)  # type: ignore[attr-defined, no-any-return]
        value = await self.store.get(key)
        return None if value is None else self.codec.encode(value)

    async def _save(self, ctx: Context, key: str, before: bytes, existed: bool, held: HeldLease | None) -> None:
        value: Any = ctx.session
        if not value:
            if held is not None and existed:
                await held.commit(None)
            elif existed:
                await self.store.delete(key)
            return
        data = self.codec.encode(value)
        if data == before:
            if existed and self.rolling and self.ttl is not None and isinstance(self.store, ExpiringStore):
                await self.store.touch(key, self.ttl)
            return
        if held is not None:
            await held.commit(data, ttl=self.ttl)
        elif self._raw:
            await self.store.set_raw(key, data, ttl=self.ttl)  # type: ignore[attr-defined]
        elif self.ttl is None:
            await self.store.set(key, value)
        else:
            await self.store.set(key, value, ttl=self.ttl)  # type: ignore[call-arg]


session = SessionMiddleware
"""``router.use(session(store, **options))``: the seed's name for :class:`SessionMiddleware`."""
