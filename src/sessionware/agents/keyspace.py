"""Where the SessionManager keeps things in a store, and validation of ids that become keys."""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

from ..errors import InvalidValueError
from .errors import InvalidCursorError, InvalidSessionIdError

SESSION_ID_BYTES = 24
"""Random bytes in a new session id (192 bits), encoded as 32 URL-safe characters."""

MAX_USER_ID_LENGTH = 256
_MAX_ENCODED_USER_ID = 768

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CURSOR = re.compile(r"[0-9a-f]{16}:[A-Za-z0-9_-]{22,64}")


def new_session_id() -> str:
    """A fresh, unguessable session id; never starting with ``-``, so command lines never take it for an option."""
    while True:
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        if not session_id.startswith("-"):
            return session_id


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it has the shape of a sessionware id, else raise :class:`InvalidSessionIdError`."""
    if type(session_id) is not str or _SESSION_ID.fullmatch(session_id) is None:
        raise InvalidSessionIdError(session_id)
    return session_id


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` if it can be stored and indexed, else raise :class:`InvalidValueError`."""
    if type(user_id) is not str:
        raise InvalidValueError("user_id", f"must be a str, not {type(user_id).__name__}")
    if not user_id:
        raise InvalidValueError("user_id", "must not be empty")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidValueError("user_id", f"is {len(user_id)} characters, over the limit of {MAX_USER_ID_LENGTH}")
    try:
        encoded = escape_user_id(user_id)
    except UnicodeEncodeError as exc:
        raise InvalidValueError("user_id", f"is not valid unicode: {exc.reason}") from exc
    if len(encoded) > _MAX_ENCODED_USER_ID:
        raise InvalidValueError("user_id", f"is {len(encoded)} characters once escaped, over {_MAX_ENCODED_USER_ID}")
    return user_id


def escape_user_id(user_id: str) -> str:
    """Percent-encode every character but ``A-Z a-z 0-9 - . _ ~``, so ``:`` (the key separator) never appears."""
    return quote(user_id, safe="", encoding="utf-8", errors="strict")


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is 1-64 characters of ``A-Z a-z 0-9 _ . -``."""
    if type(namespace) is not str or _NAMESPACE.fullmatch(namespace) is None:
        raise InvalidValueError(
            "namespace", f"must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-', not {namespace!r:.60}"
        )
    return namespace


def check_cursor(cursor: object) -> str:
    """Return ``cursor`` if it has the shape ``list_sessions`` produces."""
    if type(cursor) is not str or _CURSOR.fullmatch(cursor) is None:
        raise InvalidCursorError(cursor)
    return cursor


def activity_score(at: float) -> float:
    """A time as an activity index score: whole microseconds (exact in a float, and in a cursor)."""
    return float(round(at * 1_000_000))


def activity_cursor(score: float, session_id: str) -> str:
    """The ``list_sessions`` cursor of a position in the activity index (the shape of an index entry)."""
    return f"{int(score):016x}:{session_id}"


def cursor_position(cursor: str) -> tuple[float, str]:
    """The ``(score, member)`` position of a checked cursor."""
    score, _, session_id = cursor.partition(":")
    return float(int(score, 16)), session_id


def index_entry(created_at: float, session_id: str) -> str:
    """The per-user index suffix of a session: creation time (µs, fixed-width hex) then id, so names sort by age."""
    return f"{round(created_at * 1_000_000):016x}:{session_id}"


class AgentKeys:
    """Key layout of one namespace (since 0.2; ``sessionware migrate`` moves sessions stored by 0.1).

    - ``{ns}:s:{{session_id}}``: the session record (metadata, counters, expiry)
    - log ``{ns}:h:{{session_id}}``: the message history
    - log ``{ns}:t:{{session_id}}``: the tool invocations
    - ``{ns}:u:{escaped user_id}:{created µs hex}:{{session_id}}``: the per-user index entries (one record
      each: which sessions a user has)
    - index ``{ns}:a:{escaped user_id}``: the user's sessions by last activity (on stores with sorted
      indexes; rebuilt from the entries when it lacks its ``!built`` member)

    Every key of one session carries the session id in braces: on Redis
    Cluster that is the hash tag, so all of them share one slot and a script
    may touch several. The user id is percent-encoded, so one user's index
    prefix can never be a prefix of another user's keys.
    """

    __slots__ = ("namespace",)

    def __init__(self, namespace: str) -> None:
        self.namespace = check_namespace(namespace)

    def record(self, session_id: str) -> str:
        """Key of the session record."""
        return f"{self.namespace}:s:{{{session_id}}}"

    def history(self, session_id: str) -> str:
        """Log key of the message history."""
        return f"{self.namespace}:h:{{{session_id}}}"

    def tools(self, session_id: str) -> str:
        """Log key of the tool invocations."""
        return f"{self.namespace}:t:{{{session_id}}}"

    @property
    def records_prefix(self) -> str:
        """Literal scan prefix of every session record of the namespace."""
        return f"{self.namespace}:s:"

    def session_id_of(self, key: str) -> str | None:
        """The session id of a record key of this layout, or ``None`` if ``key`` is not one."""
        head = self.records_prefix + "{"
        if not (key.startswith(head) and key.endswith("}")):
            return None
        session_id = key[len(head) : -1]
        return session_id if _SESSION_ID.fullmatch(session_id) else None

    def user_prefix(self, user_id: str) -> str:
        """Literal scan prefix of one user's index entries."""
        return f"{self.namespace}:u:{escape_user_id(user_id)}:"

    def user_index(self, user_id: str, entry: str) -> str:
        """Key of one index entry (``entry`` from :func:`index_entry`: ``"<created hex>:<session id>"``)."""
        created, _, session_id = entry.partition(":")
        return f"{self.user_prefix(user_id)}{created}:{{{session_id}}}"

    def activity(self, user_id: str) -> str:
        """Key of the sorted index of ``user_id``'s sessions by last activity."""
        return f"{self.namespace}:a:{escape_user_id(user_id)}"

    def activity_of_entry(self, key: str) -> str | None:
        """The activity index of the user an index entry key belongs to, or ``None`` for another key."""
        head = f"{self.namespace}:u:"
        if not key.startswith(head):
            return None
        escaped, sep, _ = key[len(head) :].partition(":")
        return f"{self.namespace}:a:{escaped}" if sep and escaped else None

    @staticmethod
    def entry_of(suffix: str) -> str | None:
        """The index entry (``"<created hex>:<session id>"``) of what follows a user prefix, or ``None``."""
        created, sep, tagged = suffix.partition(":")
        if not sep or not (tagged.startswith("{") and tagged.endswith("}")):
            return None
        entry = f"{created}:{tagged[1:-1]}"
        return entry if _CURSOR.fullmatch(entry) else None


__all__ = [
    "MAX_USER_ID_LENGTH",
    "SESSION_ID_BYTES",
    "AgentKeys",
    "check_cursor",
    "check_namespace",
    "check_session_id",
    "check_user_id",
    "escape_user_id",
    "activity_cursor",
    "activity_score",
    "cursor_position",
    "index_entry",
    "new_session_id",
]
