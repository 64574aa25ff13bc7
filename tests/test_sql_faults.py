"""Faults on the SQL backends: killed and refused connections, killed workers, blocked calls and timeouts.

PostgreSQL connections are killed with ``pg_terminate_backend`` from a separate
admin connection, only the backends of the store under test (found by their
``application_name``). Worker processes are killed with SIGKILL while they hold
a lease, inside a write transaction where that can be arranged exactly. Each
worker is this module run as ``python -m tests.test_sql_faults``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sessionware import Context, Router, session
from sessionware.errors import LockError, StoreTimeoutError, StoreUnavailableError
from sessionware.store import BaseSessionStore, Lease
from sessionware.stores.sql.postgres import PostgresSessionStore
from sessionware.stores.sql.sqlite import SQLiteSessionStore

from .conftest import POSTGRES_URL, require_server, unique
from .helpers import message

REPO = Path(__file__).resolve().parents[1]
SESSIONS = 10
"""Sessions a worker commits before the update it is killed in: user ``u`` has counter ``u``."""

MakeStore = Callable[..., PostgresSessionStore]


# -- PostgreSQL helpers --------------------------------------------------------------------------


@pytest.fixture
async def pg() -> AsyncIterator[MakeStore]:
    """Stores on one fresh table, each pool tagged with its own ``application_name`` (``store.app``)."""
    require_server("postgres")
    stores: list[PostgresSessionStore] = []
    table = unique("sessionware_fault_")

    def factory(**options: Any) -> Any:
        app = unique("swfault-")
        pool = {"min_size": 1, "max_size": 4, **options.pop("pool", {})}
        pool["server_settings"] = {"application_name": app}
        store = PostgresSessionStore(POSTGRES_URL, table=table, pool_options=pool, **options)
        store.app = app  # type: ignore[attr-defined]
        stores.append(store)
        return store

    yield factory
    for store in stores:
        try:
            await store.drop_tables()
        finally:
            await store.close()


async def activity(admin: asyncpg.Connection, sql: str, *args: Any) -> Any:
    """Query ``pg_stat_activity`` afresh (inside a transaction it is otherwise read once and kept)."""
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return await admin.fetch(sql, *args)


async def backends(admin: asyncpg.Connection, app: str) -> list[int]:
    rows = await activity(
        admin, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", app
    )
    return [int(r[0]) for r in rows]


async def kill(admin: asyncpg.Connection, app: str) -> int:
    """Terminate every backend of the pool tagged ``app`` (and nothing else); return how many."""
    pids = await backends(admin, app)
    if not pids:
        return 0
    killed = await admin.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest($1::int[]) AS pid", pids
    )
    return int(killed)


async def until(check: Callable[[], Any], what: str, limit: float = 10.0) -> Any:
    """Poll ``await check()`` until it returns something truthy."""
    deadline = time.monotonic() + limit
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


async def lock_waiter(admin: asyncpg.Connection, app: str, *, besides: int | None = None) -> int:
    """The pid of the store's backend that waits for a row lock (not ``besides``)."""

    async def find() -> int | None:
        rows = await activity(
            admin,
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'"
            " AND pid <> coalesce($2, 0)",
            app,
            besides,
        )
        return int(rows[0][0]) if rows else None

    return int(await until(find, f"a backend of {app} waiting for a lock"))


async def gone(admin: asyncpg.Connection, pids: list[int]) -> None:
    async def check() -> bool:
        return not await activity(admin, "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)

    await until(check, f"backends {pids} to end")


# -- killed PostgreSQL connections ---------------------------------------------------------------


async def test_killed_idle_connections_are_dropped_and_replaced(pg: MakeStore, admin: asyncpg.Connection) -> None:
    store = pg(pool={"min_size": 3})
    await store.set("k", {"n": 1})
    assert await store.log_append("log", [{"i": 1}]) == [1]
    before = await backends(admin, store.app)  # type: ignore[attr-defined]
    assert len(before) == 3
    assert await kill(admin, store.app) == 3  # type: ignore[attr-defined]
    await gone(admin, before)
    await asyncio.sleep(0.05)  # the client reads each server's goodbye
    # Not even a retry is needed: the pool dropped the dead connections and opens new ones,
    # so a write that is never repeated goes through too.
    assert await store.log_append("log", [{"i": 2}]) == [2]
    assert await store.get("k") == {"n": 1}
    after = await backends(admin, store.app)  # type: ignore[attr-defined]
    assert after
    assert not set(after) & set(before)


async def test_a_safe_write_is_retried_on_a_new_connection(pg: MakeStore, admin: asyncpg.Connection) -> None:
    store = pg()
    app = store.app  # type: ignore[attr-defined]
    await store.set("k", {"n": 1})
    async with admin.transaction():
        await admin.execute(f'SELECT 1 FROM "{store.table}" WHERE key = $1 FOR UPDATE', "k")
        pending = asyncio.create_task(store.set("k", {"n": 2}))
        first = await lock_waiter(admin, app)
        await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        # The same upsert, sent again on a new connection, waits for the row again.
        second = await lock_waiter(admin, app, besides=first)
        assert not pending.done()
    await pending
    assert second != first
    assert await store.get("k") == {"n": 2}


@pytest.mark.parametrize("op", ["log_append", "set_versioned", "commit"])
async def test_a_write_that_must_not_run_twice_is_not_repeated(
    pg: MakeStore, admin: asyncpg.Connection, op: str
) -> None:
    store = pg()
    app = store.app  # type: ignore[attr-defined]
    t = store.table
    version = await store.set_versioned("k", b'{"n":1}', expected=0)
    await store.log_append("log", [{"i": 1}])
    held = await store.lock("k", lease=30, wait=0)
    calls = {
        "log_append": (f'SELECT 1 FROM "{t}_logs" WHERE key = $1 FOR UPDATE', "log"),
        "set_versioned": (f'SELECT 1 FROM "{t}" WHERE key = $1 FOR UPDATE', "k"),
        "commit": (f'SELECT 1 FROM "{t}" WHERE key = $1 FOR UPDATE', "k"),
    }
    sql, row = calls[op]
    pending: asyncio.Task[object]
    async with admin.transaction():
        await admin.execute(sql, row)
        if op == "log_append":
            pending = asyncio.create_task(store.log_append("log", [{"i": 2}]))
        elif op == "set_versioned":
            pending = asyncio.create_task(store.set_versioned("k", b'{"n":2}', expected=version))
        else:
            pending = asyncio.create_task(store.commit(held.lease, b'{"n":2}'))
        first = await lock_waiter(admin, app)
        await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        with pytest.raises(StoreUnavailableError) as info:
            await asyncio.wait_for(pending, 5)
        lost = (asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)
        assert isinstance(info.value.__cause__, lost)
        assert "terminating connection" in str(info.value) or "connection is closed" in str(info.value)
        assert await lock_waiter_count(admin, app) == 0, "the write was not sent again"
    # Killed before its transaction committed: nothing of it is in the store.
    assert await store.log_last_seq("log") == 1
    assert await store.get_versioned("k") == (b'{"n":1}', version)
    # The caller may decide to try again: the lease is still held, the version unchanged.
    if op == "commit":
        assert await store.commit(held.lease, b'{"n":3}') != version
        assert await store.get("k") == {"n": 3}
    else:
        await store.unlock(held.lease)
        assert await store.log_append("log", [{"i": 2}]) == [2]


async def lock_waiter_count(admin: asyncpg.Connection, app: str) -> int:
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'"
    return len(await activity(admin, sql, app))


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def test_calls_fail_while_the_server_refuses_connections_and_recover_after(admin: asyncpg.Connection) -> None:
    # A role of its own whose connections the server can refuse, without touching anyone else's.
    role = unique("sw_fault_role_")
    app = unique("swfault-")
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    await admin.execute(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')
    settings = {"application_name": app, "search_path": role}
    store = PostgresSessionStore(
        as_user(POSTGRES_URL, role), table="sessions", pool_options={"min_size": 2, "server_settings": settings}
    )
    try:
        await store.set("k", {"n": 1})
        assert await store.log_append("log", [{"i": 1}]) == [1]
        # The server now refuses this role's connections, and the open ones are killed.
        await admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 0')
        pids = await backends(admin, app)
        await kill(admin, app)
        await gone(admin, pids)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            await store.get("k")
        assert time.monotonic() - started < 2, "retries are bounded"
        assert isinstance(info.value.__cause__, asyncpg.TooManyConnectionsError)
        with pytest.raises(StoreUnavailableError):
            await store.set("k", {"n": 2})
        with pytest.raises(StoreUnavailableError):
            await store.log_append("log", [{"i": 2}])
        with pytest.raises(StoreUnavailableError):
            await store.lock("k", lease=5, wait=1)
        # The server takes connections again: the store reconnects by itself.
        await admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
        assert await store.get("k") == {"n": 1}
        assert await store.log_append("log", [{"i": 3}]) == [2], "the refused append never landed"
        held = await store.lock("k", lease=5, wait=0)
        await store.commit(held.lease, b'{"n":4}')
        assert await store.get("k") == {"n": 4}
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{role}" CASCADE')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')


async def test_kills_during_a_busy_workload_lose_no_acknowledged_write(
    pg: MakeStore, admin: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    store = pg(pool={"max_size": 6})
    app = store.app  # type: ignore[attr-defined]
    await store.get("warm-up")
    acked_sets: dict[str, dict[str, int]] = {}
    acked_appends: dict[int, int] = {}
    failures: Counter[str] = Counter()
    stop = asyncio.Event()

    async def setter(t: int) -> None:
        for i in range(40):
            key, value = f"s{t}:{i}", {"t": t, "i": i}
            try:
                await store.set(key, value)
            except StoreUnavailableError:
                failures["set"] += 1
            else:
                acked_sets[key] = value

    async def appender(t: int) -> None:
        for i in range(40):
            entry = t * 1000 + i
            try:
                (seq,) = await store.log_append("log", [{"id": entry}])
            except StoreUnavailableError:
                failures["log_append"] += 1
            else:
                acked_appends[entry] = seq

    async def reader() -> None:
        while not stop.is_set():
            for key, value in list(acked_sets.items())[-5:]:
                try:
                    assert await store.get(key) == value
                except StoreUnavailableError:
                    failures["get"] += 1
            await asyncio.sleep(0.005)

    async def killer() -> int:
        kills = 0
        while not stop.is_set():
            await asyncio.sleep(0.15)
            kills += await kill(admin, app)
        return kills

    killing = asyncio.create_task(killer())
    reading = asyncio.create_task(reader())
    await asyncio.gather(*(setter(t) for t in range(4)), *(appender(t) for t in range(4)))
    stop.set()
    kills = await killing
    await reading
    assert kills > 0

    for key, value in acked_sets.items():
        assert await store.get(key) == value, f"acknowledged write of {key} is missing"
    entries = await store.log_read("log")
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1)), "the log stays gap-free"
    ids = [e.value["id"] for e in entries]
    assert len(ids) == len(set(ids)), "no append was applied twice"
    by_seq = {e.seq: e.value["id"] for e in entries}
    for entry, seq in acked_appends.items():
        assert by_seq.get(seq) == entry, f"acknowledged append {entry} is missing"
    landed_anyway = len(set(ids) - set(acked_appends))
    with capsys.disabled():
        print(
            f"\npostgres kills: {kills} backends killed; acknowledged {len(acked_sets)}/160 sets,"
            f" {len(acked_appends)}/160 appends; failed with StoreUnavailableError: {dict(failures)};"
            f" failed appends that were applied all the same: {landed_anyway}"
        )


# -- timeouts ------------------------------------------------------------------------------------


async def blocked_call(store: SQLiteSessionStore | PostgresSessionStore, op: str, lease: Lease) -> object:
    """One write the test has blocked: on ``k``, on the log ``log``, or taking the lease on ``free``."""
    if op == "set":
        await store.set("k", {"n": 2})
        return None
    if op == "set_versioned":
        return await store.set_versioned("k", b'{"n":2}', expected=None)
    if op == "lock":
        return await store.lock("free", lease=5, wait=5)
    if op == "commit":
        return await store.commit(lease, b'{"n":2}')
    if op == "log_append":
        return await store.log_append("log", [{"i": 2}])
    return await store.purge_expired()


@pytest.mark.parametrize("op", ["set", "set_versioned", "lock", "log_append", "commit"])
async def test_a_call_blocked_by_a_row_lock_times_out(pg: MakeStore, admin: asyncpg.Connection, op: str) -> None:
    store = pg(timeout=0.3)
    t = store.table
    await store.set("k", {"n": 1})
    await store.log_append("log", [{"i": 1}])
    held = await store.lock("k", lease=30, wait=0)
    async with admin.transaction():
        await admin.execute(f'SELECT 1 FROM "{t}" WHERE key = $1 FOR UPDATE', "k")
        await admin.execute(f'SELECT 1 FROM "{t}_logs" WHERE key = $1 FOR UPDATE', "log")
        # A lease row inserted but not committed: taking "free" waits for this transaction.
        await admin.execute(
            f"INSERT INTO \"{t}_locks\" VALUES ($1, 'admin', clock_timestamp() - interval '1 second')", "free"
        )
        assert await store.get_versioned("k") is not None, "reads are not blocked by row locks"
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError, match=r"timed out after 0\.3s"):
            await blocked_call(store, op, held.lease)
        assert time.monotonic() - started < 2
        # The cancel request reaches the server on its own time: wait for it before the locks go.
        for _ in range(500):
            if not await lock_waiter_count(admin, store.app):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        assert await lock_waiter_count(admin, store.app) == 0  # type: ignore[attr-defined]
    # The server cancelled the statement: nothing it would have written is there.
    assert await store.get("k") == {"n": 1}
    assert await store.log_last_seq("log") == 1
    other = await store.lock("free", lease=5, wait=0)
    await store.unlock(other.lease)
    await store.commit(held.lease, b'{"n":3}')
    assert await store.get("k") == {"n": 3}


@pytest.mark.parametrize("op", ["set", "set_versioned", "lock", "commit", "log_append", "purge_expired"])
async def test_sqlite_calls_blocked_by_a_write_lock_time_out(tmp_path: Path, op: str) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path, lock_timeout=30)
    await store.set("k", {"n": 1})
    await store.log_append("log", [{"i": 1}])
    held = await store.lock("k", lease=30, wait=0)
    store.timeout = 0.2
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError, match=r"timed out after 0\.2s"):
            await blocked_call(store, op, held.lease)
        assert time.monotonic() - started < 1.5
        assert await store.get("k") == {"n": 1}, "reads go on under another connection's write lock"
        other.execute("ROLLBACK")
    assert await store.log_last_seq("log") == 1
    await store.commit(held.lease, b'{"n":3}')
    assert await store.get("k") == {"n": 3}
    await store.close()


async def test_a_long_sqlite_statement_is_interrupted_at_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    await store.set("kept", {"v": 1})
    past = time.time() - 60
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO sessionware_sessions (key, value, expires_at, version) VALUES (?, x'7b7d', ?, 1)",
            ((f"old:{i:07d}", past) for i in range(200_000)),
        )
        conn.execute("COMMIT")
    store.timeout = 0.005
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError, match="ran past the store's timeout"):
        await store.purge_expired()
    assert time.monotonic() - started < 0.5, "the statement was stopped, not left to finish"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM sessionware_sessions").fetchone() == (200_001,), "rolled back"
    store.timeout = None
    assert await store.purge_expired() == 200_000
    assert await store.get("kept") == {"v": 1}
    await store.close()


# -- workers killed in the middle of an update ---------------------------------------------------


async def worker(backend: str, target: str, app: str, mode: str, lease: float) -> None:
    """Commit ``SESSIONS`` sessions, then hang inside one more update until killed."""
    store: SQLiteSessionStore | PostgresSessionStore
    if backend == "sqlite":
        store = SQLiteSessionStore(target)
    else:
        settings = {"application_name": app, "client_connection_check_interval": "50"}
        store = PostgresSessionStore.from_url(
            POSTGRES_URL, table=target, pool_options={"min_size": 1, "max_size": 2, "server_settings": settings}
        )
    router = Router()
    router.use(session(store, isolation="distributed", lease=lease, lock_wait=10))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] = ctx.session.get("n", 0) + 1

    @router.command("hang")
    async def hang(ctx: Context) -> None:
        ctx.session["n"] = -1
        if mode == "handler":
            print("inside", flush=True)
            await asyncio.sleep(3600)
        elif isinstance(store, SQLiteSessionStore):
            conn = await store._connection()

            def stop_in_the_record_write(sql: str) -> None:
                # The commit has begun its write transaction and released the lease row in it.
                if conn.in_transaction and sql.startswith("INSERT INTO") and "RETURNING version" in sql:
                    print("inside", flush=True)
                    time.sleep(3600)

            conn.set_trace_callback(stop_in_the_record_write)
        # PostgreSQL, mode "commit": the commit blocks on the row lock the test holds.

    for user in range(1, SESSIONS + 1):
        for _ in range(user):
            await router.handle(message(user, "/inc"))
    print("committed", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await router.handle(message(1, "/hang"))
    print("finished", flush=True)


async def start_worker(backend: str, target: str, app: str, mode: str, lease: float) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.test_sql_faults",
        backend,
        target,
        app,
        mode,
        str(lease),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await expect_line(child, b"committed\n")
    return child


async def expect_line(child: asyncio.subprocess.Process, line: bytes) -> None:
    assert child.stdout is not None
    got = await asyncio.wait_for(child.stdout.readline(), 30)
    if got != line:
        child.kill()
        _, err = await child.communicate()
        pytest.fail(f"worker said {got!r}, not {line!r}: {err.decode()}")


async def kill_worker(child: asyncio.subprocess.Process) -> None:
    child.kill()
    await child.wait()
    assert child.stdout is not None
    assert await child.stdout.read() == b"", "the update never finished"


async def check_survivors(store: BaseSessionStore) -> None:
    """Every session committed before the kill is intact; the killed update wrote nothing."""
    for user in range(1, SESSIONS + 1):
        assert await store.get(str(user)) == {"n": user}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["handler", "commit"])
async def test_sqlite_worker_killed_mid_update(tmp_path: Path, mode: str) -> None:
    lease = 1.5
    path = tmp_path / "s.db"
    child = await start_worker("sqlite", str(path), "-", mode, lease)
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    await expect_line(child, b"inside\n")
    await kill_worker(child)

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT expires_at FROM sessionware_sessions_locks WHERE key = '1'").fetchall()
    assert len(rows) == 1, "the dead worker's lease is still there"
    expires_at = rows[0][0]
    assert expires_at > time.time()
    store = SQLiteSessionStore(path)
    await check_survivors(store)
    with pytest.raises(LockError):
        await store.lock("1", lease=5, wait=0)
    got = await store.lock("1", lease=5, wait=lease + 5)
    assert time.time() >= expires_at, "taken only once the lease had expired"
    assert got.record is not None
    assert store.codec.decode("1", got.record.data) == {"n": 1}
    await store.commit(got.lease, store.codec.encode({"n": 2}))
    assert await store.get("1") == {"n": 2}
    await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["handler", "commit"])
async def test_postgres_worker_killed_mid_update(pg: MakeStore, admin: asyncpg.Connection, mode: str) -> None:
    lease = 2.0
    store = pg()
    t = store.table
    await store.get("warm-up")
    app = unique("swworker-")
    child = await start_worker("postgres", t, app, mode, lease)
    assert child.stdin is not None
    if mode == "handler":
        child.stdin.write(b"go\n")
        await expect_line(child, b"inside\n")
        pids = await backends(admin, app)
        await kill_worker(child)
    else:
        async with admin.transaction():
            await admin.execute(f'SELECT 1 FROM "{t}" WHERE key = $1 FOR UPDATE', "1")
            child.stdin.write(b"go\n")
            # The worker's commit has released the lease row in its transaction and waits for the record's row.
            pids = [await lock_waiter(admin, app)]
            await kill_worker(child)
            # The server notices the dead client and rolls the transaction back.
            await gone(admin, pids)
    await gone(admin, pids)

    row = await admin.fetchrow(
        f'SELECT expires_at, expires_at > clock_timestamp() AS live FROM "{t}_locks" WHERE key = $1', "1"
    )
    assert row is not None, "the dead worker's lease is still there"
    assert row["live"]
    await check_survivors(store)
    with pytest.raises(LockError):
        await store.lock("1", lease=5, wait=0)
    got = await store.lock("1", lease=5, wait=lease + 5)
    assert await admin.fetchval("SELECT clock_timestamp() >= $1", row["expires_at"]), "taken only after expiry"
    assert got.record is not None
    assert store.codec.decode("1", got.record.data) == {"n": 1}
    await store.commit(got.lease, store.codec.encode({"n": 2}))
    assert await store.get("1") == {"n": 2}


if __name__ == "__main__":
    asyncio.run(worker(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
