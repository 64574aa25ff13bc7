"""Pydantic AI's own ``ConversationStore`` on any sessionware store (``pip install 'sessionware[pydantic-ai]'``).

::

    conversations = SessionwareConversationStore(open_store("redis://localhost:6379/0"), ttl=86_400)
    conversation = await conversations.load("support-1", scope="ada") or Conversation(conversation_id="support-1")
    result = await agent.run("Hello", conversation=conversation)
    await conversations.save(result, scope="ada")

It is a :class:`pydantic_ai.conversation_store.ConversationStore`, so it also
plugs into Pydantic AI's UI adapters (``conversation_store=``). A conversation
is one versioned record (what Pydantic AI's ``ConversationRecord`` holds, plus
where its history lies) and an append-only log of its entries. A history is a
path of log segments: a save appends only the new messages to the
conversation's own log, a branch or a fork points into segments that are
already stored (a fork shares its source's log instead of copying it). Saves
are compare-and-set on the record, so two writers, in one process or several,
never overwrite each other: the later one gets ``ConversationConflict``.

Loading reads the record and only the segments the window needs; the cost of
``load(limit=20)`` does not grow with the conversation's length. ``ttl``
(seconds or a ``timedelta``) expires a conversation that is not saved again
within it, with its log. ``delete`` removes the record and the conversation's
own log, except when a fork was made from it: the log then stays for the forks
(until its TTL), since they read from it. Listing conversations scans the
store's keys under ``prefix`` (a store that can list its keys is needed).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from ..codec import DEFAULT_CODEC, Codec, JsonDict
from ..errors import ConflictError, InvalidValueError, MissingExtraError
from ..keys import TTL, ttl_seconds
from ..store import LogStore, ScannableStore, SessionStore, VersionedStore
from ._ids import session_id_for

try:
    from pydantic import TypeAdapter
    from pydantic_ai.conversation_store import (
        ConversationConflict,
        ConversationEntry,
        ConversationRecord,
        ConversationStore,
    )
    from pydantic_ai.messages import ModelMessagesTypeAdapter
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Pydantic AI (2.66 or later)", "pydantic-ai", "pydantic_ai.conversation_store") from e

Segment = tuple[str, int, int]
"""A stretch of one log: its key and the first and last sequence numbers of the stretch."""
Path = tuple[Segment, ...]
"""Where a history lies, oldest segment first."""

_RECORD: TypeAdapter[ConversationRecord] = TypeAdapter(ConversationRecord)
FORMAT = 1
"""The version of the stored state of a conversation."""


class SessionwareConversationStore(ConversationStore):
    """Pydantic AI conversations in a sessionware ``store`` (any backend: memory, SQLite, Redis, PostgreSQL,
    also through :class:`~sessionware.encryption.EncryptedStore`), under keys starting with ``prefix``."""

    def __init__(self, store: SessionStore, *, prefix: str = "pydantic-ai:", ttl: TTL = None) -> None:
        if not isinstance(store, VersionedStore) or not isinstance(store, LogStore):
            raise InvalidValueError(
                "store", f"must keep versioned records and logs (a sessionware store), not {type(store).__name__}"
            )
        if not isinstance(prefix, str):
            raise InvalidValueError("prefix", f"must be a str, not {type(prefix).__name__}")
        self.store = store
        self.prefix = prefix
        self.ttl = ttl_seconds(ttl)
        self._codec: Codec = getattr(store, "codec", None) or DEFAULT_CODEC
        # Where the history ending at an entry lies. An entry's ancestry never changes, so what is
        # known stays true; only the logs it points into can go away (then a read is a LookupError).
        self._paths: OrderedDict[str, Path] = OrderedDict()
        self._read_states: dict[str, tuple[JsonDict, int]] = {}

    # -- the storage primitives of ConversationStore ---------------------------------------------------

    async def read_record(self, conversation_id: str) -> ConversationRecord | None:
        """The record of a conversation, or ``None``."""
        stored = await self._state(self._record_key(conversation_id))
        if stored is None:
            return None
        self._read_states[conversation_id] = stored
        while len(self._read_states) > 1024:
            del self._read_states[next(iter(self._read_states))]
        return self._known(stored[0])

    async def read_records(self, *, scope: str | None = None, limit: int | None = None) -> Sequence[ConversationRecord]:
        """The stored records (of ``scope``), most recently saved first, at most ``limit``."""
        store = self.store
        if not isinstance(store, ScannableStore):
            raise InvalidValueError("store", f"{type(store).__name__} cannot list its keys, which listing needs")
        records: list[ConversationRecord] = []
        async for key in store.scan(self.prefix + "c:"):
            state = await self._state(key)
            if state is not None:
                record = self._known(state[0])
                if scope is None or record.scope == scope:
                    records.append(record)
        records.sort(key=lambda record: record.updated_at, reverse=True)
        return records if limit is None else records[:limit]

    async def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        """Append ``new_entries`` to the conversation's log and replace its record, if the record is still at
        ``expected_revision`` (``None``: not stored); else ``ConversationConflict``, the record unchanged."""
        conversation_id = record.conversation_id
        key = self._record_key(conversation_id)
        # What read_record just read (a save reads the record first), read again only if it is not at the
        # expected revision: a record changed since is caught by the compare-and-set below.
        stored = self._read_states.pop(conversation_id, None)
        if stored is None or _revision(stored) != expected_revision:
            stored = await self._state(key)
        if _revision(stored) != expected_revision:
            raise ConversationConflict(conversation_id)
        state, version = stored if stored is not None else ({}, 0)
        entries = list(new_entries)
        _check_chain(record, entries)
        log = state.get("log") or f"{self.prefix}l:{uuid.uuid4().hex}"
        anchor = entries[0].parent_id if entries else record.head_id
        path = await self._path_to(anchor, state, record)
        if entries:
            messages = ModelMessagesTypeAdapter.dump_python([entry.message for entry in entries], mode="json")
            payload = [
                {"id": entry.id, "parent": entry.parent_id, "m": message}
                for entry, message in zip(entries, messages, strict=True)
            ]
            seqs = await self.store.log_append(log, payload, ttl=self.ttl)
            path = _extend(path, log, seqs[0], seqs[-1])
        tips = {tip: await self._path_to(tip, state, record) for tip in record.branches}
        if self.ttl is not None:
            for other in {segment[0] for segment in (*path, *(s for p in tips.values() for s in p))} - {log}:
                await self.store.log_append(other, [], ttl=self.ttl)  # keep shared logs as long as this one
        new_state: JsonDict = {
            "format": FORMAT,
            "record": _RECORD.dump_python(record, mode="json"),
            "log": log,
            "path": [list(segment) for segment in path],
            "tips": {tip: [list(segment) for segment in tip_path] for tip, tip_path in tips.items()},
            "shared": bool(state.get("shared", False)),
        }
        try:
            await self.store.set_versioned(key, self._codec.encode(new_state), expected=version, ttl=self.ttl)
        except ConflictError:
            if not state and entries:
                await self.store.log_delete(log)  # a new log no record ever named
            raise ConversationConflict(conversation_id) from None
        self._remember(record.head_id, path)
        for tip, tip_path in tips.items():
            self._remember(tip, tip_path)

    async def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        """Delete the record at ``expected_revision`` (else ``ConversationConflict``) and, unless a fork reads
        from it, the conversation's log."""
        key = self._record_key(conversation_id)
        stored = await self._state(key)
        if stored is None or _revision(stored) != expected_revision:
            raise ConversationConflict(conversation_id)
        state, version = stored
        try:
            await self.store.delete_versioned(key, expected=version)
        except ConflictError:
            raise ConversationConflict(conversation_id) from None
        if not state.get("shared") and state.get("log"):
            await self.store.log_delete(state["log"])

    async def read_entry(self, entry_id: str) -> ConversationEntry:
        """The entry ``entry_id`` of a conversation this store has read or saved (else ``LookupError``)."""
        history = await self.read_history(entry_id, limit=1)
        return history[-1]

    async def read_history(self, head_id: str | None, *, limit: int | None = None) -> list[ConversationEntry]:
        """The history ending at ``head_id`` (its last ``limit`` entries), read segment by segment from the
        newest, only as far as ``limit`` needs. ``LookupError`` if its log is gone, or if no conversation
        this store read or saved leads to ``head_id``."""
        if head_id is None or limit == 0:
            return []
        path = self._paths.get(head_id)
        if path is None:
            raise LookupError(f"entry {head_id!r} is not in a conversation this store has read or saved")
        values = await self._read_path(path, limit)
        if not values or values[-1].get("id") != head_id:
            raise LookupError(f"entry {head_id!r} is no longer stored")
        messages = ModelMessagesTypeAdapter.validate_python([value["m"] for value in values])
        return [
            ConversationEntry(id=value["id"], parent_id=value["parent"], message=message)
            for value, message in zip(values, messages, strict=True)
        ]

    # -- internals -------------------------------------------------------------------------------------

    def _record_key(self, conversation_id: str) -> str:
        return f"{self.prefix}c:{session_id_for(conversation_id)}"

    async def _state(self, key: str) -> tuple[JsonDict, int] | None:
        got = await self.store.get_versioned(key)
        if got is None:
            return None
        return self._codec.decode(key, got.data), got.version

    def _known(self, state: JsonDict) -> ConversationRecord:
        """The record in ``state``, its head's and branches' paths remembered."""
        record = _RECORD.validate_python(state["record"])
        self._remember(record.head_id, _path(state.get("path", ())))
        for tip, tip_path in state.get("tips", {}).items():
            self._remember(tip, _path(tip_path))
        return record

    def _remember(self, entry_id: str | None, path: Path) -> None:
        if entry_id is None:
            return
        self._paths[entry_id] = path
        self._paths.move_to_end(entry_id)
        while len(self._paths) > 4096:
            self._paths.popitem(last=False)

    async def _read_path(self, path: Path, limit: int | None) -> list[JsonDict]:
        """The entries' stored values along ``path``, the last ``limit`` of them; ``LookupError`` if some are gone."""
        chunks: list[list[JsonDict]] = []
        wanted = limit
        for log, first, last in reversed(path):
            size = last - first + 1
            take = size if wanted is None else min(size, wanted)
            read = await self.store.log_read(log, after=first - 1, before=last + 1, last=take)
            if len(read) != take:
                raise LookupError(f"the log {log!r} no longer holds entries {first} to {last}")
            chunks.append([entry.value for entry in read])
            if wanted is not None:
                wanted -= take
                if wanted == 0:
                    break
        return [value for chunk in reversed(chunks) for value in chunk]

    async def _path_to(self, entry_id: str | None, state: JsonDict, record: ConversationRecord) -> Path:
        """Where the history ending at ``entry_id`` lies: this conversation's head or a branch it left, an entry
        in one of them, or (for a new fork) an entry of the conversation it was forked from."""
        if entry_id is None:
            return ()
        if state:
            found = await self._find(entry_id, state)
            if found is not None:
                return found
        elif record.forked_from is not None:
            source = await self._share(record.forked_from, record.conversation_id)
            found = await self._find(entry_id, source)
            if found is not None:
                return found
        raise ConversationConflict(record.conversation_id)  # an entry nothing stored leads to

    async def _find(self, entry_id: str, state: JsonDict) -> Path | None:
        stored = state["record"]
        lines: list[Path] = [_path(state.get("path", ()))]
        if stored.get("head_id") == entry_id:
            return lines[0]
        tips = state.get("tips", {})
        if entry_id in tips:
            return _path(tips[entry_id])
        lines += [_path(tip_path) for tip_path in tips.values()]
        for line in lines:  # an earlier entry (a branch or a rewrite from it): read the line to find it
            try:
                values = await self._read_path(line, None)
            except LookupError:
                continue
            for position, value in enumerate(values):
                if value.get("id") == entry_id:
                    return _truncate(line, position + 1)
        return None

    async def _share(self, conversation_id: str, fork_id: str) -> JsonDict:
        """Mark ``conversation_id`` as read by a fork (its log then outlives its delete); its state."""
        key = self._record_key(conversation_id)
        for _ in range(32):
            stored = await self._state(key)
            if stored is None:
                raise ConversationConflict(fork_id)
            state, version = stored
            if state.get("shared"):
                return state
            state["shared"] = True
            try:
                await self.store.set_versioned(key, self._codec.encode(state), expected=version, ttl=self.ttl)
            except ConflictError:
                continue
            return state
        raise ConversationConflict(fork_id)


def _revision(stored: tuple[JsonDict, int] | None) -> str | None:
    return None if stored is None else str(stored[0]["record"]["revision"])


def _check_chain(record: ConversationRecord, entries: list[ConversationEntry]) -> None:
    """New entries must follow each other and end at the record's head."""
    for before, entry in pairwise(entries):
        if entry.parent_id != before.id:
            raise InvalidValueError("new_entries", f"entry {entry.id!r} does not follow {before.id!r}")
    if entries and record.head_id != entries[-1].id:
        raise InvalidValueError("record", f"head_id must be the last new entry {entries[-1].id!r}")


def _path(value: Iterable[Any]) -> Path:
    return tuple((str(log), int(first), int(last)) for log, first, last in value)


def _extend(path: Path, log: str, first: int, last: int) -> Path:
    """``path`` followed by ``first``..``last`` of ``log``, one segment longer unless it goes straight on."""
    if path and path[-1][0] == log and path[-1][2] + 1 == first:
        return (*path[:-1], (log, path[-1][1], last))
    return (*path, (log, first, last))


def _truncate(path: Path, count: int) -> Path:
    """The first ``count`` entries of ``path``."""
    kept: list[Segment] = []
    for log, first, last in path:
        size = last - first + 1
        if count <= size:
            kept.append((log, first, first + count - 1))
            return tuple(kept)
        kept.append((log, first, last))
        count -= size
    return tuple(kept)


__all__ = ["SessionwareConversationStore"]
