"""The in-memory store on a fake clock: every expiry and lease decision steps with it, no sleeping."""

from __future__ import annotations

import asyncio

import pytest

from sessionware.errors import InvalidValueError, LeaseExpiredError, LockError
from sessionware.store import Lease
from sessionware.stores.memory import InMemorySessionStore


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemorySessionStore:
    return InMemorySessionStore(clock=clock)


async def test_records_expire_by_the_store_clock(store: InMemorySessionStore, clock: FakeClock) -> None:
    await store.set("k", {"n": 1}, ttl=10)
    await store.set("forever", {"n": 2})
    assert await store.expires_in("k") == 10
    clock.advance(9.5)
    assert await store.get("k") == {"n": 1}
    assert await store.expires_in("k") == 0.5
    clock.advance(0.5)
    assert await store.get("k") is None
    assert await store.get_versioned("k") is None
    assert await store.expires_in("k") is None
    assert [k async for k in store.scan("")] == ["forever"]
    clock.advance(10**6)
    assert await store.get("forever") == {"n": 2}


async def test_touch_and_purge_follow_the_clock(store: InMemorySessionStore, clock: FakeClock) -> None:
    await store.set("k", {"n": 1}, ttl=10)
    await store.set("gone", {"n": 2}, ttl=5)
    clock.advance(4)
    assert await store.touch("k", 20)
    assert await store.expires_in("k") == 20
    clock.advance(1)
    assert not await store.touch("gone", 20), "an expired record cannot be touched back to life"
    assert await store.purge_expired() == 0, "reading it already dropped it"
    await store.set("later", {"n": 3}, ttl=1)
    clock.advance(1)
    assert await store.purge_expired() == 1
    assert len(store) == 1
    clock.advance(17.5)
    assert await store.get("k") == {"n": 1}
    clock.advance(0.5)
    assert await store.get("k") is None


async def test_a_versioned_write_on_an_expired_record_counts_it_missing(
    store: InMemorySessionStore, clock: FakeClock
) -> None:
    old = await store.set_versioned("k", b"{}", expected=0, ttl=1)
    clock.advance(1)
    assert await store.get_versioned("k") is None
    new = await store.set_versioned("k", b'{"n":1}', expected=0)
    assert new != old


async def test_logs_expire_and_slide_by_the_clock(store: InMemorySessionStore, clock: FakeClock) -> None:
    await store.log_append("chat", [{"n": 1}], ttl=10)
    clock.advance(8)
    assert await store.log_append("chat", [], ttl=10) == []
    clock.advance(8)
    assert [e.value for e in await store.log_read("chat")] == [{"n": 1}]
    clock.advance(2)
    assert await store.log_read("chat") == []
    assert await store.log_length("chat") == 0
    assert await store.log_last_seq("chat") == 0
    assert await store.log_append("chat", [{"fresh": True}]) == [1], "an expired log starts again from one"


async def test_leases_are_timed_by_the_store_clock(store: InMemorySessionStore, clock: FakeClock) -> None:
    await store.set("k", {"n": 1})
    held = await store.lock("k", lease=10, wait=0)
    assert held.lease.acquired_at == clock.now
    assert held.lease.remaining == 10
    clock.advance(4)
    assert held.lease.remaining == 6
    with pytest.raises(LockError):
        await store.lock("k", lease=10, wait=0)
    renewed = await store.renew(held.lease)
    assert renewed.remaining == 10
    assert (renewed.key, renewed.token, renewed.ttl) == (held.lease.key, held.lease.token, held.lease.ttl)
    clock.advance(9.5)
    assert renewed.remaining == 0.5
    with pytest.raises(LockError):
        await store.lock("k", lease=10, wait=0)
    clock.advance(0.5)
    assert renewed.remaining == 0
    taker = await store.lock("k", lease=10, wait=0)
    with pytest.raises(LeaseExpiredError):
        await store.commit(renewed, b'{"n":-1}')
    with pytest.raises(LeaseExpiredError):
        await store.renew(renewed)
    await store.commit(taker.lease, b'{"n":2}')
    assert await store.get("k") == {"n": 2}


async def test_a_waiter_takes_the_lease_once_the_clock_passes_its_expiry(
    store: InMemorySessionStore, clock: FakeClock
) -> None:
    first = await store.lock("k", lease=30, wait=0)
    waiting = asyncio.create_task(store.lock("k", lease=30, wait=60))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "the holder's lease still runs by the store's clock"
    clock.advance(30)
    got = await asyncio.wait_for(waiting, 5)
    assert got.lease.token != first.lease.token
    assert got.lease.acquired_at == clock.now
    # A waiter gives up when the store's clock passes its deadline.
    pending = asyncio.create_task(store.lock("k", lease=30, wait=5))
    await asyncio.sleep(0.01)
    assert not pending.done()
    clock.advance(5)
    with pytest.raises(LockError, match=r"gave up after 5"):
        await asyncio.wait_for(pending, 5)


async def test_leases_and_records_are_swept_with_the_clock(clock: FakeClock) -> None:
    store = InMemorySessionStore(clock=clock)
    for i in range(10):
        await store.set(f"k{i}", {"i": i}, ttl=1)
    held = await store.lock("locked", lease=1, wait=0)
    clock.advance(1)
    assert await store.purge_expired() == 10
    assert len(store) == 0
    with pytest.raises(LeaseExpiredError):
        await store.commit(held.lease, b"{}")
    assert await store.get("locked") is None


async def test_a_hand_made_lease_keeps_the_default_clock(store: InMemorySessionStore) -> None:
    impostor = Lease("k", "0" * 32, 5)
    assert 4 < impostor.remaining <= 5
    with pytest.raises(LeaseExpiredError):
        await store.commit(impostor, b"{}")
    with pytest.raises(InvalidValueError, match="lease"):
        await store.renew(Lease("k", "", 5))


# -- bounded memory: a session is evicted whole, expired keys give way first, expiry keeps sweeping ----------


async def test_eviction_takes_a_whole_session_record_history_and_index_entry(clock: FakeClock) -> None:
    from sessionware import SessionManager

    store = InMemorySessionStore(max_sessions=4, clock=clock)  # three sessions and the user's activity index
    manager = SessionManager(store)
    made = []
    for i in range(5):
        session = await manager.create_session("ada")
        await manager.add_message(session.id, "user", f"hello {i}")
        await manager.track_tool_invocation(session.id, "lookup", call_id=f"c{i}")
        made.append(session.id)
        clock.advance(1)
    listed = [s.id for s in (await manager.list_sessions("ada")).sessions]
    assert sorted(listed) == sorted(made[2:]), "every listed session is live and every live session is listed"
    for session_id in made[:2]:
        assert await manager.get_session(session_id) is None
    for session_id in made[2:]:
        got = await manager.get_session(session_id, history="all")
        assert got is not None
        assert got.message_count == len(got.conversation_history) == 1, "no record outlives its history"
        assert len(got.tool_invocations) == 1
    assert await manager.delete_user_data("ada") == 3
    assert [key async for key in store.scan()] == []


async def test_reading_a_session_keeps_it_from_eviction(clock: FakeClock) -> None:
    store = InMemorySessionStore(max_sessions=2, clock=clock)
    await store.set("a", {"n": 1})
    await store.set("b{x}", {"n": 2})
    await store.log_append("h{x}", [{"m": 1}])  # the same session as b{x}: no room taken
    await store.get("a")  # now b{x} and h{x} are the least recently used
    await store.set("c", {"n": 3})
    assert await store.get("a") == {"n": 1}
    assert await store.get("c") == {"n": 3}
    assert await store.get("b{x}") is None
    assert await store.log_read("h{x}") == [], "the session went whole"


async def test_an_expired_session_gives_way_before_a_live_one(clock: FakeClock) -> None:
    store = InMemorySessionStore(max_sessions=3, clock=clock)
    await store.set("old-but-live", {"n": 1})
    await store.set("expiring", {"n": 2}, ttl=1)
    await store.set("live", {"n": 3})
    clock.advance(2)
    await store.set("new", {"n": 4})
    assert await store.get("old-but-live") == {"n": 1}, "the least recently used live session is kept"
    assert await store.get("live") == {"n": 3}
    assert await store.get("new") == {"n": 4}


async def test_expired_keys_are_dropped_as_writes_go_on_without_a_purge(clock: FakeClock) -> None:
    store = InMemorySessionStore(clock=clock)
    for i in range(20_000):
        await store.set(f"k{i}", {"i": i}, ttl=0.005)
        clock.advance(0.001)
    assert len(store) <= 6, f"{len(store)} records held, of which at most 5 are live"
    for i in range(2_000):
        await store.log_append(f"log{i}", [{"i": i}], ttl=0.005)
        clock.advance(0.001)
    assert len(store._logs) <= 6


async def test_sliding_expiry_does_not_grow_the_expiry_index(clock: FakeClock) -> None:
    store = InMemorySessionStore(clock=clock)
    await store.set("k", {"n": 1}, ttl=10)
    for _ in range(10_000):
        await store.touch("k", 10)
        clock.advance(0.01)
    assert len(store._expiry) <= 1024 + 3
    assert await store.get("k") == {"n": 1}
    clock.advance(10)
    assert await store.get("k") is None
