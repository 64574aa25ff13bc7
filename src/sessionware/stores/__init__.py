"""Session store backends: memory (built in), SQLite (built in), Redis and PostgreSQL (each an extra).

Backends are imported on first use, so a missing driver only matters for the backend that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["InMemorySessionStore", "PostgresSessionStore", "RedisSessionStore", "SQLiteSessionStore"]
