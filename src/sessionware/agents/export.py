"""Export a history to the OpenAI and Anthropic chat formats, tool calls and tool results included.

The formats live in :mod:`sessionware.providers` (one module per provider);
these are the same functions under the agents surface's names. Both exports
drop tool results that answer no tool call made earlier in the exported
messages (for instance at the start of a window), since both APIs reject
such a result.
"""

from __future__ import annotations

from ..providers.anthropic import to_anthropic_messages
from ..providers.openai import to_openai_messages

__all__ = ["to_anthropic_messages", "to_openai_messages"]
