"""Provider formats for tools: definitions out, tool calls in, tool results out.

The formats live in :mod:`sessionware.providers` (one module per provider);
this module keeps their names under the tool surface.
"""

from __future__ import annotations

from ..providers.anthropic import from_anthropic_tool_calls, to_anthropic_tool_results, to_anthropic_tools
from ..providers.common import STRICT_KEYWORDS, ToolSource, result_payload, result_text, strict_schema_problem
from ..providers.gemini import (
    GEMINI_GENERATED_ID_PREFIX,
    from_gemini_tool_calls,
    to_gemini_function_responses,
    to_gemini_tools,
)
from ..providers.openai import (
    from_openai_chat_tool_calls,
    from_openai_responses_tool_calls,
    to_openai_chat_tool_messages,
    to_openai_chat_tools,
    to_openai_responses_tool_outputs,
    to_openai_responses_tools,
)

__all__ = [
    "GEMINI_GENERATED_ID_PREFIX",
    "STRICT_KEYWORDS",
    "ToolSource",
    "from_anthropic_tool_calls",
    "from_gemini_tool_calls",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "result_payload",
    "result_text",
    "strict_schema_problem",
    "to_anthropic_tool_results",
    "to_anthropic_tools",
    "to_gemini_function_responses",
    "to_gemini_tools",
    "to_openai_chat_tool_messages",
    "to_openai_chat_tools",
    "to_openai_responses_tool_outputs",
    "to_openai_responses_tools",
]
