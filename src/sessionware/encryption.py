"""Encryption at rest (``pip install 'sessionware[crypto]'``): a store wrapper that seals every record and
every log entry with AES-256-GCM before it reaches the backend.

::

    keys = KeyRing.from_env()                     # SESSIONWARE_KEYS="2026-12:<base64 key>,2026-06:<older key>"
    store = EncryptedStore(open_store("sqlite:///bot.db"), keys)
    router.use(session(store))                    # or SessionManager(store), or any other surface

Each sealed value is an envelope ``swe1:<key id>:<nonce><ciphertext and tag>``
(log entries hold it base64-encoded as ``{"$swe": ...}``). The stored key is
bound as associated data, so a ciphertext copied to another key, or from a
record into a log, fails to decrypt; so does one sealed with a key not in the
ring, or changed by a single bit: a typed :class:`~sessionware.errors.EncryptionError`
naming the key, never an empty session. New writes use the ring's primary
key; older keys stay in the ring to read what they sealed until
:func:`rotate_keys` (``sessionware rotate-keys``) has re-sealed the records
and the logs, each entry in place (:class:`~sessionware.store.LogRewriteStore`).

What is compared to decide whether to write is the plaintext (the update unit
sees decrypted bytes), so encryption adds no writes; leases, versions and
expiry are the backend's own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from .codec import JsonDict
from .errors import ConflictError, EncryptionError, InvalidValueError, MissingExtraError, ValueTooLargeError
from .keys import TTL, check_key, ttl_seconds
from .store import (
    BaseSessionStore,
    ClosableStore,
    ExpiringStore,
    FencedAppendStore,
    IndexPut,
    Lease,
    Locked,
    LockingStore,
    LogEditStore,
    LogEntry,
    LogRewrite,
    LogRewriteStore,
    LogStore,
    PinningStore,
    PurgeableStore,
    RawStore,
    RewriteResult,
    ScannableStore,
    SessionStore,
    Versioned,
    VersionedStore,
)

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("encryption", "crypto", "cryptography") from e

MAGIC = b"swe1:"
"""How every sealed value starts."""

LOG_FIELD = "$swe"
"""The field of a sealed log entry."""

KEYS_VARIABLE = "SESSIONWARE_KEYS"
"""The environment variable :meth:`KeyRing.from_env` reads by default."""

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_NONCE = 12
_TAG = 16
_OVERHEAD = len(MAGIC) + 32 + 1 + _NONCE + _TAG


def _record_aad(key: str) -> bytes:
    return b"sessionware record\x00" + key.encode("utf-8", "surrogatepass")


def _log_aad(key: str) -> bytes:
    return b"sessionware log\x00" + key.encode("utf-8", "surrogatepass")


def _entry_envelope(key: str, seq: int, value: JsonDict) -> bytes | None:
    """The envelope a stored log entry holds; ``None`` if it is a plaintext entry."""
    sealed = value.get(LOG_FIELD) if len(value) == 1 else None
    if not isinstance(sealed, str):
        return None
    try:
        return base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"entry {seq} of log {key!r} holds a damaged envelope") from None


class KeyRing:
    """The keys a store is sealed with: ``{key id: 32-byte key}`` (bytes, or URL-safe base64 text).

    ``primary`` (default: the first) seals new writes; every key opens what it
    sealed. Key ids are 1-32 of ``A-Z a-z 0-9 . _ -``. The keys never appear in
    a ``repr`` or an error.
    """

    def __init__(self, keys: Mapping[str, bytes | str], *, primary: str | None = None) -> None:
        if not isinstance(keys, Mapping) or not keys:
            raise InvalidValueError("keys", "must be a non-empty mapping of key id to key")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise InvalidValueError("keys", f"key id {key_id!r:.40} must be 1-32 of A-Z a-z 0-9 . _ -")
            self._ciphers[key_id] = AESGCM(_key_bytes(key_id, key))
        self.primary = next(iter(self._ciphers)) if primary is None else primary
        if self.primary not in self._ciphers:
            raise InvalidValueError("primary", f"{self.primary!r} is not one of the key ids {sorted(self._ciphers)}")

    @classmethod
    def from_string(cls, text: str) -> KeyRing:
        """A ring from ``"id:base64key,id2:base64key"``; the first key is the primary."""
        keys: dict[str, str] = {}
        for item in (part.strip() for part in text.split(",")):
            key_id, sep, key = item.partition(":")
            if not sep:
                raise InvalidValueError(
                    "keys", f"each key is written '<id>:<base64 key>'; got an item without ':' ({key_id[:8]!r}...)"
                )
            if key_id in keys:
                raise InvalidValueError("keys", f"key id {key_id!r} is given twice")
            keys[key_id] = key
        return cls(keys)

    @classmethod
    def from_env(cls, variable: str = KEYS_VARIABLE) -> KeyRing:
        """A ring from the environment variable ``variable`` (``SESSIONWARE_KEYS``), as :meth:`from_string`."""
        text = os.environ.get(variable)
        if not text:
            raise EncryptionError(f"no encryption keys: set {variable} to '<id>:<base64 key>[,<id>:<key>...]'")
        return cls.from_string(text)

    @staticmethod
    def new_key() -> str:
        """A fresh random 256-bit key, as URL-safe base64 text."""
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids of the ring, the primary first."""
        return (self.primary, *(key_id for key_id in self._ciphers if key_id != self.primary))

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self.ids)!r}, primary={self.primary!r})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed with the primary key, bound to ``aad``."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._ciphers[self.primary].encrypt(nonce, plaintext, aad)
        return MAGIC + self.primary.encode() + b":" + nonce + sealed

    def key_id_of(self, envelope: bytes) -> str | None:
        """The id of the key ``envelope`` was sealed with (``None``: it is not an envelope)."""
        if not envelope.startswith(MAGIC):
            return None
        end = envelope.find(b":", len(MAGIC))
        if end < 0:
            return None
        return envelope[len(MAGIC) : end].decode("ascii", "replace")

    def open(self, envelope: bytes, aad: bytes, what: str) -> bytes:
        """The plaintext of ``envelope``; :class:`EncryptionError` naming ``what`` if it cannot be opened."""
        key_id = self.key_id_of(envelope)
        if key_id is None:
            raise EncryptionError(f"{what} is not encrypted")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionError(
                f"{what} is sealed with key {key_id!r:.40}, which is not in the key ring {list(self.ids)!r}"
            )
        body = envelope[len(MAGIC) + len(key_id) + 1 :]
        try:
            return cipher.decrypt(body[:_NONCE], body[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise EncryptionError(
                f"{what} does not open with key {key_id!r}: a wrong key of that id, a changed ciphertext, "
                "or one moved from another key"
            ) from None


def _key_bytes(key_id: str, key: bytes | str) -> bytes:
    if isinstance(key, str):
        try:
            key = base64.urlsafe_b64decode(key.strip() + "=" * (-len(key.strip()) % 4))
        except (binascii.Error, ValueError):
            raise InvalidValueError("keys", f"key {key_id!r} is not base64 text") from None
    if not isinstance(key, bytes) or len(key) != 32:
        raise InvalidValueError("keys", f"key {key_id!r} must be 32 bytes (AES-256), not {len(key)}")
    return key


class EncryptedStore(BaseSessionStore):
    """``inner`` with every record and log entry sealed by ``keys`` (see the module docstring).

    ``inner`` is one of sessionware's stores (or any store with bytes access,
    logs, versions, leases, expiry and scanning). Closing this store closes
    ``inner``. ``accept_plaintext=True`` reads records written before
    encryption was turned on (they are sealed when next written, or by
    :func:`rotate_keys`); by default such a record is an :class:`EncryptionError`.
    The size limit leaves room for the envelope and for base64 in log entries.
    """

    backend = "encrypted"

    def __init__(self, inner: SessionStore, keys: KeyRing, *, accept_plaintext: bool = False) -> None:
        needed = {
            "RawStore": RawStore,
            "LogStore": LogStore,
            "LogEditStore": LogEditStore,
            "VersionedStore": VersionedStore,
            "LockingStore": LockingStore,
            "ExpiringStore": ExpiringStore,
            "ScannableStore": ScannableStore,
        }
        missing = [name for name, protocol in needed.items() if not isinstance(inner, protocol)]
        if missing:
            raise InvalidValueError(
                "inner", f"{type(inner).__name__} lacks {', '.join(missing)}; wrap a sessionware store"
            )
        if not isinstance(keys, KeyRing):
            raise InvalidValueError("keys", f"must be a KeyRing, not {type(keys).__name__}")
        self.inner: Any = cast(Any, inner)
        self.overlapping_calls = bool(getattr(inner, "overlapping_calls", False))  # type: ignore[misc]
        self.keys = keys
        self.accept_plaintext = accept_plaintext
        limit = int(getattr(inner, "max_size", 1024 * 1024))
        super().__init__(codec=self.inner.codec, max_size=max(1, (limit - _OVERHEAD - 16) * 3 // 4 - _OVERHEAD))

    # -- records -------------------------------------------------------------------------------

    def _seal(self, key: str, data: bytes) -> bytes:
        return self.keys.seal(data, _record_aad(key))

    def _open(self, key: str, data: bytes) -> bytes:
        if self.accept_plaintext and not data.startswith(MAGIC):
            return data
        return self.keys.open(data, _record_aad(key), f"record {key!r}")

    async def _get(self, key: str) -> bytes | None:
        data = await self.inner.get_raw(key)
        return None if data is None else self._open(key, data)

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        await self.inner.set_raw(key, self._seal(key, data), ttl=ttl)

    async def _delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires (the backend's expiry)."""
        self._check_open("expires_in")
        result: float | None = await self.inner.expires_in(key)
        return result

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        self._check_open("touch")
        return bool(await self.inner.touch(key, ttl))

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix`` (keys are not encrypted)."""
        self._check_open("scan")
        async for key in self.inner.scan(prefix, limit=limit):
            yield key

    async def purge_expired(self) -> int:
        """Purge expired records of the backend, if it keeps them until purged."""
        self._check_open("purge_expired")
        return int(await self.inner.purge_expired()) if isinstance(self.inner, PurgeableStore) else 0

    async def close(self) -> None:
        """Close this store and ``inner``."""
        if not self.closed:
            await super().close()
            if isinstance(self.inner, ClosableStore):
                await self.inner.close()

    def pinned(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The backend's pinned connection, where it has one."""
        if isinstance(self.inner, PinningStore):
            return self.inner.pinned()
        return contextlib.nullcontext()

    def _check_open(self, op: str) -> None:
        if self.closed:
            raise self._closed_error(op)

    def _checked(self, key: str, data: bytes | None) -> None:
        check_key(key)
        if data is not None and len(data) > self.max_size:
            raise ValueTooLargeError(len(data), self.max_size)

    # -- versions and leases -------------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """The record's plaintext with its version."""
        self._check_open("get_versioned")
        got = await self.inner.get_versioned(key)
        return None if got is None else Versioned(self._open(key, got.data), got.version)

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Seal and write ``data`` if the record's version is ``expected``."""
        self._check_open("set_versioned")
        self._checked(key, data)
        return int(await self.inner.set_versioned(key, self._seal(key, data), expected=expected, ttl=ttl))

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``."""
        self._check_open("delete_versioned")
        await self.inner.delete_versioned(key, expected=expected)

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the backend's lease on ``key`` and open the record read under it (released if it does not open)."""
        self._check_open("lock")
        locked = await self.inner.lock(key, lease=lease, wait=wait)
        if locked.record is None:
            return Locked(locked.lease, None)
        try:
            plaintext = self._open(key, locked.record.data)
        except BaseException:
            await self.inner.unlock(locked.lease)
            raise
        return Locked(locked.lease, Versioned(plaintext, locked.record.version))

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease."""
        self._check_open("renew")
        renewed: Lease = await self.inner.renew(lease)
        return renewed

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Seal and write ``data`` (``None`` deletes) and release, if the lease is still held."""
        self._check_open("commit")
        self._checked(lease.key, data)
        sealed = None if data is None else self._seal(lease.key, data)
        return int(await self.inner.commit(lease, sealed, ttl=ttl))

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing."""
        self._check_open("unlock")
        await self.inner.unlock(lease)

    # -- logs ----------------------------------------------------------------------------------

    def _open_entry(self, key: str, seq: int, value: JsonDict) -> JsonDict:
        envelope = _entry_envelope(key, seq, value)
        if envelope is None:
            if self.accept_plaintext:
                return value
            raise EncryptionError(f"entry {seq} of log {key!r} is not encrypted")
        return self.codec.decode(key, self.keys.open(envelope, _log_aad(key), f"entry {seq} of log {key!r}"))

    def _seal_entry(self, key: str, plain: bytes) -> JsonDict:
        if len(plain) > self.max_size:
            raise ValueTooLargeError(len(plain), self.max_size)
        return {LOG_FIELD: base64.b64encode(self.keys.seal(plain, _log_aad(key))).decode("ascii")}

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Seal and append ``entries`` atomically; return their sequence numbers."""
        self._check_open("log_append")
        check_key(key)
        sealed = [self._seal_entry(key, self.codec.encode(entry)) for entry in entries]
        seqs: list[int] = await self.inner.log_append(key, sealed, ttl=ttl_seconds(ttl), max_len=max_len)
        return seqs

    async def log_append_fenced(
        self,
        key: str,
        entries: Sequence[JsonDict],
        *,
        last: int,
        record: str,
        expected: int,
        data: bytes,
        ttl: TTL = None,
        log_ttl: TTL = None,
        max_len: int | None = None,
        index: IndexPut | None = None,
    ) -> int | None:
        """Seal the entries and the record, then append and write them in one step of ``inner``.

        ``None`` (nothing written) if they changed, or if ``inner`` has no fenced append.
        """
        self._check_open("log_append_fenced")
        check_key(key)
        self._checked(record, data)
        sealed = [self._seal_entry(key, self.codec.encode(entry)) for entry in entries]
        if not isinstance(self.inner, FencedAppendStore):
            return None
        version: int | None = await self.inner.log_append_fenced(
            key,
            sealed,
            last=last,
            record=record,
            expected=expected,
            data=self._seal(record, data),
            ttl=ttl,
            log_ttl=log_ttl,
            max_len=max_len,
            index=index,
        )
        return version

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries of the log, opened, oldest first."""
        self._check_open("log_read")
        read = await self.inner.log_read(key, after=after, before=before, last=last)
        return [LogEntry(entry.seq, self._open_entry(key, entry.seq, entry.value)) for entry in read]

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now."""
        self._check_open("log_length")
        return int(await self.inner.log_length(key))

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log."""
        self._check_open("log_last_seq")
        return int(await self.inner.log_last_seq(key))

    async def log_delete(self, key: str) -> None:
        """Remove the whole log."""
        self._check_open("log_delete")
        await self.inner.log_delete(key)

    async def log_pop(self, key: str) -> LogEntry | None:
        """Remove the newest entry and return it, opened."""
        self._check_open("log_pop")
        popped = await self.inner.log_pop(key)
        return None if popped is None else LogEntry(popped.seq, self._open_entry(key, popped.seq, popped.value))

    async def log_clear(self, key: str) -> int:
        """Remove every entry, keeping the numbering."""
        self._check_open("log_clear")
        return int(await self.inner.log_clear(key))

    async def log_rewrite(self, key: str, rewrites: Sequence[LogRewrite]) -> list[RewriteResult]:
        """Seal and rewrite entries in place, each only if its plaintext is still ``expected``; one result each.

        The entries are read (one read over their span) and opened, and each
        whose plaintext equals ``expected`` is rewritten on the backend by
        comparing the ciphertext read, so a change in between is never
        overwritten (``CHANGED``). An entry that does not open is an
        :class:`EncryptionError`, with nothing written. Needs a backend with
        :class:`~sessionware.store.LogRewriteStore`.
        """
        self._check_open("log_rewrite")
        check_key(key)
        rewritable = isinstance(self.inner, LogRewriteStore)
        if not rewritable:
            raise InvalidValueError("inner", f"{type(self.inner).__name__} cannot rewrite log entries in place")
        if not isinstance(rewrites, Sequence) or isinstance(rewrites, (str, bytes, dict)):
            raise InvalidValueError("rewrites", "must be a sequence of LogRewrite(seq, expected, value)")
        sealed: list[tuple[int, JsonDict, JsonDict]] = []
        seen: set[int] = set()
        for i, rewrite in enumerate(rewrites):
            if not isinstance(rewrite, tuple) or len(rewrite) != 3:
                raise InvalidValueError(f"rewrites[{i}]", "must be a LogRewrite(seq, expected, value)")
            seq, expected, value = rewrite
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
                raise InvalidValueError(f"rewrites[{i}].seq", f"must be a sequence number from 1, not {seq!r}")
            if seq in seen:
                raise InvalidValueError(f"rewrites[{i}].seq", f"entry {seq} is rewritten twice in one call")
            seen.add(seq)
            self.codec.encode(expected)
            sealed.append((seq, expected, self._seal_entry(key, self.codec.encode(value))))
        if not sealed:
            return []
        seqs = [seq for seq, _, _ in sealed]
        read = await self.inner.log_read(key, after=min(seqs) - 1, before=max(seqs) + 1)
        stored = {entry.seq: entry.value for entry in read}
        results: dict[int, RewriteResult] = {}
        inner: list[LogRewrite] = []
        for seq, expected, value in sealed:
            current = stored.get(seq)
            if current is None:
                results[seq] = RewriteResult.MISSING
            elif self._open_entry(key, seq, current) != expected:
                results[seq] = RewriteResult.CHANGED
            else:
                inner.append(LogRewrite(seq, current, value))
        done = await self.inner.log_rewrite(key, inner) if inner else []
        results.update(zip((r.seq for r in inner), done, strict=True))
        return [results[seq] for seq in seqs]


@dataclass
class Rotation:
    """What :func:`rotate_keys` did.

    Records: re-sealed with the primary key, already sealed with it, left
    because another writer wrote them meanwhile (sealed with the primary by
    that write), and plaintext records sealed. Log entries: the same four
    counts, where ``entries_raced`` are entries changed or removed (popped,
    trimmed, cleared) meanwhile; ``logs`` is how many logs were walked.
    """

    resealed: int = 0
    current: int = 0
    raced: int = 0
    plaintext: int = 0
    logs: int = 0
    entries_resealed: int = 0
    entries_current: int = 0
    entries_raced: int = 0
    entries_plaintext: int = 0


ROTATION_PAGE = 500
"""How many log entries :func:`rotate_keys` reads and rewrites per round trip."""


async def rotate_keys(
    store: EncryptedStore,
    *,
    prefix: str = "",
    logs: Iterable[str] | AsyncIterable[str] | None = None,
    page: int = ROTATION_PAGE,
) -> Rotation:
    """Re-seal every record (under ``prefix``), and every entry of the logs ``logs`` names, that is not sealed
    with the ring's primary key, in place.

    Each record is rewritten by compare-and-set on its version, keeping its
    expiry, so a concurrent write is never overwritten. Logs cannot be listed
    by every backend, so their keys are given: for agent sessions,
    :func:`sessionware.agents.agent_log_keys` names each session's history
    and tool logs (``sessionware rotate-keys`` does so). A log is walked from
    its newest entry back, ``page`` entries a round trip, and each entry is
    rewritten only if it still holds the ciphertext read
    (:class:`~sessionware.store.LogRewriteStore`), keeping its number and the
    log's expiry; entries appended meanwhile are sealed by their writer. A
    stopped rotation is resumed by running it again (what is done is
    skipped). Plaintext records and entries are sealed too. Anything sealed
    with a key not in the ring is an :class:`EncryptionError` naming it,
    raised with that record or entry left as it is.
    """
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidValueError("page", f"must be a positive int, not {page!r}")
    inner = store.inner
    if logs is not None and not isinstance(inner, LogRewriteStore):
        raise InvalidValueError("store", f"{type(inner).__name__} cannot rewrite log entries in place (no log_rewrite)")
    done = Rotation()
    await _rotate_records(store, prefix, done)
    if logs is not None:
        seen: set[str] = set()
        async for key in _keys(logs):
            if key not in seen:
                seen.add(key)
                await _rotate_log(store, key, page, done)
    return done


async def _keys(logs: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(logs, AsyncIterable):
        async for key in logs:
            yield check_key(key)
    else:
        if isinstance(logs, str):
            raise InvalidValueError("logs", "must be an iterable of log keys, not one str")
        for key in logs:
            yield check_key(key)


async def _rotate_records(store: EncryptedStore, prefix: str, done: Rotation) -> None:
    inner = store.inner
    primary = store.keys.primary
    async for key in inner.scan(prefix):
        got = await inner.get_versioned(key)
        if got is None:
            continue
        key_id = store.keys.key_id_of(got.data)
        if key_id == primary:
            done.current += 1
            continue
        plaintext = got.data if key_id is None else store.keys.open(got.data, _record_aad(key), f"record {key!r}")
        ttl = await inner.expires_in(key)
        if ttl is not None and ttl <= 0:
            continue  # expiring now: nothing to keep
        try:
            await inner.set_versioned(key, store._seal(key, plaintext), expected=got.version, ttl=ttl)
        except ConflictError:
            done.raced += 1
            continue
        if key_id is None:
            done.plaintext += 1
        else:
            done.resealed += 1


async def _rotate_log(store: EncryptedStore, key: str, page: int, done: Rotation) -> None:
    """Re-seal one log, a page at a time from the newest entry back."""
    inner = store.inner
    keys = store.keys
    aad = _log_aad(key)
    before: int | None = None
    done.logs += 1
    while True:
        entries: list[LogEntry] = await inner.log_read(key, before=before, last=page)
        if not entries:
            return
        rewrites: list[LogRewrite] = []
        plain: set[int] = set()
        for seq, value in entries:
            envelope = _entry_envelope(key, seq, value)
            if envelope is None:
                plaintext = store.codec.encode(value)
                plain.add(seq)
            elif keys.key_id_of(envelope) == keys.primary:
                done.entries_current += 1
                continue
            else:
                plaintext = keys.open(envelope, aad, f"entry {seq} of log {key!r}")
            rewrites.append(LogRewrite(seq, value, store._seal_entry(key, plaintext)))
        if rewrites:
            results = await inner.log_rewrite(key, rewrites)
            for rewrite, result in zip(rewrites, results, strict=True):
                if result is not RewriteResult.APPLIED:
                    done.entries_raced += 1
                elif rewrite.seq in plain:
                    done.entries_plaintext += 1
                else:
                    done.entries_resealed += 1
        if len(entries) < page:
            return
        before = entries[0].seq


__all__ = ["KEYS_VARIABLE", "ROTATION_PAGE", "EncryptedStore", "KeyRing", "Rotation", "rotate_keys"]
