"""Anthropic Messages and Gemini contents, in and out: imports from the SDKs' own response objects, stored on
every backend, read back and exported give back exactly what the provider sent; exports of mixed histories are
accepted by the SDKs' typed request params."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, get_type_hints

import anthropic.types as at
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from google.genai import types as gt
from pydantic import BaseModel, TypeAdapter

from sessionware import BaseSessionStore, SessionManager
from sessionware.agents import Message
from sessionware.providers import (
    GEMINI_GENERATED_ID_PREFIX,
    ProviderFormatError,
    ToolCall,
    messages_from_anthropic,
    messages_from_gemini,
    to_anthropic_messages,
    to_gemini_contents,
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

ANTHROPIC_MESSAGE: TypeAdapter[Any] = TypeAdapter(at.MessageParam)
ANTHROPIC_SYSTEM: TypeAdapter[Any] = TypeAdapter(get_type_hints(MessageCreateParamsNonStreaming)["system"])
ANTHROPIC_REQUEST: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsNonStreaming)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"
# bytes whose base64 uses "+" and "/" (standard) and "-" and "_" (URL-safe, how google-genai dumps JSON)
THOUGHT_SIGNATURE = bytes([0xFB, 0xEF, 0xBE, 0xFF, 0x00, 0x10, 0x83, 0xFE, 0x01])
CALL_SIGNATURE = bytes([0xFF, 0xFF, 0xFE, 0x3E, 0x3F, 0x00])
TEXT_SIGNATURE = b"\x00text-signature\xff"


@pytest.fixture
async def manager(store: BaseSessionStore) -> SessionManager:
    return SessionManager(store)


def plain(value: Any) -> Any:
    """What the SDK validated, as plain data: lazy ``Iterable`` fields consumed, response models (which its
    ``MessageParam`` also accepts) dumped as the SDK sends them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [plain(v) for v in value]
    return value


def sdk_anthropic(exported: dict[str, Any]) -> dict[str, Any]:
    """``exported`` checked by the SDK's types: every turn a ``MessageParam``, ``system`` the system param, and
    the whole a ``messages.create`` request."""
    turns = [plain(ANTHROPIC_MESSAGE.validate_python(turn)) for turn in exported["messages"]]
    assert turns == exported["messages"]
    if "system" in exported:
        assert plain(ANTHROPIC_SYSTEM.validate_python(exported["system"])) == exported["system"]
    ANTHROPIC_REQUEST.validate_python({"model": "claude-sonnet-4-5", "max_tokens": 1024, **exported})
    return exported


def sdk_gemini(exported: dict[str, Any]) -> list[gt.Content]:
    """``exported`` checked by google-genai's types (which forbid unknown fields); the contents as SDK objects."""
    assert set(exported) <= {"contents", "system_instruction"}
    contents = [gt.Content.model_validate(content) for content in exported["contents"]]
    if "system_instruction" in exported:
        config = gt.GenerateContentConfig.model_validate({"system_instruction": exported["system_instruction"]})
        assert isinstance(config.system_instruction, gt.Content)
    return contents


# -- Anthropic ------------------------------------------------------------------------------------

ANTHROPIC_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "thinking",
        "thinking": "The user wants Oslo's weather. Search, then get the forecast.",
        "signature": "EqQBCkgIBRABGAIqQLh4+/u0Zb5z3mF1qGkAuYvUi9ZPpz0qZK0O2cN+Q/1hX0xQ==",
    },
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
    {
        "type": "server_tool_use",
        "id": "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE",
        "name": "web_search",
        "input": {"query": "Oslo weather today"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://www.yr.no/en/forecast/daily-table/1-72837/Norway/Oslo/Oslo/Oslo",
                "title": "Oslo - Yr",
                "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y2U",
                "page_age": "2 hours ago",
            }
        ],
    },
    {
        "type": "text",
        "text": "Rain today, 4 °C.",
        "citations": [
            {
                "type": "web_search_result_location",
                "url": "https://www.yr.no/en/forecast/daily-table/1-72837/Norway/Oslo/Oslo/Oslo",
                "title": "Oslo - Yr",
                "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm",
                "cited_text": "Rain, 4°",
            }
        ],
    },
    {
        "type": "text",
        "text": " Your report agrees.",
        "citations": [
            {
                "type": "page_location",
                "cited_text": "Expect rain through Friday.",
                "document_index": 0,
                "document_title": None,
                "start_page_number": 1,
                "end_page_number": 2,
            }
        ],
    },
    {
        "type": "tool_use",
        "id": "toolu_01A09q90qw90lq917835lq9",
        "name": "forecast",
        "input": {"city": "Oslo", "days": 3},
    },
]


def anthropic_response(blocks: list[dict[str, Any]]) -> at.Message:
    return at.Message.model_validate(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": blocks,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 2095, "output_tokens": 503},
        }
    )


async def test_an_anthropic_response_round_trips_exactly(manager: SessionManager) -> None:
    response = anthropic_response(ANTHROPIC_BLOCKS)
    (imported,) = messages_from_anthropic(response)
    assert [type(p) for p in imported["content"]] == [
        ReasoningPart,
        ReasoningPart,
        ProviderPart,
        ProviderPart,
        TextPart,
        TextPart,
    ]
    thinking, redacted, server_call, server_result, _, _ = imported["content"]
    assert (thinking.text, thinking.signature) == (ANTHROPIC_BLOCKS[0]["thinking"], ANTHROPIC_BLOCKS[0]["signature"])
    assert (redacted.encrypted, redacted.redacted, redacted.text) == (ANTHROPIC_BLOCKS[1]["data"], True, None)
    assert (server_call.provider, server_call.data) == ("anthropic", ANTHROPIC_BLOCKS[2])
    assert server_result.data == ANTHROPIC_BLOCKS[3]
    assert [(c.id, c.name, c.arguments) for c in imported["tool_calls"]] == [
        ("toolu_01A09q90qw90lq917835lq9", "forecast", {"city": "Oslo", "days": 3})
    ]

    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "Weather in Oslo? Check it against my report.")
    await manager.add_messages(session.id, [imported])
    await manager.add_message(session.id, "tool", "rain, rain, sun", tool_call_id="toolu_01A09q90qw90lq917835lq9")
    history = await manager.history(session.id)
    assert history[1].text == "Rain today, 4 °C. Your report agrees."
    exported = sdk_anthropic(to_anthropic_messages(history))
    assert exported["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo? Check it against my report."}]},
        {"role": "assistant", "content": ANTHROPIC_BLOCKS},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "rain, rain, sun"}
            ],
        },
    ]
    # the SDK's own dict form reads the same; a model_dump() (every unset field as None) gives what the SDK takes
    (again,) = messages_from_anthropic(response.to_dict())
    assert again["source"] == imported["source"]
    (param,) = messages_from_anthropic([response.to_param()])  # a MessageParam holding the SDK's block objects
    assert param["source"] == imported["source"]
    (dumped,) = messages_from_anthropic(response.model_dump())
    stored = await manager.add_messages(session.id, [{"role": "user", "content": "again"}, dumped])
    sdk_anthropic(to_anthropic_messages(stored))


USER_TURNS: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a weather assistant."},
    {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "Here is my photo, a chart and two reports.",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
            },
            {"type": "image", "source": {"type": "url", "url": "https://example.com/chart.jpg"}},
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()},
                "title": "report.pdf",
            },
            {"type": "document", "source": {"type": "url", "url": "https://example.com/met.pdf"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Rain all week."}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Two lookups.", "signature": "EqQBCkgIBRAB"},
            {"type": "tool_use", "id": "toolu_a", "name": "forecast", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_b", "name": "screenshot", "input": {}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "rain"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_b",
                "is_error": True,
                "content": [
                    {"type": "text", "text": "the page timed out; last frame:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
                    },
                ],
            },
            {"type": "text", "text": "And tomorrow?"},
        ],
    },
]


async def test_anthropic_message_params_round_trip_exactly(manager: SessionManager) -> None:
    imported = messages_from_anthropic(USER_TURNS)
    assert [(m["role"], m.get("tool_call_id"), m.get("is_error", False)) for m in imported] == [
        ("system", None, False),
        ("user", None, False),
        ("assistant", None, False),
        ("tool", "toolu_a", False),
        ("tool", "toolu_b", True),
        ("user", None, False),
    ]
    text, inline, by_url, pdf, pdf_url, plain_text = imported[1]["content"]
    assert isinstance(text, TextPart)
    assert isinstance(inline, ImagePart)
    assert (inline.media_type, inline.decoded()) == ("image/png", PNG)
    assert isinstance(by_url, ImagePart)
    assert by_url.url == "https://example.com/chart.jpg"
    assert isinstance(pdf, FilePart)
    assert (pdf.media_type, pdf.filename, pdf.decoded()) == ("application/pdf", "report.pdf", PDF)
    assert isinstance(pdf_url, FilePart)
    assert (pdf_url.url, pdf_url.media_type) == ("https://example.com/met.pdf", "application/pdf")
    assert isinstance(plain_text, FilePart)
    assert (plain_text.media_type, plain_text.decoded()) == ("text/plain", b"Rain all week.")
    assert imported[2]["content"] == [ReasoningPart(text="Two lookups.", signature="EqQBCkgIBRAB")]
    assert imported[3]["content"] == "rain"
    failed = imported[4]["content"]
    assert isinstance(failed[0], TextPart)
    assert isinstance(failed[1], ImagePart)
    assert failed[1].decoded() == PNG

    session = await manager.create_session("u")
    await manager.add_messages(session.id, imported)
    history = await manager.history(session.id)
    assert history[4].is_error
    exported = sdk_anthropic(to_anthropic_messages(history))
    assert exported == {"system": "You are a weather assistant.", "messages": USER_TURNS[1:]}


async def test_anthropic_messages_without_a_source_export_part_by_part() -> None:
    """The same turns rebuilt from the parts alone (what another provider's import would hold)."""
    stripped = [
        Message.model_validate({**m, "seq": i, "source": None, "created_at": datetime.now(UTC)})
        for i, m in enumerate(messages_from_anthropic(USER_TURNS), 1)
    ]
    exported = sdk_anthropic(to_anthropic_messages(stripped))
    user, assistant, results = exported["messages"]
    assert user["content"][0] == {"type": "text", "text": "Here is my photo, a chart and two reports."}
    assert user["content"][1:] == USER_TURNS[1]["content"][1:]
    assert assistant == USER_TURNS[2]
    assert results == USER_TURNS[3]


# -- Gemini ---------------------------------------------------------------------------------------

GEMINI_PARTS: list[dict[str, Any]] = [
    {
        "text": "**Checking the forecast**\nThe user asks about Oslo and Rome.",
        "thought": True,
        "thought_signature": THOUGHT_SIGNATURE,
    },
    {"text": "Let me look both up.", "thought_signature": TEXT_SIGNATURE},
    {"function_call": {"name": "forecast", "args": {"city": "Oslo", "days": 3}}, "thought_signature": CALL_SIGNATURE},
    {"function_call": {"name": "forecast", "args": {"city": "Rome", "days": 3}}},
    {"inline_data": {"mime_type": "image/png", "data": PNG}},
    {"executable_code": {"language": "PYTHON", "code": "print(4 + 19)"}},
]


def gemini_response(parts: list[dict[str, Any]]) -> gt.GenerateContentResponse:
    return gt.GenerateContentResponse.model_validate(
        {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finish_reason": "STOP", "index": 0}],
            "usage_metadata": {"prompt_token_count": 31, "candidates_token_count": 40, "thoughts_token_count": 112},
            "model_version": "gemini-2.5-pro",
            "response_id": "pDI0aPKdHomN1MkP2J-nkQ8",
        }
    )


async def test_a_gemini_response_round_trips_exactly(manager: SessionManager) -> None:
    response = gemini_response(GEMINI_PARTS)
    (imported,) = messages_from_gemini(response)
    thought, text, image, code = imported["content"]
    assert isinstance(thought, ReasoningPart)
    assert base64.b64decode(thought.signature or "") == THOUGHT_SIGNATURE
    assert thought.text == GEMINI_PARTS[0]["text"]
    assert text == TextPart(text="Let me look both up.")
    assert isinstance(image, ImagePart)
    assert image.decoded() == PNG
    assert isinstance(code, ProviderPart)
    assert code.data == {"executable_code": {"language": "PYTHON", "code": "print(4 + 19)"}}
    oslo, rome = imported["tool_calls"]
    assert oslo.id.startswith(GEMINI_GENERATED_ID_PREFIX)
    assert (oslo.name, oslo.arguments, rome.arguments) == (
        "forecast",
        {"city": "Oslo", "days": 3},
        {"city": "Rome", "days": 3},
    )

    session = await manager.create_session("u")
    await manager.add_message(session.id, "system", "Answer in one line.")
    await manager.add_message(session.id, "user", "Weather in Oslo and Rome?")
    await manager.add_messages(session.id, [imported])
    await manager.add_message(session.id, "tool", "rain", tool_call_id=rome.id)  # Rome answers first
    await manager.add_message(session.id, "tool", '{"error": "quota"}', tool_call_id=oslo.id, is_error=True)
    history = await manager.history(session.id)
    exported = to_gemini_contents(history)
    contents = sdk_gemini(exported)
    assert contents[1] == response.candidates[0].content  # type: ignore[index]
    assert contents[1].parts[0].thought_signature == THOUGHT_SIGNATURE  # type: ignore[index]
    assert contents[1].parts[1].thought_signature == TEXT_SIGNATURE  # type: ignore[index]
    assert contents[1].parts[2].thought_signature == CALL_SIGNATURE  # type: ignore[index]
    assert exported["system_instruction"] == {"parts": [{"text": "Answer in one line."}]}
    assert exported["contents"][0] == {"role": "user", "parts": [{"text": "Weather in Oslo and Rome?"}]}
    assert exported["contents"][2] == {
        "role": "user",
        "parts": [  # in the order of the calls; no ids, which Gemini did not give
            {"function_response": {"name": "forecast", "response": {"error": "quota"}}},
            {"function_response": {"name": "forecast", "response": {"output": "rain"}}},
        ],
    }
    # the dict forms read the same: model_dump() keeps bytes, model_dump(mode="json") has URL-safe base64
    for dumped in (response.model_dump(), response.model_dump(mode="json", by_alias=True, exclude_none=True)):
        (again,) = messages_from_gemini(dumped)
        assert gt.Content.model_validate(again["source"]["item"]) == response.candidates[0].content  # type: ignore[index]


GEMINI_CONTENTS: list[dict[str, Any]] = [
    {
        "role": "user",
        "parts": [
            {"text": "Forecast for Oslo and Rome, and read this."},
            {
                "file_data": {
                    "file_uri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                    "mime_type": "application/pdf",
                }
            },
        ],
    },
    {
        "role": "model",
        "parts": [
            {"function_call": {"name": "forecast", "args": {"city": "Oslo"}}, "thought_signature": CALL_SIGNATURE},
            {"function_call": {"name": "forecast", "args": {"city": "Rome"}}},
            {"function_call": {"id": "fc_vertex_1", "name": "clock", "args": {}}},
        ],
    },
    {
        "role": "user",
        "parts": [
            {"function_response": {"name": "forecast", "response": {"output": "rain"}}},
            {"function_response": {"name": "forecast", "response": {"error": {"code": "quota"}}}},
            {"function_response": {"id": "fc_vertex_1", "name": "clock", "response": {"output": {"utc": "09:00"}}}},
        ],
    },
    {"role": "model", "parts": [{"text": "Oslo: rain. Rome: unknown. It is 09:00 UTC."}]},
]


async def test_gemini_contents_round_trip_and_responses_pair_by_name(manager: SessionManager) -> None:
    originals = [gt.Content.model_validate(content) for content in GEMINI_CONTENTS]
    rest = [content.model_dump(mode="json", by_alias=True, exclude_none=True) for content in originals]  # camelCase
    imported = messages_from_gemini(rest)
    assert [(m["role"], m.get("is_error", False)) for m in imported] == [
        ("user", False),
        ("assistant", False),
        ("tool", False),
        ("tool", True),
        ("tool", False),
        ("assistant", False),
    ]
    assert isinstance(imported[0]["content"][1], FilePart)
    assert imported[0]["content"][1].url == "https://generativelanguage.googleapis.com/v1beta/files/abc"
    oslo, rome, clock = imported[1]["tool_calls"]
    assert [m["tool_call_id"] for m in imported[2:5]] == [oslo.id, rome.id, "fc_vertex_1"]
    assert clock.id == "fc_vertex_1"
    assert [m["content"] for m in imported[2:5]] == [
        "rain",
        '{"error": {"code": "quota"}}',
        '{"output": {"utc": "09:00"}}',
    ]

    session = await manager.create_session("u")
    await manager.add_messages(session.id, imported)
    exported = to_gemini_contents(await manager.history(session.id))
    assert exported["contents"] == rest
    assert sdk_gemini(exported) == originals

    # a result added later answers a call Gemini gave an id with that id, and one it gave none without
    stored = await manager.add_messages(
        session.id,
        [
            {"role": "user", "content": "Again?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c9", "name": "clock", "arguments": {}}]},
            {"role": "tool", "content": "09:01", "tool_call_id": "c9"},
        ],
    )
    again = to_gemini_contents(await manager.history(session.id))["contents"]
    assert again[-2:] == [
        {"role": "model", "parts": [{"function_call": {"name": "clock", "args": {}}}]},
        {"role": "user", "parts": [{"function_response": {"name": "clock", "response": {"output": "09:01"}}}]},
    ]
    assert stored[-1].tool_call_id == "c9"


async def test_a_gemini_function_response_imported_later_answers_the_stored_call(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    (model,) = messages_from_gemini(gemini_response(GEMINI_PARTS[2:4]))
    await manager.add_messages(session.id, [model])
    later = {"role": "user", "parts": [{"function_response": {"name": "forecast", "response": {"output": "rain"}}}]}
    first = messages_from_gemini(later, history=await manager.history(session.id))
    await manager.add_messages(session.id, first)
    second = messages_from_gemini(later, history=await manager.history(session.id))
    assert [m["tool_call_id"] for m in first + second] == [call.id for call in model["tool_calls"]]


# -- one mixed history, both providers ------------------------------------------------------------

MIXED: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": "Use metric units."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in the photo and the report? And the weather?"},
            {"type": "image", "url": "https://example.com/cat.jpg", "media_type": "image/jpeg"},
            {"type": "image", "data": PNG, "media_type": "image/png"},
            {"type": "file", "data": PDF, "media_type": "application/pdf", "filename": "report.pdf"},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "reasoning", "text": "Look at both, then call the tools.", "signature": "EqQBCkgIBRABGAIq"},
            {"type": "text", "text": "Checking."},
        ],
        "tool_calls": [
            {"id": "call_a", "name": "weather", "arguments": {"city": "Oslo"}},
            {"id": "call_b", "name": "screenshot", "arguments": {}},
        ],
    },
    {"role": "tool", "content": "rain, 4 °C", "tool_call_id": "call_a"},
    {
        "role": "tool",
        "content": [
            {"type": "text", "text": '{"error": "the page timed out"}'},
            {"type": "image", "data": PNG, "media_type": "image/png"},
        ],
        "tool_call_id": "call_b",
        "is_error": True,
    },
    {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't identify the person in the photo."}]},
    {"role": "user", "content": "Fine. Just the weather then."},
]


async def test_a_mixed_history_exports_to_what_the_sdks_accept(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_messages(session.id, MIXED)
    history = await manager.history(session.id)
    png = base64.b64encode(PNG).decode()

    anthropic = sdk_anthropic(to_anthropic_messages(history))
    assert anthropic["system"] == "You are terse.\n\nUse metric units."
    user, assistant, results, refusal, last = anthropic["messages"]
    assert user["content"][1:] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()},
            "title": "report.pdf",
        },
    ]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "Look at both, then call the tools.", "signature": "EqQBCkgIBRABGAIq"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_b", "name": "screenshot", "input": {}},
    ]
    assert results["content"][:2] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "rain, 4 °C"},
        {
            "type": "tool_result",
            "tool_use_id": "call_b",
            "content": [
                {"type": "text", "text": '{"error": "the page timed out"}'},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            ],
            "is_error": True,
        },
    ]
    # Anthropic has no refusal block (its own refusals are text), so a refusal is sent as the text it is
    assert refusal["content"] == [{"type": "text", "text": "I can't identify the person in the photo."}]
    assert last == {"role": "user", "content": [{"type": "text", "text": "Fine. Just the weather then."}]}

    gemini = to_gemini_contents(history)
    sdk_gemini(gemini)
    assert gemini["system_instruction"] == {"parts": [{"text": "You are terse."}, {"text": "Use metric units."}]}
    assert [c["role"] for c in gemini["contents"]] == ["user", "model", "user", "model", "user"]
    assert gemini["contents"][0]["parts"][1:] == [
        {"file_data": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}},
        {"inline_data": {"mime_type": "image/png", "data": png}},
        {"inline_data": {"mime_type": "application/pdf", "data": base64.b64encode(PDF).decode()}},
    ]
    assert gemini["contents"][1]["parts"] == [
        {"text": "Look at both, then call the tools.", "thought": True, "thought_signature": "EqQBCkgIBRABGAIq"},
        {"text": "Checking."},
        {"function_call": {"name": "weather", "args": {"city": "Oslo"}}},  # not Gemini's ids: left out
        {"function_call": {"name": "screenshot", "args": {}}},
    ]
    assert gemini["contents"][2]["parts"] == [
        {"function_response": {"name": "weather", "response": {"output": "rain, 4 °C"}}},
        {
            "function_response": {
                "name": "screenshot",
                "response": {"error": "the page timed out"},
                "parts": [{"inline_data": {"mime_type": "image/png", "data": png}}],
            }
        },
    ]
    assert gemini["contents"][3] == {"role": "model", "parts": [{"text": "I can't identify the person in the photo."}]}


# -- what a provider cannot take ------------------------------------------------------------------

NOW = datetime.now(UTC)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def message(role: str, content: Any, **fields: Any) -> Message:
    return Message.model_validate({"seq": 7, "role": role, "content": content, "created_at": NOW, **fields})


OPENAI_REASONING = ReasoningPart(summary=("Weighing it up.",), encrypted="gAAAAABo-opaque==", id="rs_1")
OPENAI_ITEM = ProviderPart(provider="openai.responses", data={"type": "web_search_call", "id": "ws_1"})


@pytest.mark.parametrize(
    ("export", "bad", "role", "error"),
    [
        (
            to_anthropic_messages,
            AudioPart(data=b64(b"RIFF"), media_type="audio/wav"),
            "user",
            "Anthropic cannot take an audio part in user message 7",
        ),
        (
            to_gemini_contents,
            AudioPart(id="audio_1"),
            "user",
            "Gemini cannot take an audio part without inline data in user message 7",
        ),
        (
            to_anthropic_messages,
            OPENAI_REASONING,
            "assistant",
            "Anthropic cannot take a reasoning part without an Anthropic signature",
        ),
        (
            to_gemini_contents,
            OPENAI_REASONING,
            "assistant",
            "Gemini cannot take a reasoning part without a Gemini thought signature",
        ),
        (
            to_anthropic_messages,
            OPENAI_ITEM,
            "assistant",
            r"Anthropic cannot take a provider part \(openai.responses\)",
        ),
        (to_gemini_contents, OPENAI_ITEM, "user", r"Gemini cannot take a provider part \(openai.responses\)"),
        (
            to_anthropic_messages,
            ImagePart(data=b64(b"BM"), media_type="image/bmp"),
            "user",
            "image part of type image/bmp",
        ),
        (
            to_anthropic_messages,
            FilePart(data=b64(b"PK"), media_type="application/zip"),
            "user",
            "file part of type application/zip",
        ),
        (to_gemini_contents, FilePart(file_id="file-abc"), "user", "file part with a file id"),
        (
            to_gemini_contents,
            ProviderPart(provider="anthropic", data={"type": "search_result"}),
            "user",
            r"\(anthropic\)",
        ),
        (
            to_anthropic_messages,
            ImagePart(url="https://example.com/a.png"),
            "system",
            "Anthropic cannot take an image part in system message 7",
        ),
    ],
)
def test_parts_a_provider_cannot_take_raise_naming_them_or_are_dropped(
    export: Any, bad: Any, role: str, error: str
) -> None:
    history = [message("user", "hi"), message(role, [TextPart(text="kept"), bad])]
    with pytest.raises(ProviderFormatError, match=error):
        export(history)
    kept = export(history, unsupported="drop")
    if export is to_anthropic_messages:
        sdk_anthropic(kept)
        assert "kept" in str(kept)
    else:
        sdk_gemini(kept)
        assert "kept" in str(kept)
    with pytest.raises(ProviderFormatError, match="unsupported must be 'error' or 'drop'"):
        export(history, unsupported="ignore")


async def test_reasoning_imported_from_one_provider_is_not_sent_to_the_other(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "Weather?")
    await manager.add_messages(session.id, messages_from_gemini(gemini_response(GEMINI_PARTS[:2])))
    await manager.add_messages(
        session.id, messages_from_anthropic(anthropic_response(ANTHROPIC_BLOCKS[:1] + ANTHROPIC_BLOCKS[4:5]))
    )
    history = await manager.history(session.id)
    with pytest.raises(
        ProviderFormatError, match="Anthropic cannot take a reasoning part from gemini in assistant message 2"
    ):
        to_anthropic_messages(history)
    with pytest.raises(
        ProviderFormatError, match="Gemini cannot take a reasoning part from anthropic in assistant message 3"
    ):
        to_gemini_contents(history)
    anthropic = sdk_anthropic(to_anthropic_messages(history, unsupported="drop"))
    assert anthropic["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look both up."},
        ANTHROPIC_BLOCKS[0],
        ANTHROPIC_BLOCKS[4],
    ]
    gemini = to_gemini_contents(history, unsupported="drop")
    sdk_gemini(gemini)
    assert (
        gemini["contents"][1]["parts"][:2]
        == messages_from_gemini(gemini_response(GEMINI_PARTS[:2]))[0]["source"]["item"]["parts"]
    )
    assert gemini["contents"][1]["parts"][2] == {"text": "Rain today, 4 °C."}


# -- calls without results ------------------------------------------------------------------------


async def test_a_dangling_call_is_answered_as_interrupted_or_left_out(manager: SessionManager) -> None:
    session = await manager.create_session("u")
    await manager.add_message(session.id, "user", "Weather in Oslo and Rome?")
    response = anthropic_response(
        [
            ANTHROPIC_BLOCKS[0],
            {"type": "tool_use", "id": "toolu_oslo", "name": "forecast", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_rome", "name": "forecast", "input": {"city": "Rome"}},
        ]
    )
    await manager.add_messages(session.id, messages_from_anthropic(response))
    await manager.add_message(session.id, "tool", "sun", tool_call_id="toolu_rome")  # Oslo never returned (a crash)
    history = await manager.history(session.id)

    interrupted = sdk_anthropic(to_anthropic_messages(history))
    assert interrupted["messages"][1]["content"] == response.to_dict()["content"]
    oslo, rome = interrupted["messages"][2]["content"]
    assert (oslo["tool_use_id"], oslo["is_error"], rome["tool_use_id"]) == ("toolu_oslo", True, "toolu_rome")
    assert INTERRUPTED in oslo["content"]
    dropped = sdk_anthropic(to_anthropic_messages(history, dangling="drop"))
    assert dropped["messages"][1]["content"] == [
        ANTHROPIC_BLOCKS[0],  # the thinking block, signature and all, rebuilt from its part
        {"type": "tool_use", "id": "toolu_rome", "name": "forecast", "input": {"city": "Rome"}},
    ]
    assert dropped["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_rome", "content": "sun"}]

    session = await manager.create_session("u")
    (model,) = messages_from_gemini(gemini_response(GEMINI_PARTS[2:4]))
    await manager.add_messages(
        session.id, [model, {"role": "tool", "content": "sun", "tool_call_id": model["tool_calls"][1].id}]
    )
    history = await manager.history(session.id)
    gemini = to_gemini_contents(history)
    sdk_gemini(gemini)
    oslo, rome = gemini["contents"][1]["parts"]
    assert oslo["function_response"]["name"] == "forecast"
    assert oslo["function_response"]["response"]["error"]["message"] == INTERRUPTED
    assert rome == {"function_response": {"name": "forecast", "response": {"output": "sun"}}}
    gemini = to_gemini_contents(history, dangling="drop")
    sdk_gemini(gemini)
    assert gemini["contents"] == [
        {"role": "model", "parts": [{"function_call": {"name": "forecast", "args": {"city": "Rome", "days": 3}}}]},
        {"role": "user", "parts": [{"function_response": {"name": "forecast", "response": {"output": "sun"}}}]},
    ]


# -- input we cannot read -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (42, "Anthropic messages must be a Message, a MessageParam or a list of them, not int"),
        ([{"role": "robot", "content": "hi"}], "Anthropic message 0 has role 'robot'"),
        ([{"role": "user", "content": 3}], "Anthropic message 0 content must be a str or a list of blocks, not int"),
        (
            [{"role": "user", "content": [{"text": "no type"}]}],
            r"Anthropic message 0 content\[0\] must be a content block",
        ),
        ([{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}], "tool_result without a tool_use_id"),
        ([{"role": "user", "content": [{"type": "image"}]}], r"content\[0\] is an image block without a source"),
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "iVBO"}}]}],
            "inline image data needs its media_type",
        ),
        ([{"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}], "thinking text and signature"),
        (
            [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
            "belong in an assistant turn",
        ),
        (
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]},
            "needs a string id and name",
        ),
    ],
)
def test_anthropic_input_that_cannot_be_read_is_refused_naming_it(value: Any, error: str) -> None:
    with pytest.raises(ProviderFormatError, match=error):
        messages_from_anthropic(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("hello", "Gemini data must be a GenerateContentResponse, a Content or a list of them, not str"),
        (
            gt.GenerateContentResponse.model_validate({"prompt_feedback": {"block_reason": "SAFETY"}}),
            "Gemini response has no candidates \\(the prompt was blocked: SAFETY\\)",
        ),
        (
            gt.GenerateContentResponse.model_validate({"candidates": [{"finish_reason": "MAX_TOKENS"}]}),
            "first candidate has no content \\(finish_reason 'MAX_TOKENS'\\)",
        ),
        ([{"role": "system", "parts": [{"text": "x"}]}], r"Gemini contents\[0\] has role 'system'"),
        ([{"text": "a bare part"}], r"Gemini contents\[0\] must be a Content"),
        (
            [{"role": "model", "parts": [{"text": "x", "thought_signature": "not base64!"}]}],
            "thought_signature is not base64",
        ),
        ([{"role": "model", "parts": [{"inline_data": {"data": "iVBO"}}]}], "inline file data needs its media_type"),
        (
            [{"role": "model", "parts": [{"function_response": {"name": "f"}}]}],
            "function responses belong in a user content",
        ),
        ([{"role": "user", "parts": [{"function_response": {"response": {}}}]}], "neither an id nor a name"),
        ([{"role": "model", "parts": [{"function_call": {"args": {}}}]}], "needs a string id and name"),
    ],
)
def test_gemini_input_that_cannot_be_read_is_refused_naming_it(value: Any, error: str) -> None:
    with pytest.raises(ProviderFormatError, match=error):
        messages_from_gemini(value)


def test_refusals_go_as_text_and_calls_keep_their_arguments() -> None:
    history = [
        message("user", "hi"),
        message("assistant", [RefusalPart(refusal="No.")]),
        message("user", "ok"),
        message("assistant", None, tool_calls=(ToolCall(id="t", name="f", arguments='{"a": [1, 2]}'),)),
        message("tool", "done", tool_call_id="t"),
    ]
    anthropic = sdk_anthropic(to_anthropic_messages(history))
    assert anthropic["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "No."}]}
    assert anthropic["messages"][3]["content"] == [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1, 2]}}]
    gemini = to_gemini_contents(history)
    sdk_gemini(gemini)
    assert "system_instruction" not in gemini
    assert gemini["contents"][1] == {"role": "model", "parts": [{"text": "No."}]}
    assert gemini["contents"][3] == {
        "role": "model",
        "parts": [{"function_call": {"name": "f", "args": {"a": [1, 2]}}}],
    }
