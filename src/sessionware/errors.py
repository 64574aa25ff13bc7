"""The typed errors sessionware raises, one hierarchy under :class:`SessionwareError`."""

from __future__ import annotations


class SessionwareError(Exception):
    """Base class of every error sessionware raises on purpose."""


class StoreError(SessionwareError):
    """A session store failed to carry out an operation."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached (connection refused, lost or timed out)."""


class StoreTimeoutError(StoreUnavailableError):
    """A store operation did not finish within its configured timeout."""


class StoreTLSError(StoreUnavailableError):
    """The store's server failed TLS verification (unknown CA, wrong host name, expired certificate).

    Never retried: it is a setting to fix, not a passing fault.
    """


class StoreClosedError(StoreError):
    """The store was closed; it refuses every further call (open a new one)."""


class SessionDecodeError(StoreError):
    """Stored bytes cannot be decoded; the stored record is left untouched."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"session {key!r} cannot be decoded: {reason}")


class SchemaVersionError(StoreError):
    """The store's on-disk schema was written by a newer or unknown release."""


class InvalidKeyError(SessionwareError, ValueError):
    """A session key is empty, too long or contains characters no backend can store."""


class InvalidValueError(SessionwareError, ValueError):
    """A value or an option was refused before anything was written.

    ``path`` names what was wrong: ``$``-paths point into a session value
    (``$['cart'][0]``), anything else names an argument or option (``ttl``,
    ``messages[2].role``).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"session value at {path} {reason}" if path.startswith("$") else f"{path} {reason}")


class ValueTooLargeError(SessionwareError, ValueError):
    """An encoded session value is larger than the store's size limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"encoded session is {size} bytes, over the limit of {limit} bytes")


class InvalidStoreURLError(SessionwareError, ValueError):
    """A store URL has an unknown scheme or missing parts."""


class ConflictError(StoreError):
    """A compare-and-set write found that someone else wrote in between."""


class EncryptionError(StoreError):
    """A sealed record or log entry cannot be opened (no key of its id, a wrong key, changed data), or no
    keys were given; nothing is read as empty and nothing stored is changed."""


class LockError(StoreError):
    """A lock could not be taken, or was lost before the write."""


class NestedUpdateError(LockError):
    """A task asked to update a session it is already updating (a nested ``router.handle`` for the same key)."""


class LeaseExpiredError(LockError):
    """A lock's lease expired while its holder still ran; the write was refused."""


class MissingExtraError(ImportError, SessionwareError):
    """A backend's optional driver is not installed."""

    def __init__(self, backend: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"the {backend} backend needs the {module!r} package: pip install 'sessionware[{extra}]'",
            name=module,
        )


__all__ = [
    "ConflictError",
    "EncryptionError",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "InvalidValueError",
    "LeaseExpiredError",
    "LockError",
    "MissingExtraError",
    "NestedUpdateError",
    "SchemaVersionError",
    "SessionDecodeError",
    "SessionwareError",
    "StoreClosedError",
    "StoreError",
    "StoreTLSError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "ValueTooLargeError",
]
