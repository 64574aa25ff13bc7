"""sessionware: durable, concurrency-safe sessions for chat bots and AI agents."""

from .codec import Codec, JsonCodec
from .errors import (
    ConflictError,
    InvalidKeyError,
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
from .store import (
    BaseSessionStore,
    ClosableStore,
    ExpiringStore,
    PurgeableStore,
    RawStore,
    ScannableStore,
    SessionStore,
)
from .stores.memory import InMemorySessionStore

__version__ = "0.1.0"

__all__ = [
    "BaseSessionStore",
    "BasicSessionStore",
    "ClosableStore",
    "Codec",
    "ConflictError",
    "ExpiringStore",
    "InMemorySessionStore",
    "InvalidKeyError",
    "InvalidValueError",
    "JsonCodec",
    "LeaseExpiredError",
    "LockError",
    "MissingExtraError",
    "PurgeableStore",
    "RawStore",
    "ScannableStore",
    "SchemaVersionError",
    "SessionDecodeError",
    "SessionStore",
    "SessionwareError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "ValueTooLargeError",
    "__version__",
]
