"""OpenAI and Anthropic exports, checked against the official SDKs' typed request params."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter, ValidationError

from sessionware.agents import Message, SessionManager, to_anthropic_messages, to_openai_messages

OPENAI_MESSAGE: TypeAdapter[Any] = TypeAdapter(ChatCompletionMessageParam)
ANTHROPIC_MESSAGE: TypeAdapter[Any] = TypeAdapter(MessageParam)


def materialize(value: Any) -> Any:
    """Consume the lazy iterators pydantic returns for ``Iterable[...]`` fields, validating every item."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v) for v in value]
    if isinstance(value, Iterator):
        return [materialize(v) for v in value]
    return value


def sdk_openai(item: dict[str, Any]) -> Any:
    return materialize(OPENAI_MESSAGE.validate_python(item))


def sdk_anthropic(item: dict[str, Any]) -> Any:
    return materialize(ANTHROPIC_MESSAGE.validate_python(item))


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": "Use metric units."},
    {"role": "user", "content": "Weather in Oslo and Rome? 🌦", "name": "ada"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "name": "weather", "arguments": {"city": "Oslo", "units": ["c"]}},
            {"id": "call_b", "name": "weather", "arguments": {"city": "Rome"}},
        ],
    },
    {"role": "tool", "content": '{"sky": "rain", "t": 4}', "tool_call_id": "call_a"},
    {"role": "tool", "content": '{"sky": "sun", "t": 19}', "tool_call_id": "call_b"},
    {"role": "assistant", "content": "Oslo: rain, 4 °C. Rome: sun, 19 °C.", "name": "bot"},
    {"role": "user", "content": "And tomorrow?"},
    {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "call_c", "name": "forecast", "arguments": {}}],
    },
    {"role": "tool", "content": "dry", "tool_call_id": "call_c"},
]


@pytest.fixture
async def history() -> list[Message]:
    manager = SessionManager()
    session = await manager.create_session("u")
    await manager.add_messages(session.id, CONVERSATION)
    return await manager.history(session.id)


async def test_openai_export_matches_the_sdk_types(history: list[Message]) -> None:
    exported = to_openai_messages(history)
    assert [sdk_openai(item) for item in exported] == exported
    assert [m["role"] for m in exported] == [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert exported[2] == {"role": "user", "content": "Weather in Oslo and Rome? 🌦", "name": "ada"}
    assert exported[3] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo", "units": ["c"]}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
        ],
    }
    assert exported[4] == {"role": "tool", "tool_call_id": "call_a", "content": '{"sky": "rain", "t": 4}'}
    assert exported[8]["content"] == "Let me look."
    create = inspect.signature(openai.OpenAI(api_key="unused").chat.completions.create)
    create.bind(model="any-model", messages=exported)


async def test_anthropic_export_matches_the_sdk_types(history: list[Message]) -> None:
    exported = to_anthropic_messages(history)
    assert exported["system"] == "You are terse.\n\nUse metric units."
    turns = exported["messages"]
    assert [sdk_anthropic(turn) for turn in turns] == turns
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Oslo", "units": ["c"]}},
        {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"city": "Rome"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": '{"sky": "rain", "t": 4}'},
        {"type": "tool_result", "tool_use_id": "call_b", "content": '{"sky": "sun", "t": 19}'},
    ]
    assert turns[4] == {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}
    assert turns[5]["content"][0] == {"type": "text", "text": "Let me look."}
    assert turns[6]["content"] == [{"type": "tool_result", "tool_use_id": "call_c", "content": "dry"}]
    create = inspect.signature(anthropic.Anthropic(api_key="unused").messages.create)
    create.bind(model="any-model", max_tokens=100, **exported)


async def test_the_sdk_validation_used_here_does_reject_bad_shapes() -> None:
    with pytest.raises(ValidationError):
        sdk_openai({"role": "tool", "content": "no call id"})
    with pytest.raises(ValidationError):
        sdk_anthropic({"role": "user", "content": [{"type": "tool_result", "content": "no id"}]})
    with pytest.raises(ValidationError):
        sdk_anthropic({"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "f"}]})


async def test_exported_windows_never_start_with_an_orphaned_tool_result() -> None:
    manager = SessionManager()
    session = await manager.create_session("u")
    await manager.add_messages(session.id, CONVERSATION)
    for last in range(1, len(CONVERSATION) + 1):
        window = await manager.history(session.id, last=last)
        assert not window or window[0].role != "tool"
        for exported in (to_openai_messages(window), to_anthropic_messages(window)["messages"]):
            _assert_every_result_answers_an_earlier_call(exported)
        for item in to_openai_messages(window):
            sdk_openai(item)
        for turn in to_anthropic_messages(window)["messages"]:
            sdk_anthropic(turn)
    snapshot = await manager.get_session(session.id, history=5)
    assert snapshot is not None
    assert [m.seq for m in snapshot.conversation_history] == [7, 8, 9, 10]
    snapshot = await manager.get_session(session.id, history=3)
    assert snapshot is not None
    assert [m.role for m in snapshot.conversation_history] == ["user", "assistant", "tool"]
    assert to_openai_messages(snapshot)[0] == {"role": "user", "content": "And tomorrow?"}


def _assert_every_result_answers_an_earlier_call(exported: list[dict[str, Any]]) -> None:
    called: set[str] = set()
    for item in exported:
        for call in item.get("tool_calls", []):
            called.add(call["id"])
        if item["role"] == "tool":
            assert item["tool_call_id"] in called
        content = item.get("content")
        if isinstance(content, list):
            for block in content:
                if block["type"] == "tool_use":
                    called.add(block["id"])
                if block["type"] == "tool_result":
                    assert block["tool_use_id"] in called


async def test_exports_drop_results_that_answer_no_call(history: list[Message]) -> None:
    orphaned = history[4:]
    assert orphaned[0].role == "tool"
    openai_items = to_openai_messages(orphaned)
    assert [m["role"] for m in openai_items] == ["assistant", "user", "assistant", "tool"]
    anthropic_turns = to_anthropic_messages(orphaned)
    assert "system" not in anthropic_turns
    assert anthropic_turns["messages"][0]["role"] == "assistant"
    _assert_every_result_answers_an_earlier_call(openai_items)
    _assert_every_result_answers_an_earlier_call(anthropic_turns["messages"])


async def test_anthropic_merges_turns_and_leaves_out_empty_text() -> None:
    manager = SessionManager()
    session = await manager.create_session("u")
    await manager.add_messages(
        session.id,
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "t1", "name": "f", "arguments": {}}]},
            {"role": "tool", "content": "", "tool_call_id": "t1"},
            {"role": "user", "content": "three"},
        ],
    )
    exported = to_anthropic_messages(await manager.history(session.id))
    assert exported == {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": ""},
                    {"type": "text", "text": "three"},
                ],
            },
        ]
    }
    for turn in exported["messages"]:
        assert sdk_anthropic(turn) == turn


def test_exports_send_tool_call_arguments_as_the_model_wrote_them() -> None:
    from datetime import UTC, datetime

    from sessionware.agents import ToolCall

    text = '{"city":"Oslo"}'
    now = datetime.now(UTC)
    history = [
        Message(seq=1, role="user", content="Weather?", created_at=now),
        Message(
            seq=2,
            role="assistant",
            content=None,
            tool_calls=(ToolCall(id="t", name="weather", arguments=text),),
            created_at=now,
        ),
        Message(seq=3, role="tool", content="rain", tool_call_id="t", created_at=now),
    ]
    openai_items = to_openai_messages(history)
    assert openai_items[1]["tool_calls"][0]["function"]["arguments"] == text
    assert [sdk_openai(item) for item in openai_items] == openai_items
    anthropic_turns = to_anthropic_messages(history)["messages"]
    assert anthropic_turns[1]["content"] == [
        {"type": "tool_use", "id": "t", "name": "weather", "input": {"city": "Oslo"}}
    ]
    assert [sdk_anthropic(turn) for turn in anthropic_turns] == anthropic_turns


def test_the_agents_exports_are_the_provider_formats() -> None:
    import sessionware
    from sessionware import agents, providers

    assert agents.to_openai_messages is providers.to_openai_messages is sessionware.to_openai_messages
    assert agents.to_anthropic_messages is providers.to_anthropic_messages is sessionware.to_anthropic_messages
