"""The in-memory store: bounded, LRU-evicting, with expiry that never lets memory grow."""

from __future__ import annotations

import heapq
import time
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from ..codec import Codec, JsonDict
from ..errors import InvalidValueError, ValueTooLargeError
from ..keys import TTL, check_key, hash_tag, ttl_seconds
from ..store import (
    DEFAULT_MAX_SIZE,
    BaseSessionStore,
    IndexPut,
    Lease,
    Locked,
    LogEntry,
    LogRewrite,
    RewriteResult,
    Versioned,
)
from ._common import (
    Batch,
    Closed,
    Taken,
    check_lease,
    check_record,
    encode_rewrites,
    fenced_batch,
    fenced_commit,
    log_batch,
    log_window,
    renew_lease,
    require_version,
    store_ttl,
    take_lease,
)
from ._index import check_member, check_page, check_put

DEFAULT_MAX_SESSIONS = 100_000


def _seq_of(entry: tuple[int, bytes]) -> int:
    return entry[0]


@dataclass(slots=True)
class _Log:
    entries: deque[tuple[int, bytes]] = field(default_factory=deque)
    last_seq: int = 0
    expires_at: float | None = None


_INDEX_EXPIRY = -2
"""The version of an index's entries in the expiry heap (records have theirs, logs -1)."""


@dataclass(slots=True)
class _Index:
    scores: dict[str, float] = field(default_factory=dict)
    order: list[tuple[float, str]] = field(default_factory=list)
    """Every ``(score, member)``, ascending: pages are read from the end."""
    expires_at: float | None = None


class InMemorySessionStore(BaseSessionStore):
    """Sessions in this process's memory, encoded exactly as a persistent store would keep them.

    At most ``max_sessions`` sessions live at once. A session is every key
    with one hash tag (``agent:s:{id}``, its history, tool log and index
    entries are one ``{id}``), else one key; expired sessions give way first,
    then the least recently used session goes whole, so no record outlives its
    history or index entry. Expired keys are dropped as soon as a write or read
    comes after their expiry, so memory stays bounded by the live sessions.

    ``clock`` (default :func:`time.monotonic`) is what expiry and leases are
    measured by; tests pass a fake one to step over an expiry without sleeping.
    """

    backend = "memory"

    def __init__(
        self,
        *,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size)
        self._clock = clock
        if max_sessions is not None and max_sessions < 1:
            raise InvalidValueError("max_sessions", f"must be at least 1 or None, not {max_sessions!r}")
        self.max_sessions = max_sessions
        self._data: OrderedDict[str, tuple[bytes, float | None, int]] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}
        self._version = 0
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._indexes: dict[str, _Index] = {}
        self._units: OrderedDict[str, set[str] | None] = OrderedDict()
        """Each session (hash tag, or untagged key) and its keys, least recently used first (``None``: the unit
        is that one untagged key)."""
        self._expiry: list[tuple[float, int, str]] = []
        """A heap of (expiry, version, key) of records and logs; stale entries are skipped when they come up."""
        self._lock_sweep = 0

    def __len__(self) -> int:
        return len(self._data)

    async def close(self) -> None:
        """Drop every session, log and lease; every later call raises :class:`~sessionware.errors.StoreClosedError`."""
        await super().close()
        closed = Closed(self._closed_error("call"))
        self._data = self._logs = self._locks = self._units = self._indexes = closed  # type: ignore[assignment]

    def _live(self, key: str) -> tuple[bytes, float | None, int] | None:
        entry = self._data.get(key)
        if entry is None:
            check_key(key)
            return None
        if entry[1] is not None and entry[1] <= self._clock():
            self._drop_record(key)
            return None
        self._used(key)
        return entry

    async def get_raw(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None``."""
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def set_raw(self, key: str, data: bytes, *, ttl: TTL = None) -> None:
        """Store already encoded ``data`` under ``key`` (no I/O, so no timeout or error translation)."""
        check_key(key)
        if len(data) > self.max_size:
            raise ValueTooLargeError(len(data), self.max_size)
        self._write(key, data, None if ttl is None else store_ttl(ttl))

    async def _get(self, key: str) -> bytes | None:
        return await self.get_raw(key)

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        self._write(key, data, ttl)

    def _write(self, key: str, data: bytes, ttl: float | None) -> int:
        self._version += 1
        expires = None if ttl is None else self._clock() + ttl
        new = key not in self._data
        self._data[key] = (data, expires, self._version)
        if expires is not None:
            self._expires(expires, self._version, key)
        if new:
            self._joined(key)
        else:
            self._used(key)
        self._after_write()
        return self._version

    async def _delete(self, key: str) -> None:
        self._drop_record(key)

    # -- sessions as eviction units, and expiry ----------------------------------------------------

    def _used(self, key: str) -> None:
        unit = hash_tag(key)
        if unit in self._units:
            self._units.move_to_end(unit)

    def _joined(self, key: str) -> None:
        """``key`` was added to the records or logs: count it in its session and make room if needed."""
        unit = hash_tag(key)
        units = self._units
        members = units.get(unit)
        if unit == key and unit not in units:
            units[unit] = None
        elif members is not None:
            members.add(key)
        elif unit != key:  # the first tagged key of its session, maybe beside an untagged key named like the tag
            units[unit] = {key, unit} if unit in units else {key}
        units.move_to_end(unit)
        if self.max_sessions is not None and len(units) > self.max_sessions:
            self._drop_expired()
            while len(units) > self.max_sessions:
                oldest, members = units.popitem(last=False)
                for member in (oldest,) if members is None else tuple(members):
                    self._data.pop(member, None)
                    self._logs.pop(member, None)
                    self._indexes.pop(member, None)

    def _left(self, key: str) -> None:
        """``key`` is gone from the records or logs: forget its session once it has no key left."""
        if key in self._data or key in self._logs or key in self._indexes:
            return
        unit = hash_tag(key)
        members = self._units.get(unit)
        if members is None:
            if unit == key:
                self._units.pop(unit, None)
            return
        members.discard(key)
        if not members:
            del self._units[unit]

    def _drop_record(self, key: str) -> bool:
        if self._data.pop(key, None) is None:
            return False
        self._left(key)
        return True

    def _drop_log(self, key: str) -> bool:
        if self._logs.pop(key, None) is None:
            return False
        self._left(key)
        return True

    def _expires(self, at: float, version: int, key: str) -> None:
        heapq.heappush(self._expiry, (at, version, key))
        if len(self._expiry) > 2 * (len(self._data) + len(self._logs) + len(self._indexes)) + 1024:
            self._expiry = [(exp, v, k) for k, (_, exp, v) in self._data.items() if exp is not None]
            self._expiry += [(g.expires_at, -1, k) for k, g in self._logs.items() if g.expires_at is not None]
            self._expiry += [
                (x.expires_at, _INDEX_EXPIRY, k) for k, x in self._indexes.items() if x.expires_at is not None
            ]
            heapq.heapify(self._expiry)

    def _drop_expired(self) -> int:
        """Drop every record and log whose expiry has passed (each found once, from the heap)."""
        now = self._clock()
        heap = self._expiry
        dropped = 0
        while heap and heap[0][0] <= now:
            at, version, key = heapq.heappop(heap)
            if version >= 0:
                entry = self._data.get(key)
                if entry is not None and entry[2] == version and entry[1] == at:
                    dropped += self._drop_record(key)
            elif version == _INDEX_EXPIRY:
                dropped += self._drop_expired_index(key, at)
            else:
                log = self._logs.get(key)
                if log is not None and log.expires_at == at:
                    dropped += self._drop_log(key)
        return dropped

    def _after_write(self) -> None:
        if self._expiry and self._expiry[0][0] <= self._clock():
            self._drop_expired()
        self._lock_sweep += 1
        if self._lock_sweep >= max(1024, len(self._locks)):
            self._drop_lapsed_leases()

    def _drop_lapsed_leases(self) -> None:
        self._lock_sweep = 0
        now = self._clock()
        for k in [k for k, (_, exp) in self._locks.items() if exp <= now]:
            del self._locks[k]

    def _sweep(self) -> int:
        self._drop_lapsed_leases()
        return self._drop_expired()

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - self._clock())

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        seconds = ttl_seconds(ttl)
        entry = self._live(key)
        if entry is None:
            return False
        expires = None if seconds is None else self._clock() + seconds
        self._data[key] = (entry[0], expires, entry[2])
        if expires is not None:
            self._expires(expires, entry[2], key)
        return True

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix``."""
        now = self._clock()
        count = 0
        for key, (_, exp, _) in list(self._data.items()):
            if limit is not None and count >= limit:
                return
            if key.startswith(prefix) and (exp is None or exp > now):
                count += 1
                yield key

    async def purge_expired(self) -> int:
        """Drop every expired session now; return how many."""
        return self._sweep()

    # -- append-only logs ------------------------------------------------------------------------

    def _live_log(self, key: str) -> _Log | None:
        log = self._logs.get(check_key(key))
        if log is not None and log.expires_at is not None and log.expires_at <= self._clock():
            self._drop_log(key)
            return None
        return log

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` at once (no other call comes between); return their sequence numbers."""
        batch = log_batch(self.codec, self.max_size, key, entries, ttl, max_len)
        if batch is None:
            return []
        return self._append_now(key, self._live_log(key), batch, max_len)

    def _append_now(self, key: str, log: _Log | None, batch: Batch, max_len: int | None) -> list[int]:
        if log is None:
            log = self._logs[key] = _Log()
            self._joined(key)
        else:
            self._used(key)
        first = log.last_seq + 1
        log.entries.extend(zip(range(first, first + len(batch.encoded)), batch.encoded, strict=True))
        log.last_seq += len(batch.encoded)
        if max_len is not None:
            while len(log.entries) > max_len:
                log.entries.popleft()
        if batch.ttl is not None:
            log.expires_at = self._clock() + batch.ttl
            self._expires(log.expires_at, -1, key)
        self._after_write()
        return list(range(first, log.last_seq + 1))

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
        """Append to ``key`` and write ``record`` at once, if neither changed since (see :class:`FencedAppendStore`)."""
        checked = fenced_batch(
            self.codec,
            self.max_size,
            key,
            entries,
            last=last,
            record=record,
            expected=expected,
            data=data,
            ttl=ttl,
            log_ttl=log_ttl,
            max_len=max_len,
            index=index,
        )
        stored = self._live(record)
        log = self._live_log(key)
        if stored is None or stored[2] != expected or (0 if log is None else log.last_seq) != last:
            return None
        self._append_now(key, log, checked.batch, max_len)
        version = self._write(record, data, checked.record_ttl)
        put = checked.put
        if put is not None:
            await self.index_put(put.key, put.member, put.score, ttl=put.ttl)  # no I/O: nothing comes between
        return version

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first, sliced out of the log without copying it whole."""
        window = log_window(after, before, last)
        log = self._live_log(key)
        if window is None or log is None or not log.entries:
            return []
        self._used(key)
        lo, hi, limit = window
        entries = log.entries
        first_seq = entries[0][0]
        if entries[-1][0] - first_seq + 1 == len(entries):
            start = max(0, lo - first_seq + 1)
            stop = max(0, min(len(entries), hi - first_seq))
        else:  # numbers with gaps (a pop, then an append)
            start = bisect_right(entries, lo, key=_seq_of)
            stop = bisect_left(entries, hi, key=_seq_of)
        if limit is not None:
            start = max(start, stop - limit)
        decode = self.codec.decode
        return [LogEntry(entries[i][0], decode(key, entries[i][1])) for i in range(start, stop)]

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now."""
        log = self._live_log(key)
        return 0 if log is None else len(log.entries)

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log."""
        log = self._live_log(key)
        return 0 if log is None else log.last_seq

    async def log_pop(self, key: str) -> LogEntry | None:
        """Remove the newest entry and return it; its number is never assigned again."""
        log = self._live_log(key)
        if log is None or not log.entries:
            return None
        seq, data = log.entries.pop()
        self._used(key)
        self._after_write()
        return LogEntry(seq, self.codec.decode(key, data))

    async def log_clear(self, key: str) -> int:
        """Remove every entry, keeping the numbering and the expiry; return the highest number assigned."""
        log = self._live_log(key)
        if log is None:
            return 0
        log.entries.clear()
        self._used(key)
        self._after_write()
        return log.last_seq

    async def log_delete(self, key: str) -> None:
        """Remove the whole log."""
        self._drop_log(check_key(key))

    async def log_rewrite(self, key: str, rewrites: Sequence[LogRewrite]) -> list[RewriteResult]:
        """Rewrite entries in place, each only if it still holds ``expected``; one result each (no I/O).

        See :class:`~sessionware.store.LogRewriteStore`; the log keeps its expiry.
        """
        encoded = encode_rewrites(self.codec, self.max_size, key, rewrites)
        log = self._live_log(key)
        if log is None or not log.entries:
            return [RewriteResult.MISSING] * len(encoded)
        self._used(key)
        entries = log.entries
        results = []
        for seq, expected, value in encoded:
            i = bisect_left(entries, seq, key=_seq_of)
            if i == len(entries) or entries[i][0] != seq:
                results.append(RewriteResult.MISSING)
            elif entries[i][1] in (expected, value):
                entries[i] = (seq, value)
                results.append(RewriteResult.APPLIED)
            else:
                results.append(RewriteResult.CHANGED)
        return results

    # -- versions and leases ---------------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version, or ``None``."""
        entry = self._live(key)
        return None if entry is None else Versioned(entry[0], entry[2])

    def _check_version(self, key: str, expected: int | None) -> None:
        entry = self._live(key)
        require_version(key, expected, 0 if entry is None else entry[2])

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected``; return the new version."""
        seconds = check_record(key, data, self.max_size, ttl)
        self._check_version(key, expected)
        return self._write(key, data, seconds)

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected``."""
        self._check_version(check_key(key), expected)
        self._drop_record(key)

    def _holds(self, lease: Lease) -> bool:
        held = self._locks.get(lease.key)
        return held is not None and held[0] == lease.token and held[1] > self._clock()

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` within ``wait`` seconds by the store's clock, and read the record."""

        async def attempt(token: str, ttl: float) -> Taken | float:
            now = self._clock()
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return held[1] - now
            self._locks[key] = (token, now + ttl)
            return Taken(await self.get_versioned(key))

        return await take_lease(key, lease, wait, attempt, clock=self._clock)

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``."""
        return await renew_lease(lease, self._extend)

    async def _extend(self, lease: Lease) -> bool:
        if not self._holds(lease):
            return False
        self._locks[lease.key] = (lease.token, self._clock() + lease.ttl)
        return True

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release, if the lease is still held."""
        return await fenced_commit(lease, data, ttl, self.max_size, self._release_and_write)

    async def _release_and_write(self, lease: Lease, data: bytes | None, ttl: float | None) -> int | None:
        if not self._holds(lease):
            return None
        del self._locks[lease.key]
        if data is None:
            self._drop_record(lease.key)
            return 0
        return self._write(lease.key, data, ttl)

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing."""
        held = self._locks.get(check_lease(lease).key)
        if held is not None and held[0] == lease.token:
            del self._locks[lease.key]

    # -- sorted indexes --------------------------------------------------------------------------

    def _live_index(self, key: str) -> _Index | None:
        index = self._indexes.get(key)
        if index is not None and index.expires_at is not None and index.expires_at <= self._clock():
            self._drop_index(key)
            return None
        return index

    def _drop_index(self, key: str) -> bool:
        if self._indexes.pop(key, None) is None:
            return False
        self._left(key)
        return True

    def _drop_expired_index(self, key: str, at: float) -> bool:
        index = self._indexes.get(key)
        return index is not None and index.expires_at == at and self._drop_index(key)

    async def index_put(self, key: str, member: str, score: float, *, ttl: TTL = None) -> None:
        """Add ``member`` at ``score`` or move it there (a bisection and a list insert; no I/O)."""
        key, member, score, seconds = check_put(key, member, score, ttl)
        index = self._live_index(key)
        new = index is None
        if index is None:
            index = self._indexes[key] = _Index()
            self._joined(key)
        else:
            self._used(key)
        old = index.scores.get(member)
        if old != score:
            if old is not None:
                del index.order[bisect_left(index.order, (old, member))]
            insort(index.order, (score, member))
            index.scores[member] = score
        if seconds is None:
            index.expires_at = None
        else:
            expires = self._clock() + seconds
            if new or (index.expires_at is not None and index.expires_at < expires):
                index.expires_at = expires
                self._expires(expires, _INDEX_EXPIRY, key)
        self._after_write()

    async def index_remove(self, key: str, member: str) -> None:
        """Remove ``member``; the index goes with its last member."""
        member = check_member(member)
        index = self._live_index(check_key(key))
        if index is None:
            return
        score = index.scores.pop(member, None)
        if score is None:
            return
        del index.order[bisect_left(index.order, (score, member))]
        if not index.scores:
            self._drop_index(key)

    async def index_page(
        self, key: str, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[tuple[str, float]]:
        """At most ``limit`` pairs, highest score first, found by bisection (no I/O)."""
        key, limit, cursor = check_page(key, limit, before)
        index = self._live_index(key)
        if index is None:
            return []
        self._used(key)
        order = index.order
        end = len(order) if cursor is None else bisect_left(order, cursor)
        return [(member, score) for score, member in reversed(order[max(0, end - limit) : end])]

    async def index_delete(self, key: str) -> None:
        """Remove the whole index."""
        self._drop_index(check_key(key))
