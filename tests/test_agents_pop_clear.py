"""SessionManager.pop_message and clear_history on every backend: counts, expiry, numbering, owners, concurrency."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sessionware import BaseSessionStore, SessionManager
from sessionware.agents import MissingCapabilityError, SessionNotFoundError
from sessionware.store import ExpiringStore, LogEditStore

from .helpers import Calls
from .test_agents_lifecycle import twin
from .test_agents_models import LogsWithoutTtl

TTL = 60.0


async def record_expiry(manager: SessionManager, session_id: str) -> float | None:
    store = manager.store
    assert isinstance(store, ExpiringStore)
    return await store.expires_in(manager.keys.record(session_id))


async def test_pop_on_an_empty_history_writes_nothing(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=TTL)
    session = await manager.create_session("ada")
    assert await manager.pop_message(session.id) is None
    after = await manager.get_session(session.id)
    assert after is not None
    assert after.version == session.version
    assert after.updated_at == session.updated_at
    assert after.message_count == 0


async def test_pop_returns_the_newest_and_updates_the_record(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=TTL)
    session = await manager.create_session("ada", metadata={"k": 1})
    added = await manager.add_messages(
        session.id, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    )
    before = await manager.get_session(session.id)
    assert before is not None
    await asyncio.sleep(0.01)
    popped = await manager.pop_message(session.id)
    assert popped is not None
    assert (popped.seq, popped.role, popped.content) == (added[1].seq, "assistant", "hello")
    assert popped.created_at == added[1].created_at
    after = await manager.get_session(session.id)
    assert after is not None
    assert after.message_count == 1 == len(after.conversation_history)
    assert [m.content for m in after.conversation_history] == ["hi"]
    assert after.version == before.version + 1
    assert after.updated_at > before.updated_at
    assert after.expires_at is not None
    assert before.expires_at is not None
    assert after.expires_at > before.expires_at
    assert after.metadata == {"k": 1}
    left = await record_expiry(manager, session.id)
    assert left is not None
    assert TTL - 5 < left <= TTL


async def test_pop_then_append_never_reuses_a_seq(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    first = await manager.add_message(session.id, "user", "one")
    second = await manager.add_message(session.id, "assistant", "two")
    popped = await manager.pop_message(session.id)
    assert popped is not None
    assert popped.seq == second.seq
    third = await manager.add_message(session.id, "assistant", "two, again")
    assert third.seq > second.seq
    history = await manager.history(session.id)
    assert [(m.seq, m.content) for m in history] == [(first.seq, "one"), (third.seq, "two, again")]
    # A reader that saw up to the popped message still finds the new one after its cursor.
    assert [m.content for m in await manager.history(session.id, before=third.seq)] == ["one"]
    assert [m.content for m in await manager.history(session.id, last=1)] == ["two, again"]
    got = await manager.get_session(session.id, history=1)
    assert got is not None
    assert got.message_count == 2
    assert [m.content for m in got.conversation_history] == ["two, again"]
    assert await manager.pop_message(session.id) is not None
    assert await manager.pop_message(session.id) is not None
    assert await manager.pop_message(session.id) is None
    empty = await manager.get_session(session.id)
    assert empty is not None
    assert empty.message_count == 0
    assert empty.conversation_history == []


async def test_concurrent_pops_and_appends_lose_nothing(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    await manager.add_messages(session.id, [{"role": "user", "content": f"old {i}"} for i in range(20)])
    popped: list[int] = []
    appended: list[int] = []

    async def pops(times: int) -> None:
        for _ in range(times):
            message = await manager.pop_message(session.id)
            if message is not None:
                popped.append(message.seq)
            await asyncio.sleep(0)

    async def appends(task: int) -> None:
        for i in range(15):
            appended.append((await manager.add_message(session.id, "user", f"{task}:{i}")).seq)
            await asyncio.sleep(0)

    await asyncio.gather(pops(20), appends(0), pops(20), appends(1))
    assert len(popped) == len(set(popped))
    assert len(appended) == len(set(appended)) == 30
    left = [m.seq for m in await manager.history(session.id)]
    assert sorted(left + popped) == sorted(list(range(1, 21)) + appended)
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.message_count == len(left) == 50 - len(popped)


async def test_clear_keeps_the_session_and_numbering(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=TTL)
    session = await manager.create_session("ada", metadata={"topic": "x"})
    await manager.add_messages(session.id, [{"role": "user", "content": str(i)} for i in range(5)])
    await manager.track_tool_invocation(session.id, "search", arguments={"q": "a"})
    last = await manager.add_message(session.id, "assistant", "done")
    before = await manager.get_session(session.id)
    assert before is not None
    await asyncio.sleep(0.01)
    cleared = await manager.clear_history(session.id)
    assert (cleared.id, cleared.user_id, cleared.created_at) == (session.id, "ada", session.created_at)
    assert cleared.metadata == {"topic": "x"}
    assert cleared.message_count == 0
    assert cleared.tool_invocation_count == 0
    assert cleared.version == before.version + 1
    assert cleared.updated_at > before.updated_at
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.conversation_history == []
    assert got.tool_invocations == []
    assert (got.message_count, got.tool_invocation_count, got.version) == (0, 0, cleared.version)
    assert await manager.history(session.id) == []
    assert await manager.pop_message(session.id) is None
    left = await record_expiry(manager, session.id)
    assert left is not None
    assert TTL - 5 < left <= TTL
    again = await manager.add_message(session.id, "user", "fresh start")
    assert again.seq > last.seq
    tool = await manager.track_tool_invocation(session.id, "search")
    assert tool.seq > 1
    got = await manager.get_session(session.id)
    assert got is not None
    assert (got.message_count, got.tool_invocation_count) == (1, 1)
    assert [m.content for m in got.conversation_history] == ["fresh start"]
    assert [m.content for m in await manager.history(session.id, before=again.seq)] == []
    assert (await manager.clear_history(session.id)).message_count == 0
    assert (await manager.clear_history(session.id)).message_count == 0  # clearing an empty history


async def test_counts_keep_trimmed_messages(store: BaseSessionStore) -> None:
    manager = SessionManager(store, max_messages=3)
    session = await manager.create_session("ada")
    await manager.add_messages(session.id, [{"role": "user", "content": str(i)} for i in range(5)])
    assert await manager.pop_message(session.id) is not None
    await manager.add_message(session.id, "user", "5")
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.message_count == 5  # five appended and kept or trimmed, one popped
    assert [m.content for m in got.conversation_history] == ["2", "3", "5"]


async def test_the_logs_outlive_a_cleared_session_only_as_its_ttl_says(store: BaseSessionStore) -> None:
    ttl = 0.3
    manager = SessionManager(store, ttl=ttl)
    session = await manager.create_session("ada")
    await manager.add_message(session.id, "user", "hi")
    await manager.clear_history(session.id)
    await manager.add_message(session.id, "user", "again")
    deadline = time.monotonic() + 3 * ttl
    while time.monotonic() < deadline:  # every write slides the session, a cleared one too
        await asyncio.sleep(ttl / 6)
        await manager.pop_message(session.id)
        await manager.add_message(session.id, "user", "still here")
    assert await manager.get_session(session.id) is not None
    await asyncio.sleep(3 * ttl)
    assert await manager.get_session(session.id) is None


async def test_other_users_cannot_pop_or_clear(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("bob")
    await manager.add_message(session.id, "user", "bob's secret")
    alice = manager.for_user("alice")
    with pytest.raises(SessionNotFoundError) as info:
        await alice.pop_message(session.id)
    assert "bob" not in str(info.value)
    with pytest.raises(SessionNotFoundError):
        await alice.clear_history(session.id)
    with pytest.raises(SessionNotFoundError):
        await manager.pop_message(session.id, user_id="alice")
    with pytest.raises(SessionNotFoundError):
        await manager.clear_history(session.id, user_id="alice")
    got = await manager.get_session(session.id)
    assert got is not None
    assert [m.content for m in got.conversation_history] == ["bob's secret"]
    assert got.version == 2
    bob = manager.for_user("bob")
    popped = await bob.pop_message(session.id)
    assert popped is not None
    assert popped.content == "bob's secret"
    assert (await bob.clear_history(session.id)).message_count == 0
    with pytest.raises(SessionNotFoundError):
        await manager.pop_message("missing-session-0123456789ab")


async def test_a_store_without_log_edits_is_named() -> None:
    store = LogsWithoutTtl()
    assert not isinstance(store, LogEditStore)
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    with pytest.raises(MissingCapabilityError, match="LogEditStore"):
        await manager.pop_message(session.id)
    with pytest.raises(MissingCapabilityError, match="LogEditStore"):
        await manager.clear_history(session.id)


async def test_pops_from_two_processes_never_return_one_message_twice(store: BaseSessionStore, tmp_path: Path) -> None:
    other = twin(store, tmp_path)
    managers = [SessionManager(s, isolation="distributed") for s in (store, other)]
    try:
        session = await managers[0].create_session("ada")
        await managers[0].add_messages(session.id, [{"role": "user", "content": str(i)} for i in range(30)])
        popped: list[int] = []

        async def pops(manager: SessionManager) -> None:
            while (message := await manager.pop_message(session.id)) is not None:
                popped.append(message.seq)

        await asyncio.gather(pops(managers[0]), pops(managers[1]), pops(managers[1]))
        assert sorted(popped) == list(range(1, 31))
        got = await managers[1].get_session(session.id)
        assert got is not None
        assert got.message_count == 0
        assert got.version == session.version + 31  # the append, then each pop
    finally:
        if other is not store:
            await other.close()


class LogCalls(Calls):
    NAMES = (*Calls.NAMES, "log_append", "log_read", "log_pop", "log_clear", "log_delete")


async def test_round_trips_of_pop_and_clear(store: BaseSessionStore) -> None:
    calls = LogCalls(store)  # before the manager, which takes the store's methods when it is made
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    await manager.add_messages(session.id, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    calls.take()
    await manager.pop_message(session.id)
    assert calls.take() == {"get_raw": 1, "log_pop": 1, "set_raw": 1}  # load, pop, save
    await manager.clear_history(session.id)
    assert calls.take() == {"get_raw": 1, "log_clear": 2, "set_raw": 1}  # load, both logs, save
    assert await manager.pop_message(session.id) is None
    assert calls.take() == {"get_raw": 1, "log_pop": 1}  # nothing to save
