"""Session ids for the ids of agent frameworks, which may be any string."""

from __future__ import annotations

import base64
import hashlib
import re

from ..errors import InvalidValueError

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


def session_id_for(conversation_id: str) -> str:
    """The session id of an application's conversation id: the id itself when it has a session id's shape,
    else a digest of it (so any string can name a conversation)."""
    if not isinstance(conversation_id, str) or not conversation_id:
        raise InvalidValueError("conversation_id", f"must be a non-empty str, not {conversation_id!r:.60}")
    if _SESSION_ID.fullmatch(conversation_id):
        return conversation_id
    digest = hashlib.sha256(conversation_id.encode("utf-8", "surrogatepass")).digest()
    return "c" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


__all__ = ["session_id_for"]
