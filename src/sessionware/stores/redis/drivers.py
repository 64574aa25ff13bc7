"""Redis drivers: the one interface the Redis store speaks to, over each client library it can talk through.

A :class:`RedisDriver` sends one command, calls a Lua script (``EVALSHA``,
then ``EVAL`` when the server lacks it), scans the keyspace for a pattern (on
a cluster: every primary) and closes the client it owns. Its error families
say what the store may do after a failure: ``not_run`` (the command certainly
did not run: send it again, whatever it does), ``unavailable`` (connection
trouble: a command that is safe to repeat may be sent again), ``never_retry``
(bad credentials, a closed client) and ``reply_errors`` (the server answered
with an error; ``no_script`` among them for a script it does not have).

- :class:`RespDriver`: sessionware's own automatically pipelined connection
  (:class:`~.resp.RespClient`), the default for one ``redis://`` server. Its
  ``execute`` *is* the client's, so the hot path has no extra layer.
- :class:`RedisPyDriver`: any ``redis.asyncio.Redis`` the user passes in, on
  a plain or blocking pool or a Sentinel-managed one
  (``redis.asyncio.sentinel.Sentinel(...).master_for(name)``).
- :class:`RedisClusterDriver`: a ``redis.asyncio.RedisCluster``; each command
  goes to the primary serving its key's hash slot.

At most once
------------
A driver sends each command once and leaves every retry to the store.
redis-py's own ``execute_command`` sends a command again after a timeout or a
lost connection (the client's ``retry`` policy; on a cluster, its
``cluster_error_retry_attempts`` after reloading the slot map), which could
apply a write twice, so both redis-py drivers bypass it: they take a
connection from the client's pool (on a cluster, from the node's pool), write
the command once and read its reply. What redis-py itself may still repeat
never runs a store command twice:

- connecting, with its handshake (``AUTH``, ``SELECT``, ``CLIENT SETNAME``,
  on a cluster ``READONLY``; under Sentinel, asking the sentinels for the
  master), under the pool's ``retry`` policy, before the command is written.
  A failure there becomes :class:`~.resp.ConnectError`: the command did not run.
- the ``PING`` of a single-server client's ``health_check_interval``, before
  the command is written (the cluster driver sends no health check).

On a cluster, ``MOVED`` and ``ASK`` replies are refusals: the driver sends the
command to the node they name (after ``ASKING`` for ``ASK``), up to 16
redirects in all. ``TRYAGAIN``, ``CLUSTERDOWN`` and ``MASTERDOWN`` are
refusals too and reach the store as ``not_run``. Under Sentinel, a master that
was demoted answers writes with ``READONLY``, which redis-py turns into a
``ConnectionError`` after dropping the connection; the driver reports it as
the ``ReadOnlyError`` it is (not run), and the next connection asks the
sentinels for the new master.

Topology (cluster)
------------------
The slot map is redis-py's (``RedisCluster.nodes_manager``): loaded on first
use, patched by ``MOVED`` replies, and reloaded from any reachable node after
a connection failure, a ``CLUSTERDOWN`` or a slot no node serves, before the
next command. Until the cluster has promoted a replica, commands for the slots
of a failed primary fail as unavailable. The driver never has more commands in
flight on one node than that node's ``max_connections``: further callers wait
for a free connection instead of failing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, ClassVar, NoReturn
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ...errors import MissingExtraError

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.connection import Connection
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis", "redis", "redis") from e

from . import resp as _resp
from .resp import RespClient

Client = aioredis.Redis | aioredis.RedisCluster | RespClient
"""The clients a Redis store can talk through."""
Errors = tuple[type[BaseException], ...]
Send = Callable[..., Awaitable[Any]]
"""Send one command (``"GET", name``) and await its reply."""
Call = Callable[..., Awaitable[Any]]
"""How the store runs a driver call, ``call(send, *args)``: under its timeout and retry policy."""

_MAX_REDIRECTS = 16

_READONLY_SCRIPTS = frozenset({"read"})
"""Scripts that write nothing: no replica acknowledgement to wait for."""
_READS = frozenset({"GET", "PTTL", "LINDEX", "LLEN", "SCAN", "EXISTS", "PING"})
"""The plain commands the store sends that write nothing."""


class NotReplicatedError(redis_errors.ConnectionError):
    """A write ran on the master but too few replicas acknowledged it in time (``WAIT``); it may not survive a
    failover, so it is reported as not acknowledged (it may or may not persist)."""


class Script:
    """A Lua script of ``scripts/``, run with EVALSHA and sent whole with EVAL when the server lacks it.

    ``names`` are concatenated in order, so a script can start with a shared
    prelude (``record`` defines the record helpers).
    """

    __slots__ = ("digest", "readonly", "sha", "source")

    def __init__(self, *names: str) -> None:
        self.readonly = all(name in _READONLY_SCRIPTS for name in names)
        self.source = "".join(_script_source(name) for name in names)
        self.digest = hashlib.sha1(self.source.encode()).hexdigest()
        self.sha = self.digest


@functools.cache
def _script_source(name: str) -> str:
    return resources.files(__package__).joinpath("scripts", f"{name}.lua").read_text(encoding="utf-8")


class RedisDriver(ABC):
    """What the Redis store needs from a client library: commands sent at most once, and what their errors mean.

    ``cluster`` is true when every multi-key call must keep its keys in one
    hash slot. ``client`` is the library's client; the driver closes it in
    :meth:`close` only if it ``owns`` it.
    """

    cluster: ClassVar[bool] = False
    not_run: ClassVar[Errors]
    unavailable: ClassVar[Errors]
    never_retry: ClassVar[Errors]
    reply_errors: ClassVar[Errors]
    no_script: ClassVar[Errors]

    execute: Send
    """Send one command once (``"GET", name``); the reply comes back unparsed (bytes, int, list, None)."""

    def __init__(self, client: Any, *, owns: bool) -> None:
        self.client = client
        self.owns = owns

    async def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` on ``keys`` with ``args``: EVALSHA, and EVAL when the server does not have it."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except self.no_script:
            script.sha = script.digest
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    async def scan(self, match: str, count: int, call: Call) -> AsyncGenerator[list[bytes], None]:
        """Yield pages of key names matching the SCAN pattern ``match``; a name may come twice.

        Each SCAN command is sent through ``call(send, *args)``.
        """
        async for page in _pages(self.execute, match, count, call):
            yield page

    async def close(self) -> None:
        """Close the client if the driver owns it."""
        if self.owns:
            await self._close()

    @abstractmethod
    async def _close(self) -> None: ...


async def _pages(send: Send, match: str, count: int, call: Call) -> AsyncGenerator[list[bytes], None]:
    """One server's SCAN, cursor by cursor."""
    cursor: bytes | int = 0
    while True:
        cursor, names = await call(send, "SCAN", cursor, "MATCH", match, "COUNT", count)
        yield names
        if int(cursor) == 0:
            return


class RespDriver(RedisDriver):
    """Sessionware's own pipelined connection (:class:`~.resp.RespClient`): one server, lowest cost per command."""

    not_run = (_resp.ConnectError, _resp.ServerNotReadyError)
    unavailable = (_resp.ConnectionFailedError, _resp.ServerNotReadyError, OSError)
    never_retry = (_resp.AuthenticationError, _resp.ClientClosedError, _resp.TLSVerificationError)
    reply_errors = (_resp.ReplyError,)
    no_script = (_resp.NoScriptError,)

    def __init__(self, client: RespClient, *, owns: bool = False) -> None:
        super().__init__(client, owns=owns)
        self.execute = client.execute

    async def _close(self) -> None:
        await self.client.aclose()


class _RedisPyErrors(RedisDriver):
    """The error families of redis-py (and :class:`~.resp.ConnectError` for a connection never made)."""

    not_run = (
        _resp.ConnectError,
        redis_errors.BusyLoadingError,
        redis_errors.ReadOnlyError,
        redis_errors.TryAgainError,
        redis_errors.ClusterDownError,  # includes MasterDownError
    )
    unavailable = (
        *not_run,
        redis_errors.ConnectionError,  # includes AuthenticationError and MaxConnectionsError
        redis_errors.TimeoutError,
        OSError,
    )
    never_retry = (redis_errors.AuthenticationError, _resp.TLSVerificationError)
    reply_errors = (redis_errors.ResponseError,)
    no_script = (redis_errors.NoScriptError,)

    async def _close(self) -> None:
        await self.client.aclose()


def _not_connected(where: str, exc: BaseException) -> NoReturn:
    """Raise the error of a connection that could not be made (nothing was sent); bad credentials stay as they are."""
    if isinstance(exc, redis_errors.AuthenticationError):
        raise exc
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        raise _resp.TLSVerificationError(f"Redis{where} failed TLS verification: {cause}") from exc
    raise _resp.ConnectError(f"cannot connect to Redis{where}: {exc}") from exc


class RedisPyDriver(_RedisPyErrors):
    """A ``redis.asyncio.Redis`` client (any pool, Sentinel's too), used through its connection pool.

    Created with ``decode_responses=False`` (the default); a client the user
    passes in is never closed by the store.
    """

    def __init__(
        self, client: aioredis.Redis, *, owns: bool = False, wait_replicas: int = 0, wait_timeout: float = 1.0
    ) -> None:
        _check_bytes(client.connection_pool.connection_kwargs)
        if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
            raise ValueError(f"wait_replicas must be a non-negative int, not {wait_replicas!r}")
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float) or not wait_timeout > 0:
            raise ValueError(f"wait_timeout must be a positive number of seconds, not {wait_timeout!r}")
        super().__init__(client, owns=owns)
        self.pool = client.connection_pool
        self.wait_replicas = wait_replicas
        self._wait = ("WAIT", wait_replicas, max(1, round(wait_timeout * 1000)))

    async def execute(self, *args: Any) -> Any:
        return await self._send(args, wait=bool(self.wait_replicas) and args[0] not in _READS)

    async def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """As every driver runs a script; with ``wait_replicas``, a script that writes waits for the replicas."""
        if not self.wait_replicas:
            return await super().script(script, keys, args)
        wait = not script.readonly
        try:
            return await self._send(("EVALSHA", script.sha, len(keys), *keys, *args), wait=wait)
        except self.no_script:
            script.sha = script.digest
            return await self._send(("EVAL", script.source, len(keys), *keys, *args), wait=wait)

    async def _send(self, args: tuple[Any, ...], *, wait: bool) -> Any:
        pool = self.pool
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            _not_connected("", exc)
        try:
            if not wait:
                await conn.send_command(*args)
                return await conn.read_response(disable_decoding=True)
            # WAIT on the same connection: it counts the replicas that have this connection's last write.
            await conn.send_packed_command(conn.pack_commands([args, self._wait]))
            try:
                reply = await conn.read_response(disable_decoding=True)
            except redis_errors.ResponseError:
                await conn.read_response(disable_decoding=True)
                raise
            acknowledged = int(await conn.read_response(disable_decoding=True))
            if acknowledged < self.wait_replicas:
                raise NotReplicatedError(
                    f"{args[0]} ran on the master but {acknowledged} of the {self.wait_replicas} replica(s) asked for"
                    f" acknowledged it within {self._wait[2]} ms (wait_replicas); it may or may not persist"
                )
            return reply
        except redis_errors.ConnectionError as exc:
            if isinstance(exc.__context__, redis_errors.ReadOnlyError):  # Sentinel: the master was demoted
                raise redis_errors.ReadOnlyError(f"{exc}: {exc.__context__}") from exc
            raise
        finally:
            await pool.release(conn)


class SentinelDriver(RedisPyDriver):
    """A redis-py client on the master a set of Sentinels names (``Sentinel(...).master_for(service)``).

    Each new connection asks the sentinels where the master is; a connection
    to a master that was demoted is dropped on its first ``READONLY`` reply and
    the command reported as not run. No more commands are in flight than the
    pool has connections (``max_connections``, redis-py's 100 unless given as
    an option): further callers wait for one. Closing closes the sentinel
    connections too.
    """

    def __init__(
        self, client: aioredis.Redis, sentinel: Any, *, wait_replicas: int = 0, wait_timeout: float = 1.0
    ) -> None:
        super().__init__(client, owns=True, wait_replicas=wait_replicas, wait_timeout=wait_timeout)
        self.sentinel = sentinel
        # Callers beyond the pool's size wait for a free connection instead of failing.
        self._limit = asyncio.Semaphore(self.pool.max_connections)

    async def _send(self, args: tuple[Any, ...], *, wait: bool) -> Any:
        async with self._limit:
            return await super()._send(args, wait=wait)

    async def _close(self) -> None:
        await self.client.aclose()
        for node in self.sentinel.sentinels:
            await node.aclose()


class RedisClusterDriver(_RedisPyErrors):
    """A ``redis.asyncio.RedisCluster`` client: each command goes to the primary serving its first key's slot.

    The store keeps every call's keys in one slot (see the store's key
    layout), so one node answers each call.
    """

    cluster = True

    def __init__(self, client: aioredis.RedisCluster, *, owns: bool = False) -> None:
        _check_bytes(client.get_connection_kwargs())
        super().__init__(client, owns=owns)
        self._nodes = client.nodes_manager
        self._ready = False
        self._stale = False
        self._loading: asyncio.Future[None] | None = None
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def execute(self, *args: Any) -> Any:
        key = args[3] if args[0] in ("EVALSHA", "EVAL") else args[1]
        return await self._send(self.client.keyslot(key), *args)

    async def scan(self, match: str, count: int, call: Call) -> AsyncGenerator[list[bytes], None]:
        """Yield pages of names matching ``match`` from every primary, one after the other.

        Each primary is reached through a slot it serves, looked up again for
        every page, so a scan follows a failover. A resharding during a scan
        may make it miss keys that move (it yields no key twice, see the store).
        """
        for slot in await call(self._shards):
            async for page in _pages(functools.partial(self._send, slot), match, count, call):
                yield page

    async def _shards(self) -> list[int]:
        """One slot of each primary (its lowest)."""
        await self._topology()
        lowest: dict[str, int] = {}
        for slot, nodes in self._nodes.slots_cache.items():
            if nodes and slot < lowest.get(nodes[0].name, 1 << 14):
                lowest[nodes[0].name] = slot
        return sorted(lowest.values())

    async def _send(self, slot: int, *args: Any) -> Any:
        await self._topology()
        node = self._primary(slot)
        asking = False
        for _ in range(_MAX_REDIRECTS):
            try:
                return await self._on_node(node, args, asking=asking)
            except redis_errors.MovedError as exc:  # the slot moved for good: MovedError is an AskError, so first
                await self._nodes.move_slot(exc)
                node, asking = self._primary(slot), False
            except redis_errors.AskError as exc:  # the slot is migrating: ask the target this once
                target = self._nodes.get_node(host=exc.host, port=exc.port)
                if target is None:
                    self._stale = True
                    raise redis_errors.TryAgainError(f"slot {slot} is migrating to an unknown node") from exc
                node, asking = target, True
        self._stale = True
        raise redis_errors.TryAgainError(f"slot {slot} was redirected {_MAX_REDIRECTS} times")

    async def _on_node(self, node: ClusterNode, args: tuple[Any, ...], *, asking: bool) -> Any:
        limit = self._limits.get(node.name)
        if limit is None:
            limit = self._limits[node.name] = asyncio.Semaphore(node.max_connections)
        async with limit:
            try:
                conn = node.acquire_connection()
            except redis_errors.MaxConnectionsError as exc:  # the application uses the same client too
                _not_connected(f" at {node.name}", exc)
            try:
                await self._connect(node, conn)
                commands = [("ASKING",), args] if asking else [args]
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                if asking:
                    await conn.read_response(disable_decoding=True)
                return await conn.read_response(disable_decoding=True)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, redis_errors.ClusterDownError):
                self._stale = True
                raise
            finally:
                node.release(conn)

    async def _connect(self, node: ClusterNode, conn: Connection) -> None:
        """Make ``conn`` ready to send, reconnecting one that was closed while idle; failures mean nothing was sent."""
        try:
            await node.disconnect_if_needed(conn)
            await conn.connect()  # type: ignore[no-untyped-call]
            if await conn.can_read():  # closed by the server, or left with unread data
                await conn.disconnect()
                await conn.connect()  # type: ignore[no-untyped-call]
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            self._stale = True
            _not_connected(f" at {node.name}", exc)

    def _primary(self, slot: int) -> ClusterNode:
        nodes = self._nodes.slots_cache.get(slot)
        if not nodes:
            self._stale = True
            raise _resp.ConnectError(f"no Redis Cluster node serves hash slot {slot}")
        return nodes[0]

    async def _topology(self) -> None:
        """Load the slot map on first use and reload it after a failure; concurrent callers share one load."""
        if self._ready and not self._stale:
            return
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(self._load())
            loading.add_done_callback(self._loaded)
        await asyncio.shield(loading)

    async def _load(self) -> None:
        self._stale = False
        try:
            if self._ready:
                await self._nodes.initialize()
            else:
                await self.client.initialize()
        except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
            self._stale = True
            _not_connected(" Cluster", exc)
        self._ready = True

    def _loaded(self, loading: asyncio.Future[None]) -> None:
        self._loading = None
        if not loading.cancelled():
            loading.exception()  # retrieved here too, in case every caller was cancelled meanwhile


def _check_bytes(connection_kwargs: dict[str, Any]) -> None:
    if connection_kwargs.get("decode_responses"):
        raise ValueError("RedisSessionStore needs a client created with decode_responses=False: sessions are bytes")


UNAVAILABLE: Errors = (*RespDriver.unavailable, *_RedisPyErrors.unavailable)
"""Every driver's errors of connection trouble."""
DRIVER_ERRORS: Errors = (redis_errors.RedisError, redis_errors.RedisClusterException, _resp.RedisClientError)
"""Anything else a driver raises."""


def driver_for(client: object) -> RedisDriver:
    """The driver for a client the user passes in (never closed by the store)."""
    if isinstance(client, RespClient):
        return RespDriver(client)
    if isinstance(client, aioredis.RedisCluster):
        return RedisClusterDriver(client)
    if isinstance(client, aioredis.Redis):
        return RedisPyDriver(client)
    raise TypeError(
        "RedisSessionStore needs a redis.asyncio.Redis or redis.asyncio.RedisCluster client, or a sessionware "
        f"RespClient, not {type(client).__name__}"
    )


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def open_sentinel_url(url: str, **options: Any) -> SentinelDriver:
    """A driver on the master of ``redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]``.

    The hosts are sentinels (port 26379 unless given); user and password are
    the master's. Query parameters: ``db``, ``sentinel_username`` and
    ``sentinel_password`` (the sentinels' own, if they ask for one),
    ``connect_timeout`` and ``socket_timeout`` (seconds, for the master and the
    sentinels), ``client_name``, ``wait_replicas`` (after each write, ``WAIT``
    for that many replicas: a write is acknowledged only once a replica has
    it, so a failover keeps it) and ``wait_timeout`` (seconds, default 1).
    ``rediss+sentinel://`` speaks TLS to the master, with the ``ssl_*``
    parameters of redis-py. ``options`` go to redis-py's connections.
    Raises ``ValueError`` for a URL it cannot use.
    """
    from redis.asyncio.sentinel import Sentinel

    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query_text = tail.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        hostlist = netloc
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, port = _host_port(item.strip())
        hosts.append((host, port))
    names = [unquote(part) for part in path.split("/") if part]
    if not names or len(names) > 2:
        raise ValueError("a Sentinel URL names the master's service: redis+sentinel://host:port/mymaster[/db]")
    service = names[0]
    kwargs: dict[str, Any] = {}
    sentinel_kwargs: dict[str, Any] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            kwargs["username"] = unquote(user)
        if colon:
            kwargs["password"] = unquote(password)
    if len(names) == 2:
        kwargs["db"] = _resp._int("database", names[1])
    wait: dict[str, Any] = {}
    for name, raw in parse_qsl(query_text, keep_blank_values=True):
        if name == "db":
            kwargs["db"] = _resp._int(name, raw)
        elif name in ("sentinel_password", "sentinel_username"):
            sentinel_kwargs[name.removeprefix("sentinel_")] = raw
        elif name in ("connect_timeout", "socket_timeout"):
            seconds = _query_seconds(name, raw)
            key = "socket_connect_timeout" if name == "connect_timeout" else name
            kwargs[key] = sentinel_kwargs[key] = seconds
        elif name == "wait_replicas":
            wait[name] = _resp._int(name, raw)
        elif name == "wait_timeout":
            wait[name] = _query_seconds(name, raw)
        elif name == "client_name" or (name.startswith("ssl_") and scheme == "rediss+sentinel"):
            kwargs[name] = raw
        else:
            raise ValueError(f"unknown URL parameter {name!r}")
    if scheme == "rediss+sentinel":
        kwargs["ssl"] = True
    kwargs.update(options)
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs or None, **kwargs)  # type: ignore[no-untyped-call,unused-ignore]
    client = sentinel.master_for(service)
    return SentinelDriver(client, sentinel, **wait)


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, port_text = item[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError(f"a sentinel address needs a host, not {item!r}")
    port = _resp._int("port", port_text) if port_text else 26379
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of sentinel {host!r} is out of range")
    return unquote(host), port


def _query_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def open_url(url: str, **options: Any) -> RedisDriver:
    """A driver owning a new client for ``url``: a :class:`~.resp.RespClient`, or with ``?cluster=true`` a
    ``redis.asyncio.RedisCluster`` (``RedisCluster.from_url``), ``options`` going to that client.

    Raises ``ValueError`` for a URL it cannot use.
    """
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        return open_sentinel_url(url, **options)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value.lower() for name, value in query if name == "cluster"]
    if any(flag not in _TRUE + _FALSE for flag in flags):
        raise ValueError("cluster must be true or false")
    if not any(flag in _TRUE for flag in flags):
        plain = _without_cluster(parts, query) if flags else url
        return RespDriver(RespClient.from_url(plain, **options), owns=True)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ValueError("a Redis Cluster URL is redis://host:port?cluster=true or rediss://…")
    try:
        client = aioredis.RedisCluster.from_url(_without_cluster(parts, query), **options)
    except redis_errors.RedisClusterException as exc:
        raise ValueError(str(exc)) from exc
    return RedisClusterDriver(client, owns=True)


def _without_cluster(parts: SplitResult, query: list[tuple[str, str]]) -> str:
    kept = urlencode([(name, value) for name, value in query if name != "cluster"])
    return urlunsplit(parts._replace(query=kept))


__all__ = [
    "DRIVER_ERRORS",
    "Client",
    "UNAVAILABLE",
    "RedisClusterDriver",
    "RedisDriver",
    "RedisPyDriver",
    "NotReplicatedError",
    "RespDriver",
    "SENTINEL_SCHEMES",
    "Script",
    "SentinelDriver",
    "driver_for",
    "open_sentinel_url",
    "open_url",
]
