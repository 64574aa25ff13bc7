"""The tool surface: schema-validated tools run through a toolbox with policy, middleware and sessions.

::

    toolbox = create_toolbox(middleware=[session_middleware(manager)])

    @create_tool(toolbox=toolbox)
    async def set_theme(theme: str, context: ToolContext) -> dict[str, str]:
        "Change the caller's theme."
        await manager.update_session(context.session.id, metadata={"theme": theme})
        return {"theme": theme}

    result = await toolbox.execute(call, context={"user_id": user_id, "session_id": session_id})

Modules, each importing only those above it: ``errors`` → ``results`` →
``context`` → ``arguments`` → ``tool`` → ``invocation`` → ``policy``,
``middleware`` → ``toolbox`` → ``session``, ``otel``, ``providers``. The
provider formats themselves live in :mod:`sessionware.providers`.
"""

from .context import ToolContext
from .errors import ErrorCategory, ProviderFormatError, ToolDefinitionError, ToolDenied, ToolError, ToolTimeoutError
from .invocation import Invocation
from .middleware import CallNext, ConfigureFn, Middleware, MiddlewareForm, create_middleware
from .policy import Decision, Policy
from .providers import (
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
from .results import ErrorInfo, Outcome, RequiredAction, ToolCall, ToolResult
from .session import session_middleware
from .tool import Tool, ToolConfig, ToolHost, create_tool, with_context
from .toolbox import Toolbox, ToolEvent, create_toolbox

__all__ = [
    "CallNext",
    "ConfigureFn",
    "Decision",
    "ErrorCategory",
    "ErrorInfo",
    "Invocation",
    "Middleware",
    "MiddlewareForm",
    "Outcome",
    "Policy",
    "ProviderFormatError",
    "RequiredAction",
    "Tool",
    "ToolCall",
    "ToolConfig",
    "ToolContext",
    "ToolDefinitionError",
    "ToolDenied",
    "ToolError",
    "ToolEvent",
    "ToolHost",
    "ToolResult",
    "ToolTimeoutError",
    "Toolbox",
    "create_middleware",
    "create_tool",
    "create_toolbox",
    "from_anthropic_tool_calls",
    "from_gemini_tool_calls",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "session_middleware",
    "strict_schema_problem",
    "to_anthropic_tool_results",
    "to_anthropic_tools",
    "to_gemini_function_responses",
    "to_gemini_tools",
    "to_openai_chat_tool_messages",
    "to_openai_chat_tools",
    "to_openai_responses_tool_outputs",
    "to_openai_responses_tools",
    "with_context",
]
