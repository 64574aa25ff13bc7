"""Open any backend from a URL: ``memory://``, ``sqlite:///path``, ``redis://…``, ``postgresql://…``."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import InvalidStoreURLError
from .store import BaseSessionStore

SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+sentinel", "unix", "postgresql", "postgres")
_SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")

_SECRET_PARAM = re.compile(r"(?i)((?:^|[?&;])(?:password|passwd|pass|secret|token)=)[^&;#]*")


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` style query value) shown as ``***``, for messages.

    Works on URLs too malformed to parse; when in doubt, more is hidden, never less.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.rfind("@")
    if at >= 0:
        userinfo, host = rest[:at], rest[at + 1 :]
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    rest = _SECRET_PARAM.sub(r"\1***", rest)
    return f"{scheme}{sep}{rest}"


def split_url(url: str) -> SplitResult:
    """Parse a store URL, checking its host and port; :class:`InvalidStoreURLError` (password hidden) if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidStoreURLError(f"malformed store URL {redact_url(url)!r}: {exc}") from None
    if port == 0:
        raise InvalidStoreURLError(f"malformed store URL {redact_url(url)!r}: port 0 names no server")
    return parts


def open_store(url: str, **options: Any) -> BaseSessionStore:
    """Open the store a URL names; query parameters and ``options`` go to the store.

    ``memory://?max_sessions=1000``; ``sqlite:///relative.db`` or
    ``sqlite:////absolute/path.db`` (``?table=`` names the table);
    ``redis://host:6379/0?prefix=session`` (``?cluster=true`` for Redis Cluster,
    any node's address), ``rediss://`` for TLS,
    ``redis+sentinel://host:26379,host:26380/mymaster?db=0`` through Sentinel;
    ``postgresql://user@host/db?table=…``.
    Nothing is connected until the store is first used.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreURLError(f"not a store URL: {redact_url(url)!r}; expected one of {', '.join(SCHEMES)}://…")
    if url.partition("://")[0].lower() in _SENTINEL_SCHEMES:
        # Several sentinel addresses in one netloc: the Redis driver parses them itself.
        from .stores.redis import RedisSessionStore

        head, _, query_text = url.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        if "prefix" in query:
            options.setdefault("prefix", query.pop("prefix"))
        return RedisSessionStore.from_url(f"{head}?{urlencode(query)}" if query else head, **options)
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme in ("postgresql+asyncpg", "postgres+asyncpg"):
        scheme = scheme.partition("+")[0]
        parts = parts._replace(scheme=scheme)
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
                f"bad SQLite URL {redact_url(url)!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
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
    raise InvalidStoreURLError(
        f"unknown store URL scheme {parts.scheme!r} in {redact_url(url)!r}; expected one of {', '.join(SCHEMES)}"
    )


def _rebuild(parts: SplitResult, query: dict[str, str]) -> str:
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _int(url: str, name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidStoreURLError(f"{name} in {redact_url(url)!r} must be an integer, not {raw!r}") from None


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null", "off", "")


def url_int(url: str, name: str, raw: str, *, minimum: int = 0) -> int:
    """The integer query parameter ``name`` of a store URL, at least ``minimum``; else :class:`InvalidStoreURLError`."""
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise InvalidStoreURLError(
            f"{name} in {redact_url(url)!r} must be an integer of at least {minimum}, not {raw!r}"
        ) from None
    return value


def url_seconds(url: str, name: str, raw: str, *, zero: bool = False) -> float | None:
    """A query parameter of seconds (``none`` or empty: no limit); else :class:`InvalidStoreURLError` naming it."""
    if raw.strip().lower() in _NONE:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        kind = "non-negative" if zero else "positive"
        raise InvalidStoreURLError(
            f"{name} in {redact_url(url)!r} must be a {kind} number of seconds or none, not {raw!r}"
        )
    return value


def url_bool(url: str, name: str, raw: str) -> bool:
    """A true/false query parameter; else :class:`InvalidStoreURLError` naming it."""
    flag = raw.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    raise InvalidStoreURLError(f"{name} in {redact_url(url)!r} must be true or false, not {raw!r}")


def _no_leftovers(url: str, query: dict[str, str]) -> None:
    if query:
        raise InvalidStoreURLError(f"unknown parameter(s) {', '.join(sorted(query))} in {redact_url(url)!r}")
