"""The OpenAI Agents SDK's Session over a SessionManager, on every backend.

The SDK's own ``Runner`` runs turns with a scripted ``Model`` (canned responses
with reasoning, a function tool call and a final message; no network), and the
cases of the SDK's session tests (tests/memory/test_session.py,
test_session_limit.py) are restated: ordering, limits and settings, pop, clear,
isolation between ids, concurrent adds, unicode and SQL-looking text, and
items of every kind coming back exactly as they were added.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, cast

import pytest

agents = pytest.importorskip("agents")

from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.memory import Session as SDKSession  # noqa: E402
from agents.memory import SessionSettings  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage  # noqa: E402
from openai.types.responses import (  # noqa: E402
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary  # noqa: E402

import sessionware.integrations.openai_agents as integration  # noqa: E402
from sessionware import BaseSessionStore, InvalidValueError, SessionManager  # noqa: E402
from sessionware.agents import SessionNotFoundError  # noqa: E402
from sessionware.integrations.openai_agents import SessionwareSession  # noqa: E402
from sessionware.store import PurgeableStore  # noqa: E402
from sessionware.testing import Advance  # noqa: E402

from .helpers import import_without, run_module_example, run_worker_processes  # noqa: E402
from .test_agents_lifecycle import twin  # noqa: E402

set_tracing_disabled(True)

ID = "conversation-0001-of-ada"
OTHER = "conversation-0002-of-ada"


class ScriptedModel(Model):
    """A model that answers each call with the next canned output and records the input it was given."""

    def __init__(self, *turns: list[Any]) -> None:
        self.turns = list(turns)
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        self.inputs.append(json.loads(json.dumps(input)))
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests run non-streamed turns")


def say(text: str, n: int) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def think_and_call(city: str, n: int) -> list[Any]:
    return [
        ResponseReasoningItem(
            id=f"rs_{n}",
            type="reasoning",
            summary=[Summary(type="summary_text", text="look it up")],
            encrypted_content="gAAA",
        ),
        ResponseFunctionToolCall(
            id=f"fc_{n}",
            type="function_call",
            call_id=f"call_{n}",
            name="weather",
            arguments=json.dumps({"city": city}),
            status="completed",
        ),
    ]


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture
async def manager(store: BaseSessionStore) -> AsyncIterator[SessionManager]:
    m = SessionManager(store)
    yield m
    await m.close()


@pytest.fixture
async def other(store: BaseSessionStore, tmp_path: Path) -> AsyncIterator[SessionManager]:
    """A second manager on the same data over its own store instance (its own connections), as another process."""
    other_store = twin(store, tmp_path)
    yield SessionManager(other_store)
    if other_store is not store:
        await other_store.close()


@pytest.fixture(params=["local", "distributed"])
async def writers(
    request: pytest.FixtureRequest, manager: SessionManager, other: SessionManager
) -> AsyncIterator[list[SessionManager]]:
    """The managers concurrent writers use: one (local isolation, one process), or two over their own store
    instances with distributed isolation, as two processes would run."""
    if request.param == "local":
        yield [manager]
        return
    yield [SessionManager(m.store, isolation="distributed", lease=5) for m in (manager, other)]


Item = dict[str, Any]


async def add(session: SessionwareSession, items: Any) -> None:
    """``session.add_items`` with items typed loosely (the tests also pass items the SDK's types forbid)."""
    await session.add_items(items)


async def items_of(session: SessionwareSession, limit: int | None = None) -> list[Item]:
    return cast(list[Item], await session.get_items(limit=limit))


async def pop(session: SessionwareSession) -> Item | None:
    return cast(Item | None, await session.pop_item())


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


# Items of every kind the Responses input takes, in the shapes the SDK writes them (and some it never does).
EVERY_KIND: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "developer", "content": [{"type": "input_text", "text": "Use metric units."}]},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is in these?"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
            {"type": "input_image", "file_id": "file-img", "detail": "auto"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
            {"type": "input_file", "file_id": "file-abc"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "two steps"}, {"type": "summary_text", "text": "then answer"}],
        "content": [{"type": "reasoning_text", "text": "raw thoughts"}],
        "encrypted_content": "gAAAAB-opaque",
        "status": None,
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city": "Paris", "units": ["c", 1, 2.5, null, true]}',
        "status": "completed",
    },
    {"type": "function_call", "call_id": "call_2", "name": "broken", "arguments": "{not json"},
    {"type": "function_call", "call_id": "call_3", "name": "listy", "arguments": "[1, 2]"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
    {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [
            {"type": "input_text", "text": "see image"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBO"},
        ],
    },
    {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "paris"}},
    {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": "call_4",
        "action": {"type": "click", "x": 1, "y": 2, "button": "left"},
        "pending_safety_checks": [],
        "status": "completed",
    },
    {"type": "item_reference", "id": "msg_old"},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Sunny [1].",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://w.example",
                        "title": "W",
                        "start_index": 7,
                        "end_index": 10,
                    }
                ],
                "logprobs": [],
            },
            {"type": "refusal", "refusal": "I will not say more."},
        ],
    },
    {"type": "message", "role": "user", "content": [{"type": "future_part", "payload": {"x": 1}}]},
    {"role": "user", "content": "こんにちは 😊 Привет", "extra_key": {"nested": [None, {"deep": None}]}},
    {"role": "assistant", "content": "Robert'); DROP TABLE students;--"},
    {"role": "user", "content": '"SELECT * FROM users WHERE name = "admin";"'},
]


# -- the SDK's Runner over every backend ----------------------------------------------------------


def test_it_is_an_sdk_session() -> None:
    session = SessionwareSession(ID, SessionManager(), user_id="ada")
    assert isinstance(session, SDKSession)
    assert session.session_id == ID
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit is None


async def test_runner_turns_with_a_tool_call(manager: SessionManager, other: SessionManager) -> None:
    model = ScriptedModel(
        think_and_call("Paris", 1),
        [say("It is sunny in Paris.", 1)],
        [say("You asked about Paris.", 2)],
        think_and_call("Rome", 3),
        [say("Rome is sunny too.", 3)],
    )
    agent = Agent(name="weather", instructions="Answer briefly.", model=model, tools=[weather])
    session = SessionwareSession(ID, manager, user_id="ada")

    first = await Runner.run(agent, "Weather in Paris?", session=session)
    assert first.final_output == "It is sunny in Paris."
    second = await Runner.run(agent, "What did I ask?", session=session)
    assert second.final_output == "You asked about Paris."
    third = await Runner.run(agent, cast(Any, [user("And Rome?")]), session=session)
    assert third.final_output == "Rome is sunny too."

    items = await items_of(session)
    kinds = [item.get("type", "message") for item in items]
    assert kinds == [
        "message", "reasoning", "function_call", "function_call_output", "message",  # turn 1
        "message", "message",  # turn 2
        "message", "reasoning", "function_call", "function_call_output", "message",  # turn 3
    ]  # fmt: skip
    assert items[3] == {"call_id": "call_1", "output": "sunny in Paris", "type": "function_call_output"}
    assert items[1]["encrypted_content"] == "gAAA"
    # every model call saw the whole conversation so far, exactly as stored
    assert model.inputs[1] == items[:4]
    assert model.inputs[2] == items[:6]
    assert model.inputs[4] == items[:11]

    # the conversation is a sessionware session of ada, readable by the manager and by another process
    stored = await manager.get_session(ID, user_id="ada")
    assert stored is not None
    assert stored.user_id == "ada"
    assert [m.role for m in stored.conversation_history][:5] == ["user", "assistant", "assistant", "tool", "assistant"]
    assert stored.conversation_history[2].tool_calls[0].arguments == {"city": "Paris"}
    assert stored.conversation_history[4].text == "It is sunny in Paris."
    again = SessionwareSession(ID, other, user_id="ada")
    assert await items_of(again) == items


async def test_runner_with_a_limit_from_the_run_config(manager: SessionManager) -> None:
    """The SDK's session-limit tests: the model sees the newest N items, an output without its call dropped."""
    session = SessionwareSession(ID, manager, user_id="ada")
    history: list[dict[str, Any]] = [
        user("What is the weather?"),
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        },
    ]
    await add(session, history)
    assert await items_of(session, limit=2) == history[-2:]
    model = ScriptedModel([say("Tomorrow too.", 1)], [say("Hi.", 2)], [say("All.", 3)])
    agent = Agent(name="a", model=model)
    limited = RunConfig(session_settings=SessionSettings(limit=2))
    await Runner.run(agent, "What about tomorrow?", session=session, run_config=limited)
    assert model.inputs[-1] == [history[-1], user("What about tomorrow?")]
    await Runner.run(agent, "Hello", session=session, run_config=RunConfig(session_settings=SessionSettings(limit=0)))
    assert model.inputs[-1] == [user("Hello")]
    await Runner.run(agent, "Everything?", session=session)
    assert len(model.inputs[-1]) == len(history) + 4 + 1


# -- the SDK's session cases, restated ------------------------------------------------------------


async def test_every_kind_of_item_comes_back_exactly(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada")
    await add(session, EVERY_KIND[:5])
    await add(session, EVERY_KIND[5:])
    got = await items_of(session)
    assert got == EVERY_KIND
    assert json.dumps(got) == json.dumps(EVERY_KIND)  # same key order, None kept, no key added
    for n in range(len(EVERY_KIND) + 2):
        assert await items_of(session, limit=n) == (EVERY_KIND[-n:] if n else [])
    # the history holds them as messages the other surfaces read
    history = await manager.history(ID, user_id="ada")
    assert len(history) == len(EVERY_KIND)
    assert history[4].tool_calls[0].arguments == {"city": "Paris", "units": ["c", 1, 2.5, None, True]}
    assert history[7].role == "tool"
    assert history[7].tool_call_id == "call_1"
    assert history[2].text == "What is in these?"


async def test_get_items_order_and_limit(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada")
    assert await items_of(session) == []
    items = [m for i in range(1, 4) for m in (user(f"Message {i}"), assistant(f"Response {i}"))]
    await add(session, items)
    assert await items_of(session) == items
    assert await items_of(session, limit=2) == items[4:]
    assert await items_of(session, limit=4) == items[2:]
    assert await items_of(session, limit=10) == items
    assert await items_of(session, limit=0) == []
    with pytest.raises(InvalidValueError, match="limit"):
        await items_of(session, limit=-1)


async def test_session_settings_give_the_default_limit(manager: SessionManager) -> None:
    items = [user(f"Message {i}") for i in range(10)]
    three = SessionwareSession(ID, manager, user_id="ada", session_settings=SessionSettings(limit=3))
    await add(three, items)
    assert await items_of(three) == items[-3:]
    assert await items_of(three, limit=2) == items[-2:]  # an explicit limit wins
    as_dict = SessionwareSession(ID, manager, user_id="ada", session_settings={"limit": 0})
    assert isinstance(as_dict.session_settings, SessionSettings)
    assert await items_of(as_dict) == []
    assert await items_of(as_dict, limit=1) == items[-1:]
    with pytest.raises(InvalidValueError, match="limitt"):
        SessionwareSession(ID, manager, user_id="ada", session_settings={"limitt": 1})


async def test_isolation_between_ids(manager: SessionManager) -> None:
    one = SessionwareSession(ID, manager, user_id="ada")
    two = SessionwareSession(OTHER, manager, user_id="ada")
    await add(one, [user("Session 1 message")])
    await add(two, [user("Session 2 message 1"), user("Session 2 message 2")])
    assert await items_of(one) == [user("Session 1 message")]
    assert await items_of(two) == [user("Session 2 message 1"), user("Session 2 message 2")]
    sessions = (await manager.list_sessions("ada")).sessions
    assert sorted(s.id for s in sessions) == sorted([ID, OTHER])


async def test_concurrent_adds_keep_every_batch_whole_and_in_order(
    manager: SessionManager, writers: list[SessionManager]
) -> None:
    """Many writers at once, the first of them creating the session: nothing lost, each batch contiguous."""
    sessions = [SessionwareSession(ID, m, user_id="ada") for m in writers for _ in range(8 // len(writers))]

    async def write(w: int) -> None:
        for b in range(5):
            batch = [user(f"w{w} b{b} {k}") for k in range(3)]
            await add(sessions[w], batch)

    await asyncio.gather(*(write(w) for w in range(len(sessions))))
    got = [item["content"] for item in await items_of(sessions[0])]
    assert len(got) == len(sessions) * 5 * 3
    assert sorted(got) == sorted(f"w{w} b{b} {k}" for w in range(len(sessions)) for b in range(5) for k in range(3))
    for start in range(0, len(got), 3):
        w, b, _ = got[start].split()
        assert got[start : start + 3] == [f"{w} {b} {k}" for k in range(3)]
    for w in range(len(sessions)):
        mine = [c for c in got if c.startswith(f"w{w} ")]
        assert mine == [f"w{w} b{b} {k}" for b in range(5) for k in range(3)]
    assert [s.id for s in (await manager.list_sessions("ada")).sessions] == [ID]


async def test_pop_item_takes_the_newest_item_back(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada")
    assert await pop(session) is None  # nothing yet (and the session is not created by it)
    assert await manager.get_session(ID) is None
    await add(session, [user("Hello"), assistant("Hi there!"), user("How are you?")])
    assert await pop(session) == user("How are you?")
    assert await items_of(session) == [user("Hello"), assistant("Hi there!")]
    assert await pop(session) == assistant("Hi there!")
    assert await pop(session) == user("Hello")
    assert await pop(session) is None
    assert await items_of(session) == []
    # items of every kind come back exactly, newest first
    await add(session, EVERY_KIND)
    popped = [await pop(session) for _ in EVERY_KIND]
    assert popped == EVERY_KIND[::-1]
    assert await pop(session) is None


async def test_pop_item_only_affects_its_session(manager: SessionManager) -> None:
    one = SessionwareSession(ID, manager, user_id="ada")
    two = SessionwareSession(OTHER, manager, user_id="ada")
    await add(one, [user("Session 1 message")])
    await add(two, [user("Session 2 message 1"), user("Session 2 message 2")])
    assert await pop(two) == user("Session 2 message 2")
    assert await items_of(one) == [user("Session 1 message")]
    assert await items_of(two) == [user("Session 2 message 1")]


async def test_concurrent_pops_never_return_the_same_item(
    manager: SessionManager, writers: list[SessionManager]
) -> None:
    added = [user(f"Message {i}") for i in range(12)]
    await add(SessionwareSession(ID, manager, user_id="ada"), added)
    poppers = [SessionwareSession(ID, m, user_id="ada") for m in writers for _ in range(16 // len(writers))]
    popped = await asyncio.gather(*(pop(p) for p in poppers))
    taken = [item for item in popped if item is not None]
    assert len(taken) == len(added)
    assert sorted(json.dumps(item) for item in taken) == sorted(json.dumps(item) for item in added)
    assert await items_of(poppers[0]) == []


async def test_clear_session_empties_the_history_and_keeps_the_session(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada", metadata={"app": "demo"})
    await session.clear_session()  # nothing to clear: no error, nothing created
    assert await manager.get_session(ID) is None
    await add(session, [user("Hello"), assistant("Hi there!")])
    other = SessionwareSession(OTHER, manager, user_id="ada")
    await add(other, [user("stays")])
    await session.clear_session()
    assert await items_of(session) == []
    assert await pop(session) is None
    assert await items_of(other) == [user("stays")]
    kept = await manager.get_session(ID, user_id="ada")
    assert kept is not None
    assert kept.metadata == {"app": "demo"}
    assert kept.message_count == 0
    await add(session, [user("Again")])
    assert await items_of(session) == [user("Again")]


async def test_runner_after_a_retracted_turn(manager: SessionManager) -> None:
    """The SDK's pattern for correcting a question: pop the answer and the question, then run again."""
    model = ScriptedModel([say("Paris.", 1)], [say("Rome.", 2)])
    agent = Agent(name="a", model=model)
    session = SessionwareSession(ID, manager, user_id="ada")
    await Runner.run(agent, "Capital of France?", session=session)
    answer = await pop(session)
    assert answer is not None
    assert answer["content"][0]["text"] == "Paris."
    assert await pop(session) == user("Capital of France?")
    result = await Runner.run(agent, "Capital of Italy?", session=session)
    assert result.final_output == "Rome."
    assert model.inputs[-1] == [user("Capital of Italy?")]
    assert [item.get("role") for item in await items_of(session)] == ["user", "assistant"]


# -- ownership, bad input, other writers ----------------------------------------------------------


async def test_another_users_session_is_invisible_and_refused(manager: SessionManager) -> None:
    ada = SessionwareSession(ID, manager, user_id="ada")
    await add(ada, [user("secret plans")])
    bob = SessionwareSession(ID, manager, user_id="bob")
    assert await items_of(bob) == []
    with pytest.raises(SessionNotFoundError):
        await add(bob, [user("let me in")])
    assert await pop(bob) is None
    await bob.clear_session()
    assert await items_of(ada) == [user("secret plans")]
    stored = await manager.get_session(ID)
    assert stored is not None
    assert stored.user_id == "ada"
    assert [s.id for s in (await manager.list_sessions("bob")).sessions] == []


async def test_any_string_names_a_session_as_the_sdk_allows(manager: SessionManager) -> None:
    short = SessionwareSession("conversation_123", manager, user_id="ada")
    other = SessionwareSession("conversation_124", manager, user_id="ada")
    await add(short, [user("hello")])
    assert short.session_id == "conversation_123"
    assert await short.get_items() == [user("hello")]
    assert await other.get_items() == []
    assert await SessionwareSession("conversation_123", manager, user_id="ada").get_items() == [user("hello")]


async def test_bad_input_is_refused_and_nothing_is_stored(manager: SessionManager) -> None:
    with pytest.raises(InvalidValueError, match="conversation_id"):
        SessionwareSession("", manager, user_id="ada")
    with pytest.raises(InvalidValueError, match="user_id"):
        SessionwareSession(ID, manager, user_id="")
    with pytest.raises(InvalidValueError, match="ttl"):
        SessionwareSession(ID, manager, user_id="ada", ttl=-1)
    with pytest.raises(InvalidValueError, match="metadata"):
        SessionwareSession(ID, manager, user_id="ada", metadata=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="manager"):
        SessionwareSession(ID, "memory://", user_id="ada")  # type: ignore[arg-type]
    session = SessionwareSession(ID, manager, user_id="ada")
    await add(session, [user("kept")])
    with pytest.raises(InvalidValueError, match="items"):
        await add(session, user("not a list"))
    with pytest.raises(InvalidValueError, match=r"items\[1\]"):
        await add(session, [user("fine"), "not an item"])
    with pytest.raises(InvalidValueError, match=r"items\[1\]"):
        await add(session, [user("fine"), {"role": "user", "content": "x", "score": math.nan}])
    with pytest.raises(InvalidValueError, match=r"items\[0\]"):
        await add(session, [{"type": "function_call", "call_id": "c", "name": "f", "arguments": object()}])
    await session.add_items([])
    assert await items_of(session) == [user("kept")]


async def test_messages_added_by_the_manager_come_back_as_items(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada")
    await add(session, [user("hi")])
    await manager.add_message(ID, "assistant", None, tool_calls=[{"id": "c1", "name": "f", "arguments": {"a": 1}}])
    await manager.add_message(ID, "tool", "done", tool_call_id="c1")
    await manager.add_message(ID, "assistant", "Finished.")
    assert await items_of(session) == [
        user("hi"),
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
        {"type": "message", "role": "assistant", "content": "Finished."},
    ]


async def test_the_first_add_uses_the_ttl_and_metadata_given(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada", ttl=3600, metadata={"app": "demo"})
    await add(session, [user("hi")])
    stored = await manager.get_session(ID)
    assert stored is not None
    assert stored.ttl == 3600
    assert stored.metadata == {"app": "demo"}


# -- lifetime, and turns held whole ------------------------------------------------------------


async def test_conversations_expire_and_are_purged(store: BaseSessionStore, advance: Advance) -> None:
    manager = SessionManager(store)
    model = ScriptedModel([say("Hi.", 1)], [say("Hi again.", 2)])
    agent = Agent(name="a", model=model)
    session = SessionwareSession(ID, manager, user_id="ada", ttl=0.3)
    await session.run(agent, "Hello")
    assert len(await items_of(session)) == 2
    await advance(3 * 0.3)
    assert await items_of(session) == []
    assert await manager.get_session(ID, user_id="ada") is None
    purged = await manager.purge_expired()
    assert purged >= 1 if isinstance(store, PurgeableStore) else purged == 0
    await session.run(agent, "Hello?")
    assert model.inputs[-1] == [user("Hello?")], "an expired conversation starts afresh under its id"
    assert [item["role"] for item in await items_of(session)] == ["user", "assistant"]
    stored = await manager.get_session(ID, user_id="ada")
    assert stored is not None
    assert stored.ttl == 0.3


class CountingModel(Model):
    """Answers ``saw <n>`` (``n``: the items before the turn's input), slowly enough for another turn to slip in."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        await asyncio.sleep(0.01)
        self.calls += 1
        return ModelResponse(output=[say(f"saw {len(input) - 1}", self.calls)], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests run non-streamed turns")


def check_turns_in_order(items: list[Item], prompts: list[str]) -> None:
    """Every turn is its user item then the answer, contiguous; each answer saw exactly the items before it;
    every prompt is there once."""
    assert len(items) == 2 * len(prompts)
    for index in range(0, len(items), 2):
        question, answer = items[index], items[index + 1]
        assert question["role"] == "user"
        assert answer["role"] == "assistant"
        assert answer["content"][0]["text"] == f"saw {index}", f"turn {index // 2} ran on a stale history"
    assert sorted(item["content"] for item in items[::2]) == sorted(prompts), "no turn lost"


async def test_concurrent_runs_in_turns_never_interleave(writers: list[SessionManager]) -> None:
    isolation: Literal["local", "distributed"] = "local" if len(writers) == 1 else "distributed"
    sessions = [
        SessionwareSession(ID, m, user_id="ada", isolation=isolation, lease=5)
        for m in writers
        for _ in range(6 // len(writers))
    ]
    agent = Agent(name="counter", model=CountingModel())

    async def runs(w: int) -> None:
        for t in range(2):
            await sessions[w].run(agent, f"w{w} t{t}")

    await asyncio.gather(*(runs(w) for w in range(len(sessions))))
    check_turns_in_order(await items_of(sessions[0]), [f"w{w} t{t}" for w in range(len(sessions)) for t in range(2)])


async def test_a_turn_can_wrap_the_runner_itself(manager: SessionManager) -> None:
    session = SessionwareSession(ID, manager, user_id="ada")
    agent = Agent(name="counter", model=CountingModel())

    async def held(n: int) -> None:
        async with session.turn():
            await Runner.run(agent, f"q{n}", session=session)

    await asyncio.gather(*(held(n) for n in range(4)))
    check_turns_in_order(await items_of(session), [f"q{n}" for n in range(4)])
    with pytest.raises(InvalidValueError, match="isolation"):
        SessionwareSession(ID, manager, user_id="ada", isolation="none")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["redis", "postgres", "sqlite"], indirect=True)
async def test_four_processes_running_turns_of_one_conversation_never_interleave(store_url: str) -> None:
    turns = 3
    config = {"url": store_url, "user": "ada", "conversation": ID, "start_at": time.time() + 3, "turns": turns}
    workers = [{**config, "worker": w} for w in range(4)]
    await asyncio.to_thread(run_worker_processes, "tests.openai_agents_worker", workers)
    manager = SessionManager(store_url)
    try:
        items = await items_of(SessionwareSession(ID, manager, user_id="ada"))
    finally:
        await manager.close()
    check_turns_in_order(items, [f"w{w} t{t}" for w in range(4) for t in range(turns)])


# -- the extra, and the module's own example ------------------------------------------------------


def test_without_the_sdk_the_integration_names_its_extra() -> None:
    out = import_without("agents", "sessionware.integrations.openai_agents")
    assert out.startswith("openai-agents ")
    assert "pip install 'sessionware[openai-agents]'" in out


def test_the_module_example_runs_as_written(tmp_path: Path) -> None:
    done = run_module_example(integration, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sunny" in done.stdout


async def test_a_forked_or_rewound_session_reads_its_whole_history(manager: SessionManager) -> None:
    ada = SessionwareSession(ID, manager, user_id="ada")
    await add(ada, [user("one"), user("two"), user("three")])
    fork = await manager.fork_session(ID, at=2, user_id="ada")
    forked = SessionwareSession(fork.id, manager, user_id="ada")
    await add(forked, [user("fork's own")])
    assert await items_of(forked) == [user("one"), user("two"), user("fork's own")]
    await manager.rewind(ID, to=1, user_id="ada")
    assert await items_of(ada) == [user("one")]
    assert await forked.get_items(limit=2) == [user("two"), user("fork's own")]
