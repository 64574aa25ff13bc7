"""A minimal asyncio Redis client: one connection, automatic pipelining, hiredis parsing.

Every coroutine's command is queued on one connection and the queue is written
in one ``send`` per event-loop iteration, so many concurrent callers share
each system call and each network round trip; replies come back in the order
the commands were written and are matched to their callers first in, first
out. hiredis parses the replies.

The connection is made on first use, with ``AUTH`` / ``SELECT`` /
``CLIENT SETNAME`` as the URL asks, within ``connect_timeout``; after it drops
the next command connects again. A command is sent at most once: when the
connection drops, the commands still waiting for a reply fail with
:class:`ConnectionFailedError` (they may or may not have run), commands that
never left the client fail with :class:`ConnectError`. When commands wait
longer than ``stall_timeout`` without any reply, the connection is dropped
the same way. Error replies raise :class:`ReplyError` (or a subclass).

Pub/sub and blocking commands that wait for other clients are not what this
client is for: a blocked command holds up every command queued behind it.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import MissingExtraError, StoreTLSError

try:
    import hiredis
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis", "redis", "hiredis") from e

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STALL_TIMEOUT = 30.0


class RedisClientError(Exception):
    """Base class of the errors this client raises."""


class ReplyError(RedisClientError):
    """The server answered a command with an error reply; ``code`` is its first word (``ERR``, ``WRONGTYPE``…)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]


class NoScriptError(ReplyError):
    """``EVALSHA`` named a script the server does not have (it was restarted or flushed its scripts)."""


class ServerNotReadyError(ReplyError):
    """The server refused to run the command for now (loading, read-only replica, busy…); nothing was executed."""


class ConnectionFailedError(RedisClientError, ConnectionError):
    """The connection failed; a command that was already sent may or may not have been executed."""


class ConnectError(ConnectionFailedError):
    """No connection could be made, so the command was never sent."""


class AuthenticationError(ConnectError):
    """The server refused the credentials (or the database) of the connection."""


class TLSVerificationError(ConnectError, StoreTLSError):
    """The server's certificate failed verification; no command was sent, and trying again will not help."""


class ClientClosedError(ConnectionFailedError):
    """The client was closed; it sends nothing more."""


class ProtocolError(ConnectionFailedError):
    """The server sent bytes that are not RESP; the connection was dropped."""


_QUIET = 0.001  # seconds without replies after which the socket is polled once before a write

_NOT_READY = frozenset({"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY"})


def _typed(error: ReplyError) -> ReplyError:
    """The most specific error class for an error reply."""
    code = error.code
    if code == "NOSCRIPT":
        return NoScriptError(str(error))
    if code in _NOT_READY:
        return ServerNotReadyError(str(error))
    return error


class _Connection(asyncio.Protocol):
    """One socket: queues commands, writes them once per loop iteration, matches replies in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stall_timeout: float | None) -> None:
        self.loop = loop
        self.stall_timeout = stall_timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.outgoing: list[bytes] = []
        self.flushing = False
        self.broken = False
        self.lost_reason = ""
        self.last_reply = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.on_lost: Callable[[_Connection], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        if self.broken:
            future.set_exception(
                ConnectError(f"connection to Redis lost before the command was sent: {self.lost_reason}")
            )
            return future
        idle = False
        if not self.pending:
            now = self.loop.time()
            idle = now - self.last_reply > _QUIET
            self.last_reply = now
            if self.watchdog is None and self.stall_timeout is not None:
                self.watchdog = self.loop.call_later(self.stall_timeout, self._check_stall)
        self.pending.append(future)
        self.outgoing.append(packed)
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._poll_then_flush if idle else self._flush)
        return future

    def _poll_then_flush(self) -> None:
        # After a quiet spell, let the loop poll the socket once before writing: a close by the
        # server meanwhile (restart, idle timeout) is then seen first, and the queued commands
        # fail as never sent (safe to retry) instead of as sent into a dead connection.
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flushing = False
        if self.broken or self.transport is None or not self.outgoing:
            return
        data = self.outgoing[0] if len(self.outgoing) == 1 else b"".join(self.outgoing)
        self.outgoing.clear()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        pending = self.pending
        reader.feed(data)
        self.last_reply = self.loop.time()
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(f"protocol error: {exc}", ProtocolError, abort=True)
                return
            if reply is False:
                return
            if not pending:
                self.fail("a reply arrived that no command asked for", ProtocolError, abort=True)
                return
            future = pending.popleft()
            if future.done():
                continue  # its caller was cancelled (e.g. timed out); the reply is dropped in order
            if isinstance(reply, ReplyError):
                future.set_exception(_typed(reply))
            else:
                future.set_result(reply)

    def _check_stall(self) -> None:
        self.watchdog = None
        if not self.pending or self.broken or self.stall_timeout is None:
            return
        waited = self.loop.time() - self.last_reply
        if waited >= self.stall_timeout:
            self.fail(f"no reply for {waited:.1f}s (stall_timeout)", ConnectionFailedError, abort=True)
        else:
            self.watchdog = self.loop.call_later(self.stall_timeout - waited, self._check_stall)

    def eof_received(self) -> bool:
        self.fail("closed by the server", ConnectionFailedError)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(str(exc) if exc else "closed by the server", ConnectionFailedError, cause=exc)

    def fail(
        self,
        reason: str,
        kind: type[ConnectionFailedError],
        *,
        abort: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        """Mark the connection dead: commands sent fail with ``kind``, commands never sent with ``ConnectError``."""
        if self.broken:
            return
        self.broken = True
        self.lost_reason = reason
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        unsent = len(self.outgoing)
        self.outgoing.clear()
        pending = self.pending
        sent = len(pending) - unsent
        for i in range(len(pending)):
            future = pending.popleft()
            if future.done():
                continue
            if i < sent:
                error: ConnectionFailedError = kind(f"connection to Redis lost: {reason}")
            else:
                error = ConnectError(f"connection to Redis lost before the command was sent: {reason}")
            error.__cause__ = cause
            future.set_exception(error)
        if self.on_lost is not None:
            self.on_lost(self)


def _pack(args: tuple[Any, ...]) -> bytes:
    try:
        return hiredis.pack_command(args)  # type: ignore[no-any-return]
    except TypeError as exc:
        kinds = ", ".join(sorted({type(a).__name__ for a in args}))
        raise TypeError(f"Redis command arguments must be str, bytes, int or float, got {kinds}") from exc


class RespClient:
    """An asyncio Redis client on one automatically pipelined connection (see the module docstring).

    Give ``host``/``port`` or a unix socket ``path``; ``db``, ``username``,
    ``password`` and ``client_name`` are sent when connecting. ``ssl`` is an
    ``ssl.SSLContext`` (or ``True`` for the default one). Create it from a URL
    with :meth:`from_url`; close it with :meth:`aclose`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        client_name: str | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise ValueError(f"db must be a non-negative int, not {db!r}")
        for name, value in (("connect_timeout", connect_timeout), ("stall_timeout", stall_timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")
        self.host = host
        self.port = port
        self.path = path
        self.db = db
        self.username = username
        self.password = password
        self.client_name = client_name
        self.ssl: _ssl.SSLContext | None = _ssl.create_default_context() if ssl is True else (ssl or None)
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RespClient:
        """A client for ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
        ``unix://[[user]:password@]/path/to/socket[?db=N]``.

        Query parameters ``db``, ``client_name``, ``connect_timeout`` and
        ``stall_timeout`` are read too, and for ``rediss://`` the TLS settings
        of :func:`tls_context` (``ssl_ca_certs``, ``ssl_certfile``,
        ``ssl_keyfile``, ``ssl_cert_reqs``, ``ssl_check_hostname``); keyword
        ``options`` win over the URL. Raises ``ValueError`` for anything it cannot use.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unknown scheme {parts.scheme!r}: expected redis://, rediss:// or unix://")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        found: dict[str, Any] = {}
        if parts.username:
            found["username"] = unquote(parts.username)
        if parts.password is not None:
            found["password"] = unquote(parts.password)
        if scheme == "unix":
            if not parts.path:
                raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
            found["path"] = unquote(parts.path)
        else:
            if not parts.hostname:
                raise ValueError("the URL names no host")
            found["host"] = unquote(parts.hostname)
            try:
                port = parts.port
            except ValueError as exc:
                raise ValueError(f"bad port: {exc}") from None
            found["port"] = port if port is not None else 6379
            db_path = parts.path.lstrip("/")
            if db_path:
                found["db"] = _int("database", db_path)
        tls = {name: query.pop(name) for name in TLS_PARAMETERS if name in query}
        if tls and scheme != "rediss":
            raise ValueError(f"{', '.join(sorted(tls))} need a rediss:// URL (TLS)")
        if scheme == "rediss":
            found["ssl"] = tls_context(**tls)
        if "db" in query:
            found["db"] = _int("db", query.pop("db"))
        if "client_name" in query:
            found["client_name"] = query.pop("client_name")
        for name in ("connect_timeout", "stall_timeout"):
            if name in query:
                found[name] = _float(name, query.pop(name))
        if query:
            raise ValueError(f"unknown URL parameter(s): {', '.join(sorted(query))}")
        found.update(options)
        return cls(**found)

    @property
    def address(self) -> str:
        """Where the client connects, for messages (never includes the password)."""
        return self.path if self.path is not None else f"{self.host}:{self.port}"

    def execute(self, *args: Any) -> Awaitable[Any]:
        """Send one command (``"GET", "key"``); await its reply (bytes, int, list, None or a status)."""
        conn = self._conn
        if conn is not None:
            return conn.send(_pack(args))
        return self._connect_and_send(_pack(args))

    async def _connect_and_send(self, packed: bytes) -> Any:
        conn = self._conn or await self._connection()
        return await conn.send(packed)

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ClientClosedError("the Redis client is closed")
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            conn = await self._open(loop)
            conn.on_lost = self._forget
            if conn.broken:
                raise ConnectError(f"cannot connect to Redis at {self.address}: {conn.lost_reason}")
            self._conn = conn
            return conn
        finally:
            self._connecting = None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        def factory() -> _Connection:
            return _Connection(loop, self.stall_timeout)

        where = self.address
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, conn = await loop.create_unix_connection(factory, self.path)
                else:
                    hostname = self.host if self.ssl is not None else None
                    _, conn = await loop.create_connection(
                        factory, self.host, self.port, ssl=self.ssl, server_hostname=hostname
                    )
                await self._handshake(conn)
                return conn
        except TimeoutError as exc:
            if conn is not None:
                conn.fail("connect timed out", ConnectError, abort=True)
            raise ConnectError(f"cannot connect to Redis at {where}: timed out after {self.connect_timeout}s") from exc
        except OSError as exc:
            if conn is not None:
                conn.fail(str(exc), ConnectError, abort=True)
            if isinstance(exc, ConnectError):
                raise
            if isinstance(exc, _ssl.SSLCertVerificationError):
                raise TLSVerificationError(
                    f"Redis at {where} failed TLS verification: {exc.verify_message or exc}"
                    " (check ssl_ca_certs and the server's certificate)"
                ) from exc
            raise ConnectError(f"cannot connect to Redis at {where}: {exc}") from exc
        except BaseException:
            if conn is not None:
                conn.fail("connect cancelled", ConnectError, abort=True)
            raise

    async def _handshake(self, conn: _Connection) -> None:
        steps: list[tuple[str, tuple[Any, ...]]] = []
        if self.password is not None:
            auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            steps.append(("authentication", auth))
        if self.db:
            steps.append((f"selecting database {self.db}", ("SELECT", self.db)))
        if self.client_name:
            steps.append(("setting the client name", ("CLIENT", "SETNAME", self.client_name)))
        replies = [conn.send(_pack(args)) for _, args in steps]
        for (what, _), reply in zip(steps, replies, strict=True):
            try:
                await reply
            except ReplyError as exc:
                raise AuthenticationError(f"Redis at {self.address} refused {what}: {exc}") from exc
            except ConnectionFailedError as exc:
                raise ConnectError(f"cannot connect to Redis at {self.address}: {exc}") from exc

    def _forget(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None

    async def aclose(self) -> None:
        """Close the connection; commands still waiting fail, and later ones raise :class:`ClientClosedError`."""
        self._closed = True
        connecting = self._connecting
        if connecting is not None:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        conn = self._conn
        self._conn = None
        if conn is not None:
            conn.fail("the client was closed", ClientClosedError)
            await asyncio.sleep(0)

    # -- conveniences for tools and tests --------------------------------------------------------

    async def ping(self) -> bool:
        """``True`` when the server answers PING."""
        return await self.execute("PING") in (b"PONG", "PONG")

    async def delete(self, *names: str | bytes) -> int:
        """Delete keys; return how many existed."""
        if not names:
            return 0
        return int(await self.execute("DEL", *names))

    async def scan_iter(self, match: str | bytes | None = None, count: int | None = None) -> AsyncIterator[bytes]:
        """Yield key names, SCANning with an optional MATCH pattern and COUNT hint (a key may repeat)."""
        options: list[Any] = []
        if match is not None:
            options += ["MATCH", match]
        if count is not None:
            options += ["COUNT", count]
        cursor: bytes | int = 0
        while True:
            cursor, names = await self.execute("SCAN", cursor, *options)
            for name in names:
                yield name
            if int(cursor) == 0:
                return


TLS_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
"""The TLS query parameters of a ``rediss://`` URL (redis-py's names)."""

_CERT_REQS = {"none": _ssl.CERT_NONE, "optional": _ssl.CERT_OPTIONAL, "required": _ssl.CERT_REQUIRED}


def tls_context(
    *,
    ssl_ca_certs: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_cert_reqs: str = "required",
    ssl_check_hostname: str | bool | None = None,
) -> _ssl.SSLContext:
    """An ``ssl.SSLContext`` for a Redis server: trust ``ssl_ca_certs`` (a PEM file; default: the system's CAs),
    present ``ssl_certfile``/``ssl_keyfile`` as a client certificate, verify the server as ``ssl_cert_reqs``
    says (``required``, ``optional`` or ``none``) and its host name unless ``ssl_check_hostname`` is false
    (or nothing is verified). ``ValueError`` names a bad setting or an unreadable file."""
    reqs = _CERT_REQS.get(str(ssl_cert_reqs).lower())
    if reqs is None:
        raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {ssl_cert_reqs!r}")
    if isinstance(ssl_check_hostname, str):
        flag = ssl_check_hostname.lower()
        if flag not in ("true", "1", "yes", "false", "0", "no"):
            raise ValueError(f"ssl_check_hostname must be true or false, not {ssl_check_hostname!r}")
        ssl_check_hostname = flag in ("true", "1", "yes")
    try:
        context = _ssl.create_default_context(cafile=ssl_ca_certs)
    except (OSError, _ssl.SSLError) as exc:
        raise ValueError(f"ssl_ca_certs {ssl_ca_certs!r} cannot be read as PEM certificates: {exc}") from None
    context.check_hostname = reqs != _ssl.CERT_NONE and ssl_check_hostname is not False
    context.verify_mode = reqs
    if ssl_certfile is not None or ssl_keyfile is not None:
        if ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        try:
            context.load_cert_chain(ssl_certfile, ssl_keyfile)
        except (OSError, _ssl.SSLError) as exc:
            raise ValueError(f"ssl_certfile {ssl_certfile!r} cannot be loaded: {exc}") from None
    return context


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {value}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None


__all__ = [
    "AuthenticationError",
    "ClientClosedError",
    "ConnectError",
    "ConnectionFailedError",
    "NoScriptError",
    "ProtocolError",
    "RedisClientError",
    "ReplyError",
    "RespClient",
    "ServerNotReadyError",
    "TLSVerificationError",
    "tls_context",
]
