"""For any history and any window of it, every export is a request its provider's SDK accepts, with every
tool call answered and no result without its call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from anthropic.types import MessageParam
from google.genai import types as gemini_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import ResponseInputItemParam
from pydantic import TypeAdapter

from sessionware import Message
from sessionware.providers import (
    to_anthropic_messages,
    to_gemini_contents,
    to_openai_messages,
    to_openai_responses_input,
)
from sessionware.providers.parts import ImagePart, ReasoningPart, RefusalPart, TextPart

NOW = datetime(2026, 12, 2, tzinfo=UTC)
CHAT: TypeAdapter[Any] = TypeAdapter(ChatCompletionMessageParam)
RESPONSES: TypeAdapter[Any] = TypeAdapter(ResponseInputItemParam)
ANTHROPIC: TypeAdapter[Any] = TypeAdapter(MessageParam)


def materialize(value: Any) -> Any:
    """Consume the lazy iterators pydantic returns for ``Iterable[...]`` fields, validating every item."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v) for v in value]
    if isinstance(value, Iterator):
        return [materialize(v) for v in value]
    return value


texts = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)
extra_parts = st.one_of(
    st.builds(ImagePart, url=st.just("https://example.com/a.png")),
    st.builds(ReasoningPart, text=texts, signature=st.just("c2lnbmF0dXJl")),
    st.builds(RefusalPart, refusal=texts),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    """Random conversations: text, parts, tool calls answered late, early, never, or twice; stray results."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    pending: list[str] = []
    calls = 0
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["user", "assistant", "calls", "result", "stray"]))
        if kind == "user":
            parts: list[Any] = [TextPart(text=draw(texts))]
            if draw(st.booleans()):
                parts.append(ImagePart(url="https://example.com/cat.png"))
            messages.append({"role": "user", "content": parts if len(parts) > 1 else draw(texts)})
        elif kind == "assistant":
            content: list[Any] = [TextPart(text=draw(texts))]
            if draw(st.booleans()):
                content.insert(0, draw(extra_parts))
            messages.append({"role": "assistant", "content": content})
        elif kind == "calls":
            ids = []
            for _ in range(draw(st.integers(1, 3))):
                calls += 1
                ids.append(f"call_{calls}")
            text = draw(st.one_of(st.none(), texts))
            messages.append(
                {
                    "role": "assistant",
                    "content": text,
                    "tool_calls": [{"id": i, "name": "lookup", "arguments": {"q": i}} for i in ids],
                }
            )
            pending.extend(ids)
        elif kind == "result" and pending:
            call_id = pending.pop(draw(st.integers(0, len(pending) - 1)))
            messages.append(
                {"role": "tool", "content": draw(texts), "tool_call_id": call_id, "is_error": draw(st.booleans())}
            )
        else:
            messages.append(
                {"role": "tool", "content": draw(texts), "tool_call_id": f"stray_{draw(st.integers(0, 9))}"}
            )
    if messages and messages[0]["role"] != "user" and messages[0]["role"] != "system":
        messages.insert(0, {"role": "user", "content": "hi"})
    return [Message(seq=i + 1, created_at=NOW, **m) for i, m in enumerate(messages)]


def check_openai_chat(history: list[Message], dangling: Any) -> None:
    exported = to_openai_messages(history, unsupported="drop", dangling=dangling)
    open_calls: set[str] = set()
    for item in exported:
        materialize(CHAT.validate_python(item))
        if item["role"] == "tool":
            assert item["tool_call_id"] in open_calls, "a result without its call"
            open_calls.discard(item["tool_call_id"])
            continue
        assert not open_calls, f"calls {open_calls} left without results"
        open_calls = {call["id"] for call in item.get("tool_calls") or ()}
    assert not open_calls


def check_openai_responses(history: list[Message], dangling: Any) -> None:
    exported = to_openai_responses_input(history, unsupported="drop", dangling=dangling)
    called: set[str] = set()
    answered: set[str] = set()
    for item in exported:
        materialize(RESPONSES.validate_python(item))
        if item.get("type") == "function_call":
            called.add(item["call_id"])
        elif item.get("type") == "function_call_output":
            assert item["call_id"] in called - answered, "a result without its call"
            answered.add(item["call_id"])
    assert called == answered


def check_anthropic(history: list[Message], dangling: Any) -> None:
    exported = to_anthropic_messages(history, unsupported="drop", dangling=dangling)
    previous_role = None
    waiting: set[str] = set()
    for turn in exported["messages"]:
        materialize(ANTHROPIC.validate_python(turn))
        assert turn["role"] != previous_role, "two turns of one role in a row"
        previous_role = turn["role"]
        blocks = turn["content"] if isinstance(turn["content"], list) else []
        results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        assert results == waiting, "every tool_use is answered in the very next turn, and only then"
        waiting = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    assert not waiting


def check_gemini(history: list[Message], dangling: Any) -> None:
    exported = to_gemini_contents(history, unsupported="drop", dangling=dangling)
    waiting = 0
    for content in exported["contents"]:
        parsed = gemini_types.Content.model_validate(content)
        parts = parsed.parts or []
        responses = sum(1 for p in parts if p.function_response is not None)
        assert responses == waiting, "every function_call is answered in the next content"
        waiting = sum(1 for p in parts if p.function_call is not None)
    assert waiting == 0
    if "system_instruction" in exported:
        gemini_types.GenerateContentConfig.model_validate({"system_instruction": exported["system_instruction"]})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), data=st.data())
def test_every_window_of_every_history_exports_to_a_valid_request(history: list[Message], data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(history)))
    end = data.draw(st.integers(start, len(history)))
    window = history[start:end]
    dangling = data.draw(st.sampled_from(["interrupt", "drop"]))
    check_openai_chat(window, dangling)
    check_openai_responses(window, dangling)
    check_anthropic(window, dangling)
    check_gemini(window, dangling)
