"""OpenAI Chat Completions and Responses, in and out: what a model sent comes back exactly, on every backend,
and every export is a request the SDK's typed params accept."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.responses import Response, ResponseInputItemParam
from pydantic import TypeAdapter

from sessionware import BaseSessionStore, SessionManager
from sessionware.agents import Message
from sessionware.providers import (
    ProviderFormatError,
    messages_from_openai_chat,
    messages_from_openai_responses,
    to_openai_messages,
    to_openai_responses_input,
)
from sessionware.providers.common import INTERRUPTED
from sessionware.providers.parts import (
    AudioPart,
    FilePart,
    ImagePart,
    ProviderPart,
    ReasoningPart,
    RefusalPart,
    TextPart,
)

CHAT: TypeAdapter[Any] = TypeAdapter(ChatCompletionMessageParam)
RESPONSES: TypeAdapter[Any] = TypeAdapter(ResponseInputItemParam)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()
PDF = base64.b64encode(b"%PDF-1.7 \x00\xff").decode()
WAV = base64.b64encode(b"RIFF\x00\x01WAVE").decode()


def materialize(value: Any) -> Any:
    """Consume the lazy iterators pydantic returns for ``Iterable[...]`` fields, validating every item."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [materialize(v) for v in value]
    return value


def assert_chat_request(messages: list[dict[str, Any]]) -> None:
    """Every message is a ``ChatCompletionMessageParam``, with nothing the type does not know."""
    assert [materialize(CHAT.validate_python(m)) for m in messages] == messages


def assert_responses_input(items: list[dict[str, Any]]) -> None:
    """Every item is a ``ResponseInputItemParam``, with nothing the type does not know."""
    assert [materialize(RESPONSES.validate_python(i)) for i in items] == items


@pytest.fixture
async def manager(store: BaseSessionStore) -> SessionManager:
    return SessionManager(store)


async def stored(manager: SessionManager, *batches: list[dict[str, Any]]) -> list[Message]:
    """The history after adding each batch of imported messages in turn, read back from the store."""
    session = await manager.create_session("u")
    for batch in batches:
        await manager.add_messages(session.id, batch)
    return await manager.history(session.id)


def completion(message: dict[str, Any], finish_reason: str = "stop") -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_780_000_000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", **message}}],
        }
    )


def response(*output: dict[str, Any]) -> Response:
    return Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 1_780_000_000,
            "model": "o4-mini-2025-04-16",
            "status": "completed",
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "output": list(output),
        }
    )


def dumped(value: Response) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in value.output]


# -- Chat Completions: a round trip gives back the messages exactly ------------------------------

CHAT_REQUEST: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
    {
        "role": "user",
        "name": "ada",
        "content": [
            {"type": "text", "text": "Weather where these were taken? 🌦"},
            {"type": "image_url", "image_url": {"url": "https://example.com/oslo.jpg", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "trip.pdf"}},
            {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
        ],
    },
]
CALLS = completion(
    {
        "content": "Let me check.",
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{ "city": "Rome" }'}},
        ],
    },
    "tool_calls",
)
RESULTS: list[dict[str, Any]] = [
    {"role": "tool", "tool_call_id": "call_a", "content": "rain, 4 °C"},
    {
        "role": "tool",
        "tool_call_id": "call_b",
        "content": [{"type": "text", "text": "sun, "}, {"type": "text", "text": "19"}],
    },
]
CITED = completion(
    {
        "content": "Oslo: rain. Rome: sun.",
        "annotations": [
            {
                "type": "url_citation",
                "url_citation": {"url": "https://yr.no", "title": "Yr", "start_index": 0, "end_index": 4},
            }
        ],
    }
)
REFUSED = completion({"content": None, "refusal": "I can't identify the people in the photo."})
SPOKEN = completion(
    {"content": None, "audio": {"id": "audio_1", "data": WAV, "expires_at": 1_780_003_600, "transcript": "Rain."}}
)


async def test_chat_completions_round_trip_exactly(manager: SessionManager) -> None:
    history = await stored(
        manager,
        messages_from_openai_chat(CHAT_REQUEST),
        messages_from_openai_chat(CALLS),
        messages_from_openai_chat(RESULTS),
        messages_from_openai_chat(CITED.choices[0]),
        messages_from_openai_chat([{"role": "user", "content": "Who is in the photo?"}]),
        messages_from_openai_chat(REFUSED.model_dump()),
        messages_from_openai_chat([{"role": "user", "content": "Say it aloud."}]),
        messages_from_openai_chat(SPOKEN.choices[0].message),
    )
    exported = to_openai_messages(history)
    assert exported == [
        *CHAT_REQUEST,
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": CALLS.model_dump()["choices"][0]["message"]["tool_calls"],
        },
        *RESULTS,
        {"role": "assistant", "content": "Oslo: rain. Rome: sun."},  # a request message has no annotations
        {"role": "user", "content": "Who is in the photo?"},
        {"role": "assistant", "content": None, "refusal": "I can't identify the people in the photo."},
        {"role": "user", "content": "Say it aloud."},
        {"role": "assistant", "audio": {"id": "audio_1"}},  # audio the model made is sent back by its id
    ]
    assert exported[3]["tool_calls"][1]["function"]["arguments"] == '{ "city": "Rome" }', "the model's own text"
    assert_chat_request(exported)


async def test_chat_completions_are_read_into_parts(manager: SessionManager) -> None:
    history = await stored(
        manager,
        messages_from_openai_chat(CHAT_REQUEST),
        messages_from_openai_chat(CALLS),
        messages_from_openai_chat(RESULTS),
        messages_from_openai_chat(CITED),
        messages_from_openai_chat(REFUSED),
        messages_from_openai_chat(SPOKEN),
    )
    system, developer, user, calls, rain, sun, cited, refused, spoken = history
    assert (system.content, developer.content) == ("You are terse.", (TextPart(text="Use metric units."),))
    assert user.name == "ada"
    assert user.content == (
        TextPart(text="Weather where these were taken? 🌦"),
        ImagePart(url="https://example.com/oslo.jpg", detail="low"),
        ImagePart(data=PNG, media_type="image/png"),
        FilePart(data=PDF, media_type="application/pdf", filename="trip.pdf"),
        AudioPart(data=WAV, media_type="audio/wav"),
    )
    assert calls.content == "Let me check."
    assert [(c.id, c.name, dict(c.arguments or {})) for c in calls.tool_calls] == [
        ("call_a", "weather", {"city": "Oslo"}),
        ("call_b", "weather", {"city": "Rome"}),
    ]
    assert (rain.tool_call_id, rain.content, rain.is_error) == ("call_a", "rain, 4 °C", False)
    assert sun.text == "sun, 19"
    assert cited.text == "Oslo: rain. Rome: sun."
    assert cited.source is not None
    assert cited.source.provider == "openai.chat"
    assert cited.source.item["annotations"][0]["url_citation"]["url"] == "https://yr.no", "kept in the source"
    assert refused.content == (RefusalPart(refusal="I can't identify the people in the photo."),)
    assert spoken.content == (AudioPart(id="audio_1", transcript="Rain."),)
    assert spoken.source is not None
    assert spoken.source.item["audio"]["data"] == WAV


# -- Responses: a round trip gives back the items exactly ---------------------------------------

RESPONSES_REQUEST: list[dict[str, Any]] = [
    {"role": "developer", "content": "Be brief."},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Weather in Oslo and Rome? And what does this chart say?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"},
            {"type": "input_image", "file_id": "file-img1", "detail": "auto"},
            {"type": "input_file", "file_id": "file-abc", "filename": "report.pdf"},
        ],
    },
]
TURN = response(
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Two cities: two lookups."}],
        "encrypted_content": "gAAAAABo-opaque-1==",
    },
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "oslo rome weather"},
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city":"Oslo"}',
        "status": "completed",
    },
    {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_2",
        "name": "weather",
        "arguments": '{ "city": "Rome" }',
        "status": "completed",
    },
)
OUTPUTS: list[dict[str, Any]] = [  # answered in the order the tools finished, not the order of the calls
    {"type": "function_call_output", "call_id": "call_2", "output": "sun, 19 °C"},
    {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": [
            {"type": "input_text", "text": "rain, 4 °C; radar:"},
            {"type": "input_image", "image_url": "https://example.com/radar.png", "detail": "low"},
        ],
    },
]
ANSWER = response(
    {
        "type": "reasoning",
        "id": "rs_2",
        "summary": [],
        "encrypted_content": "gAAAAABo-opaque-2==",
    },
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Oslo: rain. Rome: sun.",
                "annotations": [
                    {"type": "url_citation", "url": "https://yr.no", "title": "Yr", "start_index": 0, "end_index": 4}
                ],
            }
        ],
    },
)
REFUSAL = response(
    {
        "type": "message",
        "id": "msg_2",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't identify people."}],
    }
)


async def responses_history(manager: SessionManager) -> list[Message]:
    return await stored(
        manager,
        messages_from_openai_responses(RESPONSES_REQUEST),
        messages_from_openai_responses(TURN),
        messages_from_openai_responses(OUTPUTS),
        messages_from_openai_responses(ANSWER.model_dump()),
        messages_from_openai_responses([{"role": "user", "content": "Who is in the photo?"}]),
        messages_from_openai_responses(REFUSAL.output),
    )


async def test_responses_round_trip_exactly(manager: SessionManager) -> None:
    history = await responses_history(manager)
    exported = to_openai_responses_input(history)
    assert exported == [
        *RESPONSES_REQUEST,
        *dumped(TURN),
        *OUTPUTS,  # where they were appended: after both calls, as the model made them in parallel
        *dumped(ANSWER),
        {"role": "user", "content": "Who is in the photo?"},
        *dumped(REFUSAL),
    ]
    assert exported[5]["arguments"] == '{ "city": "Rome" }', "the model's own text"
    assert_responses_input(exported)


async def test_responses_items_are_read_one_message_each(manager: SessionManager) -> None:
    history = await responses_history(manager)
    assert [m.role for m in history] == [
        "developer",
        "user",
        "assistant",
        "assistant",
        "assistant",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    developer, user, reasoning, search, call_1, call_2, out_2, out_1, _, answer, _, refusal = history
    assert developer.content == "Be brief."
    assert user.content == (
        TextPart(text="Weather in Oslo and Rome? And what does this chart say?"),
        ImagePart(data=PNG, media_type="image/png", detail="high"),
        ProviderPart(provider="openai.responses", data=RESPONSES_REQUEST[1]["content"][2]),
        FilePart(file_id="file-abc", filename="report.pdf"),
    )
    assert reasoning.content == (
        ReasoningPart(id="rs_1", summary=("Two cities: two lookups.",), encrypted="gAAAAABo-opaque-1=="),
    )
    assert search.content == (ProviderPart(provider="openai.responses", data=dumped(TURN)[1]),)
    assert (call_1.content, [(c.id, c.name) for c in call_1.tool_calls]) == (None, [("call_1", "weather")])
    assert dict(call_2.tool_calls[0].arguments or {}) == {"city": "Rome"}
    assert (out_2.tool_call_id, out_2.content) == ("call_2", "sun, 19 °C")
    assert out_1.tool_call_id == "call_1"
    assert out_1.content == (
        TextPart(text="rain, 4 °C; radar:"),
        ImagePart(url="https://example.com/radar.png", detail="low"),
    )
    assert answer.text == "Oslo: rain. Rome: sun."
    assert refusal.content == (RefusalPart(refusal="I can't identify people."),)
    assert all(m.source is not None and m.source.provider == "openai.responses" for m in history)


async def test_each_format_exports_the_other_formats_history(manager: SessionManager) -> None:
    responses = await responses_history(manager)
    with pytest.raises(
        ProviderFormatError,
        match=r"OpenAI Chat Completions cannot take a provider part \(openai.responses\) in a user message",
    ):
        to_openai_messages(responses)
    as_chat = to_openai_messages(responses, unsupported="drop")
    assert_chat_request(as_chat)
    assert [(m["role"], m.get("tool_call_id")) for m in as_chat] == [
        ("developer", None),
        ("user", None),
        ("assistant", None),
        ("tool", "call_1"),  # Chat Completions wants each call's result right after it
        ("assistant", None),
        ("tool", "call_2"),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
    ]
    assert as_chat[1]["content"] == [
        {"type": "text", "text": "Weather in Oslo and Rome? And what does this chart say?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "file", "file": {"file_id": "file-abc", "filename": "report.pdf"}},
    ]
    assert as_chat[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
        ],
    }
    assert as_chat[3] == {"role": "tool", "tool_call_id": "call_1", "content": "rain, 4 °C; radar:"}
    assert as_chat[-1] == {"role": "assistant", "content": None, "refusal": "I can't identify people."}

    chat = await stored(
        manager,
        messages_from_openai_chat(CHAT_REQUEST),
        messages_from_openai_chat(CALLS),
        messages_from_openai_chat(RESULTS),
        messages_from_openai_chat(REFUSED),
    )
    with pytest.raises(ProviderFormatError, match=r"OpenAI Responses cannot take an audio part in a user message"):
        to_openai_responses_input(chat)
    as_responses = to_openai_responses_input(chat, unsupported="drop")
    assert_responses_input(as_responses)
    assert as_responses[2]["content"][1:] == [
        {"type": "input_image", "image_url": "https://example.com/oslo.jpg", "detail": "low"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "trip.pdf"},
    ]
    assert as_responses[3:] == [
        {"type": "message", "role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "rain, 4 °C"},
        {
            "type": "function_call_output",
            "call_id": "call_b",
            "output": [{"type": "input_text", "text": "sun, "}, {"type": "input_text", "text": "19"}],
        },
        # the refusal is dropped: Responses holds refusals only in its own output messages, which carry an id
    ]


# -- a history built by hand, exported to both ----------------------------------------------------

FAILED = json.dumps({"error": {"code": "timeout", "message": "the weather service did not answer"}})
MIXED: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            TextPart(text="What is in these?"),
            ImagePart(url="https://example.com/cat.jpg", detail="low"),
            {"type": "image", "data": base64.b64decode(PNG), "media_type": "image/png"},
            {"type": "file", "data": base64.b64decode(PDF), "media_type": "application/pdf", "filename": "a.pdf"},
        ],
    },
    {
        "role": "assistant",
        "content": [
            ReasoningPart(id="rs_9", summary=("Read the PDF, then the weather.",), encrypted="gAAAAABo-9=="),
            TextPart(text="Checking."),
        ],
        "tool_calls": [
            {"id": "call_pdf", "name": "read_pdf", "arguments": {"page": 1}},
            {"id": "call_sky", "name": "weather", "arguments": {"city": "Oslo"}},
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_pdf",
        "content": [
            TextPart(text="page 1: invoice, "),
            TextPart(text="total 12 €"),
            ImagePart(url="https://example.com/page1.png"),
        ],
    },
    {"role": "tool", "tool_call_id": "call_sky", "content": FAILED, "is_error": True},
    {
        "role": "assistant",
        "content": [ReasoningPart(text="The call failed.", signature="c2lnbmF0dXJl"), TextPart(text="A cat; 12 €.")],
    },
    {"role": "user", "content": "Who is the person in the photo?", "name": "ada"},
    {"role": "assistant", "content": [RefusalPart(refusal="I can't identify people.")]},
]


async def test_a_mixed_history_exports_to_chat_completions(manager: SessionManager) -> None:
    history = await stored(manager, MIXED)
    with pytest.raises(
        ProviderFormatError,
        match=r"^OpenAI Chat Completions cannot take a reasoning part in an assistant message .*unsupported='drop'",
    ):
        to_openai_messages(history)
    exported = to_openai_messages(history, unsupported="drop")
    assert_chat_request(exported)
    assert exported == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking."}],
            "tool_calls": [
                {"id": "call_pdf", "type": "function", "function": {"name": "read_pdf", "arguments": '{"page": 1}'}},
                {
                    "id": "call_sky",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_pdf", "content": "page 1: invoice, total 12 €"},
        {"role": "tool", "tool_call_id": "call_sky", "content": FAILED},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat; 12 €."}]},
        {"role": "user", "content": "Who is the person in the photo?", "name": "ada"},
        {"role": "assistant", "content": None, "refusal": "I can't identify people."},
    ]


async def test_a_mixed_history_exports_to_responses(manager: SessionManager) -> None:
    history = await stored(manager, MIXED)
    spoken = history[3].model_copy(update={"content": (AudioPart(data=WAV, media_type="audio/wav"),)})
    with pytest.raises(ProviderFormatError, match=r"^OpenAI Responses cannot take an audio part in a tool result"):
        to_openai_responses_input([*history[:3], spoken])
    with pytest.raises(
        ProviderFormatError, match=r"^OpenAI Responses cannot take a reasoning part .* without an OpenAI reasoning id"
    ):
        to_openai_responses_input(history)
    exported = to_openai_responses_input(history, unsupported="drop")
    assert_responses_input(exported)
    assert exported == [
        {"type": "message", "role": "system", "content": "You are terse."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in these?"},
                {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "low"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
                {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_9",
            "summary": [{"type": "summary_text", "text": "Read the PDF, then the weather."}],
            "encrypted_content": "gAAAAABo-9==",
        },
        {"type": "message", "role": "assistant", "content": "Checking."},
        {"type": "function_call", "call_id": "call_pdf", "name": "read_pdf", "arguments": '{"page": 1}'},
        {"type": "function_call", "call_id": "call_sky", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {
            "type": "function_call_output",
            "call_id": "call_pdf",
            "output": [
                {"type": "input_text", "text": "page 1: invoice, "},
                {"type": "input_text", "text": "total 12 €"},
                {"type": "input_image", "image_url": "https://example.com/page1.png", "detail": "auto"},
            ],
        },
        {"type": "function_call_output", "call_id": "call_sky", "output": FAILED},
        {"type": "message", "role": "assistant", "content": "A cat; 12 €."},
        {"type": "message", "role": "user", "content": "Who is the person in the photo?"},
        # the refusal, the last message's only part, is dropped, and the message with it
    ]


async def test_another_providers_part_is_refused_by_name_or_dropped(manager: SessionManager) -> None:
    history = await stored(
        manager,
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    TextPart(text="Hello."),
                    ProviderPart(provider="anthropic", data={"type": "server_tool_use", "id": "srvtoolu_1"}),
                ],
            },
        ],
    )
    for export, api in ((to_openai_messages, "Chat Completions"), (to_openai_responses_input, "Responses")):
        with pytest.raises(ProviderFormatError, match=rf"OpenAI {api} cannot take a provider part \(anthropic\)"):
            export(history)
    assert to_openai_messages(history, unsupported="drop")[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello."}],
    }
    assert to_openai_responses_input(history, unsupported="drop")[1] == {
        "type": "message",
        "role": "assistant",
        "content": "Hello.",
    }
    with pytest.raises(ProviderFormatError, match="unsupported must be 'error' or 'drop'"):
        to_openai_messages(history, unsupported="ignore")  # type: ignore[arg-type]


# -- a call without its result --------------------------------------------------------------------


async def test_a_dangling_call_is_answered_as_interrupted_or_left_out(manager: SessionManager) -> None:
    history = await stored(
        manager,
        [
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {"id": "a", "name": "weather", "arguments": {"city": "Oslo"}},
                    {"id": "b", "name": "weather", "arguments": {"city": "Rome"}},
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "sun"},  # a never answered: the worker crashed
        ],
        messages_from_openai_responses(  # and a Responses call cut short
            [{"type": "function_call", "call_id": "c", "name": "weather", "arguments": "{}", "id": "fc_c"}]
        ),
        [{"role": "user", "content": "Well?"}],
    )
    chat = to_openai_messages(history)
    assert_chat_request(chat)
    assert [(m["role"], m.get("tool_call_id")) for m in chat] == [
        ("user", None),
        ("assistant", None),
        ("tool", "a"),
        ("tool", "b"),
        ("assistant", None),
        ("tool", "c"),
        ("user", None),
    ]
    assert INTERRUPTED in chat[2]["content"]
    assert INTERRUPTED in chat[5]["content"]
    responses = to_openai_responses_input(history)
    assert_responses_input(responses)
    assert [(i.get("type"), i.get("call_id")) for i in responses] == [
        ("message", None),
        ("message", None),
        ("function_call", "a"),
        ("function_call", "b"),
        ("function_call_output", "a"),
        ("function_call_output", "b"),
        ("function_call", "c"),
        ("function_call_output", "c"),
        ("message", None),
    ]
    assert INTERRUPTED in responses[4]["output"]

    chat = to_openai_messages(history, dangling="drop")
    assert_chat_request(chat)
    assert chat == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "b", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "sun"},
        {"role": "user", "content": "Well?"},
    ]
    responses = to_openai_responses_input(history, dangling="drop")
    assert_responses_input(responses)
    assert responses == [
        {"type": "message", "role": "user", "content": "Weather in Oslo and Rome?"},
        {"type": "message", "role": "assistant", "content": "Looking."},
        {"type": "function_call", "call_id": "b", "name": "weather", "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "b", "output": "sun"},
        {"type": "message", "role": "user", "content": "Well?"},
    ]


async def test_a_window_that_starts_with_results_leaves_them_out(manager: SessionManager) -> None:
    history = await responses_history(manager)
    window = history[6:]  # the two outputs, whose calls are outside the window
    assert [m.role for m in window[:2]] == ["tool", "tool"]
    exported = to_openai_responses_input(window)
    assert exported == [*dumped(ANSWER), {"role": "user", "content": "Who is in the photo?"}, *dumped(REFUSAL)]
    assert_responses_input(exported)


# -- what cannot be read --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "cannot read OpenAI Chat Completions messages from int"),
        ({"id": "chatcmpl-1", "choices": []}, "completion has no choices"),
        ([{"role": "function", "name": "f", "content": "x"}], r"messages\[0\] has role 'function'"),
        ([{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}], "deprecated function_call"),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}],
                }
            ],
            r"tool_calls\[0\] is a 'custom' tool call",
        ),
        ([{"role": "assistant", "content": None}], "has no content, refusal, audio or tool calls"),
        ([{"role": "tool", "content": "x"}], "tool message without a tool_call_id"),
        ([{"role": "user", "content": None}], r"messages\[0\] has no content"),
        ([{"role": "user", "content": 7}], "content must be a string or a list of parts"),
        (
            [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            r"messages\[0\]\.content\[0\] has type 'input_text'; a Chat Completions content part is",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,no!"}}]}],
            r"content\[0\] is not a valid image part: image.data: .*base64",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": WAV, "format": "ogg"}}]}],
            "audio format 'ogg'; expected wav or mp3",
        ),
        (["hello"], r"messages\[0\] must be an object, not str"),
    ],
)
def test_unreadable_chat_data_is_refused_by_name(value: Any, message: str) -> None:
    with pytest.raises(ProviderFormatError, match=message):
        messages_from_openai_chat(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("text", "cannot read OpenAI Responses items from str"),
        ({"id": "resp_1", "status": "completed"}, "has no 'output' items"),
        ([{"id": "x_1"}], r"items\[0\] has no type"),
        ([{"type": "message", "role": "tool", "content": "x"}], "is a message with role 'tool'"),
        ([{"type": "function_call_output", "output": "x"}], "function_call_output without a call_id"),
        ([{"type": "function_call", "call_id": "c", "arguments": "{}"}], "tool call has no 'name'"),
        (
            [{"type": "message", "role": "user", "content": [{"type": "text", "text": "x"}]}],
            r"items\[0\]\.content\[0\] has type 'text'; a Responses content part is",
        ),
        ([{"type": "reasoning", "id": "rs_1", "summary": "x"}], "summary must be a list"),
    ],
)
def test_unreadable_responses_data_is_refused_by_name(value: Any, message: str) -> None:
    with pytest.raises(ProviderFormatError, match=message):
        messages_from_openai_responses(value)


def test_the_imports_are_what_add_messages_takes() -> None:
    (message,) = messages_from_openai_responses(TURN.output[2])
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [message["tool_calls"][0]],
        "source": {"provider": "openai.responses", "item": dumped(TURN)[2]},
    }
    call = message["tool_calls"][0]
    assert (call.id, call.name, call.arguments_text) == ("call_1", "weather", '{"city":"Oslo"}')
