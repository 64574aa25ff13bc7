"""Messages hold what the model APIs produce: content parts, reasoning, refusals, provider items, stored
losslessly on every backend; exports keep every tool call together with its result."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sessionware import BaseSessionStore, InvalidValueError, SessionManager
from sessionware.providers.common import INTERRUPTED, paired
from sessionware.providers.parts import (
    AudioPart,
    FilePart,
    ImagePart,
    ProviderPart,
    ReasoningPart,
    RefusalPart,
    TextPart,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.fixture
async def manager(store: BaseSessionStore) -> SessionManager:
    return SessionManager(store)


async def test_every_kind_of_part_round_trips_exactly(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    item = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"query": "oslo"}}
    sent: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in this picture and this PDF?"},
                {"type": "image", "data": PNG, "media_type": "image/png"},
                ImagePart(url="https://example.com/cat.jpg", detail="low"),
                {"type": "file", "data": b"%PDF-1.7 \x00\xff", "media_type": "application/pdf", "filename": "a.pdf"},
                {"type": "audio", "data": b"RIFF\x00\x01", "media_type": "audio/wav", "transcript": "hello"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "The user wants...", "signature": "EqQBCkYIARgCKkD+/="},
                {"type": "reasoning", "encrypted": "gAAAAABo-opaque==", "redacted": True},
                {"type": "refusal", "refusal": "I can't identify people."},
                {"type": "text", "text": "A cat, and a one-page PDF."},
                {"type": "provider", "provider": "openai.responses", "data": item},
            ],
            "source": {"provider": "openai.responses", "item": {"type": "message", "id": "msg_1", "content": []}},
        },
    ]
    added = await manager.add_messages(session.id, sent, user_id="u")
    got = await manager.history(session.id, user_id="u")
    assert got == added
    user, assistant = got
    assert isinstance(user.content, tuple)
    image = user.content[1]
    assert isinstance(image, ImagePart)
    assert image.data == base64.b64encode(PNG).decode()
    assert image.decoded() == PNG, "raw bytes are stored base64 with their media type, never coerced to text"
    pdf = user.content[3]
    assert isinstance(pdf, FilePart)
    assert pdf.decoded() == b"%PDF-1.7 \x00\xff"
    assert isinstance(user.content[4], AudioPart)
    assert user.text == "what is in this picture and this PDF?"
    assert isinstance(assistant.content, tuple)
    thinking, redacted, refusal, text, provider = assistant.content
    assert isinstance(thinking, ReasoningPart)
    assert thinking.signature == "EqQBCkYIARgCKkD+/="
    assert isinstance(redacted, ReasoningPart)
    assert redacted.redacted
    assert redacted.encrypted == "gAAAAABo-opaque=="
    assert isinstance(refusal, RefusalPart)
    assert isinstance(text, TextPart)
    assert isinstance(provider, ProviderPart)
    assert provider.data == item
    assert assistant.text == "A cat, and a one-page PDF."
    assert assistant.source is not None
    assert (assistant.source.provider, assistant.source.item["id"]) == ("openai.responses", "msg_1")
    dumped = assistant.model_dump(mode="json")
    assert dumped["content"][4]["data"] == item
    assert dumped["source"]["item"] == {"type": "message", "id": "msg_1", "content": []}


async def test_tool_results_may_carry_parts_and_say_they_failed(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_message(session.id, "assistant", None, tool_calls=[{"id": "c1", "name": "shot", "arguments": {}}])
    result = await manager.add_message(
        session.id,
        "tool",
        [{"type": "text", "text": "the screenshot:"}, {"type": "image", "data": PNG, "media_type": "image/png"}],
        tool_call_id="c1",
        is_error=True,
    )
    assert result.is_error
    call, read = await manager.history(session.id, last=2)
    assert [c.id for c in call.tool_calls] == ["c1"]
    assert await manager.history(session.id, last=1) == [], "a result without its call is left out of a window"
    assert read.is_error
    assert read.content == result.content


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"type": "image"}], r"content\[0\].*exactly one of url or data"),
        ([{"type": "image", "data": b"x"}], "media_type"),
        ([{"type": "image", "data": "not base64!", "media_type": "image/png"}], "base64"),
        ([{"type": "video", "url": "x"}], r"content\[0\] has type 'video'"),
        ([{"type": "text"}], "text"),
        ([{"type": "text", "text": "a", "extra": 1}], "extra"),
        ({"type": "text", "text": "a"}, "a list of content parts"),
        (42, "a list of content parts"),
        ([object()], r"content\[0\] must be a content part"),
    ],
)
async def test_bad_content_is_refused_naming_the_part_and_nothing_is_written(
    manager: SessionManager, content: Any, message: str
) -> None:
    session = await manager.create_session("u")
    with pytest.raises(InvalidValueError, match=message):
        await manager.add_message(session.id, "user", content)
    assert await manager.history(session.id) == []


async def test_is_error_and_source_are_checked(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    with pytest.raises(InvalidValueError, match="is_error marks failed tool results only"):
        await manager.add_message(session.id, "user", "hi", is_error=True)
    with pytest.raises(InvalidValueError, match="source must be a Source or a mapping"):
        await manager.add_message(session.id, "user", "hi", source={"provider": "x"})
    with pytest.raises(InvalidValueError, match=r"source\.provider"):
        await manager.add_message(session.id, "user", "hi", source={"provider": "", "item": {}})
    assert await manager.history(session.id) == []


async def test_messages_stored_by_0_1_still_read(manager: SessionManager, store: BaseSessionStore) -> None:
    session = await manager.create_session("u")
    await store.log_append(  # type: ignore[attr-defined]
        manager.keys.history(session.id), [{"role": "user", "content": "plain 0.1 text", "ts": 1.0}]
    )
    (message,) = await manager.history(session.id)
    assert (message.content, message.text, message.is_error, message.source) == (
        "plain 0.1 text",
        "plain 0.1 text",
        False,
        None,
    )


# -- keeping tool calls together with their results ----------------------------------------------


async def test_pairs_are_kept_whole_in_exports(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_messages(
        session.id,
        [
            {"role": "user", "content": "weather in Oslo and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "name": "weather", "arguments": {"city": "Oslo"}},
                    {"id": "b", "name": "weather", "arguments": {"city": "Rome"}},
                ],
            },
            {"role": "tool", "content": "3", "tool_call_id": "b"},  # b answered first; a never (a crash)
            {"role": "user", "content": "and?"},
        ],
    )
    history = await manager.history(session.id)
    interrupted = paired(history)
    assert [(m.role, m.tool_call_id) for m in interrupted] == [
        ("user", None),
        ("assistant", None),
        ("tool", "a"),
        ("tool", "b"),
        ("user", None),
    ]
    assert interrupted[2].is_error
    assert INTERRUPTED in str(interrupted[2].content)
    dropped = paired(history, dangling="drop")
    assert [c.id for c in dropped[1].tool_calls] == ["b"]
    assert [(m.role, m.tool_call_id) for m in dropped] == [
        ("user", None),
        ("assistant", None),
        ("tool", "b"),
        ("user", None),
    ]
    window = paired(history[2:])  # a window that starts with a result: the result goes with its missing call
    assert [m.role for m in window] == ["user"]


# -- add_response: a model's answer as it gave it --------------------------------------------------


async def test_add_response_tells_the_provider_from_the_response(manager: SessionManager) -> None:
    from sessionware import ProviderFormatError, to_anthropic_messages, to_gemini_contents, to_openai_responses_input

    from .test_providers_anthropic_gemini import anthropic_response, gemini_response
    from .test_providers_openai import completion, response

    session = await manager.create_session("u")
    chat = completion({"content": "Hi from chat"})
    responses = response(
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hi from responses", "annotations": []}],
        }
    )
    claude = anthropic_response(
        [{"type": "thinking", "thinking": "hm", "signature": "c2ln"}, {"type": "text", "text": "Hi"}]
    )
    gemini = gemini_response([{"text": "Hi from Gemini"}])
    added = []
    for value in (chat, responses, claude, gemini, chat.model_dump(), responses.model_dump()):
        added += await manager.add_response(session.id, value, user_id="u")
    assert [m.source.provider for m in added if m.source] == [
        "openai.chat",
        "openai.responses",
        "anthropic",
        "gemini",
        "openai.chat",
        "openai.responses",
    ]
    texts = ["Hi from chat", "Hi from responses", "Hi", "Hi from Gemini"]
    assert [m.text for m in added] == [*texts, "Hi from chat", "Hi from responses"]
    stored = await manager.history(session.id, user_id="u")
    assert to_openai_responses_input(stored[1:2]) == [responses.output[0].model_dump(exclude_none=True)]
    assert to_anthropic_messages(stored[2:3])["messages"][0]["content"][0] == {
        "type": "thinking",
        "thinking": "hm",
        "signature": "c2ln",
    }
    assert to_gemini_contents(stored[3:4])["contents"] == [{"role": "model", "parts": [{"text": "Hi from Gemini"}]}]
    messages = await manager.add_response(session.id, [{"role": "user", "content": "plain"}], provider="openai.chat")
    assert messages[0].text == "plain"
    with pytest.raises(ProviderFormatError, match="cannot tell which provider"):
        await manager.add_response(session.id, {"hello": "world"})
    with pytest.raises(ProviderFormatError, match="unknown provider 'mistral'"):
        await manager.add_response(session.id, chat, provider="mistral")  # type: ignore[arg-type]
    assert len(await manager.history(session.id)) == 7
