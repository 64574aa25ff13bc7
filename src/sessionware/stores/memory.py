"""The in-memory store: bounded, LRU-evicting, with expiry that never lets memory grow."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ..codec import Codec, JsonDict
from ..errors import ValueTooLargeError
from ..keys import TTL, check_key, ttl_seconds
from ..store import DEFAULT_MAX_SIZE, BaseSessionStore, LogEntry, check_log_args

DEFAULT_MAX_SESSIONS = 100_000


@dataclass(slots=True)
class _Log:
    entries: deque[tuple[int, bytes]] = field(default_factory=deque)
    last_seq: int = 0
    expires_at: float | None = None


class InMemorySessionStore(BaseSessionStore):
    """Sessions in this process's memory, encoded exactly as a persistent store would keep them.

    At most ``max_sessions`` live at once; the least recently used is evicted
    first. Expired sessions are dropped when read and swept in bulk as writes
    accumulate, so memory stays bounded by the live sessions.
    """

    backend = "memory"

    def __init__(
        self,
        *,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size)
        if max_sessions is not None and max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._writes_since_sweep = 0

    def __len__(self) -> int:
        return len(self._data)

    async def get_raw(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None``."""
        entry = self._data.get(key)
        if entry is None:
            check_key(key)
            return None
        data, expires_at = entry
        if expires_at is not None and expires_at <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return data

    async def _get(self, key: str) -> bytes | None:
        return await self.get_raw(key)

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        self._data[key] = (data, None if ttl is None else time.monotonic() + ttl)
        self._data.move_to_end(key)
        if self.max_sessions is not None and len(self._data) > self.max_sessions:
            self._data.popitem(last=False)
        self._count_write()

    async def _delete(self, key: str) -> None:
        self._data.pop(key, None)

    def _sweep(self) -> int:
        now = time.monotonic()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in dead:
            del self._data[k]
        dead_logs = [k for k, g in self._logs.items() if g.expires_at is not None and g.expires_at <= now]
        for k in dead_logs:
            del self._logs[k]
        self._writes_since_sweep = 0
        return len(dead) + len(dead_logs)

    def _count_write(self) -> None:
        self._writes_since_sweep += 1
        if self._writes_since_sweep >= max(1024, len(self._data) + len(self._logs)):
            self._sweep()

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        if await self.get_raw(key) is None:
            return None
        expires_at = self._data[key][1]
        return None if expires_at is None else max(0.0, expires_at - time.monotonic())

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key``; ``False`` if it is missing."""
        seconds = ttl_seconds(ttl)
        data = await self.get_raw(key)
        if data is None:
            return False
        self._data[key] = (data, None if seconds is None else time.monotonic() + seconds)
        return True

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield the live keys that start with ``prefix``."""
        now = time.monotonic()
        count = 0
        for key, (_, exp) in list(self._data.items()):
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
        if log is not None and log.expires_at is not None and log.expires_at <= time.monotonic():
            del self._logs[key]
            return None
        return log

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically; return their sequence numbers."""
        check_log_args(entries, max_len)
        seconds = ttl_seconds(ttl)
        encoded = [self.codec.encode(e) for e in entries]
        for data in encoded:
            if len(data) > self.max_size:
                raise ValueTooLargeError(len(data), self.max_size)
        log = self._live_log(key)
        if log is None:
            log = self._logs[key] = _Log()
        self._logs.move_to_end(key)
        first = log.last_seq + 1
        log.entries.extend(zip(range(first, first + len(encoded)), encoded, strict=True))
        log.last_seq += len(encoded)
        if max_len is not None:
            while len(log.entries) > max_len:
                log.entries.popleft()
        if seconds is not None:
            log.expires_at = time.monotonic() + seconds
        if self.max_sessions is not None and len(self._logs) > self.max_sessions:
            self._logs.popitem(last=False)
        self._count_write()
        return list(range(first, first + len(encoded)))

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N."""
        log = self._live_log(key)
        if log is None or not log.entries:
            return []
        self._logs.move_to_end(key)
        first_seq = log.entries[0][0]
        start = 0 if after is None else max(0, after - first_seq + 1)
        stop = len(log.entries) if before is None else max(0, min(len(log.entries), before - first_seq))
        if last is not None:
            start = max(start, stop - last)
        decode = self.codec.decode
        entries = log.entries
        return [LogEntry(entries[i][0], decode(key, entries[i][1])) for i in range(start, stop)]

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now."""
        log = self._live_log(key)
        return 0 if log is None else len(log.entries)

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number ever assigned in the log."""
        log = self._live_log(key)
        return 0 if log is None else log.last_seq

    async def log_delete(self, key: str) -> None:
        """Remove the whole log."""
        self._logs.pop(check_key(key), None)
