"""The session() middleware on every backend: load, save only on change, no lost updates."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from sessionware import (
    BaseSessionStore,
    Context,
    InMemorySessionStore,
    InvalidValueError,
    LeaseExpiredError,
    Router,
    RouterError,
    SessionDecodeError,
    by_chat,
    by_user_in_chat,
    session,
)
from sessionware.isolation import shared_locks
from sessionware.testing import Advance, FakeClock

from .helpers import Counting, SeedStyleStore, message


def counter_router(store: Any, **options: Any) -> Router:
    router = Router()
    router.use(session(store, **options))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        n = ctx.session.get("n", 0)
        await asyncio.sleep(0)  # a handler that awaits something between read and write
        ctx.session["n"] = n + 1

    @router.command("look")
    async def look(ctx: Context) -> None:
        ctx.state["n"] = ctx.session.get("n")

    @router.command("reset")
    async def reset(ctx: Context) -> None:
        ctx.session.clear()

    @router.command("boom")
    async def boom(ctx: Context) -> None:
        ctx.session["n"] = -1
        raise RuntimeError("handler failed")

    @router.command("bad")
    async def bad(ctx: Context) -> None:
        ctx.session["n"] = {1, 2}

    return router


async def test_loaded_before_and_saved_after(store: BaseSessionStore) -> None:
    router = counter_router(store)
    await router.handle(message(1, "/inc"))
    await router.handle(message(1, "/inc"))
    await router.handle(message(2, "/inc"))
    assert await store.get("1") == {"n": 2}
    assert await store.get("2") == {"n": 1}
    ctx = await counter_router(store).handle(message(1, "/look"))
    assert ctx.state["n"] == 2


async def test_writes_only_when_changed(store: BaseSessionStore) -> None:
    spy = Counting(store)
    router = counter_router(store, initial=lambda: {"n": 0, "tags": []})
    await router.handle(message(1, "/look"))
    assert spy.writes == 0
    assert await store.get("1") is None, "an untouched initial session is never written"
    await router.handle(message(1, "/inc"))
    assert spy.writes == 1
    for _ in range(3):
        await router.handle(message(1, "/look"))
    assert spy.writes == 1
    assert await store.get("1") == {"n": 1, "tags": []}


async def test_emptied_session_is_deleted(store: BaseSessionStore) -> None:
    spy = Counting(store)
    router = counter_router(store)
    await router.handle(message(1, "/inc"))
    await router.handle(message(1, "/reset"))
    assert await store.get("1") is None
    assert spy.deletes == 1
    await router.handle(message(1, "/reset"))
    assert spy.deletes == 1, "a session that never existed is not deleted"


async def test_no_write_back_when_handler_raises(store: BaseSessionStore) -> None:
    router = counter_router(store)
    await router.handle(message(1, "/inc"))
    with pytest.raises(RuntimeError, match="handler failed"):
        await router.handle(message(1, "/boom"))
    assert await store.get("1") == {"n": 1}
    saving = counter_router(store, save_on_error=True)
    with pytest.raises(RuntimeError):
        await saving.handle(message(1, "/boom"))
    assert await store.get("1") == {"n": -1}


async def test_undecodable_record_stops_update_and_is_kept(store: BaseSessionStore) -> None:
    await store.set_raw("1", b'{"n": 1, "trunc')
    router = counter_router(store)
    with pytest.raises(SessionDecodeError) as info:
        await router.handle(message(1, "/inc"))
    assert info.value.key == "1"
    assert await store.get_raw("1") == b'{"n": 1, "trunc'


async def test_invalid_value_is_refused_and_old_value_kept(store: BaseSessionStore) -> None:
    router = counter_router(store)
    await router.handle(message(1, "/inc"))
    with pytest.raises(InvalidValueError, match=r"\['n'\]"):
        await router.handle(message(1, "/bad"))
    assert await store.get("1") == {"n": 1}


async def test_hundred_concurrent_updates_to_one_key_lose_nothing(store: BaseSessionStore) -> None:
    router = counter_router(store)
    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(100)))
    assert await store.get("1") == {"n": 100}
    assert len(shared_locks(store)) == 0  # the lock table holds only keys in use


async def test_without_isolation_the_same_updates_are_lost(store: BaseSessionStore) -> None:
    router = counter_router(store, isolation="none")
    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(100)))
    got = await store.get("1")
    assert got is not None
    assert got["n"] < 100, "isolation='none' is the seed's behaviour and loses updates"


async def test_ttl_expires_sessions(store: BaseSessionStore, advance: Advance) -> None:
    ttl = 0.3
    router = counter_router(store, ttl=ttl)
    await router.handle(message(1, "/inc"))
    assert await store.get("1") == {"n": 1}
    await advance(3 * ttl)
    assert await store.get("1") is None
    ctx = await router.handle(message(1, "/look"))
    assert ctx.state["n"] is None


async def test_rolling_ttl_extends_on_unchanged_reads(store: BaseSessionStore, advance: Advance) -> None:
    ttl = 0.6
    router = counter_router(store, ttl=ttl, rolling=True)
    await router.handle(message(1, "/inc"))
    for _ in range(9):  # 1.5 TTLs in all, a sixth of one between reads
        await advance(ttl / 6)
        ctx = await router.handle(message(1, "/look"))
        assert ctx.state["n"] == 1
    assert await store.get("1") == {"n": 1}


async def test_lock_table_does_not_grow_with_users(store: BaseSessionStore) -> None:
    router = counter_router(store)
    await asyncio.gather(*(router.handle(message(u, "/inc")) for u in range(300)))
    assert len(shared_locks(store)) == 0
    assert await store.get("299") == {"n": 1}


async def test_key_presets_and_custom_keys() -> None:
    seed = SeedStyleStore()
    chat_router = counter_router(seed, key=by_chat)
    await chat_router.handle(message(1, "/inc", chat=-5))
    await chat_router.handle(message(2, "/inc", chat=-5))
    assert seed.data["-5"] == {"n": 2}
    per_chat = counter_router(seed, key=by_user_in_chat)
    await per_chat.handle(message(1, "/inc", chat=-5))
    await per_chat.handle(message(1, "/inc", chat=-6))
    assert seed.data["-5:1"] == {"n": 1}
    assert seed.data["-6:1"] == {"n": 1}

    async def tenant_key(ctx: Context) -> str | None:
        return f"tenant-a:{ctx.from_user['id']}" if ctx.from_user else None

    await counter_router(seed, key=tenant_key).handle(message(3, "/inc"))
    assert seed.data["tenant-a:3"] == {"n": 1}
    await counter_router(seed, key="user_in_chat").handle(message(3, "/inc", chat=9))
    assert seed.data["9:3"] == {"n": 1}
    with pytest.raises(InvalidValueError, match="key"):
        session(seed, key="nobody")


async def test_none_key_gives_empty_session_and_no_store_call() -> None:
    seed = SeedStyleStore()
    router = counter_router(seed, key=lambda ctx: None)
    ctx = await router.handle(message(1, "/look"))
    assert ctx.state["n"] is None  # reading is allowed, and empty
    with pytest.raises(RouterError, match="no session key"):
        await router.handle(message(1, "/inc"))  # a change would be lost: refused
    assert seed.calls == []


async def test_seed_style_store_works_and_is_not_shared() -> None:
    seed = SeedStyleStore()
    router = Router()
    router.use(session(store=seed))

    @router.text()
    async def note(ctx: Context) -> None:
        ctx.session.setdefault("notes", []).append(ctx.text)

    await router.handle(message(1, "a"))
    stored = seed.data["1"]
    await router.handle(message(1, "b"))
    assert seed.data["1"] == {"notes": ["a", "b"]}
    assert stored == {"notes": ["a"]}, "the handler never mutated the object the store holds"
    with pytest.raises(InvalidValueError, match="ttl"):
        session(store=seed, ttl=60)


async def test_default_store_is_in_memory() -> None:
    mw = session()
    assert isinstance(mw.store, InMemorySessionStore)


async def test_distributed_isolation_loses_nothing(store: BaseSessionStore) -> None:
    router = counter_router(store, isolation="distributed", lease=5, lock_wait=30)
    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(50)))
    assert await store.get("1") == {"n": 50}
    await router.handle(message(1, "/reset"))
    assert await store.get("1") is None


async def test_lease_lost_during_handler_refuses_the_write(
    store: BaseSessionStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    lease = 0.2
    router = Router()
    router.use(session(store, isolation="distributed", lease=lease))

    @router.command("stall")
    async def stall(ctx: Context) -> None:
        ctx.session["n"] = -1
        # The process stalls (GC pause, blocked loop) for three leases without awaiting: no renewal runs.
        if isinstance(store, InMemorySessionStore):
            clock.advance(3 * lease)  # the memory store runs on the fake clock (the test asks for it)
        else:
            time.sleep(3 * lease)  # noqa: ASYNC251 - blocking the loop is the point

    await store.set("1", {"n": 1})
    with pytest.raises(LeaseExpiredError), caplog.at_level(logging.WARNING, logger="sessionware"):
        await router.handle(message(1, "/stall"))
    assert await store.get("1") == {"n": 1}
    assert any("expired" in r.getMessage() for r in caplog.records)


async def test_lease_is_renewed_while_a_slow_handler_awaits(store: BaseSessionStore) -> None:
    # Real time on every backend, memory too: renewal runs on the event loop's timers, which is the subject.
    lease = 0.3
    router = Router()
    router.use(session(store, isolation="distributed", lease=lease))

    @router.command("slow")
    async def slow(ctx: Context) -> None:
        await asyncio.sleep(3 * lease)
        ctx.session["n"] = 7

    await router.handle(message(1, "/slow"))
    assert await store.get("1") == {"n": 7}


async def test_distributed_needs_a_store_with_leases() -> None:
    with pytest.raises(InvalidValueError, match="leases"):
        session(SeedStyleStore(), isolation="distributed")


@pytest.mark.parametrize("isolation", ["local", "distributed"])
async def test_quarantine_keeps_the_bad_record_aside_and_starts_fresh(
    store: BaseSessionStore, isolation: str, caplog: pytest.LogCaptureFixture
) -> None:
    await store.set_raw("1", b"\xff\xfe not json")
    router = counter_router(
        store, on_decode_error="quarantine", isolation=isolation, quarantine_key=lambda k: f"bad:{k}"
    )
    with caplog.at_level(logging.WARNING, logger="sessionware"):
        await router.handle(message(1, "/inc"))
    assert await store.get_raw("bad:1") == b"\xff\xfe not json"
    assert await store.get("1") == {"n": 1}
    assert any("kept aside" in r.getMessage() for r in caplog.records)
    await store.set_raw("2", b'{"trunc')
    await router.handle(message(2, "/look"))
    assert await store.get_raw("2") is None, "an untouched fresh session replaces the undecodable record"
    assert await store.get_raw("bad:2") == b'{"trunc'


def test_quarantine_needs_bytes_access() -> None:
    with pytest.raises(InvalidValueError, match="RawStore"):
        session(SeedStyleStore(), on_decode_error="quarantine")
