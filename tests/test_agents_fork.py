"""SessionManager.fork_session and rewind on every backend: shared prefixes, numbering, windows, owners, cost."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from sessionware import BaseSessionStore, ConflictError, InvalidValueError, SessionManager
from sessionware.agents import Message, Session, SessionNotFoundError
from sessionware.store import LockingStore, LogStore

from .helpers import Calls


def texts(messages: Any) -> list[str]:
    return [m.content for m in messages]


async def whole_snapshot(manager: SessionManager, session: Session) -> Session:
    """The session with its whole history and tool invocations (a fork returns none)."""
    got = await manager.get_session(session.id, history="all", tool_invocations="all")
    assert got is not None
    return got


async def filled(manager: SessionManager, n: int, user: str = "ada") -> str:
    session = await manager.create_session(user, metadata={"topic": "t", "nested": {"a": 1}})
    await manager.add_messages(session.id, [{"role": "user", "content": f"m{i}"} for i in range(1, n + 1)])
    return session.id


async def test_fork_at_a_point_and_both_go_on(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=60)
    sid = await filled(manager, 5)
    fork = await manager.fork_session(sid, at=3, user_id="ada", metadata={"branch": "b"})
    assert fork.id != sid
    assert fork.user_id == "ada"
    assert fork.conversation_history == []
    assert texts((await whole_snapshot(manager, fork)).conversation_history) == ["m1", "m2", "m3"]
    assert fork.message_count == 3
    assert fork.forked_from == {"session_id": sid, "seq": 3}
    assert fork.metadata == {"topic": "t", "nested": {"a": 1}, "branch": "b"}
    added = await manager.add_message(fork.id, "assistant", "fork-4")
    assert added.seq == 4
    await manager.add_message(sid, "user", "m6")
    got_fork = await manager.get_session(fork.id)
    got_parent = await manager.get_session(sid)
    assert got_fork is not None
    assert got_parent is not None
    assert texts(got_fork.conversation_history) == ["m1", "m2", "m3", "fork-4"]
    assert [m.seq for m in got_fork.conversation_history] == [1, 2, 3, 4]
    assert got_fork.message_count == 4
    assert texts(got_parent.conversation_history) == ["m1", "m2", "m3", "m4", "m5", "m6"]
    assert got_parent.message_count == 6
    assert "branch" not in got_parent.metadata
    page = await manager.list_sessions("ada")
    assert {s.id for s in page.sessions} == {sid, fork.id}


async def test_fork_defaults_to_everything_and_keeps_tool_invocations(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    await manager.add_message(session.id, "user", "q1")
    await manager.track_tool_invocation(session.id, "search", arguments={"q": 1})
    await manager.add_message(session.id, "assistant", "a1")
    await asyncio.sleep(0.01)
    await manager.add_message(session.id, "user", "q2")
    await manager.track_tool_invocation(session.id, "search", arguments={"q": 2})
    whole = await whole_snapshot(manager, await manager.fork_session(session.id))
    assert texts(whole.conversation_history) == ["q1", "a1", "q2"]
    assert [t.arguments for t in whole.tool_invocations] == [{"q": 1}, {"q": 2}]
    assert whole.tool_invocation_count == 2
    early = await whole_snapshot(manager, await manager.fork_session(session.id, at=2))
    assert texts(early.conversation_history) == ["q1", "a1"]
    assert [t.arguments for t in early.tool_invocations] == [{"q": 1}]
    assert early.tool_invocation_count == 1
    tool = await manager.track_tool_invocation(early.id, "calc")
    assert tool.seq == 2
    assert [t.tool_name for t in await manager.tool_invocations(early.id)] == ["search", "calc"]
    assert len(await manager.tool_invocations(session.id)) == 2


async def test_fork_of_a_fork_and_windows_across_the_boundaries(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 4)
    first = await manager.fork_session(sid, at=3)
    await manager.add_messages(first.id, [{"role": "user", "content": f"f{i}"} for i in range(4, 7)])
    second = await manager.fork_session(first.id, at=5)
    await manager.add_message(second.id, "user", "s6")
    assert texts(await manager.history(second.id)) == ["m1", "m2", "m3", "f4", "f5", "s6"]
    assert texts(await manager.history(second.id, last=4)) == ["m3", "f4", "f5", "s6"]
    assert texts(await manager.history(second.id, before=5, last=3)) == ["m2", "m3", "f4"]
    assert texts(await manager.history(second.id, before=3)) == ["m1", "m2"]
    # Each message costs 4 + 1 tokens in the rough count.
    assert texts(await manager.history(second.id, max_tokens=15)) == ["f4", "f5", "s6"]
    snap = await manager.get_session(second.id, history=2)
    assert snap is not None
    assert texts(snap.conversation_history) == ["f5", "s6"]
    assert snap.message_count == 6
    assert texts(await manager.history(first.id)) == ["m1", "m2", "m3", "f4", "f5", "f6"]
    assert texts(await manager.history(sid)) == ["m1", "m2", "m3", "m4"]


async def test_parent_edits_never_reach_the_fork(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 4)
    fork = await manager.fork_session(sid, at=3)
    popped = [await manager.pop_message(sid) for _ in range(3)]
    assert [m.content for m in popped if m is not None] == ["m4", "m3", "m2"]
    assert texts(await manager.history(fork.id)) == ["m1", "m2", "m3"]
    await manager.clear_history(sid)
    assert texts(await manager.history(fork.id)) == ["m1", "m2", "m3"]
    assert (await manager.add_message(sid, "user", "new")).seq == 5
    await manager.delete_session(sid)
    assert texts(await manager.history(fork.id)) == ["m1", "m2", "m3"]
    got = await manager.get_session(fork.id)
    assert got is not None
    assert got.message_count == 3


async def test_pop_on_a_fork_with_an_empty_own_log_narrows_the_prefix(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 3)
    fork = await manager.fork_session(sid)
    popped = await manager.pop_message(fork.id)
    assert popped is not None
    assert (popped.seq, popped.content) == (3, "m3")
    assert texts(await manager.history(fork.id)) == ["m1", "m2"]
    assert texts(await manager.history(sid)) == ["m1", "m2", "m3"]
    assert (await manager.add_message(fork.id, "user", "again")).seq == 4
    got = await manager.get_session(fork.id)
    assert got is not None
    assert got.message_count == 3
    assert texts(got.conversation_history) == ["m1", "m2", "again"]


async def test_rewind_then_append_never_reuses_numbers(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=60)
    sid = await filled(manager, 6)
    before = await manager.get_session(sid, history=0)
    assert before is not None
    after = await manager.rewind(sid, to=2)
    assert after.message_count == 2
    assert after.version == before.version + 1
    assert texts(await manager.history(sid)) == ["m1", "m2"]
    added = await manager.add_message(sid, "user", "n7")
    assert added.seq == 7
    assert await manager.rewind(sid, to=1) is not None
    assert (await manager.add_message(sid, "user", "n8")).seq == 8
    assert [m.seq for m in await manager.history(sid)] == [1, 8]
    unchanged = await manager.rewind(sid, to=100)
    assert unchanged.message_count == 2
    await manager.rewind(sid, to=0)
    assert await manager.history(sid) == []
    assert (await manager.add_message(sid, "user", "n9")).seq == 9


async def test_rewind_of_a_parent_leaves_its_fork(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 5)
    fork = await manager.fork_session(sid, at=4)
    await manager.rewind(sid, to=1)
    await manager.rewind(fork.id, to=2)
    assert texts(await manager.history(sid)) == ["m1"]
    assert texts(await manager.history(fork.id)) == ["m1", "m2"]
    assert (await manager.add_message(fork.id, "user", "x")).seq == 5


async def test_another_user_cannot_fork_or_rewind(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 3)
    with pytest.raises(SessionNotFoundError):
        await manager.fork_session(sid, user_id="bob")
    with pytest.raises(SessionNotFoundError):
        await manager.rewind(sid, to=1, user_id="bob")
    with pytest.raises(SessionNotFoundError):
        await manager.for_user("bob").fork_session(sid)
    assert (await manager.list_sessions("bob")).sessions == ()
    assert texts(await manager.history(sid)) == ["m1", "m2", "m3"]
    own = await manager.for_user("ada").fork_session(sid, at=1)
    assert own.user_id == "ada"


async def test_bad_arguments_are_refused(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 2)
    with pytest.raises(InvalidValueError, match="at"):
        await manager.fork_session(sid, at=3)
    with pytest.raises(InvalidValueError, match="at"):
        await manager.fork_session(sid, at=-1)
    with pytest.raises(InvalidValueError, match="to"):
        await manager.rewind(sid, to="1")  # type: ignore[arg-type]
    fork = await manager.fork_session(sid, fork_id="my-own-fork-id-000000001")
    assert fork.id == "my-own-fork-id-000000001"
    with pytest.raises(ConflictError):
        await manager.fork_session(sid, fork_id="my-own-fork-id-000000001")


class LogCalls(Calls):
    """Calls, counting the log operations too."""

    NAMES: tuple[str, ...] = (  # the base names its ten record operations
        *Calls.NAMES,
        "log_read",
        "log_append",
        "log_delete",
        "log_pop",
        "log_clear",
        "set_versioned",
    )


async def test_fork_cost_does_not_grow_with_the_prefix(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=600)
    counts = []
    for n in (50, 5000):
        sid = await filled(manager, n)
        calls = LogCalls(store)
        fork = await manager.fork_session(sid)
        counts.append(calls.take())
        middle = await manager.fork_session(sid, at=n - 5)
        counts.append(calls.take())
        assert middle.message_count == n - 5
        for name in LogCalls.NAMES:  # unwrap the store again
            if name in store.__dict__:
                delattr(store, name)
        assert fork.message_count == n
    assert counts[0] == counts[2]
    assert counts[1] == counts[3]
    assert sum(counts[0].values()) > 0


async def test_a_cancelled_fork_leaves_nothing_half_made(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 3)
    for delay in (0, 0.0005, 0.001, 0.002, 0.004, 0.008):
        task = asyncio.ensure_future(manager.fork_session(sid, at=2))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for snapshot in (await manager.list_sessions("ada", limit=100)).sessions:
            if snapshot.id == sid:
                continue
            assert snapshot.forked_from == {"session_id": sid, "seq": 2}
            assert texts(await manager.history(snapshot.id)) == ["m1", "m2"]
            await manager.delete_session(snapshot.id)
    assert texts(await manager.history(sid)) == ["m1", "m2", "m3"]


async def test_compact_replaces_the_older_messages_by_one_summary(store: BaseSessionStore) -> None:
    manager = SessionManager(store, ttl=60)
    sid = await filled(manager, 6)
    seen: list[list[str]] = []

    async def summarize(messages: list[Message]) -> str:
        seen.append(texts(messages))
        return "summary of " + ",".join(texts(messages))

    summary = await manager.compact(sid, keep_last=2, summarize=summarize)
    assert summary is not None
    assert seen == [["m1", "m2", "m3", "m4"]]
    assert (summary.seq, summary.role, summary.content) == (4, "system", "summary of m1,m2,m3,m4")
    assert summary.metadata == {"compaction": {"from": 1, "to": 4, "count": 4}}
    history = await manager.history(sid)
    assert texts(history) == ["summary of m1,m2,m3,m4", "m5", "m6"]
    assert [m.seq for m in history] == [4, 5, 6]
    got = await manager.get_session(sid)
    assert got is not None
    assert got.message_count == 3
    assert (await manager.add_message(sid, "user", "m7")).seq == 7
    assert texts(await manager.history(sid, last=2)) == ["m6", "m7"]
    assert await manager.compact(sid, keep_last=10, summarize=summarize) is None


async def test_compact_never_parts_a_tool_call_from_its_result(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    call = {"id": "c1", "name": "search", "arguments": {}}
    await manager.add_messages(
        session.id,
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "r", "tool_call_id": "c1"},
            {"role": "assistant", "content": "a"},
        ],
    )

    async def summarize(messages: list[Message]) -> Message:
        assert [m.role for m in messages] == ["user"]
        return Message(seq=0, role="user", content="earlier: q", created_at=messages[0].created_at)

    summary = await manager.compact(session.id, keep_last=2, summarize=summarize)
    assert summary is not None
    assert summary.role == "user"
    assert [m.role for m in await manager.history(session.id)] == ["user", "assistant", "tool", "assistant"]


async def test_compact_keeps_a_message_appended_while_summarizing(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    other = SessionManager(store)
    sid = await filled(manager, 4)

    async def summarize(messages: list[Message]) -> str:
        await asyncio.ensure_future(other.add_message(sid, "user", "meanwhile"))
        return "s"

    await manager.compact(sid, keep_last=1, summarize=summarize)
    assert texts(await manager.history(sid)) == ["s", "m4", "meanwhile"]
    got = await manager.get_session(sid)
    assert got is not None
    assert got.message_count == 3


async def test_compact_refuses_when_the_older_messages_changed(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 4)

    async def summarize(messages: list[Message]) -> str:
        await manager.rewind(sid, to=1)
        return "s"

    with pytest.raises(ConflictError):
        await manager.compact(sid, keep_last=1, summarize=summarize)
    assert texts(await manager.history(sid)) == ["m1"]


async def test_compact_can_keep_the_originals_readable(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 5)

    async def summarize(messages: list[Message]) -> str:
        return "s"

    summary = await manager.compact(sid, keep_last=2, summarize=summarize, keep_originals=True)
    assert summary is not None
    originals = summary.metadata["compaction"]["originals"]
    assert texts(await manager.history(originals)) == ["m1", "m2", "m3"]
    assert texts(await manager.history(sid)) == ["s", "m4", "m5"]
    fork = await manager.fork_session(sid, at=4)
    assert texts((await whole_snapshot(manager, fork)).conversation_history) == ["s", "m4"]


async def test_history_entries_and_log_keys_cover_the_shared_prefix(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    sid = await filled(manager, 3)
    fork = await manager.fork_session(sid, at=2)
    await manager.add_message(fork.id, "user", "f3")
    entries = await manager.history_entries(fork.id)
    assert [(e.seq, e.value["content"]) for e in entries] == [(1, "m1"), (2, "m2"), (3, "f3")]
    assert [e.seq for e in await manager.history_entries(fork.id, last=1)] == [3]
    from sessionware.agents.records import SessionRecord

    key = manager.keys.record(fork.id)
    data = await store.get(key)
    assert data is not None
    logs = SessionRecord.from_json(key, data).log_keys(manager.keys.history(fork.id), manager.keys.tools(fork.id))
    assert manager.keys.history(sid) in logs
    assert manager.keys.history(fork.id) in logs


async def test_logs_nobody_reads_are_deleted_and_shared_ones_kept(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    logs = manager.store
    assert isinstance(logs, LogStore)
    sid = await filled(manager, 4)
    await manager.rewind(sid, to=0)
    assert await logs.log_length(manager.keys.history(sid)) == 0  # the old log went with the rewind
    await manager.add_messages(sid, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    fork = await manager.fork_session(sid)
    await manager.rewind(sid, to=0)
    await manager.delete_session(sid)
    assert texts(await manager.history(fork.id)) == ["a", "b"]
    await manager.delete_user_data("ada")
    assert await logs.log_length(manager.keys.history(sid)) == 0


async def test_max_messages_never_trims_a_log_a_fork_reads(store: BaseSessionStore) -> None:
    manager = SessionManager(store, max_messages=3)
    sid = await filled(manager, 3)
    fork = await manager.fork_session(sid)
    for i in range(4, 8):
        await manager.add_message(sid, "user", f"m{i}")
    assert texts(await manager.history(fork.id)) == ["m1", "m2", "m3"]
    for i in range(4, 9):
        await manager.add_message(fork.id, "user", f"f{i}")
    assert texts(await manager.history(fork.id))[-3:] == ["f6", "f7", "f8"]


async def test_a_cancelled_rewind_is_whole_or_not_at_all(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    for delay in (0, 0.0005, 0.001, 0.002, 0.004):
        sid = await filled(manager, 4)
        task = asyncio.ensure_future(manager.rewind(sid, to=1))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        got = await manager.get_session(sid)
        assert got is not None
        assert texts(got.conversation_history) in (["m1"], ["m1", "m2", "m3", "m4"])
        assert got.message_count == len(got.conversation_history)
        assert (await manager.add_message(sid, "user", "next")).seq == 5


async def test_fork_rewind_and_compact_with_distributed_isolation(store: BaseSessionStore) -> None:
    assert isinstance(store, LockingStore)
    manager = SessionManager(store, isolation="distributed")
    sid = await filled(manager, 4)
    fork = await manager.fork_session(sid, at=3)
    await manager.rewind(fork.id, to=2)
    await manager.add_message(fork.id, "user", "f")

    async def summarize(messages: list[Message]) -> str:
        return "s"

    await manager.compact(sid, keep_last=1, summarize=summarize)
    assert texts(await manager.history(fork.id)) == ["m1", "m2", "f"]
    assert texts(await manager.history(sid)) == ["s", "m4"]
