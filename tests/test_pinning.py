"""``PostgresSessionStore.pinned()`` against the real server: one pool checkout for a stretch of calls.

Checkouts are counted on a real asyncpg pool whose ``acquire`` counts its
calls; connections are killed with ``pg_terminate_backend`` from an admin
connection, as in ``test_sql_faults``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from sessionware.errors import StoreTimeoutError, StoreUnavailableError
from sessionware.store import PinningStore
from sessionware.stores.memory import InMemorySessionStore
from sessionware.stores.sql.postgres import PostgresSessionStore
from sessionware.stores.sql.sqlite import SQLiteSessionStore

from .conftest import POSTGRES_URL, require_server, unique
from .test_sql_faults import backends, gone, kill, lock_waiter, lock_waiter_count

if TYPE_CHECKING:
    _Pool = asyncpg.Pool[asyncpg.Record]
else:  # generic only in the type stubs
    _Pool = asyncpg.Pool


class CountingPool(_Pool):
    """A real asyncpg pool that counts how often a connection is checked out of it."""

    __slots__ = ("checkouts",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checkouts = 0

    def acquire(self, *, timeout: float | None = None) -> Any:
        self.checkouts += 1
        return super().acquire(timeout=timeout)


class Setup:
    """A store on a fresh table over a counting pool tagged with its own ``application_name``."""

    def __init__(self, store: PostgresSessionStore, pool: CountingPool, app: str) -> None:
        self.store = store
        self.pool = pool
        self.app = app


MakeSetup = Callable[..., Coroutine[Any, Any, Setup]]


@pytest.fixture
async def make() -> AsyncIterator[MakeSetup]:
    require_server("postgres")
    made: list[Setup] = []

    async def factory(*, max_size: int = 4, **options: Any) -> Setup:
        app = unique("swpin-")
        pool = CountingPool(
            POSTGRES_URL,
            min_size=1,
            max_size=max_size,
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            server_settings={"application_name": app},
        )
        await pool
        store = PostgresSessionStore(pool, table=unique("sessionware_pin_"), **options)
        await store.get("warm-up")  # creates the tables, with a checkout of its own
        setup = Setup(store, pool, app)
        made.append(setup)
        pool.checkouts = 0
        return setup

    yield factory
    for setup in made:
        try:
            await setup.store.drop_tables()
        finally:
            await setup.pool.close()


def all_returned(pool: CountingPool) -> bool:
    return pool.get_idle_size() == pool.get_size()


def test_only_postgres_is_a_pinning_store(tmp_path: Any) -> None:
    store: PinningStore = PostgresSessionStore(POSTGRES_URL)  # checked statically too
    assert isinstance(store, PinningStore)
    assert not isinstance(SQLiteSessionStore(tmp_path / "x.db"), PinningStore)
    assert not isinstance(InMemorySessionStore(), PinningStore)


async def test_a_load_and_a_save_take_one_checkout_inside_a_pin(make: MakeSetup) -> None:
    s = await make()
    store, pool = s.store, s.pool
    await store.get_raw("k")
    await store.set_raw("k", b'{"n":1}')
    assert pool.checkouts == 2, "unpinned, every call checks a connection out"

    pool.checkouts = 0
    async with store.pinned():
        data = await store.get_raw("k")
        await store.set_raw("k", b'{"n":2}')
        assert pool.checkouts == 1
        assert not all_returned(pool), "the connection is held for the whole block"
    assert data == b'{"n":1}'
    assert pool.checkouts == 1
    assert all_returned(pool), "released when the block ends"
    assert await store.get("k") == {"n": 2}


async def test_every_kind_of_call_shares_the_pinned_connection(make: MakeSetup) -> None:
    s = await make()
    store, pool = s.store, s.pool
    async with store.pinned():
        held = await store.lock("k", lease=5, wait=0)
        version = await store.commit(held.lease, b'{"n":1}')
        assert await store.get_versioned("k") == (b'{"n":1}', version)
        assert await store.set_versioned("k", b'{"n":2}', expected=version) != version
        assert await store.log_append("log", [{"i": 1}, {"i": 2}], max_len=5) == [1, 2]
        assert [e.value for e in await store.log_read("log")] == [{"i": 1}, {"i": 2}]
        assert await store.touch("k", 60)
        assert [k async for k in store.scan("")] == ["k"]
        assert await store.purge_expired() == 0
        async with store.pinned():  # nested: the same connection
            await store.log_delete("log")
            await store.delete("k")
    assert pool.checkouts == 1
    assert all_returned(pool)
    assert await store.get("k") is None


async def test_nothing_is_checked_out_by_an_unused_pin_or_held_after_an_error(make: MakeSetup) -> None:
    s = await make()
    store, pool = s.store, s.pool
    async with store.pinned():
        pass
    assert pool.checkouts == 0

    async def failing_update() -> None:
        async with store.pinned():
            await store.set("k", {"n": 1})
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_update()
    assert pool.checkouts == 1
    assert all_returned(pool)
    assert await store.get("k") == {"n": 1}


async def test_many_pinned_tasks_share_a_small_pool(make: MakeSetup) -> None:
    s = await make(max_size=2)
    store, pool = s.store, s.pool
    tasks, rounds = 40, 5

    async def update(t: int) -> None:
        for _ in range(rounds):
            async with store.pinned():
                value = await store.get(f"k{t}") or {"n": 0}
                await asyncio.sleep(0)
                await store.set(f"k{t}", {"n": value["n"] + 1})

    await asyncio.wait_for(asyncio.gather(*(update(t) for t in range(tasks))), 60)
    assert pool.checkouts == tasks * rounds, "one checkout per pinned update"
    assert pool.get_size() <= 2
    assert all_returned(pool)
    for t in range(tasks):
        assert await store.get(f"k{t}") == {"n": rounds}


async def test_tasks_started_inside_a_pin_share_its_connection_one_call_at_a_time(make: MakeSetup) -> None:
    # With one connection in the pool, a task started inside the block (a lease renewal, say) that
    # needed a checkout of its own would wait for the pinned one forever.
    s = await make(max_size=1)
    store, pool = s.store, s.pool
    block_ended = asyncio.Event()

    async def later() -> object:
        await block_ended.wait()
        return await store.get("k")

    async with store.pinned():
        await store.set("k", {"n": 0})
        got = await asyncio.wait_for(
            asyncio.gather(*(store.get("k") for _ in range(5)), store.set("other", {"n": 1})), 10
        )
        held = await store.lock("k", lease=5, wait=0)
        renewal = asyncio.create_task(store.renew(held.lease))
        await asyncio.wait_for(store.commit(await renewal, b'{"n":1}'), 10)
        outliving = asyncio.create_task(later())
        assert pool.checkouts == 1
    assert got[:5] == [{"n": 0}] * 5
    assert all_returned(pool)
    # A task started inside the block that calls after it ended checks out a connection of its own.
    block_ended.set()
    assert await asyncio.wait_for(outliving, 10) == {"n": 1}
    assert pool.checkouts == 2
    assert all_returned(pool)


async def test_a_pinned_connection_killed_between_calls_is_replaced(make: MakeSetup, admin: asyncpg.Connection) -> None:
    s = await make()
    store, pool = s.store, s.pool
    await store.log_append("log", [{"i": 1}])
    pool.checkouts = 0
    async with store.pinned():
        await store.get("k")
        pids = await backends(admin, s.app)
        assert await kill(admin, s.app) >= 1
        await gone(admin, pids)
        await asyncio.sleep(0.05)  # the client reads the server's goodbye
        # Even a write that is never repeated goes through: the dead connection was seen closed
        # before anything was sent on it, and a fresh one is pinned in its place.
        assert await store.log_append("log", [{"i": 2}]) == [2]
        await store.set("k", {"n": 1})
        assert pool.checkouts == 2
    assert all_returned(pool)
    assert await store.get("k") == {"n": 1}
    assert not set(await backends(admin, s.app)) & set(pids)


async def test_a_safe_call_killed_while_pinned_is_retried_on_a_fresh_connection(
    make: MakeSetup, admin: asyncpg.Connection
) -> None:
    s = await make()
    store, pool = s.store, s.pool
    await store.set("k", {"n": 1})
    pool.checkouts = 0
    async with store.pinned():
        assert await store.get("k") == {"n": 1}
        async with admin.transaction():
            await admin.execute(f'SELECT 1 FROM "{store.table}" WHERE key = $1 FOR UPDATE', "k")
            pending = asyncio.create_task(store.set("k", {"n": 2}))
            first = await lock_waiter(admin, s.app)
            await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            # The same upsert, sent again on a new connection, waits for the row again.
            second = await lock_waiter(admin, s.app, besides=first)
        await asyncio.wait_for(pending, 10)
        assert second != first
        assert await store.get("k") == {"n": 2}
        assert pool.checkouts == 2, "the retry's connection stays pinned for the rest of the block"
    assert all_returned(pool)


@pytest.mark.parametrize("op", ["set_versioned", "commit", "log_append"])
async def test_an_unsafe_call_killed_while_pinned_is_not_repeated(
    make: MakeSetup, admin: asyncpg.Connection, op: str
) -> None:
    s = await make()
    store, pool = s.store, s.pool
    t = store.table
    version = await store.set_versioned("k", b'{"n":1}', expected=0)
    await store.log_append("log", [{"i": 1}])
    locked_row = {"log_append": (f'"{t}_logs"', "log")}.get(op, (f'"{t}"', "k"))
    pool.checkouts = 0
    async with store.pinned():
        held = await store.lock("k", lease=30, wait=0)
        async with admin.transaction():
            await admin.execute(f"SELECT 1 FROM {locked_row[0]} WHERE key = $1 FOR UPDATE", locked_row[1])
            call: Coroutine[Any, Any, object]
            if op == "set_versioned":
                call = store.set_versioned("k", b'{"n":2}', expected=version)
            elif op == "commit":
                call = store.commit(held.lease, b'{"n":2}')
            else:
                call = store.log_append("log", [{"i": 2}])
            pending = asyncio.create_task(call)
            await admin.fetchval("SELECT pg_terminate_backend($1)", await lock_waiter(admin, s.app))
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(pending, 10)
            assert await lock_waiter_count(admin, s.app) == 0, "the write was not sent again"
        # Killed before its transaction committed: nothing of it is there, and the block goes on
        # on a fresh connection.
        assert await store.get_versioned("k") == (b'{"n":1}', version)
        assert await store.log_last_seq("log") == 1
        assert await store.commit(held.lease, b'{"n":3}') != version
        assert pool.checkouts == 2
    assert all_returned(pool)
    assert await store.get("k") == {"n": 3}


async def test_a_call_that_times_out_while_pinned_drops_the_connection(
    make: MakeSetup, admin: asyncpg.Connection
) -> None:
    s = await make(timeout=0.3)
    store, pool = s.store, s.pool
    await store.set("k", {"n": 1})
    pool.checkouts = 0
    async with store.pinned():
        await store.get("k")
        async with admin.transaction():
            await admin.execute(f'SELECT 1 FROM "{store.table}" WHERE key = $1 FOR UPDATE', "k")
            with pytest.raises(StoreTimeoutError):
                await store.set("k", {"n": 2})
        assert await store.get("k") == {"n": 1}, "the cancelled write left nothing behind"
        await store.set("k", {"n": 3})
        assert pool.checkouts == 2
    assert all_returned(pool)
    assert await store.get("k") == {"n": 3}


async def test_an_update_through_the_unit_checks_out_one_connection(make: MakeSetup) -> None:
    from sessionware import Context, Router, SessionManager, session

    from .helpers import message

    s = await make()
    router = Router()
    router.use(session(s.store))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] = ctx.session.get("n", 0) + 1

    for _ in range(3):
        await router.handle(message(1, "/inc"))
    assert s.pool.checkouts == 3, "load and save of one update share a checkout"
    assert await s.store.get("1") == {"n": 3}

    distributed = Router()
    distributed.use(session(s.store, isolation="distributed", lease=10))
    distributed.command("inc")(inc)
    s.pool.checkouts = 0
    await distributed.handle(message(1, "/inc"))
    assert s.pool.checkouts == 1, "lease, read and fenced commit on one checkout"

    manager = SessionManager(s.store)
    created = await manager.create_session("u")
    s.pool.checkouts = 0
    await manager.add_message(created.id, "user", "hi", user_id="u")
    assert s.pool.checkouts == 1, "record read, log append and record write on one checkout"
    assert all_returned(s.pool)
