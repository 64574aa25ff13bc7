"""Round trips of the agent writes: one fenced call per append, two per tool call, the long way only on a miss."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from pydantic import BaseModel

from sessionware.agents import SessionManager
from sessionware.store import BaseSessionStore, FencedAppendStore
from sessionware.stores.redis import RedisSessionStore
from sessionware.tools import ToolContext, create_tool, create_toolbox, session_middleware

from .helpers import Calls


class StoreCalls(Calls):
    NAMES = (
        *Calls.NAMES,
        "get_versioned",
        "set_versioned",
        "log_append",
        "log_append_fenced",
        "log_read",
        "log_last_seq",
    )


class Wire:
    """Counts the commands and scripts a Redis store sends to the server."""

    def __init__(self, store: RedisSessionStore) -> None:
        self.sent: list[str] = []
        execute, script = store._exec, store.driver.script

        async def counted_execute(*args: Any) -> Any:
            self.sent.append(str(args[0]))
            return await execute(*args)

        async def counted_script(*args: Any) -> Any:
            self.sent.append("script")
            return await script(*args)

        store._exec = counted_execute
        store.driver.script = counted_script  # type: ignore[method-assign,assignment]

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


async def test_every_backend_appends_in_one_fenced_call(store: BaseSessionStore) -> None:
    assert isinstance(store, FencedAppendStore)
    calls = StoreCalls(store)
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    assert calls.take() == {"set_versioned": 1, "set_raw": 1}  # the record, the user's index entry
    for i in range(3):
        await manager.add_message(session.id, "user", f"hello {i}")
        assert calls.take() == {"log_append_fenced": 1}
    await manager.add_messages(session.id, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    assert calls.take() == {"log_append_fenced": 1}
    invocation = await manager.track_tool_invocation(session.id, "search", arguments={"q": "x"}, result=[1])
    assert calls.take() == {"log_append_fenced": 1}
    assert invocation.seq == 1

    got = await manager.get_session(session.id, user_id="ada")
    assert got is not None
    assert [m.seq for m in got.conversation_history] == [1, 2, 3, 4, 5]
    assert [m.content for m in got.conversation_history] == ["hello 0", "hello 1", "hello 2", "a", "b"]
    assert got.message_count == 5
    assert got.tool_invocation_count == 1
    assert got.version == session.version + 5
    # A fresh manager (another process) reads what the fenced writes stored.
    other = await SessionManager(store).get_session(session.id, history="all")
    assert other is not None
    assert other.message_count == 5
    assert other.updated_at == got.updated_at


async def test_a_manager_that_did_not_write_last_reads_once_then_appends_in_one(store: BaseSessionStore) -> None:
    writer = SessionManager(store)
    session = await writer.create_session("ada")
    calls = StoreCalls(store)
    reader = SessionManager(store)
    await reader.add_message(session.id, "user", "first", user_id="ada")
    assert calls.take() == {"get_versioned": 1, "log_append_fenced": 1}
    await reader.add_message(session.id, "user", "second", user_id="ada")
    assert calls.take() == {"log_append_fenced": 1}


async def test_a_record_changed_elsewhere_is_never_overwritten(store: BaseSessionStore) -> None:
    mine, theirs = SessionManager(store), SessionManager(store)
    session = await mine.create_session("ada", metadata={"step": 0})
    await mine.add_message(session.id, "user", "one")
    # Another process appends and changes the metadata meanwhile: the record this manager kept is stale.
    await theirs.add_message(session.id, "assistant", "two")
    await theirs.edit_metadata(session.id, lambda meta: {**meta, "step": 1})
    calls = StoreCalls(store)
    three = await mine.add_message(session.id, "user", "three")
    counted = calls.take()
    assert counted["log_append_fenced"] == 1  # refused, nothing written; then the long way
    assert counted["log_append"] == 1
    assert three.seq == 3
    got = await theirs.get_session(session.id, history="all")
    assert got is not None
    assert got.metadata == {"step": 1}
    assert [m.content for m in got.conversation_history] == ["one", "two", "three"]
    assert got.message_count == 3
    calls.take()
    await mine.add_message(session.id, "user", "four")
    assert calls.take() == {"get_versioned": 1, "log_append_fenced": 1}  # after the long way, one read
    await mine.add_message(session.id, "user", "five")
    assert calls.take() == {"log_append_fenced": 1}


async def test_a_log_changed_elsewhere_is_never_numbered_twice(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    await manager.add_message(session.id, "user", "one")
    # An append that bypassed the record (a writer of an older release, say): the log is ahead of it.
    await store.log_append(manager.keys.history(session.id), [{"role": "user", "content": "stray", "ts": 0.0}])  # type: ignore[attr-defined]
    message = await manager.add_message(session.id, "user", "two")
    assert message.seq == 3
    history = await manager.history(session.id)
    assert [m.seq for m in history] == [1, 2, 3]


async def test_concurrent_appends_of_one_manager_and_another_lose_nothing(store: BaseSessionStore) -> None:
    managers = [SessionManager(store), SessionManager(store)]
    session = await managers[0].create_session("ada")

    async def writer(n: int) -> None:
        manager = managers[n % 2]
        for i in range(10):
            await manager.add_message(session.id, "user", f"{n}-{i}")

    await asyncio.gather(*(writer(n) for n in range(4)))
    got = await managers[0].get_session(session.id, history="all")
    assert got is not None
    assert got.message_count == 40
    assert [m.seq for m in got.conversation_history] == list(range(1, 41))
    assert sorted(str(m.content) for m in got.conversation_history) == sorted(
        f"{n}-{i}" for n in range(4) for i in range(10)
    )


async def test_someone_elses_session_is_refused_on_the_fast_path_too(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    bob = await manager.create_session("bob")
    await manager.add_message(bob.id, "user", "secret")
    from sessionware.agents import SessionNotFoundError

    with pytest.raises(SessionNotFoundError):
        await manager.add_message(bob.id, "user", "from alice", user_id="alice")
    with pytest.raises(SessionNotFoundError):
        await manager.track_tool_invocation(bob.id, "read", user_id="alice")
    got = await manager.get_session(bob.id)
    assert got is not None
    assert got.message_count == 1
    assert got.tool_invocation_count == 0


async def test_a_deleted_session_is_not_written_back_by_the_fast_path(store: BaseSessionStore) -> None:
    mine, theirs = SessionManager(store), SessionManager(store)
    session = await mine.create_session("ada")
    await mine.add_message(session.id, "user", "one")
    await theirs.delete_session(session.id)
    from sessionware.agents import SessionNotFoundError

    with pytest.raises(SessionNotFoundError):
        await mine.add_message(session.id, "user", "two")
    assert await theirs.get_session(session.id) is None


class NoArgs(BaseModel):
    pass


async def test_a_tool_call_through_the_session_middleware_is_two_calls(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada")
    await manager.add_messages(session.id, [{"role": "user", "content": f"m{i}"} for i in range(200)])
    seen: list[int] = []

    async def look(args: NoArgs, context: ToolContext) -> str:
        seen.append(context.session.message_count)
        return "ok"

    toolbox = create_toolbox(middleware=[session_middleware(SessionManager(store))])
    create_tool(name="look", description="Look.", schema=NoArgs, execute=look, toolbox=toolbox)
    calls = StoreCalls(store)
    context = {"user_id": "ada", "session_id": session.id}
    for _ in range(3):
        result = await toolbox.execute({"name": "look"}, context=context)
        assert result.outcome == "success"
        assert calls.take() == {"get_versioned": 1, "log_append_fenced": 1}  # bind and check, record
    assert seen == [200, 200, 200]
    tools = await manager.tool_invocations(session.id)
    assert [t.tool_name for t in tools] == ["look"] * 3


@pytest.mark.parametrize("backend", ["redis", "redis-py"], indirect=True)
async def test_on_redis_an_append_is_one_script_and_nothing_else(store: RedisSessionStore) -> None:
    wire = Wire(store)
    manager = SessionManager(store)
    session = await manager.create_session("ada", ttl=3600)
    wire.take()
    await manager.add_message(session.id, "user", "hello")
    await manager.add_messages(session.id, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    await manager.track_tool_invocation(session.id, "search")
    assert len(wire.take()) == 3
    got = await SessionManager(store).get_session(session.id)
    assert got is not None
    assert got.message_count == 3
    assert got.tool_invocation_count == 1
    left = await store.expires_in(manager.keys.record(session.id))
    assert left is not None
    assert 3500 < left <= 3600


# -- the store capability itself ---------------------------------------------------------------------


async def test_a_fenced_append_writes_both_or_nothing(store: BaseSessionStore) -> None:
    assert isinstance(store, FencedAppendStore)
    version = await store.set_versioned("rec", b'{"n":0}', expected=0)  # type: ignore[attr-defined]
    await store.log_append("log", [{"i": 0}])  # type: ignore[attr-defined]

    async def state() -> tuple[Any, Any]:
        return await store.get_versioned("rec"), await store.log_read("log")  # type: ignore[attr-defined]

    before = await state()
    for wrong in (
        {"expected": version + 1, "last": 1},
        {"expected": version, "last": 0},
        {"expected": version, "last": 2},
    ):
        done = await store.log_append_fenced("log", [{"i": 1}], record="rec", data=b'{"n":1}', **wrong)
        assert done is None
        assert await state() == before
    missing = await store.log_append_fenced("log", [{"i": 1}], last=1, record="other", expected=1, data=b"{}")
    assert missing is None
    assert await state() == before

    new = await store.log_append_fenced(
        "log", [{"i": 1}, {"i": 2}], last=1, record="rec", expected=version, data=b'{"n":2}', ttl=60, log_ttl=120
    )
    assert new is not None
    assert new != version
    stored, entries = await state()
    assert (stored.data, stored.version) == (b'{"n":2}', new)
    assert [(e.seq, e.value) for e in entries] == [(1, {"i": 0}), (2, {"i": 1}), (3, {"i": 2})]
    record_left, log_left = await store.expires_in("rec"), await store.log_last_seq("log")  # type: ignore[attr-defined]
    assert record_left is not None
    assert 55 < record_left <= 60
    assert log_left == 3

    trimmed = await store.log_append_fenced(
        "log", [{"i": 3}], last=3, record="rec", expected=new, data=b'{"n":3}', max_len=2
    )
    assert trimmed is not None
    assert [e.seq for e in await store.log_read("log")] == [3, 4]  # type: ignore[attr-defined]
    # A log that does not exist yet starts at 1.
    fresh = await store.log_append_fenced("new-log", [{"i": 0}], last=0, record="rec", expected=trimmed, data=b"{}")
    assert fresh is not None
    assert [e.seq for e in await store.log_read("new-log")] == [1]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"expected": 0}, "expected"),
        ({"expected": True}, "expected"),
        ({"last": -1}, "last"),
        ({"entries": []}, "entries"),
        ({"data": "text"}, "data"),
        ({"max_len": 0}, "max_len"),
    ],
)
async def test_a_bad_fenced_append_is_refused_before_anything_is_written(
    store: BaseSessionStore, change: dict[str, Any], name: str
) -> None:
    from sessionware.errors import InvalidValueError

    version = await store.set_versioned("rec", b"{}", expected=0)  # type: ignore[attr-defined]
    arguments: dict[str, Any] = {"entries": [{"i": 0}], "last": 0, "record": "rec", "expected": version, "data": b"{}"}
    arguments.update(change)
    with pytest.raises(InvalidValueError, match=name):
        await store.log_append_fenced("log", **arguments)  # type: ignore[attr-defined]
    assert await store.log_last_seq("log") == 0  # type: ignore[attr-defined]
    stored = await store.get_versioned("rec")  # type: ignore[attr-defined]
    assert stored is not None
    assert stored.version == version


async def test_an_encrypted_store_appends_in_one_fenced_call_and_stores_no_plaintext(store: BaseSessionStore) -> None:
    from sessionware.encryption import EncryptedStore, KeyRing

    sealed = EncryptedStore(store, KeyRing({"k1": os.urandom(32)}))
    calls = StoreCalls(store)
    manager = SessionManager(sealed)
    session = await manager.create_session("ada")
    await manager.add_message(session.id, "user", "first secret")
    calls.take()
    await manager.add_message(session.id, "user", "second secret")
    assert calls.take() == {"log_append_fenced": 1}
    history = await manager.history(session.id)
    assert [m.content for m in history] == ["first secret", "second secret"]
    raw = await store.log_read(manager.keys.history(session.id))  # type: ignore[attr-defined]
    assert len(raw) == 2
    assert "secret" not in repr([entry.value for entry in raw])
    record = await store.get_raw(manager.keys.record(session.id))
    assert record is not None
    assert b"ada" not in record


# -- list_sessions: one page of the user's activity index ------------------------------------------------


class ListCalls(StoreCalls):
    NAMES = (*StoreCalls.NAMES, "index_put", "index_page", "index_remove", "scan")

    def _counting(self, name: str, original: Any) -> Any:
        if name != "scan":
            return super()._counting(name, original)

        def scan(*args: Any, **kwargs: Any) -> Any:  # an async iterator, counted when it is started
            self.counts[name] = self.counts.get(name, 0) + 1
            return original(*args, **kwargs)

        return scan


async def make_sessions(manager: SessionManager, user_id: str, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 100):
        made = await asyncio.gather(*(manager.create_session(user_id) for _ in range(start, min(count, start + 100))))
        ids += [session.id for session in made]
    return ids


async def test_a_page_costs_the_same_for_ten_sessions_as_for_a_thousand(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    await make_sessions(manager, "few", 25)
    await make_sessions(manager, "many", 1000)
    calls = ListCalls(store)
    costs = {}
    for user_id in ("few", "many"):
        first = await manager.list_sessions(user_id, limit=20)  # builds nothing: new sessions are indexed
        assert len(first.sessions) == 20
        calls.take()
        page = await manager.list_sessions(user_id, limit=20)
        costs[user_id] = calls.take()
        assert page.next_cursor is not None
    assert costs["few"] == costs["many"]
    assert costs["many"] == {"index_page": 2, "get_versioned": 20}  # the marker, the page; each session's record


async def test_sessions_are_listed_by_last_activity_and_paged_without_loss(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    ids = await make_sessions(manager, "ada", 45)
    await manager.create_session("bob")
    for session_id in (ids[3], ids[0], ids[10]):  # the newest activity last
        await manager.add_message(session_id, "user", "hello")
    seen: list[str] = []
    cursor = None
    while True:
        page = await manager.list_sessions("ada", limit=20, cursor=cursor)
        seen += [session.id for session in page.sessions]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids), "every session once, and only ada's"
    assert seen[:3] == [ids[10], ids[0], ids[3]]
    stamps = [s.updated_at for s in [await manager.get_session(i) for i in seen] if s is not None]
    assert stamps == sorted(stamps, reverse=True)


async def test_a_gone_session_leaves_the_index_at_the_next_listing(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    ids = await make_sessions(manager, "ada", 3)
    await store.delete(manager.keys.record(ids[1]))  # gone behind the manager's back (expired, say)
    page = await manager.list_sessions("ada")
    assert sorted(s.id for s in page.sessions) == sorted([ids[0], ids[2]])
    members = [member for member, _ in await store.index_page(manager.keys.activity("ada"), limit=10)]  # type: ignore[attr-defined]
    assert ids[1] not in members


async def test_sessions_stored_before_the_index_are_indexed_at_the_first_listing(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    ids = await make_sessions(manager, "ada", 30)
    await manager.add_message(ids[7], "user", "the newest")
    # As a store written by the previous release holds them: index entries, no activity index.
    await store.index_delete(manager.keys.activity("ada"))  # type: ignore[attr-defined]
    calls = ListCalls(store)
    fresh = SessionManager(store)
    first = await fresh.list_sessions("ada", limit=10)
    assert calls.take()["scan"] == 1
    assert first.sessions[0].id == ids[7]
    seen = [s.id for s in first.sessions]
    cursor = first.next_cursor
    while cursor is not None:
        page = await fresh.list_sessions("ada", limit=10, cursor=cursor)
        seen += [s.id for s in page.sessions]
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)
    assert "scan" not in calls.take(), "built once"


async def test_an_erased_user_leaves_no_index(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    await make_sessions(manager, "ada", 5)
    assert await manager.delete_user_data("ada") == 5
    assert await store.index_page(manager.keys.activity("ada"), limit=10) == []  # type: ignore[attr-defined]
    assert (await manager.list_sessions("ada")).sessions == ()
