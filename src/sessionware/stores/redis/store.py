"""The Redis backend: one Redis string per session, one Redis list per append-only log.

Keys
----
A session record lives at ``f"{prefix}:{key}"``, so ``prefix="session"`` keeps
exactly the keys of the seed's ``RedisSessionStore``. The prefix may not
contain ``":"``: everything up to the first colon of a Redis key is then the
prefix, so two stores with different prefixes can never reach each other's
keys (with colons allowed, store ``"a"``'s key ``"b:c"`` and store ``"a:b"``'s
key ``"c"`` would be the same Redis key).

Internal keyspaces live after ``"<prefix>:\\x00"``: the log of a key at
``<prefix>:\\x00log:<key>``, its lease at ``<prefix>:\\x00lock:<key>`` (on Redis
Cluster sometimes ``<prefix>:\\x00lockt:{<prefix>:<key>}``, braces included; see
below). Session keys never contain NUL (:func:`~sessionware.keys.check_key`
refuses it), so no record key can start with the NUL byte after
``"<prefix>:"`` and a record can never collide with a log or a lease, whatever
its key looks like; ``lock:`` and ``lockt:`` differ in their fifth character,
so the two lease forms never collide either. Everything the store writes
still starts with ``"<prefix>:"``, so one ``SCAN MATCH prefix:*`` finds it all.
Records and logs are named as release 0.1 named them, whatever the client.

Hash slots (Redis Cluster)
--------------------------
Redis Cluster hashes a name's *hash tag* (the text between its first ``{``
and the first ``}`` after it, if that text is not empty) or, without one, the
whole name, and refuses a script whose keys lie in different slots. Only
lock+read and commit touch two keys (the lease and the record), so on a
cluster the lease is named to share its record's slot:

- ``<prefix>:\\x00lock:<key>`` when that hashes like the record, i.e. the
  record name has a hash tag wholly inside the key (``user:{42}``) or wholly
  inside the prefix;
- else ``<prefix>:\\x00lockt:{<prefix>:<key>}``, whose hash tag is the whole
  record name (this works when the record name has no ``}`` and the prefix no ``{``);
- else (a ``}`` outside a valid tag, or a ``{`` in the prefix that the prefix
  does not close) no name in the store's keyspace can share the slot: leases
  on such a key raise :class:`~sessionware.errors.InvalidKeyError` on a
  cluster (reads, writes, compare-and-set and logs touch one key each and work).

The store only ever puts its own text before the key, so a hash tag in the
key is kept: ``agent:s:{ID}``, ``agent:h:{ID}``, ``agent:t:{ID}`` and
``agent:u:<user>:<hex>:{ID}`` put one session's records, logs, leases and
index in slot ``ID``. On one server (no cluster) the lease is always
``<prefix>:\\x00lock:<key>``, as in release 0.1, so processes of both releases
exclude each other during an upgrade.

Records and versions
--------------------
A record is the string ``b"s1:<version>:" + encoded``: ``s1`` names the record
format and ``<version>`` is a random positive 63-bit integer drawn by the
writer on every write (a plain ``set`` too). Versions are only compared for
equality, so a plain write needs no read: ``get`` is one GET and ``set`` one
SET. Anything else under a record key (no frame, another format, a bare JSON
document written by another program) is reported as
:class:`~sessionware.errors.SessionDecodeError` naming the key, and left as it
is. Compare-and-set writes and deletes are Lua scripts that compare the stored
version (as a string: Lua numbers cannot hold 63 bits) and write in one step.

Leases
------
A lease on ``key`` holds a random token, set with ``NX PX``.
:meth:`RedisSessionStore.lock` takes it and reads the record in one Lua call;
:meth:`~RedisSessionStore.commit` checks the token, releases the lease and
writes (or deletes) the record in one Lua call, so a holder whose lease
expired (and was perhaps taken by another process) writes nothing and gets
:class:`~sessionware.errors.LeaseExpiredError`. ``renew`` and ``unlock``
compare the token in a script too: only the holder can extend or release its
lease. An update under a lease therefore costs the same two round trips as an
unprotected GET + SET. Waiting for a held lease retries with jittered
exponential backoff, never past the lease's own expiry, until ``wait`` runs
out (then :class:`~sessionware.errors.LockError`).

Logs
----
A log is one Redis list whose elements are framed as ``b"<seq>:" + encoded``.
The newest element's frame is the log's counter: appends read it, number the
new entries after it and push them in one Lua script, so numbering is atomic
and gap-free across tasks and processes, and trimming (which never removes the
newest element) can never make a number come back. Only a pop or a clear
(:meth:`~RedisSessionStore.log_pop`, :meth:`~RedisSessionStore.log_clear`,
one script each) removes the newest element; they leave the highest number
assigned in a high-water mark, a string at ``<prefix>:\x00logtop:<key>`` with
the list's expiry (on Redis Cluster sometimes
``<prefix>:\x00logtopt:{<list name>}``, named like a lease to share the list's
hash slot), which the next append continues after and then deletes.

:meth:`~RedisSessionStore.log_append_fenced` is that append and a
compare-and-set of a record in one script (``fenced.lua``): nothing is pushed
or written unless the record's version and the log's highest number are the
ones expected. An index put may ride along in the same script when the index
shares the record's slot (always on one server; on a cluster a second script
puts it).

Sorted indexes
--------------
An index is one sorted set at ``<prefix>:\x00x:<key>``. A put (``index_put.lua``)
adds the member and never brings the set's expiry closer; a page
(``index_page.lua``) finds the cursor's reverse rank and reads ``limit``
members from there, so its cost does not grow with the set.

Faults
------
The store talks to Redis through a driver (:mod:`.drivers`) that sends every
command at most once; the store decides what may be repeated. Calls that are
safe to repeat (reads, taking or renewing or releasing a lease, setting an
expiry) are retried up to ``retries`` times with jittered exponential backoff
when the connection fails. Writes (``set``, ``delete``, compare-and-set,
``commit``, ``log_append``) are retried only when they certainly did not run
(no connection could be made, or the server refused them unexecuted, e.g.
while loading, or a cluster moving a slot): a write whose reply was lost
raises :class:`~sessionware.errors.StoreUnavailableError` and may have been
applied, but is never applied twice. ``timeout`` bounds each call (each
attempt of a lease wait) and raises :class:`~sessionware.errors.StoreTimeoutError`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ...codec import Codec, JsonDict
from ...errors import InvalidKeyError, InvalidStoreURLError, SessionDecodeError
from ...keys import TTL, check_key, hash_tag
from ...store import (
    DEFAULT_MAX_SIZE,
    BaseSessionStore,
    IndexPut,
    Lease,
    Locked,
    LogEntry,
    LogRewrite,
    RewriteResult,
    Versioned,
)
from ...urls import redact_url, url_int, url_seconds
from .._common import (
    DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_RETRIES,
    check_expected,
    check_lease,
    check_limit,
    check_prefix,
    check_record,
    check_retries,
    check_timeout,
    check_window,
    conflict,
    encode_log_entries,
    encode_rewrites,
    fenced_batch,
    lease_lost,
    new_token,
    retry_backoff,
    seconds_arg,
    store_ttl,
    wait_for_lease,
)
from .._index import check_member, check_page, check_put
from .drivers import DRIVER_ERRORS, UNAVAILABLE, Client, Errors, RedisDriver, Script, Send, driver_for, open_url

SCAN_COUNT = 1000
"""How many keys one SCAN call examines (a hint to the server)."""

_LOG_KIND = "\x00log:"
_LOCK_KIND = "\x00lock:"
_TAGGED_LOCK_KIND = "\x00lockt:"
_LOG_TOP_KIND = "\x00logtop:"
_TAGGED_LOG_TOP_KIND = "\x00logtopt:"
_INDEX_KIND = "\x00x:"
_BAD_LOG = "SESSIONWARE_BADLOG"
_BAD_RECORD = "SESSIONWARE_BADRECORD"
_SEQ_LIMIT = 2**53  # Lua numbers are doubles: sequence numbers stay exact below this
_FORMAT = b"s1"
_VERSION_DIGITS = 19  # 2**63 - 1 has 19 digits
_STORE_OPTIONS = ("codec", "max_size", "timeout", "retries")


def _frame(data: bytes) -> tuple[bytes, int]:
    """The stored form of ``data`` under a fresh version, and that version."""
    version = random.getrandbits(63) or 1
    return b"s1:%d:%b" % (version, data), version


def _unframe(key: str, raw: bytes) -> Versioned:
    """Split a stored record into its encoded data and version; anything else is a decode error."""
    end = raw.find(b":", 3, 4 + _VERSION_DIGITS)
    if raw[:3] == b"s1:" and end > 3:
        head = raw[3:end]
        if head.isdigit() and head[:1] != b"0":
            return Versioned(raw[end + 1 :], int(head))
    fmt, sep, _ = raw[:16].partition(b":")
    if sep and fmt != _FORMAT and fmt.isalnum():
        raise SessionDecodeError(key, f"record format {fmt.decode()!r} is not one this release reads (expected 's1')")
    raise SessionDecodeError(key, _NO_FRAME)


_UNFRAMED = b"\x00sessionware:unframed\x00"
"""Put before the bytes of a record without any frame when they are handed out as stored data: no codec decodes
them, so the update unit reports the record as undecodable and can quarantine it (bytes kept after this marker)."""

_NO_FRAME = "record has no 's1:<version>:' frame; it was not written by a sessionware store"


def _record_data(key: str, raw: bytes) -> Versioned:
    """:func:`_unframe`, except that a record with no frame at all comes back marked (version 0) to be set aside."""
    try:
        return _unframe(key, raw)
    except SessionDecodeError:
        fmt, sep, _ = raw[:16].partition(b":")
        if sep and fmt != _FORMAT and fmt.isalnum():
            raise  # another release's format: left alone
        return Versioned(_UNFRAMED + raw, 0)


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


def _store_query(url: str) -> tuple[str, dict[str, Any]]:
    """Take the store's own query parameters (``timeout``, ``retries``) out of a Redis URL."""
    head, sep, query = url.partition("?")
    if not sep:
        return url, {}
    found: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name == "timeout":
            found[name] = url_seconds(url, name, raw)
        elif name == "retries":
            found[name] = url_int(url, name, raw)
        else:
            rest.append((name, raw))
    return (f"{head}?{urlencode(rest)}" if rest else head), found


def _bound(value: int | None) -> str:
    """An optional, already validated window bound as a Lua script argument, clamped to what Lua holds exactly."""
    return "" if value is None else str(max(-1, min(value, _SEQ_LIMIT)))


class RedisSessionStore(BaseSessionStore):
    """Sessions in Redis: ``get`` is one GET, ``set`` one SET (``PX`` for a TTL), ``delete`` one DEL.

    Create it with :meth:`from_url` (the store then owns its client and closes
    it in :meth:`close`), or pass a client, which the store never closes: a
    ``redis.asyncio.Redis`` (any connection pool, a Sentinel-managed one too:
    ``Sentinel(...).master_for(name)``), a ``redis.asyncio.RedisCluster``, or a
    :class:`~sessionware.stores.redis.resp.RespClient` (or a
    :class:`~sessionware.stores.redis.drivers.RedisDriver` for another client
    library). redis-py clients must be created with ``decode_responses=False``
    (the default). Expiry is Redis's
    own (``SET ... PX``); setting without a TTL clears it. Versions
    (compare-and-set), leases and logs are Lua scripts, one round trip each.
    ``retries`` bounds how often a call that is safe to repeat is retried
    after a connection failure; ``timeout`` (seconds, 30 unless given;
    ``None``: no limit) bounds each call and raises
    :class:`~sessionware.errors.StoreTimeoutError` past it.
    """

    backend = "redis"
    overlapping_calls = True
    _unavailable_errors = UNAVAILABLE
    _driver_errors = DRIVER_ERRORS

    def __init__(
        self,
        client: Client | RedisDriver,
        prefix: str = "session",
        *,
        retries: int = DEFAULT_RETRIES,
        timeout: float | None = DEFAULT_OPERATION_TIMEOUT,
        codec: Codec | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        check_retries(retries)
        super().__init__(codec=codec, max_size=max_size, timeout=check_timeout(timeout))
        self.driver = client if isinstance(client, RedisDriver) else driver_for(client)
        self.client = self.driver.client
        self.retries = retries
        self.prefix = _check_prefix(prefix)
        self._exec: Send = self.driver.execute
        self._not_run = self.driver.not_run
        self._unavailable = self.driver.unavailable
        self._cluster = self.driver.cluster
        self._key_prefix = prefix + ":"
        self._log_prefix = self._key_prefix + _LOG_KIND
        self._lock_prefix = self._key_prefix + _LOCK_KIND
        self._tagged_lock_prefix = self._key_prefix + _TAGGED_LOCK_KIND
        self._log_top_prefix = self._key_prefix + _LOG_TOP_KIND
        self._tagged_log_top_prefix = self._key_prefix + _TAGGED_LOG_TOP_KIND
        self._append = Script("appending", "append")
        self._fenced = Script("record", "appending", "indexing", "fenced")
        self._read = Script("read")
        self._rewrite = Script("rewrite")
        self._pop = Script("newest", "pop")
        self._clear = Script("newest", "clear")
        self._last_seq = Script("newest", "last_seq")
        self._persist = Script("persist")
        self._cas_set = Script("record", "cas_set")
        self._cas_delete = Script("record", "cas_delete")
        self._lock = Script("lock")
        self._renew = Script("renew")
        self._commit = Script("record", "commit")
        self._unlock = Script("unlock")
        self._index_prefix = self._key_prefix + _INDEX_KIND
        self._index_put = Script("indexing", "index_put")
        self._index_page = Script("index_page")

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "session", **options: Any) -> RedisSessionStore:
        """Create a store with its own client for a ``redis://``, ``rediss://`` or ``unix://`` URL.

        ``redis://[[user]:password@]host[:port][/db]``; ``unix:///path/to/socket?db=N``.
        ``options`` are the store's own (``retries``, ``timeout``, ``codec``,
        ``max_size``) and the client's: for one server (the store's
        :class:`~sessionware.stores.redis.resp.RespClient`, also as URL query
        parameters) ``connect_timeout`` (seconds, default 5), ``stall_timeout``
        (drop a connection that sent no reply for this long, default 30),
        ``client_name``, and for ``rediss://`` (TLS) ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` and
        ``ssl_check_hostname``; the store's ``timeout`` (``none``: no limit)
        and ``retries`` may be query parameters too. A server whose
        certificate fails verification raises
        :class:`~sessionware.errors.StoreTLSError` (never retried).
        ``redis+sentinel://host:port,host:port/service?db=N`` asks the
        sentinels for the master of ``service`` (see
        :func:`~.drivers.open_sentinel_url`). ``?cluster=true`` opens a Redis Cluster instead
        (``redis://host:port?cluster=true``, any node as the first to ask):
        the store owns a ``redis.asyncio.RedisCluster`` made by its
        ``from_url``, which takes the other query parameters and client
        options. Nothing connects until the first command; :meth:`close`
        closes the client.
        """
        if not isinstance(url, str):
            raise InvalidStoreURLError(f"Redis URL must be a str, not {type(url).__name__}")
        _check_prefix(prefix)
        url, found = _store_query(url)
        own = {**found, **{name: options.pop(name) for name in _STORE_OPTIONS if name in options}}
        try:
            driver = open_url(url, **options)
        except ValueError as exc:
            raise InvalidStoreURLError(f"bad Redis URL {redact_url(url)!r}: {exc}") from exc
        return cls(driver, prefix, **own)

    async def close(self) -> None:
        """Close the client if this store created it (see :meth:`from_url`); a passed-in client stays open.

        Every later call raises :class:`~sessionware.errors.StoreClosedError`; closing again does nothing.
        """
        if self._closed:
            return
        try:
            await self._run("close", self.driver.close())
        finally:
            self._closed = True

    # -- sending commands ------------------------------------------------------------------------

    async def _safe(self, *args: Any) -> Any:
        """Run a command that may be repeated, retrying with backoff after a connection failure."""
        try:
            return await self._exec(*args)
        except self._unavailable as exc:
            return await self._retry(self._exec, args, exc, self._unavailable)

    async def _once(self, *args: Any) -> Any:
        """Run a command that must not run twice: retried only when it certainly did not run."""
        try:
            return await self._exec(*args)
        except self._not_run as exc:
            return await self._retry(self._exec, args, exc, self._not_run)

    async def _call(self, send: Send, args: tuple[Any, ...], *, safe: bool) -> Any:
        """``send(*args)`` as :meth:`_safe` (``safe``) or :meth:`_once` sends a command."""
        retryable = self._unavailable if safe else self._not_run
        try:
            return await send(*args)
        except retryable as exc:
            return await self._retry(send, args, exc, retryable)

    async def _retry(self, send: Send, args: tuple[Any, ...], exc: BaseException, retryable: Errors) -> Any:
        for attempt in range(self.retries):
            if isinstance(exc, self.driver.never_retry):
                break
            await asyncio.sleep(retry_backoff(attempt))
            try:
                return await send(*args)
            except retryable as again:
                exc = again
        raise exc

    def _scan_call(self, send: Send, *args: Any) -> Awaitable[Any]:
        return self._run("scan", self._call(send, args, safe=True))

    async def _eval(self, script: Script, key: str, keys: tuple[str, ...], args: tuple[Any, ...], *, safe: bool) -> Any:
        """Run ``script`` (one round trip unless the server lost it); Lua-reported bad data names ``key``."""
        try:
            return await self._call(self.driver.script, (script, keys, args), safe=safe)
        except self.driver.reply_errors as exc:
            message = str(exc)
            if _BAD_LOG in message:
                raise SessionDecodeError(key, "log entry has no sequence number") from exc
            if _BAD_RECORD in message:
                raise SessionDecodeError(key, "record has no 's1:<version>:' frame") from exc
            raise

    def _lease_name(self, key: str) -> str:
        """The Redis name of the lease on ``key``: on a cluster, one that shares the record's hash slot."""
        plain = self._lock_prefix + key
        if not self._cluster:
            return plain
        record = self._key_prefix + key
        slot = hash_tag(record)
        if hash_tag(plain) == slot:
            return plain
        tagged = f"{self._tagged_lock_prefix}{{{record}}}"
        if hash_tag(tagged) == slot:
            return tagged
        if hash_tag(self._key_prefix) == self._key_prefix and ("{" in self.prefix or "}" in self.prefix):
            why = f"the store's prefix {self.prefix[:40]!r} has a brace outside a valid hash tag"
        else:
            why = "the key has a '}' outside a valid hash tag"
        raise InvalidKeyError(
            f"session key {key[:80]!r} cannot be locked on Redis Cluster: {why}, so no lease name can share the "
            "hash slot of its record; use keys without braces or with one hash tag such as 'user:{42}'"
        )

    # -- records ---------------------------------------------------------------------------------

    async def get(self, key: str) -> JsonDict | None:
        """Return the session stored under ``key``, or ``None``; a record of another kind is a decode error."""
        data = await self.get_raw(key)
        if data is None:
            return None
        if data.startswith(_UNFRAMED):
            raise SessionDecodeError(key, _NO_FRAME)
        return self.codec.decode(key, data)

    async def _get(self, key: str) -> bytes | None:
        raw = await self._safe("GET", self._key_prefix + key)
        return None if raw is None else _record_data(key, raw).data

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        await self._write(self._key_prefix + key, _frame(data)[0], ttl)

    async def _write(self, name: str, framed: bytes, ttl: float | None) -> None:
        if ttl is None:
            await self._once("SET", name, framed)
        else:
            await self._once("SET", name, framed, "PX", _ms(ttl))

    async def _delete(self, key: str) -> None:
        await self._once("DEL", self._key_prefix + key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        ms = await self._run("expires_in", self._safe("PTTL", self._key_prefix + check_key(key)))
        return None if ms < 0 else int(ms) / 1000

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Reset the expiry of ``key`` (``None`` removes it); ``False`` if it is missing."""
        name = self._key_prefix + check_key(key)
        seconds = store_ttl(ttl)
        if seconds is None:
            return bool(await self._run("touch", self._eval(self._persist, key, (name,), (), safe=True)))
        return bool(await self._run("touch", self._safe("PEXPIRE", name, _ms(seconds))))

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[str]:
        """Yield each live key that starts with ``prefix`` (taken literally) once, via SCAN (on a cluster, of every
        primary).

        Keys are deduplicated (SCAN may repeat a key while Redis resizes its
        table), so memory grows with the number of keys yielded.
        """
        check_prefix(prefix)
        if check_limit(limit) == 0:
            return
        match = _glob_escape(self._key_prefix + prefix) + "*"
        cut = len(self._key_prefix.encode())
        seen: set[str] = set()
        async with aclosing(self.driver.scan(match, SCAN_COUNT, self._scan_call)) as pages:
            async for names in pages:
                for name in names:
                    if name[cut : cut + 1] == b"\x00":
                        continue  # an internal keyspace (logs, leases), not a record
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

    # -- versions (compare-and-set) --------------------------------------------------------------

    async def get_versioned(self, key: str) -> Versioned | None:
        """Return the stored bytes of ``key`` with their version (one GET), or ``None``."""
        raw = await self._run("get", self._safe("GET", self._key_prefix + check_key(key)))
        return None if raw is None else _unframe(key, raw)

    async def set_versioned(self, key: str, data: bytes, *, expected: int | None, ttl: TTL = None) -> int:
        """Write ``data`` if the record's version is ``expected`` (0: must be missing; ``None``: any).

        Return the new version; raise :class:`~sessionware.errors.ConflictError`
        and write nothing if someone wrote in between. With ``expected=None``
        this is a plain SET.
        """
        seconds = check_record(key, data, self.max_size, ttl)
        check_expected(expected)
        name = self._key_prefix + key
        framed, version = _frame(data)
        if expected is None:
            await self._run("set", self._write(name, framed, seconds))
            return version
        ms = "" if seconds is None else _ms(seconds)
        found = await self._run(
            "set_versioned", self._eval(self._cas_set, key, (name,), (str(expected), framed, ms), safe=False)
        )
        if found != 1:
            raise conflict(key, expected, _found(found))
        return version

    async def delete_versioned(self, key: str, *, expected: int | None) -> None:
        """Delete ``key`` if its version is ``expected`` (0: it must be missing); else raise ``ConflictError``."""
        check_key(key)
        check_expected(expected)
        if expected is None:
            await self._run("delete", self._delete(key))
            return
        name = self._key_prefix + key
        found = await self._run(
            "delete_versioned", self._eval(self._cas_delete, key, (name,), (str(expected),), safe=False)
        )
        if found != 1:
            raise conflict(key, expected, _found(found))

    # -- leases ----------------------------------------------------------------------------------

    async def lock(self, key: str, *, lease: float, wait: float) -> Locked:
        """Take the lease on ``key`` and read the record in one call; wait up to ``wait`` seconds for it.

        While another holder has the lease, retries with jittered exponential
        backoff (never sleeping past that lease's expiry); raises
        :class:`~sessionware.errors.LockError` once ``wait`` has passed.
        """
        check_key(key)
        seconds = seconds_arg("lease", lease, zero=False)
        patience = seconds_arg("wait", wait, zero=True)
        keys = (self._lease_name(key), self._key_prefix + key)
        ms = _ms(seconds)

        async def attempt() -> Locked | float | None:
            token = new_token()
            started = time.monotonic()
            got, value = await self._run("lock", self._eval(self._lock, key, keys, (token, ms), safe=True))
            if got != 1:
                return int(value) / 1000 if int(value) > 0 else None
            held = Lease(key, token, seconds, started)
            if value is None:
                return Locked(held, None)
            try:
                return Locked(held, _record_data(key, value))
            except SessionDecodeError:
                await self.unlock(held)
                raise

        return await wait_for_lease(key, patience, attempt)

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by its ``ttl``; raise ``LeaseExpiredError`` if it was lost."""
        lease = check_lease(lease)
        started = time.monotonic()
        name = self._lease_name(lease.key)
        ok = await self._run(
            "renew", self._eval(self._renew, lease.key, (name,), (lease.token, _ms(lease.ttl)), safe=True)
        )
        if ok != 1:
            raise lease_lost(lease.key, renewing=True)
        return Lease(lease.key, lease.token, lease.ttl, started)

    async def commit(self, lease: Lease, data: bytes | None, *, ttl: TTL = None) -> int:
        """Write ``data`` (``None`` deletes) and release in one call, if the lease is still held.

        Return the new version (0 after a delete). A lease that expired or was
        taken over writes nothing and raises
        :class:`~sessionware.errors.LeaseExpiredError`.
        """
        lease = check_lease(lease)
        key = lease.key
        if data is None:
            framed, version, ms = b"", 0, ""
        else:
            seconds = check_record(key, data, self.max_size, ttl)
            framed, version = _frame(data)
            ms = "" if seconds is None else str(_ms(seconds))
        keys = (self._lease_name(key), self._key_prefix + key)
        ok = await self._run("commit", self._eval(self._commit, key, keys, (lease.token, framed, ms), safe=False))
        if ok != 1:
            raise lease_lost(key)
        return version

    async def unlock(self, lease: Lease) -> None:
        """Release a lease without writing; a lease that expired or was taken over is left alone."""
        lease = check_lease(lease)
        name = self._lease_name(lease.key)
        await self._run("unlock", self._eval(self._unlock, lease.key, (name,), (lease.token,), safe=True))

    # -- append-only logs ------------------------------------------------------------------------

    def _log_key(self, key: str) -> str:
        return self._log_prefix + check_key(key)

    def _log_names(self, key: str) -> tuple[str, ...]:
        """The log's list and its high-water mark; on a cluster, the list alone if no mark can share its slot."""
        name = self._log_key(key)
        top = self._log_top_prefix + key
        if not self._cluster:
            return name, top
        slot = hash_tag(name)
        if hash_tag(top) == slot:
            return name, top
        tagged = f"{self._tagged_log_top_prefix}{{{name}}}"
        if hash_tag(tagged) == slot:
            return name, tagged
        return (name,)

    def _log_edit_names(self, key: str, op: str) -> tuple[str, ...]:
        names = self._log_names(key)
        if len(names) == 1:
            raise InvalidKeyError(
                f"log {key[:80]!r} cannot be edited by {op} on Redis Cluster: the key has a '}}' outside a valid "
                "hash tag, so no high-water mark can share its list's slot; use keys without braces or with one "
                "hash tag such as 'user:{42}'"
            )
        return names

    async def log_append(
        self, key: str, entries: Sequence[JsonDict], *, ttl: TTL = None, max_len: int | None = None
    ) -> list[int]:
        """Append ``entries`` atomically in one round trip; return their sequence numbers.

        ``ttl`` (re)sets the log's expiry; ``None`` leaves it as it is. ``max_len``
        trims the log to its newest ``max_len`` entries. An append is never sent
        twice: one that ends in :class:`~sessionware.errors.StoreUnavailableError`
        (a timeout, a lost connection) may have been applied once, or not at all.
        """
        names = self._log_names(key)
        encoded = encode_log_entries(self.codec, self.max_size, entries, max_len)
        seconds = store_ttl(ttl)
        if not encoded and seconds is None and max_len is None:
            return []
        args = ("" if seconds is None else _ms(seconds), "" if max_len is None else max_len, *encoded)
        before = await self._run("log_append", self._eval(self._append, key, names, args, safe=False))
        first = int(before) + 1
        return list(range(first, first + len(encoded)))

    async def log_append_fenced(
        self,
        key: str,
        entries: Sequence[JsonDict],
        *,
        last: int,
        record: str,
        expected: int,
        data: bytes,
        ttl: TTL = None,
        log_ttl: TTL = None,
        max_len: int | None = None,
        index: IndexPut | None = None,
    ) -> int | None:
        """Append to ``key`` and write ``record`` in one script, if neither changed since; the new version or ``None``.

        On a cluster the record and the log must share a hash slot (keys with
        one hash tag, as the agent keys have); if they do not, nothing is sent
        and ``None`` returned. An ``index`` in another slot is put by a second
        script once the first succeeded. Never sent twice, like an append.
        """
        checked = fenced_batch(
            self.codec,
            self.max_size,
            key,
            entries,
            last=last,
            record=record,
            expected=expected,
            data=data,
            ttl=ttl,
            log_ttl=log_ttl,
            max_len=max_len,
            index=index,
        )
        name = self._key_prefix + record
        names = self._log_names(key)
        if self._cluster and hash_tag(name) != hash_tag(names[0]):
            return None
        framed, version = _frame(data)
        seconds, log_seconds = checked.record_ttl, checked.batch.ttl
        put = checked.put
        later: IndexPut | None = None
        keys: tuple[str, ...] = (name, *names)
        index_args: tuple[Any, ...] = ("", "", "")
        if put is not None:
            index_name = self._index_key(put.key)
            if self._cluster and hash_tag(index_name) != hash_tag(name):
                later = put
            else:
                keys = (*keys, index_name)
                index_args = (repr(put.score), put.member, "" if put.ttl is None else _ms(put.ttl))
        args = (
            str(expected),
            framed,
            "" if seconds is None else _ms(seconds),
            last,
            "" if log_seconds is None else _ms(log_seconds),
            "" if max_len is None else max_len,
            *index_args,
            *checked.batch.encoded,
        )
        done = await self._run("log_append_fenced", self._eval(self._fenced, record, keys, args, safe=False))
        if done != 1:
            return None
        if later is not None:
            await self.index_put(later.key, later.member, later.score, ttl=later.ttl)
        return version

    async def log_read(
        self, key: str, *, after: int | None = None, before: int | None = None, last: int | None = None
    ) -> list[LogEntry]:
        """Entries with ``after < seq < before``, oldest first; ``last`` keeps only the newest N.

        One round trip; the cost depends on how many entries are returned, not on
        the log's length.
        """
        name = self._log_key(key)
        args = tuple(_bound(bound) for bound in check_window(after, before, last))
        framed = await self._run("log_read", self._eval(self._read, key, (name,), args, safe=True))
        return [self._unframe_entry(key, raw) for raw in framed]

    async def log_length(self, key: str) -> int:
        """How many entries the log holds now (0 if it does not exist)."""
        return int(await self._run("log_length", self._safe("LLEN", self._log_key(key))))

    async def log_last_seq(self, key: str) -> int:
        """The highest sequence number assigned in the log (0 if it does not exist)."""
        names = self._log_names(key)
        if len(names) == 2:
            return int(await self._run("log_last_seq", self._eval(self._last_seq, key, names, (), safe=True)))
        tail = await self._run("log_last_seq", self._safe("LINDEX", names[0], -1))
        return 0 if tail is None else self._seq(key, tail)[0]

    async def log_delete(self, key: str) -> None:
        """Remove the whole log (and its high-water mark); nothing happens if it is missing."""
        await self._run("log_delete", self._once("DEL", *self._log_names(key)))

    async def log_pop(self, key: str) -> LogEntry | None:
        """Remove the newest entry and return it, in one script; ``None`` if the log holds none.

        Never sent twice: one that ends in
        :class:`~sessionware.errors.StoreUnavailableError` may have removed the entry.
        """
        names = self._log_edit_names(key, "log_pop")
        raw = await self._run("log_pop", self._eval(self._pop, key, names, (), safe=False))
        return None if raw is None else self._unframe_entry(key, raw)

    async def log_clear(self, key: str) -> int:
        """Remove every entry in one script, keeping the numbering and the expiry; return the highest number.

        Never sent twice (a repeat could remove an entry appended in between).
        """
        names = self._log_edit_names(key, "log_clear")
        return int(await self._run("log_clear", self._eval(self._clear, key, names, (), safe=False)))

    async def log_rewrite(self, key: str, rewrites: Sequence[LogRewrite]) -> list[RewriteResult]:
        """Rewrite entries in place in one script, each only if it still holds ``expected``; one result each.

        The entry is found by its framed number (by bisection when the
        numbers have gaps) and replaced with ``LSET``, which keeps the list's
        expiry. Safe to repeat (an entry already holding the new value is
        reported rewritten), so it is retried like a read.
        """
        encoded = encode_rewrites(self.codec, self.max_size, key, rewrites)
        sent = [rewrite for rewrite in encoded if rewrite.seq < _SEQ_LIMIT]
        codes: dict[int, int] = {}
        if sent:
            args = tuple(part for r in sent for part in (str(r.seq), r.expected, r.value))
            found = await self._run(
                "log_rewrite", self._eval(self._rewrite, key, (self._log_key(key),), args, safe=True)
            )
            codes = {r.seq: int(code) for r, code in zip(sent, found, strict=True)}
        return [_REWRITE_RESULTS[codes.get(r.seq, -1)] for r in encoded]

    @staticmethod
    def _seq(key: str, raw: bytes) -> tuple[int, bytes]:
        head, sep, payload = raw.partition(b":")
        if not sep or not head.isdigit():
            raise SessionDecodeError(key, "log entry has no sequence number")
        return int(head), payload

    def _unframe_entry(self, key: str, raw: bytes) -> LogEntry:
        seq, payload = self._seq(key, raw)
        return LogEntry(seq, self.codec.decode(key, payload))

    # -- sorted indexes --------------------------------------------------------------------------

    def _index_key(self, key: str) -> str:
        return self._index_prefix + check_key(key)

    async def index_put(self, key: str, member: str, score: float, *, ttl: TTL = None) -> None:
        """ZADD and the expiry in one script: the set lives at least until the latest ``ttl`` asked for.

        Never sent twice once it may have run (a repeat could bring back a
        member removed in between).
        """
        key, member, score, seconds = check_put(key, member, score, ttl)
        args = (repr(score), member, "" if seconds is None else _ms(seconds))
        await self._run("index_put", self._eval(self._index_put, key, (self._index_key(key),), args, safe=False))

    async def index_remove(self, key: str, member: str) -> None:
        """ZREM; the set goes with its last member."""
        name = self._index_key(key)
        await self._run("index_remove", self._once("ZREM", name, check_member(member)))

    async def index_page(
        self, key: str, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[tuple[str, float]]:
        """One script: the cursor's reverse rank (ZREVRANK, or a bisection of the ties at its score if the
        member moved), then ZREVRANGE of ``limit`` from there, O(log n + limit)."""
        key, limit, cursor = check_page(key, limit, before)
        args = (limit, "", "") if cursor is None else (limit, repr(cursor[0]), cursor[1])
        flat = await self._run(
            "index_page", self._eval(self._index_page, key, (self._index_key(key),), args, safe=True)
        )
        try:
            return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        except UnicodeDecodeError as exc:
            raise SessionDecodeError(key, f"index member is not UTF-8: {exc.reason}") from exc

    async def index_delete(self, key: str) -> None:
        """DEL of the set."""
        await self._run("index_delete", self._once("DEL", self._index_key(key)))


_REWRITE_RESULTS = {1: RewriteResult.APPLIED, 0: RewriteResult.CHANGED, -1: RewriteResult.MISSING}


def _found(found: object) -> str:
    """The version a compare-and-set script found, for messages (0: missing)."""
    return found.decode() if isinstance(found, bytes) else str(found)


__all__ = ["RedisSessionStore"]
