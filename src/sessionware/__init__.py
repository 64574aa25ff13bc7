"""sessionware: durable, concurrency-safe sessions for chat bots and AI agents.

The top level holds the seed's names, the stores, the errors and
:func:`open_store`. Everything but the errors is imported on first use, so
``import sessionware`` loads no store driver, agent or tool module.
"""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    ConflictError,
    EncryptionError,
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    MissingExtraError,
    NestedUpdateError,
    SchemaVersionError,
    SessionDecodeError,
    SessionwareError,
    StoreError,
    StoreTimeoutError,
    StoreTLSError,
    StoreUnavailableError,
    ValueTooLargeError,
)

if TYPE_CHECKING:
    from .agents import (
        InvalidSessionIdError,
        Message,
        Session,
        SessionManager,
        SessionNotFoundError,
        SessionPage,
        ToolInvocation,
        to_anthropic_messages,
        to_gemini_contents,
        to_openai_messages,
        to_openai_responses_input,
    )
    from .bot import (
        ConsoleClient,
        Context,
        Incoming,
        Router,
        RouterError,
        SessionMiddleware,
        TelegramAdapter,
        by_chat,
        by_user,
        by_user_in_chat,
        session,
    )
    from .codec import Codec, JsonCodec
    from .encryption import EncryptedStore, KeyRing, rotate_keys
    from .isolation import DistributedIsolation, Isolation, LocalIsolation, NoIsolation, make_isolation
    from .store import (
        BaseSessionStore,
        ClosableStore,
        ExpiringStore,
        LockingStore,
        LogEntry,
        LogStore,
        PurgeableStore,
        RawStore,
        ScannableStore,
        SessionStore,
        VersionedStore,
    )
    from .stores import InMemorySessionStore, PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
    from .tools import (
        Decision,
        ErrorInfo,
        Invocation,
        Policy,
        ProviderFormatError,
        RequiredAction,
        Tool,
        Toolbox,
        ToolContext,
        ToolDefinitionError,
        ToolDenied,
        ToolError,
        ToolEvent,
        ToolResult,
        create_middleware,
        create_tool,
        create_toolbox,
        session_middleware,
        with_context,
    )
    from .update import SessionUpdate
    from .urls import open_store

__version__ = "0.2.0.dev0"

_MODULES: dict[str, tuple[str, ...]] = {
    ".agents": (
        "InvalidSessionIdError",
        "Message",
        "Session",
        "SessionManager",
        "SessionNotFoundError",
        "SessionPage",
        "ToolInvocation",
        "to_anthropic_messages",
        "to_gemini_contents",
        "to_openai_messages",
        "to_openai_responses_input",
    ),
    ".bot": (
        "ConsoleClient",
        "Context",
        "Incoming",
        "Router",
        "RouterError",
        "SessionMiddleware",
        "TelegramAdapter",
        "by_chat",
        "by_user",
        "by_user_in_chat",
        "session",
    ),
    ".codec": ("Codec", "JsonCodec"),
    ".encryption": ("EncryptedStore", "KeyRing", "rotate_keys"),
    ".isolation": ("DistributedIsolation", "Isolation", "LocalIsolation", "NoIsolation", "make_isolation"),
    ".store": (
        "BaseSessionStore",
        "ClosableStore",
        "ExpiringStore",
        "LockingStore",
        "LogEntry",
        "LogStore",
        "PurgeableStore",
        "RawStore",
        "ScannableStore",
        "SessionStore",
        "VersionedStore",
    ),
    ".stores": ("InMemorySessionStore", "PostgresSessionStore", "RedisSessionStore", "SQLiteSessionStore"),
    ".tools": (
        "Decision",
        "ErrorInfo",
        "Invocation",
        "Policy",
        "ProviderFormatError",
        "RequiredAction",
        "Tool",
        "ToolContext",
        "ToolDefinitionError",
        "ToolDenied",
        "ToolError",
        "ToolEvent",
        "ToolResult",
        "Toolbox",
        "create_middleware",
        "create_tool",
        "create_toolbox",
        "session_middleware",
        "with_context",
    ),
    ".update": ("SessionUpdate",),
    ".urls": ("open_store",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

_RENAMED = {"BasicSessionStore": ("SessionStore", ".store")}
"""0.1 names kept as deprecated aliases."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name in _RENAMED:
        new, module = _RENAMED[name]
        warnings.warn(f"sessionware.{name} is now sessionware.{new}", DeprecationWarning, stacklevel=2)
        return getattr(import_module(module, __name__), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BaseSessionStore",
    "ClosableStore",
    "Codec",
    "ConflictError",
    "ConsoleClient",
    "Context",
    "Decision",
    "EncryptedStore",
    "EncryptionError",
    "ErrorInfo",
    "ExpiringStore",
    "InMemorySessionStore",
    "Incoming",
    "InvalidKeyError",
    "InvalidSessionIdError",
    "InvalidStoreURLError",
    "InvalidValueError",
    "Invocation",
    "DistributedIsolation",
    "Isolation",
    "LocalIsolation",
    "NoIsolation",
    "JsonCodec",
    "KeyRing",
    "LeaseExpiredError",
    "LockError",
    "LockingStore",
    "LogEntry",
    "LogStore",
    "Message",
    "MissingExtraError",
    "NestedUpdateError",
    "Policy",
    "PostgresSessionStore",
    "ProviderFormatError",
    "PurgeableStore",
    "RawStore",
    "RedisSessionStore",
    "RequiredAction",
    "Router",
    "RouterError",
    "SQLiteSessionStore",
    "ScannableStore",
    "SchemaVersionError",
    "Session",
    "SessionDecodeError",
    "SessionManager",
    "SessionMiddleware",
    "SessionNotFoundError",
    "SessionPage",
    "SessionStore",
    "SessionUpdate",
    "SessionwareError",
    "StoreError",
    "StoreTLSError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TelegramAdapter",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "ToolDenied",
    "ToolError",
    "ToolEvent",
    "ToolInvocation",
    "ToolResult",
    "Toolbox",
    "ValueTooLargeError",
    "VersionedStore",
    "__version__",
    "by_chat",
    "by_user",
    "by_user_in_chat",
    "create_middleware",
    "create_tool",
    "create_toolbox",
    "make_isolation",
    "open_store",
    "rotate_keys",
    "session",
    "session_middleware",
    "to_anthropic_messages",
    "to_gemini_contents",
    "to_openai_messages",
    "to_openai_responses_input",
    "with_context",
]
