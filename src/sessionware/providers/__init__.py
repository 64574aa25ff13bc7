"""Provider formats: OpenAI (chat completions, responses), Anthropic messages and Google Gemini.

One module per provider, each in the same four parts: tool definitions out,
tool calls in, tool results out, history out. :mod:`.calls` holds the
provider-neutral :class:`ToolCall`; :mod:`.common` what the formats share
(the shapes they read, reading SDK objects, strict mode, result payloads,
history windows); :mod:`.inputs` reads a tool call in any shape the history
accepts.

Layering: this package imports only the core (:mod:`sessionware.errors`),
never the agents or tools surface; both surfaces import it, and re-export
its functions under their established names (``sessionware.agents.to_openai_messages``,
``sessionware.tools.to_openai_chat_tools``, ...). The provider SDKs are not
imported; inputs may be SDK objects (anything with ``model_dump()``) or dicts.

Strict mode (OpenAI ``strict``, Anthropic ``strict``) is switched on only when
a tool's schema qualifies: every object closes ``additionalProperties``, lists
all its properties as required, and uses only keywords strict mode supports.
A pydantic model with ``extra="forbid"`` and no defaults qualifies; tools from
the ``@create_tool`` decorator forbid extra keys already.
"""

from .anthropic import (
    from_anthropic_tool_calls,
    messages_from_anthropic,
    to_anthropic_messages,
    to_anthropic_tool_results,
    to_anthropic_tools,
)
from .calls import RawCall, ToolCall, new_call_id
from .common import (
    STRICT_KEYWORDS,
    History,
    HistoryMessage,
    ToolOutcome,
    ToolSource,
    ToolSpec,
    result_payload,
    result_text,
    strict_schema_problem,
)
from .errors import ProviderFormatError, ToolDefinitionError
from .gemini import (
    GEMINI_GENERATED_ID_PREFIX,
    from_gemini_tool_calls,
    messages_from_gemini,
    to_gemini_contents,
    to_gemini_function_responses,
    to_gemini_tools,
)
from .imports import Provider, messages_from_response, provider_of
from .inputs import read_tool_call
from .openai import (
    from_openai_chat_tool_calls,
    from_openai_responses_tool_calls,
    messages_from_openai_chat,
    messages_from_openai_responses,
    to_openai_chat_tool_messages,
    to_openai_chat_tools,
    to_openai_messages,
    to_openai_responses_input,
    to_openai_responses_items,
    to_openai_responses_tool_outputs,
    to_openai_responses_tools,
)

__all__ = [
    "Provider",
    "messages_from_response",
    "provider_of",
    "GEMINI_GENERATED_ID_PREFIX",
    "STRICT_KEYWORDS",
    "History",
    "HistoryMessage",
    "ProviderFormatError",
    "RawCall",
    "ToolCall",
    "ToolDefinitionError",
    "ToolOutcome",
    "ToolSource",
    "ToolSpec",
    "from_anthropic_tool_calls",
    "from_gemini_tool_calls",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "messages_from_openai_chat",
    "messages_from_openai_responses",
    "messages_from_anthropic",
    "messages_from_gemini",
    "new_call_id",
    "read_tool_call",
    "result_payload",
    "result_text",
    "strict_schema_problem",
    "to_anthropic_messages",
    "to_anthropic_tool_results",
    "to_anthropic_tools",
    "to_gemini_contents",
    "to_gemini_function_responses",
    "to_gemini_tools",
    "to_openai_chat_tool_messages",
    "to_openai_chat_tools",
    "to_openai_messages",
    "to_openai_responses_input",
    "to_openai_responses_items",
    "to_openai_responses_tool_outputs",
    "to_openai_responses_tools",
]
