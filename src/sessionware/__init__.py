"""sessionware: durable, concurrency-safe sessions for chat bots and AI agents."""

from .codec import Codec, JsonCodec
from .errors import (
    ConflictError,
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    MissingExtraError,
    SchemaVersionError,
    SessionDecodeError,
    SessionwareError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    ValueTooLargeError,
)
from .middleware import SessionMiddleware, by_chat, by_user, by_user_in_chat, session
from .router import ConsoleClient, Context, Incoming, Router, RouterError, TelegramAdapter
from .store import (
    BaseSessionStore,
    BasicSessionStore,
    ClosableStore,
    ExpiringStore,
    LogEntry,
    LogStore,
    PurgeableStore,
    RawStore,
    ScannableStore,
    SessionStore,
)
from .stores.memory import InMemorySessionStore
from .urls import open_store

__version__ = "0.1.0"

__all__ = [
    "BaseSessionStore",
    "BasicSessionStore",
    "ClosableStore",
    "ConsoleClient",
    "Context",
    "Codec",
    "ConflictError",
    "ExpiringStore",
    "InMemorySessionStore",
    "Incoming",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "InvalidValueError",
    "JsonCodec",
    "LeaseExpiredError",
    "LockError",
    "LogEntry",
    "LogStore",
    "MissingExtraError",
    "PurgeableStore",
    "RawStore",
    "Router",
    "RouterError",
    "ScannableStore",
    "SchemaVersionError",
    "SessionDecodeError",
    "SessionMiddleware",
    "SessionStore",
    "SessionwareError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TelegramAdapter",
    "ValueTooLargeError",
    "__version__",
    "by_chat",
    "by_user",
    "by_user_in_chat",
    "open_store",
    "session",
]
