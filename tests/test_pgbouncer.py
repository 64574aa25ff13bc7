"""The PostgreSQL store behind a real PgBouncer in transaction pooling mode (started by the tests).

In transaction mode each transaction may run on another server connection, so
nothing may outlive a transaction: no session-level advisory locks, no
``SET``, no prepared statement kept by asyncpg's statement cache. The bouncer
has fewer server connections (4) than the store's pool has client connections
(10), so consecutive transactions of one client connection really do land on
different server connections.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sessionware import PostgresSessionStore, open_store
from sessionware.errors import InvalidStoreURLError, InvalidValueError, StoreError, StoreUnavailableError
from sessionware.testing import StoreContract

from . import test_multiprocess as multiprocess
from .conftest import require_server, unique
from .pgbouncer import LocalPgBouncer


@pytest.fixture(scope="module")
def bouncer() -> Iterator[LocalPgBouncer]:
    """One PgBouncer (transaction mode, 4 server connections) for the module, stopped by its pid afterwards."""
    require_server("postgres")
    b = LocalPgBouncer(pool_size=4)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def bounced_url(bouncer: LocalPgBouncer, table: str, **query: Any) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"pgbouncer": "true", "table": table, **query}.items())
    return f"{bouncer.url()}?{params}"


async def _server_pids(store: PostgresSessionStore, n: int) -> set[int]:
    """The server backends that ran ``n`` concurrent one-statement transactions of ``store``."""
    pool = store._pool
    assert pool is not None

    async def one() -> int:
        async with pool.acquire() as conn:
            return int(await conn.fetchval("SELECT pg_backend_pid()"))

    return set(await asyncio.gather(*(one() for _ in range(n))))


class TestContractThroughPgBouncer(StoreContract):
    """The whole shipped contract suite, on a store whose every statement goes through the bouncer."""

    @pytest.fixture
    async def store(self, bouncer: LocalPgBouncer) -> AsyncIterator[PostgresSessionStore]:
        s = open_store(bounced_url(bouncer, unique("sessionware_pgb_")))
        assert isinstance(s, PostgresSessionStore)
        assert s.pgbouncer
        yield s
        await s.drop_tables()
        await s.close()


async def test_transactions_of_one_client_connection_run_on_several_server_connections(
    bouncer: LocalPgBouncer,
) -> None:
    """What makes transaction mode hard: the same client connection meets different server backends."""
    store = PostgresSessionStore.from_url(bounced_url(bouncer, unique("sessionware_pgb_")), pool_max_size=1)
    try:
        await store.set("k", {"v": 1})
        pool = store._pool
        assert pool is not None
        async with pool.acquire() as conn:
            pids = {int(await conn.fetchval("SELECT pg_backend_pid()")) for _ in range(5)}
            # Another client hogs server connections in between, so ours moves around.
            other = PostgresSessionStore.from_url(bounced_url(bouncer, store.table), pool_min_size=4)
            try:
                for _ in range(10):
                    await asyncio.gather(*(other.get("k") for _ in range(8)))
                    pids.add(int(await conn.fetchval("SELECT pg_backend_pid()")))
            finally:
                await other.close()
        assert len(pids) > 1
        assert await store.get("k") == {"v": 1}
    finally:
        await store.drop_tables()
        await store.close()


async def test_without_the_flag_the_statement_cache_breaks_behind_the_bouncer(bouncer: LocalPgBouncer) -> None:
    """The failure ``pgbouncer=true`` prevents: a cached prepared statement missing on the next server connection."""
    table = unique("sessionware_pgb_")
    good = PostgresSessionStore.from_url(bounced_url(bouncer, table))
    await good.set("k", {"v": 1})
    bad = PostgresSessionStore(bouncer.url(), table=table, pool_options={"min_size": 4, "max_size": 10})
    assert "statement_cache_size" not in bad.pool_options
    try:
        results = await asyncio.gather(*(bad.get("k") for _ in range(300)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures, "a cached statement should have met a server connection that never prepared it"
        assert all(isinstance(f, StoreError) for f in failures)
        assert any("prepared statement" in str(f) for f in failures)
        ok = await asyncio.gather(*(good.get("k") for _ in range(300)))
        assert ok == [{"v": 1}] * 300
    finally:
        await bad.close()
        await good.drop_tables()
        await good.close()


async def test_first_use_from_many_stores_at_once_creates_the_schema_once(bouncer: LocalPgBouncer) -> None:
    """Schema creation is serialised by a transaction-level advisory lock, which works through the bouncer."""
    table = unique("sessionware_pgb_")
    stores = [PostgresSessionStore.from_url(bounced_url(bouncer, table)) for _ in range(6)]
    try:
        await asyncio.gather(*(s.set(f"k{i}", {"i": i}) for i, s in enumerate(stores)))
        assert [await stores[0].get(f"k{i}") for i in range(6)] == [{"i": i} for i in range(6)]
    finally:
        await stores[0].drop_tables()
        for s in stores:
            await s.close()


async def test_no_advisory_lock_outlives_its_transaction(bouncer: LocalPgBouncer, admin: Any) -> None:
    """After schema creation, writes, leases and a drop, the server holds no advisory lock of the store's."""
    store = PostgresSessionStore.from_url(bounced_url(bouncer, unique("sessionware_pgb_")))
    lock_id = store._lock_id
    classid, objid = (lock_id >> 32) & 0xFFFFFFFF, lock_id & 0xFFFFFFFF

    async def held() -> int:
        return int(
            await admin.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1"
                " AND objid::bigint = $2",
                classid,
                objid,
            )
        )

    async with admin.transaction():  # the query sees the store's lock when one is held
        await admin.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
        assert await held() == 1
    try:
        await asyncio.gather(*(store.set(f"k{i}", {"i": i}) for i in range(20)))
        locked = await store.lock("k0", lease=5, wait=5)
        await store.commit(locked.lease, store.codec.encode({"i": -1}))
        assert await held() == 0
    finally:
        await store.drop_tables()
        assert await held() == 0
        await store.close()


async def test_leases_and_logs_under_concurrency_through_the_bouncer(bouncer: LocalPgBouncer) -> None:
    """100 concurrent read-modify-writes under leases and 100 concurrent appends: nothing lost, no gaps."""
    store = PostgresSessionStore.from_url(bounced_url(bouncer, unique("sessionware_pgb_")))
    try:

        async def bump() -> None:
            locked = await store.lock("counter", lease=10, wait=60)
            n = 0 if locked.record is None else store.codec.decode("counter", locked.record.data)["n"]
            await store.commit(locked.lease, store.codec.encode({"n": n + 1}))

        await asyncio.gather(*(bump() for _ in range(100)))
        assert await store.get("counter") == {"n": 100}
        seqs = await asyncio.gather(*(store.log_append("log", [{"i": i}]) for i in range(100)))
        assert sorted(s for batch in seqs for s in batch) == list(range(1, 101))
        assert [e.seq for e in await store.log_read("log")] == list(range(1, 101))
    finally:
        await store.drop_tables()
        await store.close()


@pytest.fixture
async def bounced_table_url(bouncer: LocalPgBouncer) -> AsyncIterator[str]:
    """The URL of a fresh table through the bouncer (``?pgbouncer=true``), dropped afterwards."""
    url = bounced_url(bouncer, unique("sessionware_pgb_"))
    yield url
    store = open_store(url)
    await store.drop_tables()  # type: ignore[attr-defined]
    await store.close()


@pytest.mark.slow
async def test_cross_process_counter_through_the_bouncer(bounced_table_url: str) -> None:
    """4 processes x 25 tasks x 20 increments of one counter through the bouncer: exactly 2,000 with
    distributed isolation, updates lost with local isolation (tests/test_multiprocess.py's test)."""
    await multiprocess.test_counter_through_middleware(bounced_table_url)


@pytest.mark.slow
async def test_add_message_from_many_processes_through_the_bouncer(bounced_table_url: str) -> None:
    await multiprocess.test_add_message_from_many_processes(bounced_table_url)


@pytest.mark.slow
async def test_log_appends_from_many_processes_through_the_bouncer(bounced_table_url: str) -> None:
    await multiprocess.test_log_appends_and_writes_from_many_processes(bounced_table_url)


# -- pool settings through the URL and the constructor -------------------------------------------


def test_pool_settings_from_the_url_reach_the_pool() -> None:
    store = PostgresSessionStore.from_url(
        "postgresql://bob:secret@db.example/app?pool_min_size=2&pool_max_size=7&pool_max_idle=45"
        "&pool_max_queries=1000&connect_timeout=3.5&timeout=12&pgbouncer=yes&sslmode=disable&table=t1"
    )
    options = store.pool_options
    assert options["min_size"] == 2
    assert options["max_size"] == 7
    assert options["max_inactive_connection_lifetime"] == 45.0
    assert options["max_queries"] == 1000
    assert options["timeout"] == 3.5
    assert options["statement_cache_size"] == 0
    assert store.timeout == 12.0
    assert store.pgbouncer
    assert store.table == "t1"
    # What asyncpg gets keeps only its own parameters.
    assert store._dsn == "postgresql://bob:secret@db.example/app?sslmode=disable"


def test_defaults_and_no_limits() -> None:
    store = PostgresSessionStore("postgresql://db.example/app")
    assert store.timeout == 30.0
    assert not store.pgbouncer
    options = store.pool_options
    assert (options["min_size"], options["max_size"], options["timeout"]) == (1, 10, 10.0)
    assert "statement_cache_size" not in options
    unlimited = PostgresSessionStore.from_url("postgresql://db.example/app?timeout=none&pool_max_idle=0")
    assert unlimited.timeout is None
    assert unlimited.pool_options["max_inactive_connection_lifetime"] == 0.0
    assert PostgresSessionStore("postgresql://db.example/app", timeout=None).timeout is None
    # The named settings win over pool_options; pool_options still passes anything else through.
    mixed = PostgresSessionStore(
        "postgresql://db.example/app", pool_options={"min_size": 3, "command_timeout": 9}, pool_max_size=4
    )
    assert (mixed.pool_options["min_size"], mixed.pool_options["max_size"]) == (3, 4)
    assert mixed.pool_options["command_timeout"] == 9


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("pool_min_size=-1", "pool_min_size"),
        ("pool_max_size=0", "pool_max_size"),
        ("pool_max_size=ten", "pool_max_size"),
        ("pool_min_size=5&pool_max_size=2", "pool_min_size"),
        ("pool_max_idle=-3", "pool_max_idle"),
        ("pool_max_queries=0", "pool_max_queries"),
        ("connect_timeout=0", "connect_timeout"),
        ("connect_timeout=none", "connect_timeout"),
        ("timeout=soon", "timeout"),
        ("timeout=nan", "timeout"),
        ("pgbouncer=maybe", "pgbouncer"),
        ("retries=x", "retries"),
    ],
)
def test_a_bad_url_setting_is_a_typed_error_naming_it_without_the_password(query: str, name: str) -> None:
    url = f"postgresql://bob:secret@db.example/app?{query}"
    for opener in (PostgresSessionStore.from_url, open_store):
        with pytest.raises(InvalidStoreURLError, match=name) as caught:
            opener(url)
        assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"pool_min_size": -1}, "pool_min_size"),
        ({"pool_max_size": 0}, "pool_max_size"),
        ({"pool_max_size": True}, "pool_max_size"),
        ({"pool_min_size": 11}, "pool_min_size"),
        ({"pool_max_idle": -1}, "pool_max_idle"),
        ({"pool_max_queries": 0}, "pool_max_queries"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"pgbouncer": "yes"}, "pgbouncer"),
    ],
)
def test_a_bad_constructor_setting_is_a_typed_error_naming_it(options: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        PostgresSessionStore("postgresql://db.example/app", **options)
    assert caught.value.path == name


async def test_pool_size_is_what_was_asked() -> None:
    require_server("postgres")
    url = os.environ.get("SESSIONWARE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    store = PostgresSessionStore.from_url(f"{url}?pool_min_size=2&pool_max_size=3", table=unique("sessionware_pool_"))
    try:
        await asyncio.gather(*(store.set(f"k{i}", {"i": i}) for i in range(30)))
        pool = store._pool
        assert pool is not None
        assert (pool.get_min_size(), pool.get_max_size()) == (2, 3)
        assert pool.get_size() <= 3
    finally:
        await store.drop_tables()
        await store.close()


async def test_connect_timeout_bounds_a_server_that_never_answers() -> None:
    """A listener that accepts and stays silent: the connect attempt gives up after ``connect_timeout``."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        store = PostgresSessionStore(
            f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=0.3, retries=0, timeout=None
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StoreUnavailableError):
            await store.get("k")
        assert loop.time() - started < 5
        await store.close()
