"""Errors of the agent-conversation surface, all under :class:`sessionware.errors.SessionwareError`."""

from __future__ import annotations

from ..errors import SessionwareError


class SessionNotFoundError(SessionwareError, LookupError):
    """The session does not exist, has expired, or belongs to someone else.

    The three cases are deliberately indistinguishable, so that a caller can
    never learn whether an id it does not own exists.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id!r} does not exist or is not accessible to this caller")


class InvalidSessionIdError(SessionwareError, ValueError):
    """A session id is not of the form sessionware generates; the store was not touched."""

    def __init__(self, value: object) -> None:
        shown = repr(value)[:60] if isinstance(value, str) else f"a {type(value).__name__}"
        super().__init__(
            f"invalid session id {shown}: expected a URL-safe token of 22 to 64 characters "
            "from A-Z, a-z, 0-9, '-' and '_'"
        )


class InvalidCursorError(SessionwareError, ValueError):
    """A ``list_sessions`` cursor was not produced by ``list_sessions``."""

    def __init__(self, value: object) -> None:
        shown = repr(value)[:60] if isinstance(value, str) else f"a {type(value).__name__}"
        super().__init__(f"invalid list_sessions cursor {shown}: pass back a SessionPage.next_cursor")


class MissingCapabilityError(SessionwareError, TypeError):
    """The store lacks a capability the SessionManager needs (e.g. append-only logs)."""

    def __init__(self, store: object, capability: str, needed_for: str) -> None:
        self.capability = capability
        super().__init__(
            f"{type(store).__name__} does not implement {capability}, which SessionManager needs for {needed_for}"
        )


__all__ = ["InvalidCursorError", "InvalidSessionIdError", "MissingCapabilityError", "SessionNotFoundError"]
