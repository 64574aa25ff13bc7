"""History windows: the newest N messages, or as many as fit a token budget, read from the end of the log.

A window keeps tool calls and their results together: tool results at its
start whose call fell outside it are left out, and a window that ends before
the newest message (``before=``) leaves out a trailing call whose results come
after it. So a window holds at most the messages asked for, and paging back
with ``before=window[0].seq`` misses nothing: what one page leaves out at its
start, the next one holds whole. The newest call of the whole history may
still wait for its result; the exports decide what to do with a call that
never got one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import InvalidValueError
from ..frozen import thaw
from ..store import LogEntry
from .models import Message
from .records import message_from_entry

TokenCounter = Callable[[Message], int]


class LogReader(Protocol):
    """What a window is read from: a :class:`~sessionware.store.LogStore`, or the logs of a fork composed."""

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]: ...


_FIRST_CHUNK = 64
_MAX_CHUNK = 1024


def approx_tokens(message: Message) -> int:
    """A rough token count (about 4 characters per token plus a per-message overhead).

    Pass a real tokenizer as ``count_tokens`` when the budget must be exact.
    """
    chars = len(message.text)
    for call in message.tool_calls:
        chars += len(call.name) + len(json.dumps(thaw(call.arguments)))
    return 4 + (chars + 3) // 4


def drop_orphans(messages: Sequence[Message]) -> list[Message]:
    """``messages`` without the tool results at its start (their calling message is not in it)."""
    start = 0
    while start < len(messages) and messages[start].role == "tool":
        start += 1
    return list(messages[start:])


def _unanswered_tail(messages: list[Message]) -> int:
    """Where a trailing run of messages starts whose last calls are not all answered inside ``messages``."""
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    for index in range(len(messages) - 1, -1, -1):
        calls = messages[index].tool_calls
        if calls:
            return index if any(call.id not in answered for call in calls) else len(messages)
    return len(messages)


def check_window(value: object, name: str) -> int | None:
    """Validate a ``last`` / ``before`` / ``max_tokens`` argument: ``None`` or an int >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(name, f"must be a non-negative int or None, not {value!r:.60}")
    return value


def window_of(key: str, entries: Sequence[LogEntry], *, before: int | None) -> list[Message]:
    """The messages of the entries read for a window (``last`` / ``before``), calls kept with their results."""
    window = drop_orphans([message_from_entry(key, e) for e in entries])
    return window if before is None else window[: _unanswered_tail(window)]


async def read_window(
    store: LogReader,
    key: str,
    *,
    last: int | None = None,
    before: int | None = None,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
) -> list[Message]:
    """Read a window of the history log ``key``, oldest first.

    ``before`` excludes messages with ``seq >= before``; ``last`` keeps the
    newest N; ``max_tokens`` keeps the newest run of messages whose counted
    tokens fit the budget. Only what the window needs is read, so the cost
    follows the window, not the length of the history.
    """
    if max_tokens is None:
        if last == 0:
            return []
        return window_of(key, await store.log_read(key, before=before, last=last), before=before)
    counter = count_tokens or approx_tokens
    newest_first: list[Message] = []
    total = 0
    upper = before
    chunk = _FIRST_CHUNK
    while True:
        want = chunk if last is None else min(chunk, last - len(newest_first))
        if want <= 0:
            break
        entries = await store.log_read(key, before=upper, last=want)
        full = False
        for entry in reversed(entries):
            message = message_from_entry(key, entry)
            cost = counter(message)
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                raise InvalidValueError("count_tokens", f"must return a non-negative int, returned {cost!r:.60}")
            if total + cost > max_tokens:
                full = True
                break
            total += cost
            newest_first.append(message)
        if full or len(entries) < want:
            break
        upper = entries[0].seq
        chunk = min(chunk * 2, _MAX_CHUNK)
    newest_first.reverse()
    window = drop_orphans(newest_first)
    return window if before is None else window[: _unanswered_tail(window)]


__all__ = ["LogReader", "TokenCounter", "approx_tokens", "check_window", "drop_orphans", "read_window"]
