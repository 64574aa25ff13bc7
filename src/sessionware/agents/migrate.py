"""Moving agent sessions stored by sessionware 0.1 to the key layout of 0.2 (``sessionware migrate``).

0.2 puts every key of one session under the session id in braces (see
:class:`~sessionware.agents.keyspace.AgentKeys`), so that on Redis Cluster
they share one hash slot. Bot sessions (``session()``) are stored exactly as
before and need nothing. The migration is idempotent and safe to stop and
run again: a session is written under the new keys first (logs, then the
index entry, the record last), and its old keys are removed only after that.
Run it while no 0.1 process writes to the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import SessionDecodeError
from ..isolation import LocalIsolation
from ..logs import LogRestore, iter_log
from ..store import LogStore, ScannableStore, SessionStore
from .errors import MissingCapabilityError
from .keyspace import AgentKeys, check_session_id
from .records import SessionRecord


@dataclass(frozen=True, slots=True)
class LegacyKeys:
    """The 0.1 key layout: ``{ns}:s:{id}``, logs ``{ns}:h:{id}`` / ``{ns}:t:{id}``, ``{ns}:u:{user}:{entry}``."""

    keys: AgentKeys

    def record(self, session_id: str) -> str:
        """The 0.1 record key."""
        return f"{self.keys.namespace}:s:{session_id}"

    def history(self, session_id: str) -> str:
        """The 0.1 history log key."""
        return f"{self.keys.namespace}:h:{session_id}"

    def tools(self, session_id: str) -> str:
        """The 0.1 tool log key."""
        return f"{self.keys.namespace}:t:{session_id}"

    def user_index(self, user_id: str, entry: str) -> str:
        """The 0.1 index entry key."""
        return self.keys.user_prefix(user_id) + entry

    def session_id_of(self, key: str) -> str | None:
        """The session id of a 0.1 record key, or ``None``."""
        head = self.keys.records_prefix
        if not key.startswith(head):
            return None
        try:
            return check_session_id(key[len(head) :])
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What :func:`migrate_agent_sessions` did (or, with ``dry_run``, would do)."""

    sessions: int
    """Sessions moved to the new layout."""
    entries: int
    """History and tool-log entries copied."""
    expired: int
    """0.1 sessions found expired: their old keys were removed."""
    finished: int
    """Sessions already present under the new keys (an earlier, interrupted run): their old keys were removed."""


async def migrate_agent_sessions(
    store: SessionStore, *, namespace: str = "agent", dry_run: bool = False
) -> MigrationReport:
    """Move every 0.1 agent session of ``namespace`` in ``store`` to the 0.2 key layout."""
    if not isinstance(store, ScannableStore):
        raise MissingCapabilityError(store, "ScannableStore (scan)", "migrating sessions")
    if not isinstance(store, LogStore):
        raise MissingCapabilityError(store, "LogStore (log_append / log_read ...)", "migrating sessions")
    keys = AgentKeys(namespace)
    old = LegacyKeys(keys)
    updates = LocalIsolation(store)
    found = [(key, old.session_id_of(key)) async for key in store.scan(keys.records_prefix)]
    sessions = entries = expired = finished = 0
    for old_key, session_id in found:
        if session_id is None:
            continue
        data = await store.get(old_key)
        if data is None:
            continue
        record = SessionRecord.from_json(old_key, data)
        if record.id != session_id:
            raise SessionDecodeError(old_key, f"record names session {record.id!r}, not {session_id!r}")
        now = time.time()
        gone = record.expires_at is not None and record.expires_at <= now
        present = await updates.read(keys.record(session_id)) is not None
        if dry_run:
            expired += gone
            finished += present and not gone
            sessions += not (present or gone)
            continue
        if not (present or gone):
            for old_log, new_log, name in (
                (old.history(session_id), keys.history(session_id), "h"),
                (old.tools(session_id), keys.tools(session_id), "t"),
            ):
                restore = LogRestore(store, new_log)
                async for entry in iter_log(store, old_log):
                    await restore.add(entry.seq, entry.value)
                entries += await restore.finish(ttl=_left(record.until.get(name), now))
            index_ttl = _left(record.until.get("i"), now)
            await updates.put(keys.user_index(record.user_id, record.index), {"id": session_id}, ttl=index_ttl)
            async with updates.open(keys.record(session_id)) as update:
                await update.write(record.to_json(), ttl=_left(record.expires_at, now))
            sessions += 1
        else:
            expired += gone
            finished += present and not gone
        await store.delete(old_key)
        await store.log_delete(old.history(session_id))
        await store.log_delete(old.tools(session_id))
        await store.delete(old.user_index(record.user_id, record.index))
    return MigrationReport(sessions=sessions, entries=entries, expired=expired, finished=finished)


def _left(until: float | None, now: float) -> float | None:
    """Seconds from ``now`` until ``until`` (at least one), or ``None`` for no expiry."""
    return None if until is None else max(until - now, 1.0)


__all__ = ["LegacyKeys", "MigrationReport", "migrate_agent_sessions"]
