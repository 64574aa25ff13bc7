"""Which logs a store's agent sessions own, found from their records (logs cannot be listed on every backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import InvalidValueError, SessionwareError
from ..store import ScannableStore, SessionStore
from .keyspace import AgentKeys
from .records import SessionRecord


def session_log_keys(keys: AgentKeys, key: str, session_id: str, value: object) -> list[str]:
    """Every log the agent session stored at ``key`` reads: its own, and those it shares with the sessions it
    was forked from (the default history and tool logs if ``value`` is not a readable record)."""
    history, tools = keys.history(session_id), keys.tools(session_id)
    if isinstance(value, dict):
        try:
            return SessionRecord.from_json(key, value).log_keys(history, tools)
        except SessionwareError:
            pass
    return [history, tools]


async def agent_log_keys(store: SessionStore, *, namespace: str = "agent", prefix: str = "") -> AsyncIterator[str]:
    """Yield, once each, the keys of every log of the agent sessions of ``namespace`` in ``store`` whose record
    key starts with ``prefix``: what :func:`~sessionware.encryption.rotate_keys` takes as ``logs``.

    Each session record is read through ``store`` (an
    :class:`~sessionware.encryption.EncryptedStore` opens it), so a session
    created meanwhile may be missed: its logs are sealed by their writer.
    """
    if not isinstance(store, ScannableStore):
        raise InvalidValueError("store", f"{type(store).__name__} cannot list its keys")
    keys = AgentKeys(namespace)
    records = keys.records_prefix
    if prefix.startswith(records):
        scan = prefix
    elif records.startswith(prefix):
        scan = records
    else:
        return
    seen: set[str] = set()
    async for key in store.scan(scan):
        session_id = keys.session_id_of(key)
        if session_id is None:
            continue
        value = await store.get(key)
        if value is None:
            continue  # deleted meanwhile
        for log_key in session_log_keys(keys, key, session_id, value):
            if log_key not in seen:
                seen.add(log_key)
                yield log_key


__all__ = ["agent_log_keys", "session_log_keys"]
