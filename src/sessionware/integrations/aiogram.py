"""aiogram 3 FSM storage and event isolation over any sessionware store (``pip install 'sessionware[aiogram]'``).

::

    import asyncio

    from aiogram import Bot, Dispatcher, F
    from aiogram.filters import CommandStart
    from aiogram.fsm.context import FSMContext
    from aiogram.fsm.state import State, StatesGroup
    from aiogram.fsm.storage.base import StorageKey
    from aiogram.types import Message, Update

    from sessionware.integrations.aiogram import SessionwareStorage


    class Signup(StatesGroup):
        name = State()


    storage = SessionwareStorage("sqlite:///bot.db")  # a store object, or memory://, redis://…, postgresql://…
    dp = Dispatcher(storage=storage, events_isolation=storage.create_isolation())


    @dp.message(CommandStart())
    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state(Signup.name)


    @dp.message(Signup.name, F.text)
    async def name(message: Message, state: FSMContext) -> None:
        await state.update_data(name=message.text)
        await state.set_state(None)


    def text(words: str) -> Update:
        user = {"id": 42, "is_bot": False, "first_name": "Ann"}
        message = {"message_id": 1, "date": 0, "chat": {"id": 42, "type": "private"}, "from": user, "text": words}
        return Update(update_id=1, message=message)


    async def main() -> None:
        bot = Bot("123456:TOKEN")  # in production: await dp.start_polling(bot)
        for words in ("/start", "Ann"):
            await dp.feed_update(bot, text(words))
        assert await storage.get_data(StorageKey(bot_id=bot.id, chat_id=42, user_id=42)) == {"name": "Ann"}
        await dp.fsm.close()  # closes the store opened from the URL


    asyncio.run(main())

:class:`SessionwareStorage` is aiogram's ``BaseStorage``: the state and data
of one ``StorageKey`` are **one record**, under ``key_builder.build(key)``
(no part) — by default ``DefaultKeyBuilder(with_bot_id=True,
with_business_connection_id=True, with_destiny=True)``, so
``fsm:<bot>[:<business connection>]:<chat>[:<thread>]:<user>:<destiny>``:
bots sharing a store, a business connection's chats and a scene's history
(destiny ``scenes_history``) never collide. The record is
``{"state": "Signup:name", "data": {...}}`` (each part only when set; an
empty record is deleted), with ``"state_expires_at"`` / ``"data_expires_at"``
(``clock()`` seconds, wall clock by default) when ``state_ttl`` /
``data_ttl`` are set. Each TTL counts from the last write of its part, as in
aiogram's own storages; an expired part reads as unset, and the record
carries the store's own expiry (the later of its parts') so the store drops
it. TTLs need a store whose ``set`` takes a ``ttl`` (every sessionware
backend); on one that does not, the constructor raises
:class:`~sessionware.errors.InvalidValueError`. Data goes through the
store's codec: it reads back exactly as written, and a value that is not
JSON (a tuple, a datetime, NaN) raises ``InvalidValueError`` with its path
and writes nothing.

Every write is a read-modify-write of the record through sessionware's
update unit (:func:`~sessionware.isolation.make_isolation`, ``open(key)``):
under the key's in-process lock, and on a store with leases under a store
lease with a fenced commit, so ``update_data`` never loses a concurrent
``update_data`` of the same key, in this process or another.

:class:`SessionwareEventIsolation` is aiogram's ``BaseEventIsolation``:
``lock(key)`` holds the key's update for the whole handler — the in-process
FIFO lock, then (on a store with leases) the store lease, taken together
with the read of the record and renewed every third of ``lease`` while the
handler runs. The lock table holds only keys held or waited for. On a store
without leases the lock is in-process only, and ``lease`` / ``lock_wait``
are unused.

What is fenced: aiogram's ``FSMContextMiddleware`` takes ``lock(key)``,
then reads the state, and the handler reads and writes state and data of
that same key (aiogram issue #1317). When the storage and the isolation
share one store object and one key builder (``storage.create_isolation()``),
those calls are served from the record read under the lease: reads see it
and the handler's own writes, writes change it, and when the handler ends
(also by raising an exception; not when cancelled) the record is written
once, if it changed, by a commit fenced by the lease — refused with
:class:`~sessionware.errors.LeaseExpiredError`, writing nothing, if the
lease was lost (the process stalled past it and another took the key).
Other tasks and processes see the handler's changes when it ends, all at
once. On a store without leases the same happens under the in-process lock
alone, with nothing to fence the write. Not fenced by the event's lease:
writes to other keys in the handler (other users, another destiny such as
the scene history); each of those is its own update under its own short
lease. Over different store objects (two ``open_store`` of one URL, say)
the storage's own lease would wait for the event's, and with a different
key builder the handler's writes would miss the held record, so under the
lock the storage refuses either combination with ``InvalidValueError``.

``close()`` of either closes the store only if it opened it from a URL.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from ..codec import JsonDict
from ..errors import InvalidValueError, MissingExtraError, SessionDecodeError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation, make_isolation
from ..keys import check_key, check_seconds
from ..store import ClosableStore, LockingStore, RawStore, SessionStore, accepts_ttl
from ..update import SessionUpdate
from ..urls import open_store

try:
    from aiogram.exceptions import DataNotDictLikeError
    from aiogram.fsm.state import State
    from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("aiogram", "aiogram", "aiogram") from e

T = TypeVar("T")

_FIELDS = frozenset({"state", "data", "state_expires_at", "data_expires_at"})


def default_key_builder() -> KeyBuilder:
    """``DefaultKeyBuilder(with_bot_id=True, with_business_connection_id=True, with_destiny=True)``."""
    return DefaultKeyBuilder(with_bot_id=True, with_business_connection_id=True, with_destiny=True)


def _open(store: SessionStore | str) -> tuple[SessionStore, bool]:
    """The store, and whether it was opened here from a URL (and so is ours to close)."""
    if isinstance(store, str):
        return open_store(store), True
    if not isinstance(store, SessionStore):
        raise InvalidValueError("store", f"must be a SessionStore or a store URL, not {type(store).__name__}")
    return store, False


def _updates(store: SessionStore, lease: float, lock_wait: float) -> Isolation:
    """Distributed isolation on a store with leases, in-process otherwise."""
    leases = isinstance(store, LockingStore) and isinstance(store, RawStore)
    return make_isolation(store, "distributed" if leases else "local", lease=lease, lock_wait=lock_wait)


def _ttl(name: str, ttl: float | timedelta | None, store: SessionStore) -> float | None:
    if ttl is None:
        return None
    seconds = check_seconds(name, ttl.total_seconds() if isinstance(ttl, timedelta) else ttl)
    if not accepts_ttl(store):
        raise InvalidValueError(name, f"cannot be used: {type(store).__name__}.set() takes no ttl")
    return seconds


def _when(value: object) -> bool:
    return value is None or (not isinstance(value, bool) and isinstance(value, int | float))


@dataclass(slots=True)
class _Record:
    """The state and data of one ``StorageKey``, with the moments each part expires (``None``: never)."""

    state: str | None = None
    data: JsonDict = field(default_factory=dict)
    state_until: float | None = None
    data_until: float | None = None

    @classmethod
    def parse(cls, key: str, value: JsonDict | None, now: float) -> _Record:
        """The record stored as ``value``, expired parts left out; ``SessionDecodeError`` if it is not one."""
        if value is None:
            return cls()
        state, data = value.get("state"), value.get("data", {})
        state_until, data_until = value.get("state_expires_at"), value.get("data_expires_at")
        extra = value.keys() - _FIELDS
        if (
            extra
            or not (state is None or isinstance(state, str))
            or type(data) is not dict
            or not (_when(state_until) and _when(data_until))
        ):
            what = f"unknown fields {sorted(extra)}" if extra else "a field of the wrong type"
            raise SessionDecodeError(key, f"not an aiogram FSM record ({what})")
        record = cls(state, data, state_until, data_until)
        if state_until is not None and state_until <= now:
            record.state, record.state_until = None, None
        if data_until is not None and data_until <= now:
            record.data, record.data_until = {}, None
        return record

    def dump(self) -> JsonDict:
        """The stored form: only the parts that are set (``{}`` when none is, which deletes the record)."""
        value: JsonDict = {}
        if self.state is not None:
            value["state"] = self.state
            if self.state_until is not None:
                value["state_expires_at"] = self.state_until
        if self.data:
            value["data"] = self.data
            if self.data_until is not None:
                value["data_expires_at"] = self.data_until
        return value

    def store_ttl(self, now: float) -> float | None:
        """The record's own expiry: when its last part expires (``None`` if one never does)."""
        ends = ([self.state_until] if self.state is not None else []) + ([self.data_until] if self.data else [])
        if not ends or None in ends:
            return None
        return max(max(e for e in ends if e is not None) - now, 0.001)


class _Held:
    """The record of one ``StorageKey`` while :class:`SessionwareEventIsolation` holds it in this context."""

    __slots__ = ("active", "key", "record_key", "store", "ttl", "update", "value")

    def __init__(self, store: SessionStore, key: StorageKey, record_key: str, update: SessionUpdate) -> None:
        self.store = store
        self.key = key
        self.record_key = record_key
        self.update = update
        self.value: JsonDict | None = None
        self.ttl: float | None = None
        self.active = True

    def load(self) -> JsonDict:
        """The record as read under the lock, decoded on first use, with the writes made since."""
        if self.value is None:
            loaded = self.update.load()
            self.value = self.update.fresh({}) if loaded is None else loaded
        return self.value

    async def flush(self) -> None:
        """Write the record back if it changed (a fenced commit under a lease)."""
        if self.value is not None:
            await self.update.save(self.value, ttl=self.ttl)


_HELD: ContextVar[tuple[_Held, ...]] = ContextVar("sessionware_aiogram_held", default=())


class SessionwareStorage(BaseStorage):
    """aiogram's FSM storage over a sessionware store; see the module docstring for keys, TTLs and fencing.

    - ``store``: any :class:`~sessionware.SessionStore`, or a store URL (then :meth:`close` closes it).
    - ``key_builder``: how a ``StorageKey`` becomes a record key (default :func:`default_key_builder`).
    - ``state_ttl`` / ``data_ttl``: seconds (or a ``timedelta``) each part lives after its last write.
    - ``clock``: the wall clock expiries are stamped and read by; every process sharing the store must agree on it.
    """

    def __init__(
        self,
        store: SessionStore | str,
        *,
        key_builder: KeyBuilder | None = None,
        state_ttl: float | timedelta | None = None,
        data_ttl: float | timedelta | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self._owns_store = _open(store)
        self.key_builder = key_builder or default_key_builder()
        self.state_ttl = _ttl("state_ttl", state_ttl, self.store)
        self.data_ttl = _ttl("data_ttl", data_ttl, self.store)
        self.clock = clock
        self.updates = _updates(self.store, DEFAULT_LEASE, DEFAULT_LOCK_WAIT)

    def create_isolation(
        self, *, lease: float = DEFAULT_LEASE, lock_wait: float = DEFAULT_LOCK_WAIT
    ) -> SessionwareEventIsolation:
        """The event isolation over this storage's store and key builder, so its writes are fenced."""
        return SessionwareEventIsolation(self.store, key_builder=self.key_builder, lease=lease, lock_wait=lock_wait)

    def record_key(self, key: StorageKey) -> str:
        """The store key of ``key``'s record."""
        return check_key(self.key_builder.build(key))

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        """Set (or with ``None`` clear) the state of ``key``."""
        name = state.state if isinstance(state, State) else state
        if name is not None and not isinstance(name, str):
            raise InvalidValueError("state", f"must be a str, a State or None, not {type(name).__name__}")

        def change(record: _Record, now: float) -> None:
            record.state = name
            record.state_until = None if name is None or self.state_ttl is None else now + self.state_ttl

        await self._change(key, change)

    async def get_state(self, key: StorageKey) -> str | None:
        """The state of ``key``, or ``None``."""
        return (await self._read(key)).state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the data of ``key`` (``{}`` clears it)."""
        clean = self._checked(key, data)

        def change(record: _Record, now: float) -> None:
            self._put_data(record, clean, now)

        await self._change(key, change)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """A copy of the data of ``key`` (``{}`` if none)."""
        return copy.deepcopy((await self._read(key)).data)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the data of ``key`` (like ``dict.update``) in one update; return a copy of the result."""
        clean = self._checked(key, data)

        def change(record: _Record, now: float) -> dict[str, Any]:
            merged = {**record.data, **clean}
            self._put_data(record, merged, now)
            return copy.deepcopy(merged)

        return await self._change(key, change)

    async def close(self) -> None:
        """Close the store if it was opened here from a URL."""
        await self.updates.close()
        if self._owns_store and isinstance(self.store, ClosableStore):
            await self.store.close()

    # -- the one read path and the one write path -----------------------------------------------

    def _checked(self, key: StorageKey, data: Mapping[str, Any]) -> JsonDict:
        """A copy of ``data`` as the store would give it back; non-JSON values raise ``InvalidValueError``."""
        if not isinstance(data, dict):
            raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data).__name__}")
        codec = self.updates.codec
        return codec.decode(self.record_key(key), codec.encode(dict(data)))

    def _put_data(self, record: _Record, data: JsonDict, now: float) -> None:
        record.data = data
        record.data_until = None if not data or self.data_ttl is None else now + self.data_ttl

    def _held(self, key: StorageKey, record_key: str) -> _Held | None:
        """The hold of ``key`` by the event isolation in this context, if it is active."""
        for held in _HELD.get():
            if held.active and held.key == key:
                if held.store is not self.store or held.record_key != record_key:
                    raise InvalidValueError(
                        "events_isolation",
                        f"holds {held.record_key!r} on {type(held.store).__name__} object {id(held.store):#x}, "
                        f"while this storage keeps {key} as {record_key!r} on {type(self.store).__name__} object "
                        f"{id(self.store):#x}; give both one store object and key builder "
                        "(events_isolation=storage.create_isolation())",
                    )
                return held
        return None

    async def _read(self, key: StorageKey) -> _Record:
        record_key = self.record_key(key)
        held = self._held(key, record_key)
        value = held.load() if held is not None else await self.updates.read(record_key)
        return _Record.parse(record_key, value, self.clock())

    async def _change(self, key: StorageKey, change: Callable[[_Record, float], T]) -> T:
        record_key = self.record_key(key)
        held = self._held(key, record_key)
        if held is not None:
            now = self.clock()
            record = _Record.parse(record_key, held.load(), now)
            result = change(record, now)
            held.value, held.ttl = record.dump(), record.store_ttl(now)
            return result
        async with self.updates.open(record_key) as update:
            now = self.clock()
            record = _Record.parse(record_key, update.load(), now)
            result = change(record, now)
            await update.save(record.dump(), ttl=record.store_ttl(now))
            return result


class SessionwareEventIsolation(BaseEventIsolation):
    """aiogram's event isolation over sessionware's update unit; see the module docstring for what is fenced.

    - ``store``: any :class:`~sessionware.SessionStore`, or a store URL (then :meth:`close` closes it);
      the storage's own (``storage.create_isolation()``) for fenced writes.
    - ``key_builder``: the storage's (default :func:`default_key_builder`).
    - ``lease``: seconds a store lease lasts unless renewed (renewed every third of it while the handler runs);
      ``lock_wait``: how long to wait for a key another process holds before ``LockError``.
    """

    def __init__(
        self,
        store: SessionStore | str,
        *,
        key_builder: KeyBuilder | None = None,
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
    ) -> None:
        self.store, self._owns_store = _open(store)
        self.key_builder = key_builder or default_key_builder()
        self.updates = _updates(self.store, lease, lock_wait)

    @property
    def isolation(self) -> str:
        """``"distributed"`` (a store lease across processes) or ``"local"`` (this process only)."""
        return self.updates.name

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        """Hold ``key`` until the block ends: the in-process lock, then the store lease where the store has them."""
        record_key = check_key(self.key_builder.build(key))
        async with self.updates.open(record_key) as update:
            held = _Held(self.store, key, record_key, update)
            token = _HELD.set((*_HELD.get(), held))
            try:
                yield
            except Exception:
                await self._end(held, token, write=True)
                raise
            except BaseException:
                await self._end(held, token, write=False)
                raise
            await self._end(held, token, write=True)

    @staticmethod
    async def _end(held: _Held, token: Token[tuple[_Held, ...]], *, write: bool) -> None:
        held.active = False
        _HELD.reset(token)
        if write:
            await held.flush()

    async def close(self) -> None:
        """Close the store if it was opened here from a URL."""
        await self.updates.close()
        if self._owns_store and isinstance(self.store, ClosableStore):
            await self.store.close()


__all__ = ["SessionwareEventIsolation", "SessionwareStorage", "default_key_builder"]
