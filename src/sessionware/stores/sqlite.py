"""The 0.1 import path of the SQLite store; prefer ``sessionware.SQLiteSessionStore``."""

from .sql.sqlite import DEFAULT_LOCK_TIMEOUT, SQLiteSessionStore

__all__ = ["DEFAULT_LOCK_TIMEOUT", "SQLiteSessionStore"]
