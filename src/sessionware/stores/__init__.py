"""Session store backends: memory (built in), SQLite (built in), Redis and PostgreSQL (each an extra).

Backends are imported on first use, so a missing driver only matters for the backend that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .memory import InMemorySessionStore
    from .redis import RedisSessionStore
    from .sql.postgres import PostgresSessionStore
    from .sql.sqlite import SQLiteSessionStore

_LAZY = {
    "InMemorySessionStore": ".memory",
    "SQLiteSessionStore": ".sql.sqlite",
    "RedisSessionStore": ".redis",
    "PostgresSessionStore": ".sql.postgres",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = ["InMemorySessionStore", "PostgresSessionStore", "RedisSessionStore", "SQLiteSessionStore"]
