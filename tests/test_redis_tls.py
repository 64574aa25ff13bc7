"""The Redis store over TLS, against a ``redis-server --tls-port`` the tests start with their own certificates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sessionware import RedisSessionStore, SessionManager, open_store
from sessionware.errors import InvalidStoreURLError, StoreTLSError, StoreUnavailableError
from sessionware.testing import StoreContract

from .conftest import unique
from .redis_tls import LocalTLSRedis, make_certificates


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTLSRedis]:
    base = tmp_path_factory.mktemp("redis-tls")
    server = LocalTLSRedis(base / "server", make_certificates(base / "certs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TestContractOverTLS(StoreContract):
    """The contract suite through the store's own client, every byte over TLS."""

    @pytest.fixture
    async def store(self, tls_redis: LocalTLSRedis) -> AsyncIterator[RedisSessionStore]:
        s = open_store(tls_redis.url(), prefix=unique("tls-"))
        assert isinstance(s, RedisSessionStore)
        yield s
        await s.close()


class TestContractOverTLSThroughRedisPy(StoreContract):
    """The same through a redis-py client the user made for ``rediss://`` (its own TLS settings)."""

    @pytest.fixture
    async def store(self, tls_redis: LocalTLSRedis) -> AsyncIterator[RedisSessionStore]:
        client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(tls_redis.url(), max_connections=16))
        yield RedisSessionStore(client, unique("tlspy-"))
        await client.aclose()


async def test_the_session_really_travels_over_tls(tls_redis: LocalTLSRedis) -> None:
    """The server has no plain port: what the store wrote is read back by a separate TLS client."""
    store = RedisSessionStore.from_url(tls_redis.url(db=3), prefix="tlscheck")
    manager = SessionManager(store)
    s = await manager.create_session("alice")
    await manager.add_message(s.id, "user", "over TLS")
    client = aioredis.from_url(tls_redis.url(db=3))
    try:
        names = [name async for name in client.scan_iter(match="tlscheck:*")]
        assert any(s.id.encode() in name for name in names)
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        await client.aclose()
        await manager.close()
        await store.close()


@pytest.mark.parametrize("through", ["store client", "redis-py"])
async def test_a_wrong_ca_is_a_tls_error_at_once(tls_redis: LocalTLSRedis, through: str) -> None:
    """Trusting a CA that did not sign the server's certificate: a typed error, not retried, nothing sent."""
    url = tls_redis.url(ca=tls_redis.certs.other_ca)
    if through == "store client":
        store = RedisSessionStore.from_url(url, prefix="wrongca", retries=3)
    else:
        store = RedisSessionStore(aioredis.from_url(url), "wrongca", retries=3)
    started = time.monotonic()
    with pytest.raises(StoreTLSError, match=r"(?i)certificate") as caught:
        await store.set("k", {"v": 1})
    assert isinstance(caught.value, StoreUnavailableError)  # handlers of unavailability still see it
    assert time.monotonic() - started < 0.5, "a certificate that fails verification is not retried"
    if through == "redis-py":
        await store.client.aclose()
    await store.close()


async def test_verification_off_accepts_any_certificate(tls_redis: LocalTLSRedis) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=none"
    store = RedisSessionStore.from_url(url, prefix=unique("tlsnone-"))
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    await store.close()


async def test_plain_redis_to_a_tls_port_is_unavailable(tls_redis: LocalTLSRedis) -> None:
    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{tls_redis.port}/0", prefix="plain", retries=0, timeout=3)
    with pytest.raises(StoreUnavailableError):
        await store.get("k")
    await store.close()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("rediss://u:secret@127.0.0.1:6390/0?ssl_cert_reqs=sometimes", "ssl_cert_reqs"),
        ("rediss://u:secret@127.0.0.1:6390/0?ssl_check_hostname=perhaps", "ssl_check_hostname"),
        ("rediss://u:secret@127.0.0.1:6390/0?ssl_ca_certs=/nonexistent/ca.pem", "ssl_ca_certs"),
        ("redis://u:secret@127.0.0.1:6390/0?ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt", "ssl_ca_certs"),
        ("rediss://u:secret@127.0.0.1:6390/0?ssl_keyfile=/tmp/k.pem", "ssl_keyfile"),
        ("redis://u:secret@127.0.0.1:6390/0?timeout=soon", "timeout"),
        ("redis://u:secret@127.0.0.1:6390/0?retries=-2", "retries"),
    ],
)
def test_bad_tls_and_store_settings_in_the_url_are_named(url: str, name: str) -> None:
    with pytest.raises(InvalidStoreURLError, match=name) as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


def test_timeout_and_retries_from_the_url() -> None:
    store: Any = open_store("redis://127.0.0.1:6390/0?timeout=2.5&retries=1")
    assert (store.timeout, store.retries) == (2.5, 1)
    assert open_store("redis://127.0.0.1:6390/0?timeout=none").timeout is None
    assert open_store("redis://127.0.0.1:6390/0").timeout == 30.0


def test_certificates_are_files(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    assert certs.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert certs.server_cert.stat().st_size > 0
