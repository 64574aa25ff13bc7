"""SessionManager on every backend against the real servers: records, logs, ownership, TTL, retention."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessionware import (
    BaseSessionStore,
    InvalidSessionIdError,
    InvalidValueError,
    LogStore,
    Message,
    PurgeableStore,
    ScannableStore,
    SessionDecodeError,
    SessionManager,
    SessionNotFoundError,
)
from sessionware.agents import InvalidCursorError, ToolCall
from sessionware.testing import Advance


@pytest.fixture
def manager(store: BaseSessionStore) -> SessionManager:
    return SessionManager(store)


async def keys_under(store: BaseSessionStore, prefix: str) -> list[str]:
    assert isinstance(store, ScannableStore)
    return [key async for key in store.scan(prefix)]


# -- sessions --------------------------------------------------------------------------------------


async def test_create_and_get_round_trip(manager: SessionManager) -> None:
    metadata = {"preferences": {"theme": "dark", "language": "en"}, "n": 2**60, "text": "nul \u0000 🦜"}
    created = await manager.create_session("user-123", metadata=metadata)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", created.id)
    assert created.user_id == "user-123"
    assert created.metadata == metadata
    assert created.conversation_history == ()
    assert created.tool_invocations == ()
    assert created.created_at.tzinfo is not None
    assert created.expires_at is None
    got = await manager.get_session(created.id)
    assert got == created
    assert await manager.get_session(created.id, user_id="user-123") == created


async def test_session_ids_are_random_and_distinct(manager: SessionManager) -> None:
    ids = {(await manager.create_session("u")).id for _ in range(100)}
    assert len(ids) == 100
    assert len({i[:8] for i in ids}) == 100


async def test_messages_get_store_assigned_gap_free_seqs(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    first = await manager.add_message(session.id, "system", "be brief")
    second = await manager.add_message(session.id, "user", "héllo \u0000 会话", name="ada")
    call = await manager.add_message(
        session.id, "assistant", None, tool_calls=[ToolCall(id="c1", name="lookup", arguments={"q": "x"})]
    )
    result = await manager.add_message(session.id, "tool", '{"hits": 3}', tool_call_id="c1")
    assert [m.seq for m in (first, second, call, result)] == [1, 2, 3, 4]
    history = await manager.history(session.id)
    assert history == [first, second, call, result]
    assert history[1].content == "héllo \u0000 会话"
    assert history[1].name == "ada"
    assert history[2].content is None
    assert history[2].tool_calls == (ToolCall(id="c1", name="lookup", arguments={"q": "x"}),)
    assert history[3].tool_call_id == "c1"
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.message_count == 4
    assert got.version == 5


async def test_add_messages_appends_a_batch_in_order(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    added = await manager.add_messages(
        session.id,
        [
            {"role": "user", "content": "what is 2+2?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c9", "type": "function", "function": {"name": "calc", "arguments": '{"e": "2+2"}'}}
                ],
            },
            {"role": "tool", "content": "4", "tool_call_id": "c9"},
            {"role": "assistant", "content": "4"},
        ],
    )
    assert [m.seq for m in added] == [1, 2, 3, 4]
    assert added[1].tool_calls[0].arguments == {"e": "2+2"}
    assert await manager.history(session.id) == added
    copied = await manager.add_messages(session.id, added[:1])
    assert copied[0].seq == 5
    assert copied[0].content == "what is 2+2?"


async def test_invalid_message_in_a_batch_stores_nothing(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "kept")
    bad_batches: list[list[Any]] = [
        [{"role": "user", "content": "ok"}, {"role": "wizard", "content": "no"}],
        [{"role": "user", "content": "ok"}, {"role": "tool", "content": "no id"}],
        [{"role": "user", "content": "ok"}, {"role": "user", "content": None}],
        [{"role": "user", "content": "ok", "extra": 1}],
        [{"role": "user", "content": "ok", "metadata": {"s": {1, 2}}}],
        [{"role": "user", "content": "ok", "metadata": {"f": float("nan")}}],
    ]
    for batch in bad_batches:
        with pytest.raises(InvalidValueError):
            await manager.add_messages(session.id, batch)
    with pytest.raises(InvalidValueError):
        await manager.add_message(session.id, "user", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await manager.add_message(session.id, "user", "x", tool_calls=[{"id": "c", "name": "f"}])
    for calls in ("c1", {"id": "c1", "name": "f"}, [{"id": "c1"}], [{"name": "f"}], [{"id": "c", "name": "f"}] * 2):
        with pytest.raises(InvalidValueError):
            await manager.add_message(session.id, "assistant", None, tool_calls=calls)
    with pytest.raises(InvalidValueError):
        await manager.add_message(
            session.id, "assistant", None, tool_calls=[{"id": "c", "name": "f", "arguments": "{broken"}]
        )
    assert [m.content for m in await manager.history(session.id)] == ["kept"]
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.message_count == 1


async def test_get_session_returns_the_whole_history_unless_asked_for_a_window(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    empty = await manager.get_session(session.id)
    assert empty is not None
    assert empty.conversation_history == []  # a frozen list equals a list, as the seed's array would
    assert empty.tool_invocations == []
    await manager.add_messages(session.id, [{"role": "user", "content": f"m{i}"} for i in range(1, 31)])
    for i in range(25):
        await manager.track_tool_invocation(session.id, "t", call_id=f"c{i}")
    default = await manager.get_session(session.id)
    assert default is not None
    assert [m.seq for m in default.conversation_history] == list(range(1, 31))  # the seed's getSession: all
    assert [t.seq for t in default.tool_invocations] == list(range(1, 26))
    assert default.message_count == 30
    assert default.tool_invocation_count == 25
    assert default.conversation_history == list(default.conversation_history)
    window = await manager.get_session(session.id, history=20, tool_invocations=20)
    assert window is not None
    assert [m.seq for m in window.conversation_history] == list(range(11, 31))
    assert [t.seq for t in window.tool_invocations] == list(range(6, 26))
    everything = await manager.get_session(session.id, history="all", tool_invocations="all")
    assert everything is not None
    assert everything.conversation_history == default.conversation_history
    bounded = SessionManager(manager.store, history_window=5)
    small = await bounded.get_session(session.id)
    assert small is not None
    assert [m.seq for m in small.conversation_history] == list(range(26, 31))
    none = await manager.get_session(session.id, history=0, tool_invocations=0)
    assert none is not None
    assert none.conversation_history == ()
    assert none.tool_invocations == []
    three = await manager.get_session(session.id, history=3)
    assert three is not None
    assert [m.content for m in three.conversation_history] == ["m28", "m29", "m30"]
    with pytest.raises(InvalidValueError):
        await manager.get_session(session.id, history=-1)


def _tool_conversation() -> list[dict[str, Any]]:
    """user, assistant calling a and b, result a, result b, assistant, user, assistant (seqs 1-7)."""
    return [
        {"role": "user", "content": "weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "a", "name": "weather", "arguments": {"city": "Oslo"}},
                {"id": "b", "name": "weather", "arguments": {"city": "Rome"}},
            ],
        },
        {"role": "tool", "content": "rain", "tool_call_id": "a"},
        {"role": "tool", "content": "sun", "tool_call_id": "b"},
        {"role": "assistant", "content": "Oslo rain, Rome sun"},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "you're welcome"},
    ]


async def test_history_windows_never_start_with_an_orphaned_tool_result(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_messages(session.id, _tool_conversation())
    seqs = [m.seq for m in await manager.history(session.id, last=4)]
    assert seqs == [5, 6, 7]
    assert [m.seq for m in await manager.history(session.id, last=5)] == [5, 6, 7]
    assert [m.seq for m in await manager.history(session.id, last=6)] == [2, 3, 4, 5, 6, 7]
    assert [m.seq for m in await manager.history(session.id, last=2, before=5)] == []
    assert [m.seq for m in await manager.history(session.id, last=3, before=5)] == [2, 3, 4]
    # Seq 2 calls a and b; their results (3, 4) come after the window, so the call is left out too.
    assert [m.seq for m in await manager.history(session.id, before=3)] == [1]
    assert [m.seq for m in await manager.history(session.id, before=4)] == [1]
    assert [m.seq for m in await manager.history(session.id, before=5)] == [1, 2, 3, 4]
    # Paging back from the first message of each window misses nothing.
    newest = await manager.history(session.id, last=4)
    older = await manager.history(session.id, before=newest[0].seq)
    assert [m.seq for m in older + newest] == [1, 2, 3, 4, 5, 6, 7]
    assert await manager.history(session.id, last=0) == []
    window = await manager.get_session(session.id, history=4)
    assert window is not None
    assert [m.seq for m in window.conversation_history] == [5, 6, 7]


async def test_history_token_budget(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_messages(session.id, _tool_conversation())

    def one_each(message: Message) -> int:
        return 1

    assert [m.seq for m in await manager.history(session.id, max_tokens=3, count_tokens=one_each)] == [5, 6, 7]
    assert [m.seq for m in await manager.history(session.id, max_tokens=4, count_tokens=one_each)] == [5, 6, 7]
    assert [m.seq for m in await manager.history(session.id, max_tokens=6, count_tokens=one_each)] == [
        2,
        3,
        4,
        5,
        6,
        7,
    ]
    assert [m.seq for m in await manager.history(session.id, max_tokens=100, count_tokens=one_each, last=2)] == [6, 7]
    assert [m.seq for m in await manager.history(session.id, max_tokens=2, before=3, count_tokens=one_each)] == [1]
    assert await manager.history(session.id, max_tokens=0) == []

    def by_length(message: Message) -> int:
        return len(message.content or "")

    budget = len("thanks") + len("you're welcome")
    assert [m.content for m in await manager.history(session.id, max_tokens=budget, count_tokens=by_length)] == [
        "thanks",
        "you're welcome",
    ]
    default_counted = await manager.history(session.id, max_tokens=10_000)
    assert [m.seq for m in default_counted] == list(range(1, 8))

    def broken(message: Message) -> int:
        return -1

    with pytest.raises(InvalidValueError):
        await manager.history(session.id, max_tokens=10, count_tokens=broken)


async def test_token_budget_walks_back_through_a_long_history(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_messages(session.id, [{"role": "user", "content": "x" * 40} for _ in range(300)])
    window = await manager.history(session.id, max_tokens=14 * 150, count_tokens=lambda m: 14)
    assert [m.seq for m in window] == list(range(151, 301))


async def test_track_tool_invocation(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    started = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    ok = await manager.track_tool_invocation(
        session.id,
        "get-user-preferences",
        call_id="call_1",
        arguments={"sessionId": session.id},
        result={"theme": "dark", "when": started},
        started_at=started,
        duration=0.25,
    )
    assert (ok.seq, ok.call_id, ok.tool_name, ok.status, ok.duration) == (
        1,
        "call_1",
        "get-user-preferences",
        "success",
        0.25,
    )
    assert ok.result == {"theme": "dark", "when": "2030-01-02T03:04:05.678000Z"}
    assert ok.started_at == started
    before = time.time()
    denied = await manager.track_tool_invocation(
        session.id,
        "delete-everything",
        status="denied",
        error={"code": "policy", "message": "not allowed"},
        duration=1.5,
    )
    assert denied.seq == 2
    assert denied.status == "denied"
    assert denied.result is None
    assert denied.error == {"code": "policy", "message": "not allowed"}
    assert denied.call_id.startswith("call_")
    assert denied.call_id != ok.call_id
    assert before - 1.5 - 1 <= denied.started_at.timestamp() <= before
    raw = await manager.track_tool_invocation(session.id, "t", arguments='{"not json', status="error")
    assert raw.arguments == '{"not json'
    assert await manager.tool_invocations(session.id) == [ok, denied, raw]
    assert await manager.tool_invocations(session.id, last=1) == [raw]
    assert await manager.tool_invocations(session.id, before=2) == [ok]
    for bad in (
        {"status": "maybe"},
        {"error": "boom"},
        {"duration": -1},
        {"duration": float("nan")},
        {"started_at": datetime(2030, 1, 1)},
        {"result": object()},
        {"result": {"x": float("inf")}},
        {"arguments": 5},
        {"call_id": ""},
    ):
        with pytest.raises(InvalidValueError):
            await manager.track_tool_invocation(session.id, "t", **bad)
    with pytest.raises(InvalidValueError):
        await manager.track_tool_invocation(session.id, "")
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.tool_invocation_count == 3
    assert len(got.tool_invocations) == 3


# -- ownership -------------------------------------------------------------------------------------


async def test_foreign_session_looks_exactly_like_a_missing_one(manager: SessionManager) -> None:
    owner = "owner-alice-7"
    session = await manager.create_session(owner, metadata={"secret": "s3cr3t"})
    await manager.add_message(session.id, "user", "private", user_id=owner)
    assert await manager.get_session(session.id, user_id="mallory") is None

    async def attempts(sid: str) -> list[str]:
        calls = [
            manager.add_message(sid, "user", "x", user_id="mallory"),
            manager.add_messages(sid, [{"role": "user", "content": "x"}], user_id="mallory"),
            manager.track_tool_invocation(sid, "t", user_id="mallory"),
            manager.update_session(sid, metadata={"secret": "pwned"}, user_id="mallory"),
            manager.edit_metadata(sid, lambda m: m.clear(), user_id="mallory"),
            manager.history(sid, last=5, user_id="mallory"),
            manager.tool_invocations(sid, user_id="mallory"),
            manager.delete_session(sid, user_id="mallory"),
        ]
        messages = []
        for call in calls:
            with pytest.raises(SessionNotFoundError) as info:
                await call
            assert type(info.value) is SessionNotFoundError
            messages.append(str(info.value))
        await manager.delete_session(sid, user_id="mallory", missing_ok=True)
        return messages

    foreign = await attempts(session.id)
    for message in foreign:
        assert owner not in message
        assert "s3cr3t" not in message
    kept = await manager.get_session(session.id, user_id=owner)
    assert kept is not None
    assert kept.metadata == {"secret": "s3cr3t"}
    assert kept.message_count == 1
    await manager.delete_session(session.id, user_id=owner)
    missing = await attempts(session.id)
    assert foreign == missing
    assert await manager.get_session(session.id, user_id="mallory") is None


async def test_user_id_is_checked(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    for bad in ("", 7, "x" * 257, "\ud800"):
        with pytest.raises(InvalidValueError):
            await manager.create_session(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            await manager.get_session(session.id, user_id=bad)  # type: ignore[arg-type]


async def test_garbage_session_ids_are_refused_before_the_store(
    manager: SessionManager, store: BaseSessionStore
) -> None:
    for bad in ("", "short", "../../etc/passwd", "a" * 65, "a:b" * 10, "x" * 21 + "*", 12345, None):
        with pytest.raises(InvalidSessionIdError):
            await manager.get_session(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidSessionIdError):
            await manager.add_message(bad, "user", "x")  # type: ignore[arg-type]
        with pytest.raises(InvalidSessionIdError):
            await manager.track_tool_invocation(bad, "t")  # type: ignore[arg-type]
        with pytest.raises(InvalidSessionIdError):
            await manager.delete_session(bad, missing_ok=True)  # type: ignore[arg-type]
    assert await keys_under(store, "agent:") == []


# -- metadata updates ------------------------------------------------------------------------------


async def test_update_session_merges_removes_and_replaces(manager: SessionManager) -> None:
    session = await manager.create_session("u", metadata={"a": 1, "b": {"c": 2}})
    updated = await manager.update_session(session.id, metadata={"b": {"d": 3}, "e": [1]}, remove=["a"])
    assert updated.metadata == {"b": {"d": 3}, "e": [1]}
    assert updated.version == 2
    assert updated.updated_at >= session.updated_at
    replaced = await manager.update_session(session.id, metadata={"only": True}, replace=True, user_id="u")
    assert replaced.metadata == {"only": True}
    again = await manager.update_session(session.id, metadata=replaced.metadata)
    assert again.metadata == {"only": True}
    with pytest.raises(InvalidValueError):
        await manager.update_session(session.id, metadata={"bad": {1, 2}})
    with pytest.raises(InvalidValueError):
        await manager.update_session(session.id, remove="only")
    with pytest.raises(TypeError):
        await manager.update_session(session.id, user_id="u", id="other")  # type: ignore[call-arg]
    owned = await manager.update_session(session.id, metadata={"user_id": "mallory", "id": "x"})
    assert owned.user_id == "u"
    assert owned.id == session.id
    got = await manager.get_session(session.id, user_id="u")
    assert got is not None
    assert got.metadata == {"only": True, "user_id": "mallory", "id": "x"}


async def test_concurrent_metadata_changes_are_all_kept(manager: SessionManager) -> None:
    session = await manager.create_session("u", metadata={"count": 0})

    def bump(metadata: dict[str, Any]) -> None:
        metadata["count"] += 1

    async def slow_bump(metadata: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {**metadata, "count": metadata["count"] + 1}

    await asyncio.gather(
        *(manager.edit_metadata(session.id, bump if i % 2 else slow_bump) for i in range(50)),
        *(manager.update_session(session.id, metadata={f"k{i}": i}) for i in range(20)),
    )
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.metadata == {"count": 50, **{f"k{i}": i for i in range(20)}}
    assert got.version == 71


async def test_failing_edit_writes_nothing(manager: SessionManager) -> None:
    session = await manager.create_session("u", metadata={"a": 1})

    def explode(metadata: dict[str, Any]) -> None:
        metadata["a"] = 2
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await manager.edit_metadata(session.id, explode)
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.metadata == {"a": 1}
    assert got.version == 1


# -- snapshots -------------------------------------------------------------------------------------


async def test_snapshots_cannot_be_changed_in_place(manager: SessionManager) -> None:
    session = await manager.create_session("u", metadata={"preferences": {"theme": "dark"}, "tags": ["a"]})
    await manager.add_message(session.id, "user", "hi")
    snap = await manager.get_session(session.id)
    assert snap is not None
    with pytest.raises(TypeError, match="read-only"):
        snap.metadata["preferences"] = {"theme": "light"}  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        snap.metadata["preferences"]["theme"] = "light"
    with pytest.raises(TypeError, match="read-only"):
        snap.metadata.update({"x": 1})  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="read-only"):
        snap.metadata["tags"].append("b")
    with pytest.raises(TypeError, match="read-only"):
        snap.conversation_history.append(snap.conversation_history[0])
    with pytest.raises(ValueError, match="frozen"):
        snap.user_id = "mallory"
    with pytest.raises(ValueError, match="frozen"):
        snap.conversation_history[0].content = "changed"
    plain = snap.model_dump(mode="json")
    plain["metadata"]["preferences"]["theme"] = "light"
    plain["conversation_history"].append({})
    again = await manager.get_session(session.id)
    assert again == snap
    assert again is not None
    assert again.metadata["preferences"]["theme"] == "dark"
    assert len(again.conversation_history) == 1


# -- concurrency -----------------------------------------------------------------------------------


async def test_concurrent_add_message_stores_every_message_gap_free(manager: SessionManager) -> None:
    session = await manager.create_session("u")

    async def writer(task: int) -> list[int]:
        seqs = []
        for i in range(20):
            message = await manager.add_message(session.id, "user", f"{task}:{i}", user_id="u")
            seqs.append(message.seq)
        return seqs

    results = await asyncio.gather(*(writer(t) for t in range(50)))
    assert sorted(s for seqs in results for s in seqs) == list(range(1, 1001))
    history = await manager.history(session.id)
    assert [m.seq for m in history] == list(range(1, 1001))
    for task, seqs in enumerate(results):
        assert [history[s - 1].content for s in seqs] == [f"{task}:{i}" for i in range(20)]
    got = await manager.get_session(session.id)
    assert got is not None
    assert got.message_count == 1000
    assert got.version == 1001


# -- listing and deleting --------------------------------------------------------------------------

TRICKY_USERS = ["a", "a:b", "a%", "a*", "a%3Ab", "a:", "a b", "ä", "a_"]


async def test_list_sessions_lists_only_the_users_own(manager: SessionManager) -> None:
    owned: dict[str, set[str]] = {user: set() for user in TRICKY_USERS}
    for user in TRICKY_USERS:
        for _ in range(2):
            owned[user].add((await manager.create_session(user)).id)
    for user in TRICKY_USERS:
        page = await manager.list_sessions(user, limit=100)
        assert {s.id for s in page.sessions} == owned[user], user
        assert all(s.user_id == user for s in page.sessions)
        assert page.next_cursor is None
    assert (await manager.list_sessions("nobody")).sessions == ()


async def test_list_sessions_pages_are_stable(manager: SessionManager) -> None:
    created = [(await manager.create_session("u")).id for _ in range(7)]
    await manager.create_session("other")
    first = await manager.list_sessions("u", limit=3)
    assert len(first.sessions) == 3
    assert first.next_cursor is not None
    newcomer = await manager.create_session("u")
    second = await manager.list_sessions("u", limit=3, cursor=first.next_cursor)
    assert second.next_cursor is not None
    third = await manager.list_sessions("u", limit=3, cursor=second.next_cursor)
    assert len(third.sessions) == 1
    assert third.next_cursor is None
    listed = [s.id for page in (first, second, third) for s in page.sessions]
    assert listed == list(reversed(created))
    assert newcomer.id not in listed
    assert (await manager.list_sessions("u", limit=1)).sessions[0].id == newcomer.id
    for bad in ("garbage", 5, "0" * 16 + ":" + "!" * 22):
        with pytest.raises(InvalidCursorError):
            await manager.list_sessions("u", cursor=bad)  # type: ignore[arg-type]
    for limit in (0, -1, 1001, True):
        with pytest.raises(InvalidValueError):
            await manager.list_sessions("u", limit=limit)


async def test_delete_session_removes_record_logs_and_index(manager: SessionManager, store: BaseSessionStore) -> None:
    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "hi")
    await manager.track_tool_invocation(session.id, "t")
    keep = await manager.create_session("u")
    await manager.add_message(keep.id, "user", "stay")
    await manager.delete_session(session.id, user_id="u")
    assert await manager.get_session(session.id) is None
    with pytest.raises(SessionNotFoundError):
        await manager.history(session.id)
    with pytest.raises(SessionNotFoundError):
        await manager.delete_session(session.id)
    await manager.delete_session(session.id, missing_ok=True)
    assert isinstance(store, LogStore)
    assert await store.log_length(manager.keys.history(session.id)) == 0
    assert await store.log_length(manager.keys.tools(session.id)) == 0
    assert [s.id for s in (await manager.list_sessions("u")).sessions] == [keep.id]
    assert [m.content for m in await manager.history(keep.id)] == ["stay"]


async def test_delete_user_data(manager: SessionManager, store: BaseSessionStore) -> None:
    gone = [await manager.create_session("a") for _ in range(3)]
    for s in gone:
        await manager.add_message(s.id, "user", "bye")
        await manager.track_tool_invocation(s.id, "t")
    stays = [await manager.create_session(user) for user in ("a:b", "a%", "a*", "b")]
    for s in stays:
        await manager.add_message(s.id, "user", "stay")
    assert await manager.delete_user_data("a") == 3
    assert await manager.delete_user_data("a") == 0
    assert isinstance(store, LogStore)
    for s in gone:
        assert await manager.get_session(s.id) is None
        assert await store.log_length(manager.keys.history(s.id)) == 0
        assert await store.log_length(manager.keys.tools(s.id)) == 0
    assert await keys_under(store, manager.keys.user_prefix("a")) == []
    for s in stays:
        got = await manager.get_session(s.id, user_id=s.user_id)
        assert got is not None
        assert [m.content for m in got.conversation_history] == ["stay"]
        assert [x.id for x in (await manager.list_sessions(s.user_id)).sessions] == [s.id]


async def test_namespaces_are_separate(store: BaseSessionStore) -> None:
    one, two = SessionManager(store, namespace="one"), SessionManager(store, namespace="two")
    session = await one.create_session("u")
    assert await two.get_session(session.id) is None
    assert (await two.list_sessions("u")).sessions == ()
    assert await two.delete_user_data("u") == 0
    assert await one.get_session(session.id) is not None


async def test_undecodable_record_is_an_error_and_left_alone(manager: SessionManager, store: BaseSessionStore) -> None:
    session = await manager.create_session("u")
    key = manager.keys.record(session.id)
    await store.set(key, {"not": "a session"})
    with pytest.raises(SessionDecodeError):
        await manager.get_session(session.id)
    with pytest.raises(SessionDecodeError):
        await manager.add_message(session.id, "user", "x")
    assert await store.get(key) == {"not": "a session"}


# -- expiry and retention --------------------------------------------------------------------------


async def test_ttl_slides_on_write_and_expires(store: BaseSessionStore) -> None:
    # Real time on every backend, memory too: the manager decides when to slide the logs' expiry by the
    # wall clock (time.time()), and has no clock to inject, so a fake store clock would fall out of step.
    ttl = 0.3
    sliding = SessionManager(store, ttl=ttl)
    session = await sliding.create_session("u")
    assert session.ttl == ttl
    assert session.expires_at is not None
    await sliding.track_tool_invocation(session.id, "t", call_id="only-one")
    # Writes a sixth of a TTL apart for three TTLs: past the logs' own lifetime (two TTLs) unless slid.
    deadline = time.monotonic() + 3 * ttl
    while time.monotonic() < deadline:
        await asyncio.sleep(ttl / 6)
        await sliding.add_message(session.id, "user", "still here")
    alive = await sliding.get_session(session.id, tool_invocations="all")
    assert alive is not None
    assert [t.call_id for t in alive.tool_invocations] == ["only-one"]
    assert [s.id for s in (await sliding.list_sessions("u")).sessions] == [session.id]
    assert alive.expires_at is not None
    assert alive.expires_at > alive.updated_at
    await asyncio.sleep(3 * ttl)
    assert await sliding.get_session(session.id) is None
    assert (await sliding.list_sessions("u")).sessions == ()
    with pytest.raises(SessionNotFoundError):
        await sliding.add_message(session.id, "user", "too late")


async def test_per_session_ttl_overrides_the_default(store: BaseSessionStore, advance: Advance) -> None:
    manager = SessionManager(store, ttl=timedelta(hours=1))
    long = await manager.create_session("u")  # first, so the store is warm when the short one starts its clock
    short = await manager.create_session("u", ttl=0.5)
    assert await manager.get_session(short.id, history=0) is not None
    assert short.ttl == 0.5
    assert long.ttl == 3600.0
    await advance(3 * 0.5)
    assert await manager.get_session(short.id) is None
    assert await manager.get_session(long.id) is not None
    with pytest.raises(InvalidValueError):
        await manager.create_session("u", ttl=-1)


async def test_retention_keeps_the_newest(store: BaseSessionStore) -> None:
    manager = SessionManager(store, max_messages=5, max_tool_invocations=2)
    session = await manager.create_session("u")
    for i in range(1, 9):
        await manager.add_message(session.id, "user", f"m{i}")
    await manager.add_messages(session.id, [{"role": "user", "content": "m9"}, {"role": "user", "content": "m10"}])
    for i in range(4):
        await manager.track_tool_invocation(session.id, "t", call_id=f"c{i}")
    assert [m.seq for m in await manager.history(session.id)] == [6, 7, 8, 9, 10]
    assert [t.call_id for t in await manager.tool_invocations(session.id)] == ["c2", "c3"]
    got = await manager.get_session(session.id, history="all")
    assert got is not None
    assert got.message_count == 10
    assert len(got.conversation_history) == 5
    with pytest.raises(InvalidValueError):
        SessionManager(store, max_messages=0)


async def test_purge_expired_passes_through(store: BaseSessionStore, advance: Advance) -> None:
    ttl = 0.2
    manager = SessionManager(store, ttl=ttl)
    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "x")
    await advance(3 * ttl)  # past the record's TTL and its logs' (two TTLs)
    purged = await manager.purge_expired()
    if isinstance(store, PurgeableStore):
        assert purged >= 1
    else:
        assert purged == 0
    assert await manager.get_session(session.id) is None
