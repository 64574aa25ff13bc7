"""Logs shared between forks: a session's history as closed segments of other logs followed by its own log.

A fork does not copy the prefix it shares with its parent: its record names
the parent's log and the last sequence number it shares (a :class:`Segment`),
and reads compose those segments with the fork's own log (:class:`ChainReader`),
whose numbers are shifted above the shared prefix. A log referenced by a fork
is never edited in place again: popping into it, clearing or rewinding it
narrows the segment in the record and starts a fresh own log instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..store import LogEntry, LogStore

JsonDict = dict[str, Any]


@dataclass(slots=True, frozen=True)
class Segment:
    """Entries of log ``key`` shown with ``seq = stored + offset`` and ``lo < seq <= upto``."""

    key: str
    offset: int
    lo: int
    upto: int
    mine: bool = False
    shared: bool = False

    def to_json(self) -> JsonDict:
        return {"k": self.key, "o": self.offset, "l": self.lo, "u": self.upto, "m": self.mine, "s": self.shared}

    @classmethod
    def from_json(cls, data: JsonDict) -> Segment:
        return cls(
            key=str(data["k"]),
            offset=int(data["o"]),
            lo=int(data["l"]),
            upto=int(data["u"]),
            mine=bool(data["m"]),
            shared=bool(data["s"]),
        )


@dataclass(slots=True)
class LogChain:
    """One log of a session (history or tool invocations): closed ``base`` segments, oldest first, then ``own``.

    The own log's entries are shown with ``seq = stored + offset`` and only
    above ``lo`` (older ones were compacted); ``shared`` says a fork
    references the own log, which must then only be appended to.
    """

    own: str
    offset: int = 0
    base: list[Segment] = field(default_factory=list)
    shared: bool = False
    lo: int = 0

    @property
    def floor(self) -> int:
        """The own log shows entries with ``seq > floor``."""
        return max(self.offset, self.lo)

    def shape(self) -> tuple[object, ...]:
        """What the chain shows (not who else reads it): equal shapes, equal histories up to the own log."""
        return (self.own, self.offset, self.lo, [(s.key, s.offset, s.lo, s.upto) for s in self.base])

    def compacted(self, upto: int, summary: str) -> LogChain:
        """This chain with the entries up to ``upto`` replaced by the entry of log ``summary`` (as ``upto``)."""
        kept = [replace(s, lo=max(s.lo, upto)) for s in self.base if s.upto > upto]
        head = Segment(summary, upto - 1, upto - 1, upto, mine=True)
        return LogChain(own=self.own, offset=self.offset, base=[head, *kept], shared=self.shared, lo=max(self.lo, upto))

    @property
    def simple(self) -> bool:
        """Whether the own log is the whole log and nobody else reads it: it may be edited in place."""
        return not self.base and not self.shared

    def to_json(self) -> JsonDict:
        data = {"own": self.own, "o": self.offset, "base": [s.to_json() for s in self.base], "s": self.shared}
        return {**data, "l": self.lo} if self.lo else data

    @classmethod
    def from_json(cls, data: JsonDict) -> LogChain:
        return cls(
            own=str(data["own"]),
            offset=int(data["o"]),
            base=[Segment.from_json(s) for s in data["base"]],
            shared=bool(data["s"]),
            lo=int(data.get("l", 0)),
        )

    def prefix(self, upto: int, *, mine: bool = True) -> list[Segment]:
        """The segments holding the entries with ``seq <= upto`` (the own log closed at ``upto``).

        ``mine=False``: for another session (a fork), which never deletes them.
        """
        segments = [replace(s, upto=min(s.upto, upto), mine=mine and s.mine) for s in self.base if s.lo < upto]
        if upto > self.floor:
            segments.append(Segment(self.own, self.offset, self.floor, upto, mine=mine, shared=self.shared))
        return segments

    def cut(self, upto: int, fresh: str, high: int) -> LogChain:
        """This chain without the entries after ``upto``, appending to ``fresh`` from ``high`` on."""
        return LogChain(own=fresh, offset=high, base=self.prefix(upto))

    def unreferenced(self, new: LogChain) -> list[str]:
        """The logs of this chain that ``new`` (its successor) no longer reads and no fork reads: to delete."""
        still = set(new.logs())
        mine = [s.key for s in self.base if s.mine and not s.shared]
        if not self.shared:
            mine.append(self.own)
        return [key for key in mine if key not in still]

    def mark_shared(self, upto: int) -> bool:
        """Mark every log a fork up to ``upto`` reads as shared; whether anything changed."""
        changed = False
        for i, s in enumerate(self.base):
            if s.lo < upto and s.mine and not s.shared:
                self.base[i] = replace(s, shared=True)
                changed = True
        if upto > self.floor and not self.shared:
            self.shared = changed = True
        return changed

    def owned_logs(self, *, everything: bool) -> list[str]:
        """The logs to delete with the session: its own ones nobody else reads (``everything``: all of them)."""
        keys = [s.key for s in self.base if everything or (s.mine and not s.shared)]
        if everything or not self.shared:
            keys.append(self.own)
        return keys

    def logs(self) -> list[str]:
        """Every log this chain reads."""
        return [s.key for s in self.base] + [self.own]


def fresh_key(key: str) -> str:
    """A new own log next to ``key`` (same hash tag), for a session whose old one is closed."""
    return f"{key}:{secrets.token_hex(6)}"


class ChainReader:
    """Reads a :class:`LogChain` as if it were one log (the ``log_read`` of :class:`~sessionware.store.LogStore`).

    One store read per segment the window touches, so the cost follows the
    window and the number of forks or rewinds, never the length of the history.
    """

    __slots__ = ("chain", "store")

    def __init__(self, store: LogStore, chain: LogChain) -> None:
        self.store = store
        self.chain = chain

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        chain = self.chain
        own = Segment(chain.own, chain.offset, chain.floor, 2**62)
        found: list[LogEntry] = []
        for seg in [own, *reversed(chain.base)]:
            if last is not None and len(found) >= last:
                break
            lo = seg.lo if after is None else max(seg.lo, after)
            hi = seg.upto + 1 if before is None else min(seg.upto + 1, before)
            if after is not None and after >= seg.upto:
                break
            if hi - 1 <= lo:
                continue
            stored_after = lo - seg.offset
            stored_before = None if seg is own and before is None else hi - seg.offset
            entries = await self.store.log_read(
                seg.key,
                after=stored_after if stored_after > 0 else None,
                before=stored_before,
                last=None if last is None else last - len(found),
            )
            found[:0] = [LogEntry(e.seq + seg.offset, e.value) for e in entries]
        return found


def shifted(entries: Sequence[LogEntry], offset: int) -> list[LogEntry]:
    """``entries`` of an own log with the numbers a reader sees."""
    return [LogEntry(e.seq + offset, e.value) for e in entries]


__all__ = ["ChainReader", "LogChain", "Segment", "fresh_key", "shifted"]
