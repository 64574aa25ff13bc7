"""Tool calls in whichever shape a caller hands them over: ours or a provider's.

An agent's history accepts ``{"id", "name", "arguments"}`` dicts as well as
OpenAI chat ``tool_calls`` entries and Anthropic ``tool_use`` blocks; the
readers below tell the shapes apart. A new shape is one more reader in
:data:`TOOL_CALL_READERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .anthropic import tool_use_parts
from .calls import RawCall
from .openai import chat_tool_call_parts

ToolCallReader = Callable[[Mapping[str, Any]], RawCall | None]
"""Reads one tool call of its shape, or returns ``None`` for any other shape."""

TOOL_CALL_READERS: tuple[ToolCallReader, ...] = (chat_tool_call_parts, tool_use_parts)
"""Provider shapes tried in order before our own ``{"id", "name", "arguments"}``."""


def read_tool_call(item: Mapping[str, Any]) -> RawCall:
    """The id, name and arguments of one tool call in any shape we read (unchecked; missing parts are ``None``)."""
    for reader in TOOL_CALL_READERS:
        parts = reader(item)
        if parts is not None:
            return parts
    return RawCall(item.get("id"), item.get("name"), item.get("arguments"))


__all__ = ["TOOL_CALL_READERS", "ToolCallReader", "read_tool_call"]
