"""The update unit on every backend: what a SessionUpdate reads and writes under each isolation strategy,
counted at the store."""

from __future__ import annotations

import asyncio

import pytest

from sessionware import (
    BaseSessionStore,
    DistributedIsolation,
    InvalidValueError,
    LocalIsolation,
    LockingStore,
    NoIsolation,
    SessionDecodeError,
    ValueTooLargeError,
    make_isolation,
)
from sessionware.isolation import Isolation

from .helpers import Calls, SeedStyleStore


def strategies(store: BaseSessionStore) -> list[Isolation]:
    found: list[Isolation] = [NoIsolation(store), LocalIsolation(store)]
    if isinstance(store, LockingStore):
        found.append(DistributedIsolation(store, lease=10))
    return found


async def test_one_read_and_one_write_per_update_and_none_when_unchanged(store: BaseSessionStore) -> None:
    calls = Calls(store)
    for isolation in strategies(store):
        key = f"u-{isolation.name}"
        calls.take()
        async with isolation.open(key) as update:
            assert (update.existed, update.load()) == (False, None)
            value = update.fresh({"n": 0})
            assert not await update.save(value)  # an untouched new session is never stored
        async with isolation.open(key) as update:
            value = update.fresh({})
            value["n"] = 1
            assert await update.save(value)
        async with isolation.open(key) as update:
            assert update.load() == {"n": 1}
            assert not await update.save({"n": 1})
        counts = calls.take()
        if isolation.name == "distributed":
            # Lock and read in one call, write and release in another; an unchanged session only unlocks.
            assert counts == {"lock": 3, "unlock": 2, "commit": 1}, counts
        else:
            assert counts == {"get_raw": 3, "set_raw": 1}, counts
        assert await store.get(key) == {"n": 1}


async def test_emptied_is_deleted_and_rolling_only_touches(store: BaseSessionStore) -> None:
    calls = Calls(store)
    for isolation in strategies(store):
        key = f"e-{isolation.name}"
        await store.set(key, {"n": 1}, ttl=60)
        calls.take()
        async with isolation.open(key) as update:
            assert not await update.save(update.load(), ttl=120, rolling=True)
        counts = calls.take()
        assert counts.get("touch") == 1, counts
        assert not {"set_raw", "set", "commit"} & set(counts), counts
        left = await store.expires_in(key)  # type: ignore[attr-defined]
        assert left is not None
        assert left > 60
        async with isolation.open(key) as update:
            update.load()
            assert await update.save({})
        assert await store.get(key) is None
        async with isolation.open(key) as update:
            assert not await update.delete()  # nothing stored: nothing to delete


async def test_undecodable_record_is_kept_and_can_be_put_aside(store: BaseSessionStore) -> None:
    await store.set_raw("bad", b"{not json")
    for isolation in strategies(store):
        async with isolation.open("bad") as update:
            with pytest.raises(SessionDecodeError, match="'bad'"):
                update.load()
        assert await store.get_raw("bad") == b"{not json"
    async with LocalIsolation(store).open("bad") as update:
        with pytest.raises(SessionDecodeError) as info:
            update.load()
        await update.quarantine("bad:aside", info.value)
        assert await update.save({"fresh": True})
    assert await store.get_raw("bad:aside") == b"{not json"
    assert await store.get("bad") == {"fresh": True}


async def test_a_value_refused_before_writing_keeps_the_old_one_and_frees_the_key(store: BaseSessionStore) -> None:
    await store.set("big", {"n": 1})
    for isolation in strategies(store):
        async with isolation.open("big") as update:
            with pytest.raises(ValueTooLargeError):
                await update.save({"blob": "x" * (store.max_size + 1)})
        async with isolation.open("big") as update:
            with pytest.raises(InvalidValueError, match=r"\$\['t'\]"):
                await update.save({"t": (1, 2)})
        # Under a lease, the refused write released it on exit: the next update does not wait for it.
        async with make_isolation(store, isolation.name, lock_wait=0).open("big") as update:  # type: ignore[arg-type]
            assert update.load() == {"n": 1}


async def test_updates_of_one_key_queue_and_other_keys_run_freely(store: BaseSessionStore) -> None:
    isolation = LocalIsolation(store)
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with isolation.open("q") as update:
            order.append("first holds")
            await release.wait()
            await update.save({"by": "first"})

    async def second() -> None:
        async with isolation.open("q") as update:
            order.append(f"second reads {update.load()}")

    async def other() -> None:
        async with isolation.open("other") as update:
            order.append("other runs")
            await update.save({"n": 1})

    tasks = [asyncio.create_task(first())]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(second()))
    await asyncio.sleep(0.01)
    await other()
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first holds", "other runs", "second reads {'by': 'first'}"]
    assert len(isolation.locks) == 0


async def test_strategies_on_one_store_share_their_locks(store: BaseSessionStore) -> None:
    assert LocalIsolation(store).locks is LocalIsolation(store).locks
    assert make_isolation(store).name == "local"
    other = SeedStyleStore()
    assert LocalIsolation(other).locks is not LocalIsolation(store).locks


async def test_seed_style_store_is_read_and_written_as_dicts() -> None:
    seed = SeedStyleStore()
    isolation = LocalIsolation(seed)
    async with isolation.open("1") as update:
        value = update.fresh({"items": []})
        value["items"].append("a")
        await update.save(value)
    assert seed.data["1"] == {"items": ["a"]}
    async with isolation.open("1") as update:
        loaded = update.load()
        assert loaded is not None
        loaded["items"].append("b")  # a copy: the store's own object is untouched until saved
        assert seed.data["1"] == {"items": ["a"]}
        await update.save(loaded)
    assert seed.data["1"] == {"items": ["a", "b"]}
    assert seed.calls == ["get 1", "set 1", "get 1", "set 1"]


def test_strategy_names_and_options_are_checked() -> None:
    seed = SeedStyleStore()
    with pytest.raises(InvalidValueError, match="isolation must be one of 'none', 'local', 'distributed'"):
        make_isolation(seed, "global")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="'distributed' needs a store with leases"):
        make_isolation(seed, "distributed")
    from sessionware import InMemorySessionStore

    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(InvalidValueError, match="lease must be a positive"):
            DistributedIsolation(InMemorySessionStore(), lease=bad)
    with pytest.raises(InvalidValueError, match="lock_wait must be a non-negative"):
        DistributedIsolation(InMemorySessionStore(), lock_wait=-1)
