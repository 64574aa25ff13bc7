"""python-telegram-bot persistence over any sessionware store: :class:`SessionwarePersistence`.

``pip install 'sessionware[telegram]'``, then hand the persistence to the application::

    from telegram import Update
    from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

    from sessionware.integrations.telegram import SessionwarePersistence

    async def count(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        context.user_data["count"] = context.user_data.get("count", 0) + 1
        await update.effective_message.reply_text(f"count: {context.user_data['count']}")

    persistence = SessionwarePersistence("sqlite:///bot.db")   # or a store: RedisSessionStore.from_url(...)
    app = ApplicationBuilder().token(TOKEN).persistence(persistence).build()
    app.add_handler(CommandHandler("count", count))
    app.run_polling()                                          # user_data survives a restart

Records, one per piece of data, under ``namespace`` (default ``"ptb"``):

==============================  ==========================================================================
``ptb:user:<user_id>``          one user's ``user_data``, the dict as it is
``ptb:chat:<chat_id>``          one chat's ``chat_data``
``ptb:bot``                     ``bot_data``
``ptb:callback_data``           the callback data cache: ``"keyboard:<uuid>": [access_time, {button: data}]``
                                and ``"query:<callback query id>": "<keyboard uuid>"``
``ptb:conversation:<name>``     one persistent ``ConversationHandler``: ``"[chat_id, user_id]": state``
                                (the key as ``json.dumps(list(key))``, as PTB's ``DictPersistence`` writes it)
==============================  ==========================================================================

Values go through the store's codec, so they must be JSON: dicts with str
keys, lists, str, int, float, bool, None. Anything else (a set, a tuple, a
datetime, a Telegram object, an int key) is refused when the application
flushes, with :class:`UnsupportedDataError` naming where it is
(``user_data[42]['cart'][0]``) passed to the application's error handlers, and
nothing of that record is written. The button data of callback keyboards may
hold tuples too (PTB's own examples put them there): they are stored tagged
(``{"$tuple": [...]}``) and come back as tuples.

What is written: the application flushes every ``update_interval`` seconds
and on shutdown. A record is written only when one of its top-level entries
(a key of ``user_data``, a keyboard, a conversation) changed since this
instance last read or wrote it; nothing is read or written otherwise. The
write goes through the update unit under the record's isolation (by default
a store lease across processes, where the store has leases): the stored
record is read under the lock, only the entries this instance changed are
put into it, and it is saved if its encoding changed. A write the store
refused is reported to the application's error handlers and made again by
the next write of that record, or by :meth:`SessionwarePersistence.flush` at
shutdown. Stored data that cannot be decoded stops the start with
:class:`~sessionware.errors.SessionDecodeError` naming the key, and is left as it is.

Several instances on one store (python-telegram-bot's issue 5123):

- Changes merge per top-level entry: two instances working on different
  users, chats or conversations, or on different keys of one user's data or
  of ``bot_data``, never overwrite each other, also when they flush at the
  same moment (the record's lease puts one merge after the other).
- The same entry changed on both between their flushes: the later flush wins
  (last writer per entry). There is no lock around a handler in
  python-telegram-bot's persistence API, so two instances cannot be kept from
  both changing one value; route one user's updates to one instance if that
  matters, or use sessionware's ``session()`` with ``isolation="distributed"``.
- With ``refresh=True`` (the default) each user's, chat's and the bot's record
  is read before a handler sees it, and what other instances flushed is taken
  in (entries changed here and not yet flushed are kept), so a handler sees
  the other instance's changes once they are flushed.
- Conversations and callback data are read only when the application
  starts: python-telegram-bot gives a persistence no way to refresh them. A
  conversation continued on another instance resumes in the state that
  instance knew; both instances' conversations are kept in the store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from functools import partial
from typing import Any

from ..codec import JsonDict
from ..errors import InvalidValueError, MissingExtraError, SessionDecodeError, StoreError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation, IsolationName, LocalIsolation, make_isolation
from ..store import ClosableStore, LockingStore, RawStore, ScannableStore, SessionStore
from ..urls import open_store

try:
    from telegram.ext import BasePersistence, PersistenceInput
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("python-telegram-bot", "telegram", "telegram") from e

ConversationKey = tuple[int | str, ...]
CallbackData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]
"""What python-telegram-bot's callback data cache persists: (keyboard uuid, access time, button data), queries."""

DEFAULT_UPDATE_INTERVAL = 5.0
"""Seconds between flushes; a flush with nothing changed reads and writes nothing, so it can be short."""

TUPLE_TAG = "$tuple"
DICT_TAG = "$dict"
_LOAD_CONCURRENCY = 64
_UNSEEN: Any = object()  # the stored bytes of a record are not known (after this instance wrote it)
_UNENCODABLE = b""  # no encoding is empty, so this equals none


class UnsupportedDataError(InvalidValueError):
    """Data handed over by python-telegram-bot is not JSON; ``path`` names it, e.g. ``user_data[42]['cart']``.

    Nothing of the record holding it is written.
    """


class _Record:
    """What this instance knows of one record: the encoding of each entry as last synced, and the stored bytes."""

    __slots__ = ("known", "seen")

    def __init__(self) -> None:
        self.known: dict[str, bytes] = {}
        self.seen: object = _UNSEEN


_Entry = tuple[bytes, Any] | None
"""A conversation entry to write: its encoding and value, or ``None`` to delete it."""


class _Batch:
    """Conversation entries of one record waiting for one write; callers that join it await ``done``."""

    __slots__ = ("done", "entries", "taken")

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.taken = False


class SessionwarePersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """A python-telegram-bot ``BasePersistence`` over a sessionware store; see the module docstring.

    - ``store``: any :class:`~sessionware.SessionStore`, or a store URL for
      :func:`~sessionware.open_store` (then :meth:`flush`, called by the
      application's shutdown, closes it; a later ``initialize`` opens it again).
      Restoring ``user_data`` and ``chat_data`` lists keys, so the store must
      be a :class:`~sessionware.store.ScannableStore` (every sessionware backend is).
    - ``store_data``, ``update_interval``: as in ``BasePersistence`` (the interval defaults to 5 s here).
    - ``namespace``: the prefix of every key, so several bots can share a store.
    - ``isolation``: how the read-merge-write of one record is kept apart:
      ``"distributed"`` (the default where the store has leases: across
      processes), ``"local"`` (this process), ``"none"``, or an
      :class:`~sessionware.isolation.Isolation` made for ``store``;
      ``lease`` / ``lock_wait`` as in :func:`~sessionware.make_isolation`.
    - ``refresh``: read each user's, chat's and the bot's record before a
      handler sees it, taking in what other instances wrote; ``False`` saves
      those reads when one instance owns the store.
    """

    __slots__ = (
        "_batches",
        "_closed",
        "_failed",
        "_isolation",
        "_lease",
        "_lock_wait",
        "_records",
        "_unsaved",
        "_url",
        "namespace",
        "reader",
        "refresh",
        "store",
        "updates",
    )

    def __init__(
        self,
        store: SessionStore | str,
        *,
        store_data: PersistenceInput | None = None,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        namespace: str = "ptb",
        isolation: IsolationName | Isolation | None = None,
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        refresh: bool = True,
    ) -> None:
        super().__init__(store_data=store_data, update_interval=update_interval)
        if not isinstance(namespace, str) or not namespace:
            raise InvalidValueError("namespace", f"must be a non-empty str, not {namespace!r}")
        if isinstance(store, str) and isinstance(isolation, Isolation):
            raise InvalidValueError("isolation", "an Isolation object is made for a store; pass that store, not a URL")
        self.namespace = namespace
        self.refresh = refresh
        self._url = store if isinstance(store, str) else None
        self._isolation = isolation
        self._lease = lease
        self._lock_wait = lock_wait
        self._records: dict[str, _Record] = {}
        self._batches: dict[str, _Batch] = {}
        self._failed: dict[str, dict[str, _Entry]] = {}
        self._unsaved: dict[str, Callable[[], Awaitable[None]]] = {}
        self._open(open_store(store) if isinstance(store, str) else store)

    def _open(self, store: SessionStore) -> None:
        self._closed = False
        if (self.store_data.user_data or self.store_data.chat_data) and not isinstance(store, ScannableStore):
            raise InvalidValueError(
                "store",
                f"must list its keys (ScannableStore) to restore user_data and chat_data; {type(store).__name__} "
                "cannot (use a sessionware backend, or store_data=PersistenceInput(user_data=False, chat_data=False))",
            )
        isolation = self._isolation
        if isinstance(isolation, Isolation) and isolation.store is not store:
            raise InvalidValueError("isolation", "was made for another store than the one given")
        if isolation is None:
            isolation = "distributed" if isinstance(store, LockingStore) and isinstance(store, RawStore) else "local"
        self.store = store
        self.updates: Isolation = make_isolation(store, isolation, lease=self._lease, lock_wait=self._lock_wait)
        # Reads take only the key's lock in this process (never a lease): enough to keep them apart from our writes.
        self.reader: Isolation = LocalIsolation(store) if isinstance(self.updates, LocalIsolation) else self.updates

    def _reopen(self) -> None:
        if self._closed and self._url is not None:
            self._open(open_store(self._url))

    # -- keys ------------------------------------------------------------------------------------

    def user_key(self, user_id: int) -> str:
        """The record of one user's ``user_data``: ``"<namespace>:user:<user_id>"``."""
        return f"{self.namespace}:user:{user_id}"

    def chat_key(self, chat_id: int) -> str:
        """The record of one chat's ``chat_data``: ``"<namespace>:chat:<chat_id>"``."""
        return f"{self.namespace}:chat:{chat_id}"

    @property
    def bot_key(self) -> str:
        """The record of ``bot_data``: ``"<namespace>:bot"``."""
        return f"{self.namespace}:bot"

    @property
    def callback_data_key(self) -> str:
        """The record of the callback data cache: ``"<namespace>:callback_data"``."""
        return f"{self.namespace}:callback_data"

    def conversation_key(self, name: str) -> str:
        """The record of one persistent ``ConversationHandler``: ``"<namespace>:conversation:<name>"``."""
        return f"{self.namespace}:conversation:{name}"

    # -- loading, when the application starts ----------------------------------------------------

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        """Every stored user's ``user_data``."""
        self._reopen()
        return await self._load_all(f"{self.namespace}:user:")

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        """Every stored chat's ``chat_data``."""
        self._reopen()
        return await self._load_all(f"{self.namespace}:chat:")

    async def get_bot_data(self) -> dict[Any, Any]:
        """The stored ``bot_data``, or an empty dict."""
        self._reopen()
        return await self._load(self.bot_key) or {}

    async def get_callback_data(self) -> CallbackData | None:
        """The stored callback data cache in python-telegram-bot's format (tuples restored), or ``None``."""
        self._reopen()
        key = self.callback_data_key
        stored = await self._load(key)
        if stored is None:
            return None
        keyboards: list[tuple[str, float, dict[str, Any]]] = []
        queries: dict[str, str] = {}
        for name, value in stored.items():
            kind, _, ident = name.partition(":")
            if kind == "keyboard" and _is_keyboard(value):
                keyboards.append((ident, float(value[0]), {b: _from_json(d) for b, d in value[1].items()}))
            elif kind == "query" and isinstance(value, str):
                queries[ident] = value
            else:
                raise SessionDecodeError(key, f"entry {name!r} is not a keyboard or a callback query")
        keyboards.sort(key=lambda keyboard: keyboard[1])  # least recently used first, as the cache keeps them
        return keyboards, queries

    async def get_conversations(self, name: str) -> dict[ConversationKey, object]:
        """The stored states of the persistent ``ConversationHandler`` called ``name``."""
        self._reopen()
        key = self.conversation_key(name)
        stored = await self._load(key) or {}
        return {_conversation_key(key, field): state for field, state in stored.items()}

    async def _load_all(self, prefix: str) -> dict[int, dict[Any, Any]]:
        scanner: ScannableStore = self.store  # type: ignore[assignment]  # checked in _open
        keys = [key async for key in scanner.scan(prefix)]
        found: dict[int, dict[Any, Any]] = {}
        for start in range(0, len(keys), _LOAD_CONCURRENCY):
            chunk = keys[start : start + _LOAD_CONCURRENCY]
            for key, value in zip(chunk, await asyncio.gather(*map(self._load, chunk)), strict=True):
                ident = key[len(prefix) :]
                if value is not None and ident.lstrip("-").isdigit():  # skips e.g. a record kept aside
                    found[int(ident)] = value
        return found

    async def _load(self, key: str) -> JsonDict | None:
        async with self.reader.open(key) as update:
            value = update.load()
            record = self._record(key)
            record.known = {} if value is None else self._encode_stored(value)
            record.seen = update.stored
        return value

    # -- refreshing, before a handler sees the data ----------------------------------------------

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """Take in what other instances wrote to this user's record since this instance last synced it."""
        await self._refresh(self.user_key(user_id), user_data)

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """Take in what other instances wrote to this chat's record since this instance last synced it."""
        await self._refresh(self.chat_key(chat_id), chat_data)

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Take in what other instances wrote to the bot's record since this instance last synced it."""
        await self._refresh(self.bot_key, bot_data)

    async def _refresh(self, key: str, local: MutableMapping[Any, Any]) -> None:
        if not self.refresh:
            return
        async with self.reader.open(key) as update:
            record = self._records.get(key)
            if update.stored == (None if record is None else record.seen):
                return
            stored = update.load() or {}
            theirs = self._encode_stored(stored)
            known = {} if record is None else record.known
            for name in theirs.keys() | known.keys():
                ancestor = known.get(name)
                if theirs.get(name) == ancestor or self._local_encoding(local, name) != ancestor:
                    continue  # unchanged in the store, or changed here and not yet flushed (that flush wins)
                if name in stored:
                    local[name] = stored[name]
                else:
                    local.pop(name, None)
            record = self._record(key)
            record.known = theirs
            record.seen = update.stored

    # -- writing, when the application flushes ---------------------------------------------------

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        """Write what changed in this user's ``user_data``."""
        await self._save_value(self.user_key(user_id), f"user_data[{user_id}]", data)

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Write what changed in this chat's ``chat_data``."""
        await self._save_value(self.chat_key(chat_id), f"chat_data[{chat_id}]", data)

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """Write what changed in ``bot_data``."""
        await self._save_value(self.bot_key, "bot_data", data)

    async def update_callback_data(self, data: CallbackData) -> None:
        """Write the keyboards and callback queries of the cache that changed."""
        keyboards, queries = data
        entries: JsonDict = {}
        for uuid, access_time, buttons in keyboards:
            entries[f"keyboard:{uuid}"] = [access_time, {b: _to_json(d) for b, d in buttons.items()}]
        for query_id, uuid in queries.items():
            entries[f"query:{query_id}"] = uuid
        await self._save_value(self.callback_data_key, "callback_data", entries)

    async def update_conversation(self, name: str, key: ConversationKey, new_state: object | None) -> None:
        """Write one conversation's new state (``None``: the conversation ended)."""
        record_key = self.conversation_key(name)
        field = json.dumps(list(key))
        entry: _Entry = None
        if new_state is not None:
            entry = (self._encode(f"conversations[{name!r}][{key!r}]", new_state), new_state)
        record = self._records.get(record_key)
        if (None if entry is None else entry[0]) == (None if record is None else record.known.get(field)):
            return
        await self._save_entries(record_key, {field: entry})

    async def drop_user_data(self, user_id: int) -> None:
        """Delete this user's record."""
        await self._drop(self.user_key(user_id))

    async def drop_chat_data(self, chat_id: int) -> None:
        """Delete this chat's record."""
        await self._drop(self.chat_key(chat_id))

    async def flush(self) -> None:
        """Write again what failed to be written, then close the store if it was opened from a URL."""
        errors: list[Exception] = []
        for retry in list(self._unsaved.values()):
            try:
                await retry()
            except Exception as exc:
                errors.append(exc)
        for key in list(self._failed):
            try:
                await self._save_entries(key, {})
            except Exception as exc:
                errors.append(exc)
        if self._url is not None and not self._closed and isinstance(self.store, ClosableStore):
            self._closed = True
            await self.store.close()
        if errors:
            raise errors[0]

    async def _save_value(self, key: str, where: str, value: Mapping[Any, Any]) -> None:
        """Put the entries of ``value`` that changed since the last sync into the stored record, under its lock."""
        mine = self._encode_all(where, value)
        if not self._changed(key, mine):
            return
        try:
            async with self.updates.open(key) as update:
                changed = self._changed(key, mine)
                if changed:
                    stored = update.load() or {}
                    for name in changed:
                        if name in mine:
                            stored[name] = value[name]
                        else:
                            stored.pop(name, None)
                    await update.save(stored)
                    record = self._record(key)
                    record.known = mine
                    record.seen = _UNSEEN
        except Exception as exc:
            if _retryable(exc):
                self._unsaved[key] = partial(self._save_value, key, where, value)
            raise
        self._unsaved.pop(key, None)

    async def _save_entries(self, key: str, entries: dict[str, _Entry]) -> None:
        """Write conversation entries, those of concurrent calls for the same record together."""
        batch = self._batches.get(key)
        if batch is not None and not batch.taken:
            batch.entries.update(entries)
            await asyncio.shield(batch.done)
            return
        batch = self._batches[key] = _Batch()
        batch.entries.update(entries)
        try:
            await asyncio.sleep(0)  # the other calls of the same flush join the batch first
            await self._write_batch(key, batch)
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except BaseException as exc:
            if not batch.taken and _retryable(exc):  # failed before it was taken: keep its entries for a retry
                self._failed[key] = {**self._failed.get(key, {}), **batch.entries}
            batch.done.set_exception(exc)
            batch.done.exception()  # its joiners see it; no "never retrieved" warning when there are none
            raise
        else:
            batch.done.set_result(None)
        finally:
            if self._batches.get(key) is batch:
                del self._batches[key]

    async def _write_batch(self, key: str, batch: _Batch) -> None:
        async with self.updates.open(key) as update:
            batch.taken = True  # later calls start the next batch
            entries = {**self._failed.pop(key, {}), **batch.entries}
            known = self._record(key).known
            entries = {f: e for f, e in entries.items() if (None if e is None else e[0]) != known.get(f)}
            if not entries:
                return
            try:
                stored = update.load() or {}
                for name, entry in entries.items():
                    if entry is None:
                        stored.pop(name, None)
                    else:
                        stored[name] = entry[1]
                await update.save(stored)
            except Exception as exc:
                if _retryable(exc):
                    self._failed[key] = entries
                raise
            for name, entry in entries.items():
                if entry is None:
                    known.pop(name, None)
                else:
                    known[name] = entry[0]
            self._record(key).seen = _UNSEEN

    async def _drop(self, key: str) -> None:
        async with self.updates.open(key) as update:
            await update.delete()
            self._records.pop(key, None)
            self._unsaved.pop(key, None)

    # -- encodings -------------------------------------------------------------------------------

    def _record(self, key: str) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
        return record

    def _changed(self, key: str, mine: dict[str, bytes]) -> list[str]:
        """The entries whose encoding differs from the last sync (present in one and not the other included)."""
        record = self._records.get(key)
        known = {} if record is None else record.known
        return [name for name in mine.keys() | known.keys() if mine.get(name) != known.get(name)]

    def _encode(self, where: str, value: object) -> bytes:
        """The encoding of one entry's value through the store's codec, or :class:`UnsupportedDataError`."""
        try:
            return self.updates.codec.encode({"": value})
        except InvalidValueError as exc:
            inner = exc.path[len("$['']") :] if exc.path.startswith("$['']") else ""
            raise UnsupportedDataError(f"{where}{inner}", exc.reason) from None

    def _encode_all(self, where: str, value: object) -> dict[str, bytes]:
        if not isinstance(value, Mapping):
            raise UnsupportedDataError(where, f"is a {type(value).__name__}; it must be a dict")
        encoded: dict[str, bytes] = {}
        for name, item in value.items():
            if type(name) is not str:
                raise UnsupportedDataError(
                    where, f"has a non-str key {name!r} ({type(name).__name__}); keys must be str"
                )
            encoded[name] = self._encode(f"{where}[{name!r}]", item)
        return encoded

    def _encode_stored(self, stored: JsonDict) -> dict[str, bytes]:
        return {name: self.updates.codec.encode({"": item}) for name, item in stored.items()}

    def _local_encoding(self, local: Mapping[Any, Any], name: str) -> bytes | None:
        if name not in local:
            return None
        try:
            return self.updates.codec.encode({"": local[name]})
        except InvalidValueError:
            return _UNENCODABLE


def _retryable(exc: BaseException) -> bool:
    """Whether writing again may succeed: the store failed (not its stored data, nor our value)."""
    return isinstance(exc, StoreError | OSError) and not isinstance(exc, SessionDecodeError)


def _to_json(value: Any) -> Any:
    """Callback button data with its tuples tagged, so they come back as tuples."""
    if type(value) is tuple:
        return {TUPLE_TAG: [_to_json(item) for item in value]}
    if type(value) is list:
        return [_to_json(item) for item in value]
    if type(value) is dict:
        converted = {name: _to_json(item) for name, item in value.items()}
        if len(converted) == 1 and next(iter(converted)) in (TUPLE_TAG, DICT_TAG):
            return {DICT_TAG: converted}  # a user's dict that looks like a tag
        return converted
    return value


def _from_json(value: Any) -> Any:
    if type(value) is list:
        return [_from_json(item) for item in value]
    if type(value) is dict:
        if len(value) == 1:
            tag, inner = next(iter(value.items()))
            if tag == TUPLE_TAG and type(inner) is list:
                return tuple(_from_json(item) for item in inner)
            if tag == DICT_TAG and type(inner) is dict:
                return {name: _from_json(item) for name, item in inner.items()}
        return {name: _from_json(item) for name, item in value.items()}
    return value


def _is_keyboard(value: Any) -> bool:
    return (
        type(value) is list
        and len(value) == 2
        and isinstance(value[0], int | float)
        and not isinstance(value[0], bool)
        and type(value[1]) is dict
    )


def _conversation_key(record: str, field: str) -> ConversationKey:
    try:
        parts = json.loads(field)
    except ValueError:
        parts = None
    if type(parts) is not list or not all(type(p) in (int, str) for p in parts):
        raise SessionDecodeError(record, f"conversation key {field!r} is not a JSON list of ints and strs")
    return tuple(parts)


__all__ = ["DEFAULT_UPDATE_INTERVAL", "SessionwarePersistence", "UnsupportedDataError"]
