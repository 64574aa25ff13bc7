"""The Redis backend: one Redis string per session, one Redis list per append-only log.

Keys
----
A session record lives at ``f"{prefix}:{key}"``, so ``prefix="session"`` keeps
exactly the keys of the seed's ``RedisSessionStore``. The prefix may not
contain ``":"``: everything up to the first colon of a Redis key is then the
prefix, so two stores with different prefixes can never reach each other's
keys (with colons allowed, store ``"a"``'s key ``"b:c"`` and store ``"a:b"``'s
key ``"c"`` would be the same Redis key).

Internal keyspaces (logs) live at ``f"{prefix}:\\x00{kind}:{key}"``. Session keys
never contain NUL (:func:`~sessionware.keys.check_key` refuses it), so no record
key can start with the NUL byte after ``f"{prefix}:"`` and a record can never
collide with a log, whatever its key looks like. Everything the store writes
still starts with ``f"{prefix}:"``, so one ``SCAN MATCH prefix:*`` finds it all.

Logs
----
A log is one Redis list whose elements are framed as ``b"<seq>:" + encoded``.
The newest element's frame is the log's counter: appends read it, number the
new entries after it and push them in one Lua script, so numbering is atomic
and gap-free across tasks and processes, and trimming (which never removes the
newest element) can never make a number come back. With no separate counter
key, the list and its numbering share one expiry and one eviction fate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from ..codec import Codec, JsonDict
from ..errors import (
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidValueError,
    MissingExtraError,
    SessionDecodeError,
    ValueTooLargeError,
)
from ..keys import TTL, check_key, ttl_seconds
from ..store import DEFAULT_MAX_SIZE, BaseSessionStore, LogEntry, check_log_args

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis", "redis", "redis") from e

SCAN_COUNT = 1000
"""How many keys one SCAN call examines (a hint to the server)."""

_Execute = Callable[..., Awaitable[Any]]

_LOG_KIND = "\x00log:"
_BAD_LOG = "SESSIONWARE_BADLOG"
_SEQ_LIMIT = 2**53  # Lua numbers are doubles: sequence numbers stay exact below this

# KEYS[1]: the log list. ARGV[1]: ttl in ms or "", ARGV[2]: max_len or "", ARGV[3..]: encoded entries.
# Returns the sequence number that preceded the appended entries.
_APPEND_LUA = f"""
local key = KEYS[1]
local last = 0
local tail = redis.call('LINDEX', key, -1)
if tail then
  last = tonumber(string.match(tail, '^(%d+):'))
  if not last then
    return redis.error_reply('{_BAD_LOG} newest log entry has no sequence number')
  end
end
local n = #ARGV - 2
local batch = {{}}
for i = 1, n do
  batch[#batch + 1] = string.format('%d:', last + i) .. ARGV[i + 2]
  if #batch == 1000 or i == n then
    redis.call('RPUSH', key, unpack(batch))
    batch = {{}}
  end
end
if ARGV[2] ~= '' then
  redis.call('LTRIM', key, -tonumber(ARGV[2]), -1)
end
if ARGV[1] ~= '' then
  redis.call('PEXPIRE', key, ARGV[1])
end
return last
"""

# KEYS[1]: the log list. ARGV: after, before, last ("" for none). Returns the framed entries
# with after < seq < before, the newest `last` of them, oldest first.
_READ_LUA = f"""
local key = KEYS[1]
local len = redis.call('LLEN', key)
if len == 0 then return {{}} end
local newest = tonumber(string.match(redis.call('LINDEX', key, -1), '^(%d+):'))
if not newest then
  return redis.error_reply('{_BAD_LOG} newest log entry has no sequence number')
end
local first = newest - len + 1
local start, stop = 0, len
if ARGV[1] ~= '' then start = math.max(0, tonumber(ARGV[1]) - first + 1) end
if ARGV[2] ~= '' then stop = math.max(0, math.min(len, tonumber(ARGV[2]) - first)) end
if ARGV[3] ~= '' then start = math.max(start, stop - tonumber(ARGV[3])) end
if start >= stop then return {{}} end
return redis.call('LRANGE', key, start - len, stop - 1 - len)
"""

# KEYS[1]: a record. Removes its expiry; returns 1 if it exists.
_PERSIST_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
"""


class _Script:
    """A Lua script run with EVALSHA, loaded on the server the first time it is missing."""

    __slots__ = ("sha", "source")

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self.source = source
        self.sha: str = client.register_script(source).sha

    async def __call__(self, execute: _Execute, key: str, *args: str | bytes | int) -> Any:
        try:
            return await execute("EVALSHA", self.sha, 1, key, *args)
        except redis_errors.NoScriptError:
            sha = await execute("SCRIPT LOAD", self.source)
            self.sha = sha.decode() if isinstance(sha, bytes) else str(sha)
            return await execute("EVALSHA", self.sha, 1, key, *args)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _glob_escape(text: str) -> str:
    """Escape every glob metacharacter of Redis MATCH patterns so ``text`` matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _check_prefix(prefix: object) -> str:
    if type(prefix) is not str or not prefix:
        raise InvalidKeyError(f"Redis store prefix must be a non-empty str, not {prefix!r}")
    if ":" in prefix or "\x00" in prefix:
        raise InvalidKeyError(
            f"Redis store prefix {prefix[:40]!r} must not contain ':' or NUL; keys are stored as "
            "'<prefix>:<key>', and a colon in the prefix would let two stores' keys collide"
        )
    check_key(prefix)
    return prefix


def _bound(name: str, value: int | None, *, non_negative: bool = False) -> str:
    """An optional int window bound as a Lua script argument, clamped to numbers Lua holds exactly."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(name, f"must be an int or None, not {type(value).__name__}")
    if non_negative and value < 0:
        raise InvalidValueError(name, f"must not be negative, not {value}")
    return str(max(-1, min(value, _SEQ_LIMIT)))


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"


class RedisSessionStore(BaseSessionStore):
    """Sessions in Redis: ``get`` is one GET, ``set`` one SET (``PX`` for a TTL), ``delete`` one DEL.

    ``client`` is a ``redis.asyncio.Redis`` created with ``decode_responses=False``
    (the default); the store never closes a client it was given. Use
    :meth:`from_url` to let the store create, own and close its client. Expiry
    is Redis's own (``SET ... PX``); setting without a TTL clears it. Logs are
    Redis lists appended and read by Lua scripts, one round trip each.
    """

    backend = "redis"
    _unavailable_errors = (
        redis_errors.ConnectionError,  # includes BusyLoadingError, AuthenticationError, MaxConnectionsError
        redis_errors.TimeoutError,
        redis_errors.ReadOnlyError,
        redis_errors.TryAgainError,
        redis_errors.ClusterDownError,  # includes MasterDownError
        OSError,
    )
    _driver_errors = (redis_errors.RedisError,)

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "session",
        *,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
    ) -> None:
        super().__init__(codec=codec, max_size=max_size, timeout=timeout)
        if not isinstance(client, aioredis.Redis):
            raise TypeError(f"RedisSessionStore needs a redis.asyncio.Redis client, not {type(client).__name__}")
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisSessionStore needs a client created with decode_responses=False: sessions are bytes")
        self.client = client
        self._exec = cast(_Execute, client.execute_command)
        self.prefix = _check_prefix(prefix)
        self._key_prefix = prefix + ":"
        self._log_prefix = self._key_prefix + _LOG_KIND
        self._owns_client = False
        self._append = _Script(client, _APPEND_LUA)
        self._read = _Script(client, _READ_LUA)
        self._persist = _Script(client, _PERSIST_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "session",
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float | None = None,
        **client_options: Any,
    ) -> RedisSessionStore:
        """Create a store with its own client for ``redis://``, ``rediss://`` or ``unix://`` ``url``.

        The client's pool holds at most ``max_connections`` (100 unless given)
        connections; further concurrent calls wait for a free one instead of
        failing. ``client_options`` go to ``redis.asyncio.BlockingConnectionPool.from_url``
        (e.g. ``max_connections``, ``socket_timeout``, ``client_name``). Nothing
        connects until the first command; :meth:`close` closes the client.
        """
        if not isinstance(url, str):
            raise InvalidStoreURLError(f"Redis URL must be a str, not {type(url).__name__}")
        _check_prefix(prefix)
        try:
            pool = aioredis.BlockingConnectionPool.from_url(url, **client_options)
        except ValueError as exc:
            raise InvalidStoreURLError(f"bad Redis URL {_redact(url)!r}: {exc}") from exc
        client = aioredis.Redis.from_pool(pool)
        store = cls(client, prefix, codec=codec, max_size=max_size, timeout=timeout)
        store._owns_client = True
        return store

    async def close(self) -> None:
        """Close the client if this store created it (see :meth:`from_url`); a passed-in client stays open."""
        if self._owns_client:
            await self._run("close", self.client.aclose())

    # -- records ---------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._exec("GET", self._key_prefix + key))

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        if ttl is None:
            await self._exec("SET", self._key_prefix + key, data)
        else:
            await self._exec("SET", self._key_prefix + key, data, "PX", _ms(ttl))

    async def _delete(self, key: str) -> None:
        await self._exec("DEL", self._key_prefix + key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        ms = await self._run("expires_in", self._exec("PTTL", self._key_prefix + check_key(key)))
        return None if ms < 0 else ms / 1000

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key`` (``None`` removes it); ``False`` if it is missing."""
        name = self._key_prefix + check_key(key)
        seconds = ttl_seconds(ttl)
        if seconds is None:
            return bool(await self._run("touch", self._persist(self._exec, name)))
        return bool(await self._run("touch", self._exec("PEXPIRE", name, _ms(seconds))))

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield each live key that starts with ``prefix`` (taken literally) once, via SCAN.

        Keys are deduplicated (SCAN may repeat a key while Redis resizes its
        table), so memory grows with the number of keys yielded.
        """
        if type(prefix) is not str:
            raise InvalidKeyError(f"scan prefix must be a str, not {type(prefix).__name__}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidValueError("limit", f"must be a non-negative int or None, not {limit!r}")
        if limit == 0:
            return
        match = _glob_escape(self._key_prefix + prefix) + "*"
        cut = len(self._key_prefix.encode())
        seen: set[str] = set()
        cursor: int = 0
        while True:
            cursor, names = await self._run("scan", self._exec("SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT))
            for name in names:
                if name[cut : cut + 1] == b"\x00":
                    continue  # an internal keyspace (logs), not a record
                try:
                    key = name[cut:].decode()
                except UnicodeDecodeError:
                    continue  # not written by a store: session keys are valid UTF-8
                if key in seen:
                    continue
                seen.add(key)
                yield key
                if limit is not None and len(seen) >= limit:
                    return
            if int(cursor) == 0:
                return

    # -- append-only logs ------------------------------------------------------------------------

    def _log_key(self, key: str) -> str:
        return self._log_prefix + check_key(key)

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically in one round trip; return their sequence numbers.

        ``ttl`` (re)sets the log's expiry; ``None`` leaves it as it is. ``max_len``
        trims the log to its newest ``max_len`` entries. An append that ends in
        :class:`~sessionware.errors.StoreUnavailableError` (a timeout, a lost
        connection) may still have been applied by the server.
        """
        name = self._log_key(key)
        check_log_args(entries, max_len)
        seconds = ttl_seconds(ttl)
        encoded = [self.codec.encode(entry) for entry in entries]
        for data in encoded:
            if len(data) > self.max_size:
                raise ValueTooLargeError(len(data), self.max_size)
        if not encoded and seconds is None and max_len is None:
            return []
        args = ("" if seconds is None else _ms(seconds), "" if max_len is None else max_len, *encoded)
        before = await self._run("log_append", self._script(self._append, key, name, *args))
        first = int(before) + 1
        return list(range(first, first + len(encoded)))

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N.

        One round trip; the cost depends on how many entries are returned, not on
        the log's length.
        """
        name = self._log_key(key)
        args = (_bound("after", after), _bound("before", before), _bound("last", last, non_negative=True))
        framed = await self._run("log_read", self._script(self._read, key, name, *args))
        return [self._unframe(key, raw) for raw in framed]

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        return int(await self._run("log_length", self._exec("LLEN", self._log_key(key))))

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number assigned in the log (0 if it does not exist)."""
        tail = await self._run("log_last_seq", self._exec("LINDEX", self._log_key(key), -1))
        return 0 if tail is None else self._seq(key, tail)[0]

    async def log_delete(self, key: str) -> None:
        """Remove the whole log; nothing happens if it is missing."""
        await self._run("log_delete", self._exec("DEL", self._log_key(key)))

    async def _script(self, script: _Script, key: str, name: str, *args: str | bytes | int) -> Any:
        try:
            return await script(self._exec, name, *args)
        except redis_errors.ResponseError as exc:
            if _BAD_LOG in str(exc):
                raise SessionDecodeError(key, "log entry has no sequence number") from exc
            raise

    @staticmethod
    def _seq(key: str, raw: bytes) -> tuple[int, bytes]:
        head, sep, payload = raw.partition(b":")
        if not sep or not head.isdigit():
            raise SessionDecodeError(key, "log entry has no sequence number")
        return int(head), payload

    def _unframe(self, key: str, raw: bytes) -> LogEntry:
        seq, payload = self._seq(key, raw)
        return LogEntry(seq, self.codec.decode(key, payload))


__all__ = ["RedisSessionStore"]
