"""Export a history to every provider's request format, tool calls and results included.

The formats live in :mod:`sessionware.providers` (one module per provider);
these are the same functions under the agents surface's names. Every export
keeps each tool call together with its results (a result without its call is
left out; a call that never got a result is answered with an interrupted
error, or left out with ``dangling="drop"``), and refuses a part its provider
cannot take unless asked to drop it (``unsupported="drop"``).
"""

from __future__ import annotations

from ..providers.anthropic import to_anthropic_messages
from ..providers.gemini import to_gemini_contents
from ..providers.openai import to_openai_messages, to_openai_responses_input

__all__ = ["to_anthropic_messages", "to_gemini_contents", "to_openai_messages", "to_openai_responses_input"]
