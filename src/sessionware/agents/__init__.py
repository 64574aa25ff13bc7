"""Agent conversations: persistent sessions with history, tool invocations and ownership checks.

::

    from sessionware.agents import SessionManager

    manager = SessionManager(store)  # any backend; None keeps sessions in memory
    session = await manager.create_session("user-123", metadata={"preferences": {"theme": "dark"}})
    await manager.add_message(session.id, "user", "hello", user_id="user-123")
    window = await manager.history(session.id, last=20, user_id="user-123")
"""

from ..frozen import FrozenList, FrozenMap
from .errors import InvalidCursorError, InvalidSessionIdError, MissingCapabilityError, SessionNotFoundError
from .export import to_anthropic_messages, to_gemini_contents, to_openai_messages, to_openai_responses_input
from .history import TokenCounter, approx_tokens
from .keyspace import AgentKeys
from .logkeys import agent_log_keys
from .manager import DEFAULT_HISTORY_WINDOW, SessionManager, UserSessions, bound_caller
from .models import Message, Role, Session, SessionPage, Source, ToolCall, ToolInvocation, ToolStatus

__all__ = [
    "DEFAULT_HISTORY_WINDOW",
    "AgentKeys",
    "FrozenList",
    "FrozenMap",
    "InvalidCursorError",
    "InvalidSessionIdError",
    "Message",
    "MissingCapabilityError",
    "Role",
    "Session",
    "SessionManager",
    "SessionNotFoundError",
    "SessionPage",
    "Source",
    "TokenCounter",
    "ToolCall",
    "ToolInvocation",
    "ToolStatus",
    "UserSessions",
    "agent_log_keys",
    "approx_tokens",
    "bound_caller",
    "to_anthropic_messages",
    "to_gemini_contents",
    "to_openai_messages",
    "to_openai_responses_input",
]
