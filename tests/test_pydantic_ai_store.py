"""Pydantic AI's ``ConversationStore`` on sessionware stores: real ``Agent`` runs with ``conversation=``, on every
backend, and the protocol's cases (conflicts, scopes, branches, forks, deletes, windows) checked side by side with
Pydantic AI's own ``InMemoryConversationStore``, which the same assertions must hold for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict, ConversationStore, InMemoryConversationStore
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse, TextPart
from pydantic_ai.messages import UserPromptPart as Prompt

from sessionware import BaseSessionStore, InMemorySessionStore, InvalidValueError, SessionDecodeError
from sessionware.integrations.pydantic_ai import SessionwareConversationStore
from sessionware.testing import Advance

from .conftest import open_backend
from .helpers import Calls, import_without
from .test_pydantic_ai import weather_agent

KINDS = ["memory", "sqlite", "redis", "redis-py", "postgres", "pydantic-memory"]


class LogCalls(Calls):
    NAMES: tuple[str, ...] = (
        "get_versioned",
        "set_versioned",
        "delete_versioned",
        "log_read",
        "log_append",
        "log_delete",
        "scan",
    )


@pytest.fixture(params=KINDS)
async def conversations(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    """Ours on each backend, then Pydantic AI's in-memory store (the reference the same cases must hold for)."""
    if request.param == "pydantic-memory":
        yield InMemoryConversationStore()
        return
    store, cleanup = await open_backend(request.param, tmp_path)
    try:
        yield SessionwareConversationStore(store)
    finally:
        await cleanup()


def turn(text: str) -> list[ModelMessage]:
    return [ModelRequest(parts=[Prompt(text)]), ModelResponse(parts=[TextPart(f"re: {text}")])]


def texts(conversation: Conversation | None) -> list[str]:
    assert conversation is not None
    return [str(getattr(message.parts[0], "content", "")) for message in conversation.messages]


async def saved(store: ConversationStore, conversation_id: str, *turns: str, scope: str | None = None) -> Conversation:
    """A conversation saved once per turn, loaded back."""
    conversation = Conversation(conversation_id=conversation_id)
    for text in turns:
        conversation.messages.extend(turn(text))
        await store.save(conversation, scope=scope)
    loaded = await store.load(conversation_id)
    assert loaded is not None
    return loaded


# -- real agent runs --------------------------------------------------------------------------------------


async def test_agent_runs_continue_a_stored_conversation_exactly(conversations: ConversationStore) -> None:
    agent = weather_agent()
    conversation = await conversations.load("trip", scope="ada") or Conversation(conversation_id="trip")
    first = await agent.run("Weather in Oslo?", conversation=conversation)
    await conversations.save(first, scope="ada")
    again = await conversations.load("trip", scope="ada")
    assert again is not None
    second = await agent.run("And tomorrow?", conversation=again)
    await conversations.save(second, scope="ada")

    loaded = await conversations.load("trip", scope="ada")
    assert loaded is not None
    everything = second.all_messages()
    assert ModelMessagesTypeAdapter.dump_json(loaded.messages) == ModelMessagesTypeAdapter.dump_json(everything)
    in_memory = await agent.run("And tomorrow?", message_history=first.all_messages())
    assert second.output == in_memory.output != first.output  # the second run saw the first run's whole history
    assert loaded.usage == second.conversation.usage
    assert await conversations.load("trip", scope="bob") is None


async def test_a_new_store_object_on_the_same_store_reads_what_another_saved(tmp_path: Path) -> None:
    store = InMemorySessionStore()
    writer = SessionwareConversationStore(store)
    await saved(writer, "c", "one", "two")
    reader = SessionwareConversationStore(store)
    assert texts(await reader.load("c")) == ["one", "re: one", "two", "re: two"]
    entries = await reader.load_entries("c", limit=1)
    assert entries is not None
    assert (await reader.read_entry(entries[0].id)).message == entries[0].message
    with pytest.raises(LookupError):
        await SessionwareConversationStore(store).read_entry(entries[0].id)  # never read through this object


# -- the protocol's cases, checked on ours and on Pydantic AI's in-memory store -------------------------------


async def test_a_save_from_a_stale_copy_is_a_conflict_and_keeps_the_other(conversations: ConversationStore) -> None:
    await saved(conversations, "c", "one")
    a = await conversations.load("c")
    b = await conversations.load("c")
    assert a is not None
    assert b is not None
    a.messages.extend(turn("from a"))
    await conversations.save(a)
    b.messages.extend(turn("from b"))
    with pytest.raises(ConversationConflict):
        await conversations.save(b)
    assert texts(await conversations.load("c")) == ["one", "re: one", "from a", "re: from a"]
    a.messages.extend(turn("a again"))
    await conversations.save(a)  # the winner's copy goes on
    assert texts(await conversations.load("c"))[-2:] == ["a again", "re: a again"]


async def test_concurrent_first_saves_of_one_id_keep_exactly_one(conversations: ConversationStore) -> None:
    async def first_save(n: int) -> bool:
        conversation = Conversation(conversation_id="race", messages=turn(f"writer {n}"))
        await asyncio.sleep(0)
        try:
            await conversations.save(conversation)
        except ConversationConflict:
            return False
        return True

    won = await asyncio.gather(*(first_save(n) for n in range(8)))
    assert sum(won) == 1
    winner = won.index(True)
    assert texts(await conversations.load("race")) == [f"writer {winner}", f"re: writer {winner}"]


async def test_a_scope_keeps_a_conversation_to_its_owner(conversations: ConversationStore) -> None:
    await saved(conversations, "ada-1", "secret", scope="ada")
    await saved(conversations, "bob-1", "hello", scope="bob")
    assert await conversations.load("ada-1", scope="bob") is None
    with pytest.raises(ConversationConflict):
        await conversations.save(Conversation(conversation_id="ada-1", messages=turn("x")), scope="bob")
    await conversations.delete("ada-1", scope="bob")
    assert texts(await conversations.load("ada-1", scope="ada")) == ["secret", "re: secret"]
    listed = await conversations.list_conversations(scope="ada")
    assert [record.conversation_id for record in listed] == ["ada-1"]
    everyone = await conversations.list_conversations()
    assert [record.conversation_id for record in everyone] == ["bob-1", "ada-1"]  # newest first
    assert len(await conversations.list_conversations(limit=1)) == 1


async def test_load_with_a_limit_returns_the_newest_messages(conversations: ConversationStore) -> None:
    await saved(conversations, "c", *(f"t{i}" for i in range(6)))
    assert texts(await conversations.load("c", limit=3)) == ["re: t4", "t5", "re: t5"]
    assert texts(await conversations.load("c", limit=0)) == []
    assert len(texts(await conversations.load("c", limit=100))) == 12
    with pytest.raises(UserError):
        await conversations.load("c", limit=-1)


async def test_a_windowed_load_saves_onto_the_whole_conversation(conversations: ConversationStore) -> None:
    await saved(conversations, "c", "t0", "t1", "t2")
    window = await conversations.load("c", limit=2)
    assert window is not None
    window.messages.extend(turn("t3"))
    await conversations.save(window)
    assert texts(await conversations.load("c")) == [x for i in range(4) for x in (f"t{i}", f"re: t{i}")]


async def test_a_rewritten_history_branches_and_the_old_one_stays(conversations: ConversationStore) -> None:
    await saved(conversations, "c", "t0", "t1", "t2")
    rewritten = Conversation(conversation_id="c", messages=[*turn("t0"), *turn("other")])
    current = await conversations.load("c")
    assert current is not None
    rewritten.revision = current.revision
    await conversations.save(rewritten)
    assert texts(await conversations.load("c")) == ["t0", "re: t0", "other", "re: other"]
    record = await conversations.read_record("c")
    assert record is not None
    assert len(record.branches) == 1
    back = await conversations.branch("c", from_entry=record.branches[0], expected_revision=record.revision)
    assert texts(back) == [x for i in range(3) for x in (f"t{i}", f"re: t{i}")]
    assert texts(await conversations.load("c")) == texts(back)


async def test_branch_at_an_earlier_message_then_go_on(conversations: ConversationStore) -> None:
    start = await saved(conversations, "c", "t0", "t1", "t2")
    branched = await conversations.branch("c", at=2, expected_revision=start.revision)
    assert texts(branched) == ["t0", "re: t0"]
    branched.messages.extend(turn("edited"))
    await conversations.save(branched)
    assert texts(await conversations.load("c")) == ["t0", "re: t0", "edited", "re: edited"]
    with pytest.raises(ConversationConflict):
        await conversations.branch("c", at=1, expected_revision=start.revision)  # stale
    record = await conversations.read_record("c")
    assert record is not None
    old = await conversations.branch("c", from_entry=record.branches[-1], expected_revision=record.revision)
    assert texts(old)[-1] == "re: t2"


async def test_a_fork_shares_the_history_and_outlives_its_source(conversations: ConversationStore) -> None:
    await saved(conversations, "source", "t0", "t1", "t2")
    fork = await conversations.fork("source", at=4, new_conversation_id="fork")
    assert texts(fork) == ["t0", "re: t0", "t1", "re: t1"]
    fork.messages.extend(turn("fork only"))
    await conversations.save(fork)
    source = await conversations.load("source")
    assert source is not None
    source.messages.extend(turn("source only"))
    await conversations.save(source)
    assert texts(await conversations.load("fork"))[-2:] == ["fork only", "re: fork only"]
    assert texts(await conversations.load("source"))[-2:] == ["source only", "re: source only"]
    with pytest.raises(ConversationConflict):
        await conversations.fork("source", new_conversation_id="fork")  # taken
    await conversations.delete("source")
    assert await conversations.load("source") is None
    assert texts(await conversations.load("fork")) == ["t0", "re: t0", "t1", "re: t1", "fork only", "re: fork only"]
    again = await conversations.fork("fork", at=2, new_conversation_id="fork-of-fork")
    assert texts(again) == ["t0", "re: t0"]


async def test_delete_then_create_again_starts_empty(conversations: ConversationStore) -> None:
    old = await saved(conversations, "c", "t0")
    await conversations.delete("c")
    assert await conversations.load("c") is None
    old.messages.extend(turn("late"))
    with pytest.raises(ConversationConflict):
        await conversations.save(old)  # a copy loaded before the delete
    await saved(conversations, "c", "new")
    assert texts(await conversations.load("c")) == ["new", "re: new"]


# -- what only sessionware's store does ---------------------------------------------------------------------


@pytest.fixture
async def ours(store: BaseSessionStore) -> SessionwareConversationStore:
    return SessionwareConversationStore(store)


async def test_a_windowed_load_costs_the_same_at_10_and_at_400_messages(
    ours: SessionwareConversationStore, store: BaseSessionStore
) -> None:
    await saved(ours, "short", *(f"t{i}" for i in range(5)))
    await saved(ours, "long", *(f"t{i}" for i in range(200)))
    calls = LogCalls(store)
    fresh = SessionwareConversationStore(store)  # nothing remembered: the record says where the history lies
    for conversation_id in ("short", "long"):
        loaded = await fresh.load(conversation_id, limit=4)
        assert len(texts(loaded)) == 4
        assert calls.take() == {"get_versioned": 1, "log_read": 1}


async def test_a_save_reads_the_record_once_and_appends_only_the_new_messages(
    ours: SessionwareConversationStore, store: BaseSessionStore
) -> None:
    conversation = await saved(ours, "c", *(f"t{i}" for i in range(50)))
    calls = LogCalls(store)
    conversation.messages.extend(turn("next"))
    await ours.save(conversation)
    assert calls.take() == {"get_versioned": 1, "log_append": 1, "set_versioned": 1}


async def test_delete_removes_the_log_unless_a_fork_reads_it(ours: SessionwareConversationStore, store: Any) -> None:
    await saved(ours, "alone", "t0", "t1")
    await saved(ours, "forked", "t0", "t1")
    await ours.fork("forked", new_conversation_id="its-fork")
    logs = {cid: (await ours._state(ours._record_key(cid)))[0]["log"] for cid in ("alone", "forked")}  # type: ignore[index]
    await ours.delete("alone")
    await ours.delete("forked")
    assert await store.log_length(logs["alone"]) == 0
    assert await store.log_length(logs["forked"]) == 4
    assert len(texts(await ours.load("its-fork"))) == 4


async def test_a_conversation_expires_with_its_ttl(backend: str, store: BaseSessionStore, advance: Advance) -> None:
    expiring = SessionwareConversationStore(store, ttl=timedelta(seconds=1))
    await saved(expiring, "c", "t0")
    await advance(0.6)
    conversation = await expiring.load("c")
    assert conversation is not None
    conversation.messages.extend(turn("t1"))
    await expiring.save(conversation)  # a save extends it
    await advance(0.6)
    assert len(texts(await expiring.load("c"))) == 4
    await advance(1.5)
    assert await expiring.load("c") is None
    assert await expiring.list_conversations() == []


async def test_an_unreadable_record_is_a_typed_error_and_stays_as_it_is(
    ours: SessionwareConversationStore, store: Any
) -> None:
    key = ours._record_key("broken")
    await store.set_versioned(key, b"\xff not a record", expected=0)
    with pytest.raises(SessionDecodeError):
        await ours.load("broken")
    with pytest.raises(SessionDecodeError):
        await ours.save(Conversation(conversation_id="broken", messages=turn("x")))
    got = await store.get_versioned(key)
    assert got is not None
    assert got.data == b"\xff not a record"


def test_a_store_without_logs_is_refused_naming_the_store() -> None:
    class DictStore:
        async def get(self, key: str) -> Any:
            return None

        async def set(self, key: str, value: Any, ttl: Any = None) -> None:
            return None

        async def delete(self, key: str) -> None:
            return None

    with pytest.raises(InvalidValueError, match="store"):
        SessionwareConversationStore(DictStore())
    with pytest.raises(InvalidValueError, match="ttl"):
        SessionwareConversationStore(InMemorySessionStore(), ttl=-1)


async def test_through_encryption_nothing_is_readable_at_rest(store: Any) -> None:
    from sessionware import EncryptedStore, KeyRing

    from .test_encryption import KEY_A, SECRET, raw_bytes_everywhere

    sealed = SessionwareConversationStore(EncryptedStore(store, KeyRing({"k1": KEY_A})))
    await saved(sealed, "c", SECRET, scope="ada")
    state, _ = await sealed._state(sealed._record_key("c"))  # type: ignore[misc]
    keys = [key async for key in store.scan()]
    at_rest = await raw_bytes_everywhere(store, keys, [state["log"]])
    assert b"launch code" not in at_rest
    assert b"swe1:k1:" in at_rest
    assert texts(await sealed.load("c", scope="ada")) == [SECRET, f"re: {SECRET}"]


def test_without_the_extra_the_import_names_it() -> None:
    out = import_without("pydantic_ai", "sessionware.integrations.pydantic_ai_store")
    assert out.startswith("pydantic-ai ")
    assert "pip install 'sessionware[pydantic-ai]'" in out
