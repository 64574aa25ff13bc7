"""Open any backend from a URL: ``memory://``, ``sqlite:///path``, ``redis://…``, ``postgresql://…``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import InvalidStoreURLError
from .store import BaseSessionStore

SCHEMES = ("memory", "sqlite", "redis", "rediss", "unix", "postgresql", "postgres")


def open_store(url: str, **options: Any) -> BaseSessionStore:
    """Open the store a URL names; query parameters and ``options`` go to the store.

    ``memory://?max_sessions=1000``; ``sqlite:///relative.db`` or
    ``sqlite:////absolute/path.db`` (``?table=`` names the table);
    ``redis://host:6379/0?prefix=session`` (``?cluster=true`` for Redis Cluster,
    any node's address); ``postgresql://user@host/db?table=…``.
    Nothing is connected until the store is first used.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreURLError(f"not a store URL: {url!r}; expected one of {', '.join(SCHEMES)}://…")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "memory":
        from .stores.memory import InMemorySessionStore

        if "max_sessions" in query:
            options.setdefault("max_sessions", _int(url, "max_sessions", query.pop("max_sessions")))
        _no_leftovers(url, query)
        return InMemorySessionStore(**options)
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not path:
            raise InvalidStoreURLError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        from .stores.sql.sqlite import SQLiteSessionStore

        if "table" in query:
            options.setdefault("table", query.pop("table"))
        _no_leftovers(url, query)
        return SQLiteSessionStore(Path(path), **options)
    if scheme in ("redis", "rediss", "unix"):
        from .stores.redis import RedisSessionStore

        if "prefix" in query:
            options.setdefault("prefix", query.pop("prefix"))
        return RedisSessionStore.from_url(_rebuild(parts, query), **options)
    if scheme in ("postgresql", "postgres"):
        from .stores.sql.postgres import PostgresSessionStore

        if "table" in query:
            options.setdefault("table", query.pop("table"))
        return PostgresSessionStore.from_url(_rebuild(parts, query), **options)
    raise InvalidStoreURLError(f"unknown store URL scheme {parts.scheme!r} in {url!r}; expected one of {SCHEMES}")


def _rebuild(parts: SplitResult, query: dict[str, str]) -> str:
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _int(url: str, name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidStoreURLError(f"{name} in {url!r} must be an integer, not {raw!r}") from None


def _no_leftovers(url: str, query: dict[str, str]) -> None:
    if query:
        raise InvalidStoreURLError(f"unknown parameter(s) {', '.join(sorted(query))} in {url!r}")
