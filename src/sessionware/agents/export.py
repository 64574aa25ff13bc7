"""Export a history to the OpenAI and Anthropic chat formats, tool calls and tool results included.

Both exports drop tool results that answer no tool call made earlier in the
exported messages (for instance at the start of a window), since both APIs
reject such a result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .frozen import thaw
from .models import Message, Session

JsonDict = dict[str, Any]


def _messages(history: Session | Iterable[Message]) -> list[Message]:
    if isinstance(history, Session):
        return list(history.conversation_history)
    return list(history)


def _answered(messages: list[Message]) -> list[Message]:
    """``messages`` without tool results whose call id no earlier assistant message issued."""
    called: set[str] = set()
    kept: list[Message] = []
    for message in messages:
        if message.role == "tool" and message.tool_call_id not in called:
            continue
        called.update(call.id for call in message.tool_calls)
        kept.append(message)
    return kept


def to_openai_messages(history: Session | Iterable[Message]) -> list[JsonDict]:
    """Chat Completions ``messages``: a list of ``ChatCompletionMessageParam`` dicts.

    System, developer, user and assistant messages keep their role (and
    ``name``); assistant tool calls become ``tool_calls`` of type
    ``function`` with JSON-encoded arguments; tool results become ``tool``
    messages with their ``tool_call_id``.
    """
    out: list[JsonDict] = []
    for message in _answered(_messages(history)):
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
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(thaw(call.arguments))},
                }
                for call in message.tool_calls
            ]
        out.append(item)
    return out


def to_anthropic_messages(history: Session | Iterable[Message]) -> JsonDict:
    """Keyword arguments for Anthropic's ``messages.create``: ``{"system": ..., "messages": [...]}``.

    System and developer messages are joined into the top-level ``system``
    prompt (left out when there are none). The rest become ``MessageParam``
    dicts with content blocks: text, ``tool_use`` for assistant tool calls
    and ``tool_result`` (in a user turn) for tool messages. Consecutive turns
    of the same role are merged into one, so tool results that answer one
    assistant message share one user turn, results first. Empty text is left out, as the API
    refuses empty text blocks.
    """
    system: list[str] = []
    turns: list[JsonDict] = []
    for message in _answered(_messages(history)):
        if message.role in ("system", "developer"):
            if message.content:
                system.append(message.content)
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
            for call in message.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": thaw(call.arguments)})
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


__all__ = ["to_anthropic_messages", "to_openai_messages"]
