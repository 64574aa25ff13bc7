"""Provider formats, checked by building the official SDK types (openai, anthropic, google-genai) from our output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic import types as anthropic_types
from google.genai import types as gemini_types
from openai.types import chat as openai_chat
from openai.types import responses as openai_responses
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sessionware.tools import (
    ProviderFormatError,
    Toolbox,
    ToolContext,
    ToolDefinitionError,
    ToolResult,
    create_tool,
    create_toolbox,
    from_anthropic_tool_calls,
    from_gemini_tool_calls,
    from_openai_chat_tool_calls,
    from_openai_responses_tool_calls,
    strict_schema_problem,
    to_anthropic_tool_results,
    to_anthropic_tools,
    to_gemini_function_responses,
    to_gemini_tools,
    to_openai_chat_tool_messages,
    to_openai_chat_tools,
    to_openai_responses_tool_outputs,
    to_openai_responses_tools,
)


class Weather(BaseModel):
    """Closed and fully required: qualifies for strict mode."""

    model_config = ConfigDict(extra="forbid")

    city: str = Field(description="City name")
    unit: str | None


class Search(BaseModel):
    """Has a default: does not qualify for strict mode."""

    query: str
    limit: int = 5


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    street: str


class Ship(BaseModel):
    """Nested models via $defs, all closed and required: qualifies."""

    model_config = ConfigDict(extra="forbid")
    to: Address
    items: list[Address]


def weather(args: Weather, context: ToolContext) -> dict[str, Any]:
    return {"city": args.city, "temperature": 21, "unit": args.unit or "C"}


def search(args: Search, context: ToolContext) -> list[str]:
    return [f"{args.query} {i}" for i in range(args.limit)]


def fail(args: Search, context: ToolContext) -> None:
    raise RuntimeError("index offline")


def make_toolbox() -> Toolbox:
    toolbox = create_toolbox()
    create_tool(name="get_weather", description="Current weather.", schema=Weather, execute=weather, toolbox=toolbox)
    create_tool(name="search-docs", description="Search the docs.", schema=Search, execute=search, toolbox=toolbox)
    create_tool(name="ship", description="Ship things.", schema=Ship, execute=lambda a, c: "sent", toolbox=toolbox)
    create_tool(name="broken", description="Always fails.", schema=Search, execute=fail, toolbox=toolbox)
    return toolbox


def materialise(value: Any) -> Any:
    """Lists instead of the lazy iterators pydantic builds for ``Iterable`` fields."""
    if isinstance(value, dict):
        return {k: materialise(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (list, tuple)) or hasattr(value, "__next__"):
        return [materialise(v) for v in value]
    return value


def same_typed_dict(adapter_type: Any, value: Any) -> None:
    """``value`` validates as the SDK's TypedDict and carries no key the SDK does not know."""
    assert materialise(TypeAdapter(adapter_type).validate_python(value)) == value


# -- strict mode ----------------------------------------------------------------------------------


def test_strict_qualification() -> None:
    toolbox = make_toolbox()
    problems = {tool.name: strict_schema_problem(tool.parameters()) for tool in toolbox}
    assert problems["get_weather"] is None
    assert problems["ship"] is None
    assert problems["search-docs"] == "$ does not forbid additional properties"

    class ClosedWithDefault(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str
        limit: int = 5

    assert strict_schema_problem(ClosedWithDefault.model_json_schema()) == "$.limit is optional"
    assert strict_schema_problem({"type": "object", "properties": {}}) == "$ does not forbid additional properties"
    assert (
        strict_schema_problem(
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
        )
        == "$.a is optional"
    )
    assert "oneOf" in str(strict_schema_problem({"type": "object", "oneOf": []}))

    class Open(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inner: dict[str, int]

    assert strict_schema_problem(Open.model_json_schema()) is not None


def test_strict_true_refuses_a_schema_that_does_not_qualify() -> None:
    toolbox = make_toolbox()
    with pytest.raises(ToolDefinitionError, match="'search-docs' cannot be strict"):
        to_openai_chat_tools(toolbox, strict=True)
    assert all(t["function"]["strict"] is False for t in to_openai_chat_tools(toolbox, strict=False))
    strict_only = to_openai_chat_tools(toolbox.select(names=["get_weather", "ship"]), strict=True)
    assert [t["function"]["strict"] for t in strict_only] == [True, True]


# -- definitions ----------------------------------------------------------------------------------


def test_openai_chat_definitions_build_sdk_types() -> None:
    definitions = to_openai_chat_tools(make_toolbox())
    strict = {d["function"]["name"]: d["function"]["strict"] for d in definitions}
    assert strict == {"get_weather": True, "search-docs": False, "ship": True, "broken": False}
    for definition in definitions:
        same_typed_dict(openai_chat.ChatCompletionToolParam, definition)
        model = openai_chat.ChatCompletionFunctionTool.model_validate(definition)
        assert not model.model_extra
        assert not model.function.model_extra
    weather_tool = openai_chat.ChatCompletionFunctionTool.model_validate(definitions[0])
    assert weather_tool.function.parameters is not None
    properties: Any = weather_tool.function.parameters["properties"]
    assert properties["city"]["description"] == "City name"


def test_openai_responses_definitions_build_sdk_types() -> None:
    definitions = to_openai_responses_tools(make_toolbox())
    for definition in definitions:
        same_typed_dict(openai_responses.FunctionToolParam, definition)
        model = openai_responses.FunctionTool.model_validate(definition)
        assert not model.model_extra
    assert [d["strict"] for d in definitions] == [True, False, True, False]


def test_anthropic_definitions_build_sdk_types_with_strict_only_where_it_qualifies() -> None:
    definitions = to_anthropic_tools(make_toolbox())
    for definition in definitions:
        same_typed_dict(anthropic_types.ToolParam, definition)
    assert ["strict" in d for d in definitions] == [True, False, True, False]
    assert definitions[0]["input_schema"]["required"] == ["city", "unit"]


def test_gemini_definitions_build_sdk_types() -> None:
    [tool] = to_gemini_tools(make_toolbox())
    model = gemini_types.Tool.model_validate(tool)
    assert model.function_declarations is not None
    names = [d.name for d in model.function_declarations]
    assert names == ["get_weather", "search-docs", "ship", "broken"]
    ship = model.function_declarations[2].parameters_json_schema
    assert isinstance(ship, dict)
    assert "$defs" in ship
    config = gemini_types.GenerateContentConfig(tools=[model])
    assert config.tools is not None


# -- round trips: calls in, results out -----------------------------------------------------------


async def test_openai_chat_round_trip() -> None:
    toolbox = make_toolbox()
    completion = openai_chat.ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": null}'},
                            },
                            {
                                "id": "call_b",
                                "type": "function",
                                "function": {"name": "search-docs", "arguments": '{"query": "ttl", "limit": '},
                            },
                        ],
                    },
                }
            ],
        }
    )
    calls = from_openai_chat_tool_calls(completion)
    assert [(c.id, c.name) for c in calls] == [("call_a", "get_weather"), ("call_b", "search-docs")]
    assert calls == from_openai_chat_tool_calls(completion.choices[0].message)
    assert calls == from_openai_chat_tool_calls(completion.choices[0].message.model_dump())
    results = await toolbox.execute(calls)
    assert [r.outcome for r in results] == ["success", "error"]
    messages = to_openai_chat_tool_messages(results)
    for message in messages:
        same_typed_dict(openai_chat.ChatCompletionToolMessageParam, message)
    assert messages[0]["tool_call_id"] == "call_a"
    assert json.loads(messages[0]["content"]) == {"city": "Oslo", "temperature": 21, "unit": "C"}
    error = json.loads(messages[1]["content"])["error"]
    assert error["code"] == "invalid_json"
    assert error["issues"][0]["path"] == "$"
    same_typed_dict(
        list[openai_chat.ChatCompletionMessageParam],
        [completion.choices[0].message.model_dump(exclude_none=True), *messages],
    )


async def test_openai_responses_round_trip() -> None:
    toolbox = make_toolbox()
    output = [
        openai_responses.ResponseFunctionToolCall(
            type="function_call", call_id="fc_1", name="search-docs", arguments='{"query": "locks", "limit": 2}'
        ),
        openai_responses.ResponseFunctionToolCall(
            type="function_call", call_id="fc_2", name="broken", arguments='{"query": "x"}'
        ),
    ]
    calls = from_openai_responses_tool_calls(output)
    assert calls == from_openai_responses_tool_calls({"output": [o.model_dump() for o in output]})
    results = await toolbox.execute(calls)
    items = to_openai_responses_tool_outputs(results)
    for item in items:
        same_typed_dict(openai_responses.ResponseInputItemParam, item)
    assert items[0] == {"type": "function_call_output", "call_id": "fc_1", "output": '["locks 0", "locks 1"]'}
    assert json.loads(items[1]["output"])["error"]["code"] == "tool_failed"


async def test_anthropic_round_trip() -> None:
    toolbox = make_toolbox()
    message = anthropic_types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome", "unit": "F"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": 3}},
            ],
        }
    )
    calls = from_anthropic_tool_calls(message)
    assert [(c.id, c.arguments) for c in calls] == [
        ("toolu_1", {"city": "Rome", "unit": "F"}),
        ("toolu_2", {"city": 3}),
    ]
    results = await toolbox.execute(calls)
    reply = to_anthropic_tool_results(results)
    same_typed_dict(anthropic_types.MessageParam, reply)
    first, second = reply["content"]
    assert (first["tool_use_id"], first["is_error"]) == ("toolu_1", False)
    assert json.loads(first["content"])["unit"] == "F"
    assert (second["tool_use_id"], second["is_error"]) == ("toolu_2", True)
    paths = [i["path"] for i in json.loads(second["content"])["error"]["issues"]]
    assert sorted(paths) == ["city", "unit"]


async def test_gemini_round_trip_with_and_without_call_ids() -> None:
    toolbox = make_toolbox()
    response = gemini_types.GenerateContentResponse(
        candidates=[
            gemini_types.Candidate(
                content=gemini_types.Content(
                    role="model",
                    parts=[
                        gemini_types.Part(text="Checking."),
                        gemini_types.Part(
                            function_call=gemini_types.FunctionCall(
                                name="get_weather", args={"city": "Lima", "unit": None}
                            )
                        ),
                        gemini_types.Part(
                            function_call=gemini_types.FunctionCall(id="g-2", name="broken", args={"query": "q"})
                        ),
                    ],
                )
            )
        ]
    )
    calls = from_gemini_tool_calls(response)
    assert [c.name for c in calls] == ["get_weather", "broken"]
    assert calls[1].id == "g-2"
    assert response.candidates is not None
    assert [c.name for c in from_gemini_tool_calls(response.candidates[0].content)] == ["get_weather", "broken"]
    results = await toolbox.execute(calls)
    content = gemini_types.Content.model_validate(to_gemini_function_responses(results))
    assert content.parts is not None
    first, second = (part.function_response for part in content.parts)
    assert first is not None
    assert second is not None
    assert (first.name, first.id) == ("get_weather", None)
    assert first.response == {"output": {"city": "Lima", "temperature": 21, "unit": "C"}}
    assert (second.name, second.id) == ("broken", "g-2")
    assert second.response is not None
    assert second.response["error"]["code"] == "tool_failed"


async def test_gemini_function_call_without_args_means_no_arguments() -> None:
    toolbox = create_toolbox()

    @create_tool(toolbox=toolbox)
    def ping() -> str:
        """Answer pong."""
        return "pong"

    [call] = from_gemini_tool_calls([gemini_types.FunctionCall(name="ping")])
    result = await toolbox.execute(call)
    assert result.result == "pong"
    content = gemini_types.Content.model_validate(to_gemini_function_responses([result]))
    assert content.parts is not None
    assert content.parts[0].function_response is not None
    assert content.parts[0].function_response.response == {"output": "pong"}


async def test_denied_and_action_required_results_are_formatted_for_every_provider() -> None:
    from sessionware.tools import Decision, Invocation, Policy

    def before(invocation: Invocation) -> Decision:
        if invocation.params["query"] == "secret":
            return Decision.deny("not allowed")
        return Decision.needs_approval("confirm first")

    toolbox = create_toolbox(policy=Policy(before_execute=before))
    create_tool(name="search", description="Search.", schema=Search, execute=search, toolbox=toolbox)
    results = await toolbox.execute(
        [
            {"name": "search", "arguments": {"query": "secret"}, "id": "a"},
            {"name": "search", "arguments": {"query": "ok"}, "id": "b"},
        ]
    )
    denied_text = to_openai_chat_tool_messages(results)[0]["content"]
    assert json.loads(denied_text) == {"error": {"code": "denied", "message": "not allowed", "retryable": False}}
    action = json.loads(to_openai_responses_tool_outputs(results)[1]["output"])
    assert action == {"action_required": {"kind": "approval", "reason": "confirm first"}}
    blocks = to_anthropic_tool_results(results)["content"]
    assert [b["is_error"] for b in blocks] == [True, True]
    gemini_types.Content.model_validate(to_gemini_function_responses(results))


async def test_results_that_are_not_json_are_refused_with_a_typed_error() -> None:
    toolbox = create_toolbox()
    create_tool(name="obj", description="D.", schema=Search, execute=lambda a, c: object(), toolbox=toolbox)
    result = await toolbox.execute({"name": "obj", "arguments": {"query": "q"}})
    assert isinstance(result, ToolResult)
    assert result.ok
    with pytest.raises(ProviderFormatError, match="cannot be serialised"):
        to_openai_chat_tool_messages([result])


@pytest.mark.parametrize(
    ("parse", "data", "message"),
    [
        (from_openai_chat_tool_calls, {"tool_calls": [{"id": "x", "type": "function"}]}, "no 'function'"),
        (from_openai_chat_tool_calls, {"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}]}, "no 'id'"),
        (from_openai_chat_tool_calls, {"calls": []}, "expected .tool_calls."),
        (from_openai_responses_tool_calls, 42, "cannot read tool calls"),
        (from_anthropic_tool_calls, [{"type": "tool_use", "id": "t", "name": "a"}], "no 'input'"),
        (from_anthropic_tool_calls, [{"type": "tool_use", "id": "t", "name": "a", "input": 3}], "arguments"),
        (from_gemini_tool_calls, [{"function_call": {"args": {}}}], "no 'name'"),
    ],
)
def test_malformed_provider_data_is_a_typed_error(parse: Any, data: Any, message: str) -> None:
    with pytest.raises(ProviderFormatError, match=message):
        parse(data)


def test_messages_without_tool_calls_give_no_calls() -> None:
    assert from_openai_chat_tool_calls({"role": "assistant", "content": "hi", "tool_calls": None}) == []
    assert from_openai_responses_tool_calls({"output": [{"type": "message", "content": []}]}) == []
    assert from_anthropic_tool_calls({"content": [{"type": "text", "text": "hi"}]}) == []
    assert from_gemini_tool_calls({"candidates": []}) == []
    assert from_gemini_tool_calls(gemini_types.GenerateContentResponse(candidates=[gemini_types.Candidate()])) == []
    assert from_gemini_tool_calls(gemini_types.Content(role="model")) == []
    assert from_openai_chat_tool_calls(openai_chat.ChatCompletionMessage(role="assistant", content="hi")) == []


def test_calls_keep_the_text_the_model_wrote_and_objects_stay_objects() -> None:
    text = '{"query": "locks",   "limit": 2}'
    [chat] = from_openai_chat_tool_calls(
        {"tool_calls": [{"id": "a", "type": "function", "function": {"name": "s", "arguments": text}}]}
    )
    [responses] = from_openai_responses_tool_calls(
        [{"type": "function_call", "call_id": "b", "name": "s", "arguments": text}]
    )
    for call in (chat, responses):
        assert (call.arguments, call.arguments_text) == ({"query": "locks", "limit": 2}, text)
        assert call.arguments_json() == text
    [anthropic] = from_anthropic_tool_calls([{"type": "tool_use", "id": "c", "name": "s", "input": {"query": "q"}}])
    [gemini] = from_gemini_tool_calls([{"function_call": {"id": "d", "name": "s", "args": {"query": "q"}}}])
    for call in (anthropic, gemini):
        assert (call.arguments, call.arguments_text) == ({"query": "q"}, None)


def test_the_history_reads_tool_calls_in_our_shape_and_the_providers() -> None:
    from sessionware.providers import RawCall, read_tool_call

    chat = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tool_use = {"type": "tool_use", "id": "b", "name": "g", "input": {"x": 1}}
    ours = {"id": "c", "name": "h", "arguments": {"y": 2}}
    assert read_tool_call(chat) == RawCall("a", "f", "{}")
    assert read_tool_call(tool_use) == RawCall("b", "g", {"x": 1})
    assert read_tool_call(ours) == RawCall("c", "h", {"y": 2})
    assert read_tool_call({}) == RawCall(None, None, None)


def test_the_tool_surface_names_are_the_provider_formats() -> None:
    import sessionware.providers
    import sessionware.tools
    import sessionware.tools.providers

    homes = (sessionware.providers, sessionware.providers.common)
    for name in sessionware.tools.providers.__all__:
        value = getattr(sessionware.tools.providers, name)
        assert any(getattr(home, name, None) is value for home in homes), name
    assert sessionware.tools.to_openai_chat_tools is sessionware.providers.to_openai_chat_tools
    assert sessionware.tools.ProviderFormatError is sessionware.providers.ProviderFormatError
    assert sessionware.tools.ToolDefinitionError is sessionware.providers.ToolDefinitionError
