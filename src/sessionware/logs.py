"""Reading a whole append-only log page by page, and writing one back under its original sequence numbers.

Used by export and import on the command line and by ``sessionware migrate``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .codec import JsonDict
from .errors import InvalidValueError
from .store import LogEditStore, LogEntry, LogStore

PAGE = 1000

PLACEHOLDER: JsonDict = {"sessionware": "placeholder"}
"""What fills the numbers below a restored log's first entry until the first real entries trim it away."""


async def iter_log(store: LogStore, key: str, *, page: int = PAGE) -> AsyncIterator[LogEntry]:
    """Every entry the log of ``key`` holds now, oldest first, read ``page`` entries at a time.

    Numbers may have gaps (trimmed away at the start, cleared, or popped and
    then appended after): a window that finds nothing is followed by a
    bisection for the next entry, so a gap costs a few one-entry reads.
    """
    last = await store.log_last_seq(key)
    after = 0
    while after < last:
        entries = await store.log_read(key, after=after, before=after + page + 1)
        if not entries:
            following = await _next_seq(store, key, after, last)
            if following is None:
                return
            after = following - 1
            continue
        for entry in entries:
            yield entry
        after = entries[-1].seq


async def _next_seq(store: LogStore, key: str, after: int, last: int) -> int | None:
    """The number of the first entry after ``after`` (up to ``last``), or ``None`` if there is none."""
    if not await store.log_read(key, after=after, before=last + 1, last=1):
        return None
    low, high = after + 1, last
    while low < high:
        middle = (low + high) // 2
        if await store.log_read(key, after=after, before=middle + 1, last=1):
            high = middle
        else:
            low = middle + 1
    return low


class LogRestore:
    """Writes a log back so that its entries keep the sequence numbers they had.

    Numbers are assigned by the store, so a log whose first entry is ``n > 1``
    (its older entries trimmed) starts by advancing the counter past ``n - 1``
    with placeholders, which the first real append trims away. A gap between
    two entries (left by a pop) is made again on a store that can pop
    (:class:`~sessionware.store.LogEditStore`): placeholders are appended and
    popped. Entries are appended ``page`` at a time; :meth:`finish` writes
    what is left.
    """

    def __init__(self, store: LogStore, key: str, *, page: int = PAGE) -> None:
        self.store = store
        self.key = key
        self.page = page
        self.next_seq: int | None = None
        self.written = 0
        self._pending: list[JsonDict] = []
        self._trim_first = False

    async def add(self, seq: int, value: JsonDict) -> None:
        """Add the entry numbered ``seq``; numbers must increase, and leave gaps only on a store that can pop."""
        if self.next_seq is None:
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
                raise InvalidValueError("seq", f"must be a positive int, not {seq!r}")
            await self.store.log_delete(self.key)
            filled = 0
            while filled < seq - 1:
                batch = min(self.page, seq - 1 - filled)
                await self.store.log_append(self.key, [PLACEHOLDER] * batch, max_len=1)
                filled += batch
            self._trim_first = seq > 1
            self.next_seq = seq
        if seq != self.next_seq:
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < self.next_seq:
                raise InvalidValueError("seq", f"log {self.key!r} goes back from seq {self.next_seq - 1} to {seq!r}")
            if not isinstance(self.store, LogEditStore):
                raise InvalidValueError("seq", f"log {self.key!r} jumps from seq {self.next_seq - 1} to {seq}")
            await self._skip(self.store, seq - self.next_seq)
            self.next_seq = seq
        self._pending.append(value)
        self.next_seq += 1
        if len(self._pending) >= self.page:
            await self._flush()

    async def _skip(self, edits: LogEditStore, count: int) -> None:
        """Use up ``count`` numbers without keeping entries under them."""
        await self._flush()
        skipped = 0
        while skipped < count:
            batch = min(self.page, count - skipped)
            await self.store.log_append(self.key, [PLACEHOLDER] * batch)
            for _ in range(batch):
                await edits.log_pop(self.key)
            skipped += batch

    async def _flush(self) -> None:
        if not self._pending:
            return
        max_len = len(self._pending) if self._trim_first else None
        await self.store.log_append(self.key, self._pending, max_len=max_len)
        self.written += len(self._pending)
        self._trim_first = False
        self._pending = []

    async def finish(self, *, ttl: float | None = None) -> int:
        """Write the entries still buffered, set the log's expiry if given; return how many were written."""
        await self._flush()
        if ttl is not None and self.written:
            await self.store.log_append(self.key, [], ttl=ttl)
        return self.written


__all__ = ["PAGE", "PLACEHOLDER", "LogRestore", "iter_log"]
