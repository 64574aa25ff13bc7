"""OpenAI: Chat Completions and Responses.

Tool definitions out, tool calls in, tool results out, and a history out as
Chat Completions ``messages``. Everything works on plain dicts shaped like
the API; the SDK is not imported, but its objects are read (anything with
``model_dump()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .calls import RawCall, ToolCall
from .common import (
    History,
    JsonDict,
    ToolOutcome,
    ToolSource,
    as_data,
    field,
    history_messages,
    items,
    make_call,
    paired,
    result_text,
    strict_for,
    tool_specs,
)

PROVIDER = "OpenAI"

# -- tool definitions -----------------------------------------------------------------------------


def to_openai_chat_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Chat-completions ``tools=``: ``{"type": "function", "function": {...}}`` per tool.

    ``strict=None`` turns strict mode on where the schema qualifies; ``True``
    demands it (raising for a tool that does not qualify); ``False`` never.
    """
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        function = {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
            "strict": strict_for(tool, parameters, strict),
        }
        out.append({"type": "function", "function": function})
    return out


def to_openai_responses_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Responses-API ``tools=``: ``{"type": "function", "name", "description", "parameters", "strict"}``."""
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        out.append(
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": parameters,
                "strict": strict_for(tool, parameters, strict),
            }
        )
    return out


# -- tool calls in --------------------------------------------------------------------------------


def from_openai_chat_tool_calls(message: object) -> list[ToolCall]:
    """Calls from a chat completion, a choice, an assistant message or its ``tool_calls`` list.

    Arguments stay the JSON string the model wrote (``ToolCall.arguments_text``),
    so a malformed string is reported as a validation error when executed.
    Non-function tool calls are skipped.
    """
    data = as_data(message)
    if isinstance(data, Mapping) and "choices" in data:
        choices = data["choices"]
        data = as_data(choices[0]) if choices else {}
    if isinstance(data, Mapping) and "message" in data:
        data = as_data(data["message"])
    calls = []
    for item in items(data, "tool_calls", "role", "content"):
        if item.get("type", "function") != "function":
            continue
        function = field(item, "function", PROVIDER)
        calls.append(
            make_call(
                PROVIDER,
                field(item, "id", PROVIDER),
                field(function, "name", PROVIDER),
                field(function, "arguments", PROVIDER),
            )
        )
    return calls


def from_openai_responses_tool_calls(response: object) -> list[ToolCall]:
    """Calls (``function_call`` items) from a Responses-API response or its ``output`` list."""
    return [
        make_call(
            PROVIDER,
            field(item, "call_id", PROVIDER),
            field(item, "name", PROVIDER),
            field(item, "arguments", PROVIDER),
        )
        for item in items(response, "output", "id", "status")
        if item.get("type") == "function_call"
    ]


def chat_tool_call_parts(item: Mapping[str, Any]) -> RawCall | None:
    """The parts of ``{"id", "type": "function", "function": {"name", "arguments"}}``, or ``None`` if not that shape."""
    function = item.get("function")
    if not isinstance(function, Mapping):
        return None
    return RawCall(item.get("id"), function.get("name"), function.get("arguments"))


# -- tool results out -----------------------------------------------------------------------------


def to_openai_chat_tool_messages(results: Iterable[ToolOutcome]) -> list[JsonDict]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per result."""
    return [{"role": "tool", "tool_call_id": r.id, "content": result_text(r)} for r in results]


def to_openai_responses_tool_outputs(results: Iterable[ToolOutcome]) -> list[JsonDict]:
    """One ``{"type": "function_call_output", "call_id", "output"}`` input item per result."""
    return [{"type": "function_call_output", "call_id": r.id, "output": result_text(r)} for r in results]


# -- history out ----------------------------------------------------------------------------------


def chat_tool_call(call: ToolCall) -> JsonDict:
    """One assistant ``tool_calls`` entry; the arguments are the model's own text when it wrote text."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json()}}


def to_openai_messages(history: History) -> list[JsonDict]:
    """Chat Completions ``messages``: a list of ``ChatCompletionMessageParam`` dicts.

    System, developer, user and assistant messages keep their role (and
    ``name``); assistant tool calls become ``tool_calls`` of type
    ``function`` with JSON-encoded arguments; tool results become ``tool``
    messages with their ``tool_call_id``. Tool results that answer no tool
    call made earlier in the exported messages are left out, as the API
    rejects them.
    """
    out: list[JsonDict] = []
    for message in paired(history_messages(history)):
        item: JsonDict = {"role": message.role}
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
            item["content"] = message.content or ""
            out.append(item)
            continue
        item["content"] = message.content if message.role == "assistant" else (message.content or "")
        if message.name is not None:
            item["name"] = message.name
        if message.tool_calls:
            item["tool_calls"] = [chat_tool_call(call) for call in message.tool_calls]
        out.append(item)
    return out


__all__ = [
    "chat_tool_call",
    "chat_tool_call_parts",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "to_openai_chat_tool_messages",
    "to_openai_chat_tools",
    "to_openai_messages",
    "to_openai_responses_tool_outputs",
    "to_openai_responses_tools",
]
