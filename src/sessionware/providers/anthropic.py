"""Anthropic Messages.

Tool definitions out, ``tool_use`` blocks in, ``tool_result`` blocks out, and
a history out as ``messages.create`` keyword arguments. Everything works on
plain dicts shaped like the API; the SDK is not imported, but its objects are
read (anything with ``model_dump()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .calls import RawCall, ToolCall, jsonable
from .common import (
    History,
    JsonDict,
    ToolOutcome,
    ToolSource,
    field,
    history_messages,
    items,
    make_call,
    paired,
    result_text,
    strict_for,
    tool_specs,
)
from .parts import text_of

PROVIDER = "Anthropic"

# -- tool definitions -----------------------------------------------------------------------------


def to_anthropic_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Anthropic ``tools=``: ``{"name", "description", "input_schema"}``, plus ``"strict": True`` where it qualifies."""
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        definition: JsonDict = {
            "name": tool.name,
            "description": tool.description,
            "input_schema": parameters,
        }
        if strict_for(tool, parameters, strict):
            definition["strict"] = True
        out.append(definition)
    return out


# -- tool calls in --------------------------------------------------------------------------------


def from_anthropic_tool_calls(message: object) -> list[ToolCall]:
    """Calls (``tool_use`` blocks) from an Anthropic message or its ``content`` list."""
    return [
        make_call(
            PROVIDER,
            field(block, "id", PROVIDER),
            field(block, "name", PROVIDER),
            field(block, "input", PROVIDER),
        )
        for block in items(message, "content", "role", "type")
        if block.get("type") == "tool_use"
    ]


def tool_use_parts(block: Mapping[str, Any]) -> RawCall | None:
    """The parts of a ``{"type": "tool_use", "id", "name", "input"}`` block, or ``None`` if not that shape."""
    if block.get("type") != "tool_use":
        return None
    return RawCall(block.get("id"), block.get("name"), block.get("input"))


# -- tool results out -----------------------------------------------------------------------------


def to_anthropic_tool_results(results: Iterable[ToolOutcome]) -> JsonDict:
    """A user message of ``tool_result`` blocks, ``is_error`` set on every result that did not succeed."""
    blocks = [
        {"type": "tool_result", "tool_use_id": r.id, "content": result_text(r), "is_error": not r.ok} for r in results
    ]
    return {"role": "user", "content": blocks}


# -- history out ----------------------------------------------------------------------------------


def tool_use_block(call: ToolCall) -> JsonDict:
    """A ``tool_use`` block for one assistant tool call."""
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": jsonable(call.arguments or {})}


def to_anthropic_messages(history: History) -> JsonDict:
    """Keyword arguments for Anthropic's ``messages.create``: ``{"system": ..., "messages": [...]}``.

    System and developer messages are joined into the top-level ``system``
    prompt (left out when there are none). The rest become ``MessageParam``
    dicts with content blocks: text, ``tool_use`` for assistant tool calls
    and ``tool_result`` (in a user turn) for tool messages. Consecutive turns
    of the same role are merged into one, so tool results that answer one
    assistant message share one user turn, results first. Empty text is left
    out, as the API refuses empty text blocks, and so are tool results that
    answer no tool call made earlier in the exported messages.
    """
    system: list[str] = []
    turns: list[JsonDict] = []
    for message in paired(history_messages(history)):
        if message.role in ("system", "developer"):
            if message.content:
                system.append(text_of(message.content))
            continue
        blocks: list[JsonDict] = []
        if message.role == "tool":
            role = "user"
            blocks.append(
                {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content or ""}
            )
        else:
            role = message.role
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks.extend(tool_use_block(call) for call in message.tool_calls)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    out: JsonDict = {"messages": turns}
    if system:
        out["system"] = "\n\n".join(system)
    return out


__all__ = [
    "from_anthropic_tool_calls",
    "to_anthropic_messages",
    "to_anthropic_tool_results",
    "to_anthropic_tools",
    "tool_use_block",
    "tool_use_parts",
]
