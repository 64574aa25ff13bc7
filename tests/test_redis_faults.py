"""The Redis store under faults, against a private ``redis-server`` each test starts, stops, pauses and restarts.

The shared server on 6379 is never touched: every test here runs its own
server on a free loopback port (with an fsync-always append-only file where a
test asserts that acknowledged writes survive a crash), plus, where a test
needs replies to go missing, a small TCP proxy in front of it, or a sentinel
(``redis-server --sentinel``) for a Sentinel-managed client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.sentinel import Sentinel

from sessionware.errors import StoreTimeoutError, StoreUnavailableError
from sessionware.stores.redis import RedisSessionStore
from sessionware.stores.redis.drivers import RedisPyDriver
from sessionware.testing import StoreContract

pytestmark = pytest.mark.slow

REDIS_SERVER = shutil.which("redis-server")
REDIS_URL = os.environ.get("SESSIONWARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
CLIENT_KINDS = ["resp", "redis-py"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int) -> bool:
    """Whether a Redis server on ``port`` serves commands (PONG, or asks for a password); not LOADING or refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class PrivateRedis:
    """A ``redis-server`` subprocess this test owns, on its own port and directory."""

    def __init__(self, workdir: Path, *, durable: bool) -> None:
        if REDIS_SERVER is None:
            message = "redis-server is not installed; install the redis-server package"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.server = REDIS_SERVER
        self.workdir = workdir
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.extra: list[str] = []  # more redis-server options

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        where = ["--daemonize", "no", "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        extra = self.extra
        self.process = subprocess.Popen(
            [self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence, *where, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no final save) and wait until it is gone."""
        if self.process is not None:
            if self.paused:
                self.resume()
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, durable=True)
    server.start()
    yield server
    server.kill()


class Proxy:
    """A loopback TCP proxy in front of a server; it can swallow replies so a client never sees them."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_replies = 0  # drop the next N reply chunks and cut that client's connection
        self.sent = bytearray()  # everything clients sent to the server
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._writers.add(up_w)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                self.sent += data
                up_w.write(data)
                await up_w.drain()

        async def downstream() -> None:
            while data := await up_r.read(65536):
                if self.drop_replies > 0:
                    self.drop_replies -= 1
                    return
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            client_w.close()
            up_w.close()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._writers.discard(client_w)
            self._writers.discard(up_w)
            self._tasks.discard(task)

    def count(self, command: bytes) -> int:
        """How many times ``command`` (e.g. ``b"EVALSHA"``) was sent through the proxy."""
        return bytes(self.sent).count(b"$%d\r\n%b\r\n" % (len(command), command))


@pytest.fixture
async def proxy(private_redis: PrivateRedis) -> AsyncIterator[Proxy]:
    p = Proxy(private_redis.port)
    await p.start()
    yield p
    await p.close()


@pytest.fixture(params=CLIENT_KINDS)
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client the store talks through: one it creates from a URL, or a redis-py client passed in."""
    return str(request.param)


OpenStore = Callable[..., RedisSessionStore]


@pytest.fixture
async def open_store(client_kind: str) -> AsyncIterator[OpenStore]:
    """Open stores on a URL with the current client kind; all are closed afterwards."""
    opened: list[tuple[RedisSessionStore, aioredis.Redis | None]] = []

    def factory(url: str, **options: Any) -> RedisSessionStore:
        if client_kind == "redis-py":
            pool = aioredis.BlockingConnectionPool.from_url(url, socket_connect_timeout=1)
            client = aioredis.Redis.from_pool(pool)
            store = RedisSessionStore(client, "faults", **options)
            opened.append((store, client))
        else:
            store = RedisSessionStore.from_url(url, prefix="faults", **options)
            opened.append((store, None))
        return store

    yield factory
    for store, client in opened:
        await store.close()
        if client is not None:
            await client.aclose()


async def fails_fast(call: Awaitable[object], *, within: float = 1.5) -> StoreUnavailableError:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await call
    assert time.monotonic() - started < within, "a call to a server that is down must fail quickly"
    return info.value


# -- a server that goes away and comes back --------------------------------------------------------


class Writers:
    """Tasks that each write fresh keys ``w<task>:<i>`` and append one entry to the log ``log`` after each write,
    until stopped, and remember what was acknowledged."""

    def __init__(self, store: RedisSessionStore, tasks: int = 8, *, log: str = "log") -> None:
        self.store = store
        self.log = log
        self.acked: dict[str, int] = {}  # key -> the value its acknowledged write stored
        self.appended: dict[int, int] = {}  # entry id -> the seq its acknowledged append returned
        self.failures: list[StoreUnavailableError] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._write(w)) for w in range(tasks)]

    async def _write(self, w: int) -> None:
        i = 0
        while not self._stop.is_set():
            key = f"w{w}:{i}"
            try:
                await self.store.set(key, {"i": i})
                self.acked[key] = i
                entry = w * 1_000_000 + i
                (seq,) = await self.store.log_append(self.log, [{"id": entry}])
                self.appended[entry] = seq
            except StoreUnavailableError as exc:
                self.failures.append(exc)
                await asyncio.sleep(0.01)
            i += 1

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def check(self) -> None:
        """Every acknowledged write and append is there, no append ran twice, and the log has no gap."""
        keys = list(self.acked)
        found = await asyncio.gather(*(self.store.get(k) for k in keys))
        missing = [k for k, got in zip(keys, found, strict=True) if got != {"i": self.acked[k]}]
        assert missing == [], f"{len(missing)} of {len(keys)} acknowledged writes are missing, e.g. {missing[:3]}"
        entries = await self.store.log_read(self.log)
        ids = [e.value["id"] for e in entries]
        assert len(ids) == len(set(ids)), "no append was applied twice"
        seq_of = {e.value["id"]: e.seq for e in entries}
        for entry, seq in self.appended.items():
            assert seq_of.get(entry) == seq, f"acknowledged append {entry} is missing or renumbered"
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))


async def test_restart_mid_run_loses_no_acknowledged_write(private_redis: PrivateRedis, open_store: OpenStore) -> None:
    """Writers keep going while the server crashes and restarts; every write that returned is there afterwards."""
    store = open_store(private_redis.url)
    writers = Writers(store)
    await asyncio.sleep(0.3)
    before = len(writers.acked)
    assert before > 0
    private_redis.kill()
    await asyncio.sleep(0.3)
    down = len(writers.failures)
    assert down > 0, "writes must fail while the server is down"
    await fails_fast(store.get("w0:0"))
    private_redis.start()
    await asyncio.sleep(0.6)
    await writers.stop()
    assert len(writers.acked) > before + 8, "the store reconnects by itself and writes succeed again"
    assert all(exc.__cause__ is not None for exc in writers.failures), "driver errors are chained"
    await writers.check()


async def test_every_operation_fails_fast_while_down_then_recovers(
    private_redis: PrivateRedis, open_store: OpenStore
) -> None:
    store = open_store(private_redis.url)
    await store.set("k", {"v": 1})
    held = await store.lock("held", lease=30, wait=0)
    private_redis.kill()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get("k"),
        lambda: store.set("k", {"v": 2}),
        lambda: store.delete("k"),
        lambda: store.expires_in("k"),
        lambda: store.touch("k", 30),
        lambda: store.get_versioned("k"),
        lambda: store.set_versioned("k", b"{}", expected=0),
        lambda: store.delete_versioned("k", expected=0),
        lambda: store.lock("k", lease=5, wait=1),
        lambda: store.renew(held.lease),
        lambda: store.commit(held.lease, b"{}"),
        lambda: store.unlock(held.lease),
        lambda: store.log_append("k", [{"n": 1}]),
        lambda: store.log_read("k"),
        lambda: store.log_length("k"),
        lambda: store.log_delete("k"),
    ]
    for call in calls:
        error = await fails_fast(call())
        assert "redis" in str(error)
    await fails_fast(anext(store.scan()))
    private_redis.start()
    assert await store.get("k") == {"v": 1}, "written before the crash, kept by the append-only file"
    await store.set("k", {"v": 3})
    assert await store.get("k") == {"v": 3}
    assert await store.log_append("k", [{"n": 1}]) == [1]


async def test_reads_and_unsent_writes_retry_through_a_short_outage(
    private_redis: PrivateRedis, open_store: OpenStore
) -> None:
    """A restart shorter than the retry budget is invisible: nothing was sent while the server was gone."""
    store = open_store(private_redis.url, retries=8)
    await store.set("k", {"v": 1})
    private_redis.kill()
    await asyncio.sleep(0.01)
    read = asyncio.create_task(store.get("k"))
    write = asyncio.create_task(store.set("k2", {"v": 2}))
    await asyncio.sleep(0.2)
    assert not read.done()
    assert not write.done()
    private_redis.start()
    assert await asyncio.wait_for(read, 10) == {"v": 1}
    await asyncio.wait_for(write, 10)
    assert await store.get("k2") == {"v": 2}


# -- replies that never arrive ---------------------------------------------------------------------


async def test_a_lost_reply_never_applies_an_append_twice(proxy: Proxy, open_store: OpenStore) -> None:
    store = open_store(proxy.url)
    assert await store.log_append("log", [{"n": 1}]) == [1]
    sent = proxy.count(b"EVALSHA")
    proxy.drop_replies = 1
    with pytest.raises(StoreUnavailableError):
        await store.log_append("log", [{"n": 2}])
    assert proxy.count(b"EVALSHA") == sent + 1, "the append was sent once and not retried"
    assert [e.value for e in await store.log_read("log")] == [{"n": 1}, {"n": 2}], "it ran exactly once"
    assert await store.log_append("log", [{"n": 3}]) == [3]


async def test_a_lost_reply_never_resends_a_write(proxy: Proxy, open_store: OpenStore) -> None:
    store = open_store(proxy.url)
    await store.set("k", {"v": 1})
    await store.set_versioned("warm", b"{}", expected=0)  # the server has the scripts: no NOSCRIPT reply to lose
    await store.commit((await store.lock("warm", lease=30, wait=0)).lease, b"{}")
    held = await store.lock("l", lease=30, wait=0)
    writes: list[tuple[bytes, Callable[[], Awaitable[object]]]] = [
        (b"SET", lambda: store.set("k", {"v": 2})),
        (b"DEL", lambda: store.delete("k")),
        (b"EVALSHA", lambda: store.set_versioned("k", b"{}", expected=0)),
        (b"EVALSHA", lambda: store.commit(held.lease, b'{"c":1}')),
    ]
    for command, write in writes:
        await store.get("warm")  # a live connection, so the dropped reply is the write's own
        before = proxy.count(command)
        proxy.drop_replies = 1
        with pytest.raises(StoreUnavailableError):
            await write()
        assert proxy.count(command) == before + 1, command
    assert await store.get("l") == {"c": 1}, "the commit whose reply was lost ran once"


async def test_a_lost_read_reply_is_retried(proxy: Proxy, open_store: OpenStore) -> None:
    store = open_store(proxy.url)
    await store.set("k", {"v": 1})
    before = proxy.count(b"GET")
    proxy.drop_replies = 1
    assert await store.get("k") == {"v": 1}
    assert proxy.count(b"GET") == before + 2


async def test_a_hung_server_hits_the_timeout_on_every_operation(
    private_redis: PrivateRedis, open_store: OpenStore
) -> None:
    store = open_store(private_redis.url, timeout=0.25)
    await store.set("k", {"v": 1})
    held = await store.lock("held", lease=30, wait=0)
    private_redis.pause()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get("k"),
        lambda: store.set("k", {"v": 2}),
        lambda: store.delete("gone"),
        lambda: store.expires_in("k"),
        lambda: store.touch("k", 30),
        lambda: store.get_versioned("k"),
        lambda: store.set_versioned("k", b"{}", expected=1),
        lambda: store.delete_versioned("k", expected=1),
        lambda: store.lock("k", lease=5, wait=1),
        lambda: store.renew(held.lease),
        lambda: store.unlock(held.lease),
        lambda: store.log_append("t", [{"n": 1}]),
        lambda: store.log_read("t"),
        lambda: store.log_length("t"),
        lambda: store.log_last_seq("t"),
        lambda: anext(store.scan()),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError) as info:
            await call()
        assert 0.2 < time.monotonic() - started < 1.5
        assert "timed out" in str(info.value)
    private_redis.resume()
    deadline = time.monotonic() + 5
    while True:
        try:
            await store.set("k", {"v": 3})
            break
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    assert await store.get("k") == {"v": 3}
    assert len(await store.log_read("t")) <= 1, "the append that timed out ran at most once"


# -- a lease holder that dies ----------------------------------------------------------------------

HOLDER = """
import asyncio, sys
from sessionware.stores.redis import RedisSessionStore

async def main(url, prefix):
    store = RedisSessionStore.from_url(url, prefix=prefix)
    await store.lock("k", lease=0.5, wait=0)
    print("locked", flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_lease_of_a_killed_holder_is_released_by_expiry(private_redis: PrivateRedis) -> None:
    store = RedisSessionStore.from_url(private_redis.url, prefix="holder")
    try:
        await store.set("k", {"kept": True})
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLDER, private_redis.url, "holder", stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"locked\n"
        child.kill()
        await child.wait()
        started = time.monotonic()
        held = await store.lock("k", lease=5, wait=10)
        assert time.monotonic() - started < 2
        assert held.record is not None
        assert store.codec.decode("k", held.record.data) == {"kept": True}
        await store.unlock(held.lease)
    finally:
        await store.close()


# -- a Sentinel-managed master ---------------------------------------------------------------------


class PrivateSentinel:
    """A ``redis-server --sentinel`` this module owns, watching one private master as ``mymaster``."""

    def __init__(self, workdir: Path, master_port: int) -> None:
        assert REDIS_SERVER is not None
        self.server = REDIS_SERVER
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir / 'sentinel.log'}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 60000\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.server, str(self.config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"private sentinel on port {self.port} did not start")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def sentinel_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private master and a sentinel watching it, once for the module; yields the sentinel's port."""
    master = PrivateRedis(tmp_path_factory.mktemp("sentinel-master"), durable=False)
    master.start()
    sentinel = PrivateSentinel(tmp_path_factory.mktemp("sentinel"), master.port)
    try:
        sentinel.start()
        yield sentinel.port
    finally:
        sentinel.kill()
        master.kill()


@pytest.fixture
async def sentinel_client(sentinel_port: int) -> AsyncIterator[aioredis.Redis]:
    """The master's client as a user gets it from Sentinel."""
    sentinel = Sentinel([("127.0.0.1", sentinel_port)], socket_timeout=2)  # type: ignore[no-untyped-call,unused-ignore]
    client = sentinel.master_for("mymaster")
    yield client
    await client.aclose()
    for each in sentinel.sentinels:
        await each.aclose()


class TestContractThroughSentinel(StoreContract):
    """The whole contract suite through ``Sentinel(...).master_for(...)``, a Sentinel-managed pool."""

    @pytest.fixture
    async def store(self, sentinel_client: aioredis.Redis) -> AsyncIterator[RedisSessionStore]:
        prefix = f"sentinel{time.monotonic_ns()}"
        opened = RedisSessionStore(sentinel_client, prefix)
        assert isinstance(opened.driver, RedisPyDriver)
        yield opened
        names = [k async for k in sentinel_client.scan_iter(match=prefix + ":*", count=1000)]
        if names:
            await sentinel_client.delete(*names)


async def test_a_demoted_master_is_a_write_that_did_not_run(sentinel_client: aioredis.Redis, tmp_path: Path) -> None:
    """While the master is a replica, Sentinel's pool reports its READONLY as a lost connection; the driver
    reports it as the refusal it is, so the store retries the write, which lands once the master is back."""
    other = PrivateRedis(tmp_path, durable=False)
    other.start()
    store = RedisSessionStore(sentinel_client, f"demoted{time.monotonic_ns()}", retries=8)
    try:
        await store.set("before", {"n": 1})
        await sentinel_client.replicaof("127.0.0.1", other.port)
        with pytest.raises(StoreUnavailableError) as info:
            await RedisSessionStore(sentinel_client, store.prefix, retries=0).set("k", {"n": 1})
        assert isinstance(info.value.__cause__, redis_errors.ReadOnlyError), info.value.__cause__
        write = asyncio.create_task(store.set("k", {"n": 2}))
        await asyncio.sleep(0.3)
        assert not write.done(), "a refused write is retried"
        await sentinel_client.replicaof("NO", "ONE")
        await asyncio.wait_for(write, 10)
        assert await store.get("k") == {"n": 2}
    finally:
        await sentinel_client.replicaof("NO", "ONE")
        other.kill()
