"""SessionManager lifecycle on every backend: chosen ids (one creator wins), expected versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sessionware import BaseSessionStore, ConflictError, InvalidSessionIdError, SessionManager

from .conftest import POSTGRES_URL, REDIS_URL


def twin(store: BaseSessionStore, tmp_path: Path) -> BaseSessionStore:
    """A second store instance (its own connections) on the same data, like another process would open."""
    from sessionware import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore

    if isinstance(store, SQLiteSessionStore):
        return SQLiteSessionStore(store.path)
    if isinstance(store, RedisSessionStore):
        return RedisSessionStore.from_url(REDIS_URL, prefix=store.prefix)
    if isinstance(store, PostgresSessionStore):
        return PostgresSessionStore.from_url(POSTGRES_URL, table=store.table)
    return store


CHOSEN = "conversation-0001-from-my-app"


async def test_create_under_a_chosen_id(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    created = await manager.create_session("ada", session_id=CHOSEN, metadata={"k": 1})
    assert created.id == CHOSEN
    got = await manager.get_session(CHOSEN, user_id="ada")
    assert got is not None
    assert got.metadata == {"k": 1}
    with pytest.raises(ConflictError, match=CHOSEN):
        await manager.create_session("bob", session_id=CHOSEN)
    again = await manager.get_session(CHOSEN)
    assert again is not None
    assert again.user_id == "ada"
    assert [s.id for s in (await manager.list_sessions("bob")).sessions] == []


@pytest.mark.parametrize("bad", ["short", "has space in it 0123456789", "x" * 65, 42])
async def test_chosen_id_is_validated(store: BaseSessionStore, bad: object) -> None:
    manager = SessionManager(store)
    with pytest.raises(InvalidSessionIdError):
        await manager.create_session("ada", session_id=bad)  # type: ignore[arg-type]


async def test_concurrent_creators_exactly_one_wins(store: BaseSessionStore, tmp_path: Path) -> None:
    others = [twin(store, tmp_path) for _ in range(3)]
    managers = [SessionManager(s) for s in [store, *others]]
    try:
        for round_ in range(5):
            session_id = f"race-{round_}-0123456789abcdefghij"
            outcomes = await asyncio.gather(
                *(m.create_session(f"user{i}", session_id=session_id) for i, m in enumerate(managers)),
                return_exceptions=True,
            )
            winners = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(winners) == 1, outcomes
            assert all(isinstance(o, ConflictError) for o in outcomes if isinstance(o, BaseException))
            stored = await managers[0].get_session(session_id)
            assert stored is not None
            assert stored.user_id == winners[0].user_id
    finally:
        for other in others:
            if other is not store:
                await other.close()


async def test_expected_version(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    updated = await manager.update_session(session.id, metadata={"a": 1}, expected_version=session.version)
    with pytest.raises(ConflictError):
        await manager.update_session(session.id, metadata={"b": 2}, expected_version=session.version)
    with pytest.raises(ConflictError):
        await manager.edit_metadata(session.id, lambda m: m.update(c=3), expected_version=session.version)
    edited = await manager.edit_metadata(session.id, lambda m: m.update(c=3), expected_version=updated.version)
    assert edited.metadata == {"a": 1, "c": 3}
    await manager.add_message(edited.id, "user", "hi")
    with pytest.raises(ConflictError):
        await manager.update_session(session.id, metadata={"d": 4}, expected_version=edited.version)
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.metadata == {"a": 1, "c": 3}
