"""SessionManager with isolation="distributed": record changes go through store leases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionware import BaseSessionStore, SessionManager, SessionNotFoundError
from sessionware.agents import MissingCapabilityError

from .helpers import SeedStyleStore


async def test_concurrent_metadata_edits_and_messages_are_all_kept(store: BaseSessionStore) -> None:
    manager = SessionManager(store, isolation="distributed", lease=5)
    s = await manager.create_session("u1", metadata={"n": 0})

    def bump(meta: dict[str, Any]) -> None:
        meta["n"] += 1

    await asyncio.gather(
        *(manager.edit_metadata(s.id, bump, user_id="u1") for _ in range(20)),
        *(manager.add_message(s.id, "user", f"m{i}", user_id="u1") for i in range(20)),
    )
    got = await manager.get_session(s.id, user_id="u1", history="all")
    assert got is not None
    assert got.metadata["n"] == 20
    assert got.message_count == 20
    assert [m.seq for m in got.conversation_history] == list(range(1, 21))
    await manager.delete_session(s.id, user_id="u1")
    assert await manager.get_session(s.id) is None
    with pytest.raises(SessionNotFoundError):
        await manager.add_message(s.id, "user", "gone")


async def test_foreign_session_under_distributed_isolation_looks_missing(store: BaseSessionStore) -> None:
    manager = SessionManager(store, isolation="distributed", lease=5)
    s = await manager.create_session("owner")
    with pytest.raises(SessionNotFoundError) as info:
        await manager.update_session(s.id, metadata={"x": 1}, user_id="intruder")
    assert "owner" not in str(info.value)
    again = await manager.update_session(s.id, metadata={"x": 1}, user_id="owner")
    assert dict(again.metadata) == {"x": 1}


def test_distributed_needs_leases() -> None:
    class LogOnly(SeedStyleStore):
        async def log_append(self, *a: Any, **k: Any) -> list[int]:
            return []

        async def log_read(self, *a: Any, **k: Any) -> list[Any]:
            return []

        async def log_length(self, key: str) -> int:
            return 0

        async def log_last_seq(self, key: str) -> int:
            return 0

        async def log_delete(self, key: str) -> None:
            return None

    with pytest.raises(MissingCapabilityError, match="LockingStore"):
        SessionManager(LogOnly(), isolation="distributed")
