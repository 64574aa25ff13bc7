"""A contract test suite any session store can run to prove it behaves like sessionware's own.

Subclass :class:`StoreContract` in a pytest module and give it a ``store``
fixture (``pytest-asyncio`` runs the tests)::

    from sessionware.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        async def store(self):
            yield MyStore(...)

Tests of optional capabilities (expiry, scanning, bytes access, typed
validation, logs, versions, leases) run only when the store has them.

Passing time: the tests of expiry and leases never sleep on their own; they
``await advance(seconds)``, a fixture that by default sleeps for real (at
least three times a TTL or lease before asserting that it ran out). If your store can take a clock, as
:class:`~sessionware.InMemorySessionStore` does, let it run on the suite's
``clock`` fixture (a :class:`FakeClock`) and make ``advance`` step that clock;
the same tests then run in no time and never depend on the machine's speed::

    from sessionware.testing import Advance, FakeClock, StoreContract

    class TestMyStoreOnAFakeClock(StoreContract):
        @pytest.fixture
        async def store(self, clock: FakeClock):
            store = MyStore(clock=clock)
            yield store
            await store.close()

        @pytest.fixture
        def advance(self, clock: FakeClock) -> Advance:
            return clock.sleep

A fake clock stands still until it is advanced: a store that waits for a
lease by its clock waits until a test advances it (the suite does).
:class:`FakeClock` also serves a store's own tests::

    clock = FakeClock()
    store = InMemorySessionStore(clock=clock)
    await store.set("k", {"v": 1}, ttl=5)
    clock.advance(5)
    assert await store.get("k") is None
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar, TypeAlias

import pytest

from .errors import (
    ConflictError,
    InvalidKeyError,
    InvalidValueError,
    LeaseExpiredError,
    LockError,
    SessionwareError,
    ValueTooLargeError,
)
from .store import (
    BaseSessionStore,
    ExpiringStore,
    Lease,
    Locked,
    LockingStore,
    LogStore,
    RawStore,
    ScannableStore,
    SessionStore,
    VersionedStore,
)

ROUND_TRIP_VALUES: list[dict[str, Any]] = [
    {},
    {"counter": 1, "items": ["a", "b"], "flag": True, "nothing": None},
    {"text": "nul \u0000 inside", "emoji": "🦜👩🏽‍💻", "cjk": "会话", "rtl": "مرحبا", "ctl": "\x01\x1f\x7f"},
    {"lone_surrogate": "\ud800x\udfff"},
    {"big": 2**53 + 1, "bigger": 2**100, "negative": -(2**70), "zero": 0},
    {"floats": [0.1, 1e308, -0.0, 5e-324, 1.5, -2.25e-10]},
    {"nested": {"a": {"b": {"c": [[{"d": [1, [2, [3]]]}]]}}}},
    {"": "empty key", " ": "space", "k\u0000": "nul in key", "quote\"'": 1},
]

BAD_VALUES: list[Any] = [
    {"t": (1, 2)},
    {"s": {1, 2}},
    {"b": b"bytes"},
    {"nan": float("nan")},
    {"inf": [float("inf")]},
    {1: "int key"},
    {"o": object()},
]


Advance: TypeAlias = Callable[[float], Awaitable[None]]
"""How a test lets ``seconds`` pass: :func:`asyncio.sleep`, or :meth:`FakeClock.sleep` of the store's clock."""


class FakeClock:
    """A monotonic clock that moves only when told to, for stepping over expiries and leases without sleeping.

    Pass it where a store takes a clock (a callable returning seconds, like
    :func:`time.monotonic`), then :meth:`advance` it::

        clock = FakeClock()
        store = InMemorySessionStore(clock=clock)
        clock.advance(5)

    It starts at ``start`` (0: only differences between readings mean
    anything, and a store's first ``now + ttl - now`` is then exactly ``ttl``)
    and never goes back. Timers of the event loop still run on real time: a
    fake clock decides what has expired, not when a background task wakes.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = _seconds(start, "start", allow_negative=True)

    def __call__(self) -> float:
        """The current time in seconds."""
        return self._now

    @property
    def now(self) -> float:
        """The current time in seconds (the same as calling the clock)."""
        return self._now

    def advance(self, seconds: float | timedelta) -> float:
        """Move the clock forward by ``seconds`` (a number or a ``timedelta``); return the new time."""
        self._now += _seconds(seconds, "seconds", allow_negative=False)
        return self._now

    async def sleep(self, seconds: float | timedelta) -> None:
        """Advance the clock, then yield once to the event loop: a stand-in for :func:`asyncio.sleep`."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


def _seconds(value: float | timedelta, name: str, *, allow_negative: bool) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, not {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or (seconds < 0 and not allow_negative):
        raise ValueError(f"{name} must be a finite number of seconds{'' if allow_negative else ' >= 0'}, not {value!r}")
    return seconds


async def _real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class StoreContract:
    """The behaviour every session store must have. Provide a ``store`` fixture.

    Override ``advance`` (and let ``store`` use ``clock``) to run the expiry
    and lease tests on a fake clock; see the module docstring.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.fixture
    def clock(self) -> FakeClock:
        """A fresh :class:`FakeClock` for a ``store`` fixture that can run on one."""
        return FakeClock()

    @pytest.fixture
    def advance(self) -> Advance:
        """How the suite lets time pass: real sleep by default; ``clock.sleep`` for a store on ``clock``."""
        return _real_sleep

    async def test_miss_is_none(self, store: SessionStore) -> None:
        assert await store.get("contract:missing") is None

    @pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
    async def test_round_trip_exactly(self, store: SessionStore, value: dict[str, Any]) -> None:
        await store.set("contract:rt", value)
        got = await store.get("contract:rt")
        assert got == value
        assert _types(got) == _types(value)

    async def test_overwrite(self, store: SessionStore) -> None:
        await store.set("contract:ow", {"v": 1})
        await store.set("contract:ow", {"w": 2})
        assert await store.get("contract:ow") == {"w": 2}

    async def test_delete_and_delete_missing(self, store: SessionStore) -> None:
        await store.set("contract:del", {"v": 1})
        await store.delete("contract:del")
        assert await store.get("contract:del") is None
        await store.delete("contract:del")
        await store.delete("contract:never-there")

    async def test_no_shared_objects(self, store: SessionStore) -> None:
        value: dict[str, Any] = {"items": [1, 2], "inner": {"x": 1}}
        await store.set("contract:share", value)
        value["items"].append(3)
        value["inner"]["x"] = 99
        first = await store.get("contract:share")
        assert first == {"items": [1, 2], "inner": {"x": 1}}
        assert first is not None
        first["items"].append(4)
        assert await store.get("contract:share") == {"items": [1, 2], "inner": {"x": 1}}

    async def test_keys_are_independent(self, store: SessionStore) -> None:
        keys = ["contract:k", "contract:k*", "contract:k?", "contract:k%", "contract:k_", "contract:k[1]"]
        for i, key in enumerate(keys):
            await store.set(key, {"i": i})
        await store.delete("contract:k*")
        assert await store.get("contract:k*") is None
        for i, key in enumerate(keys):
            if key != "contract:k*":
                assert await store.get(key) == {"i": i}, key

    async def test_many_concurrent_writers(self, store: SessionStore) -> None:
        await asyncio.gather(*(store.set(f"contract:c{i}", {"i": i}) for i in range(100)))
        got = await asyncio.gather(*(store.get(f"contract:c{i}") for i in range(100)))
        assert got == [{"i": i} for i in range(100)]

    # -- typed validation (sessionware's own stores) -------------------------------------------

    @pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: type(next(iter(v.values()))).__name__)
    async def test_bad_value_refused_before_write(self, store: SessionStore, bad: Any) -> None:
        if not isinstance(store, BaseSessionStore):
            pytest.skip("typed validation is part of BaseSessionStore")
        await store.set("contract:bad", {"kept": True})
        with pytest.raises(InvalidValueError):
            await store.set("contract:bad", copy.copy(bad))
        assert await store.get("contract:bad") == {"kept": True}

    async def test_too_large_refused_before_write(self, store: SessionStore) -> None:
        if not isinstance(store, BaseSessionStore):
            pytest.skip("the size limit is part of BaseSessionStore")
        await store.set("contract:big", {"kept": True})
        with pytest.raises(ValueTooLargeError) as info:
            await store.set("contract:big", {"blob": "x" * (store.max_size + 1)})
        assert info.value.limit == store.max_size
        assert await store.get("contract:big") == {"kept": True}

    @pytest.mark.parametrize("key", ["", "a\x00b", "\ud800", "x" * 5000])
    async def test_bad_key_refused(self, store: SessionStore, key: str) -> None:
        if not isinstance(store, BaseSessionStore):
            pytest.skip("key validation is part of BaseSessionStore")
        with pytest.raises(InvalidKeyError):
            await store.set(key, {"v": 1})
        with pytest.raises(InvalidKeyError):
            await store.get(key)

    async def test_errors_share_one_base(self, store: SessionStore) -> None:
        if not isinstance(store, BaseSessionStore):
            pytest.skip("typed errors are part of BaseSessionStore")
        with pytest.raises(SessionwareError):
            await store.set("contract:err", {"x": {1, 2}})

    # -- optional capabilities -----------------------------------------------------------------

    async def test_raw_round_trip(self, store: SessionStore) -> None:
        if not isinstance(store, RawStore):
            pytest.skip("store has no bytes access")
        data = store.codec.encode({"raw": [1, "two"]})
        await store.set_raw("contract:raw", data)
        assert await store.get_raw("contract:raw") == data
        assert await store.get("contract:raw") == {"raw": [1, "two"]}

    async def test_ttl_expires(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, ExpiringStore):
            pytest.skip("store has no expiry")
        ttl = 0.2
        await store.set("contract:ttl", {"v": 1}, ttl=ttl)
        await store.set("contract:keep", {"v": 2})
        left = await store.expires_in("contract:ttl")
        assert left is not None
        assert 0 < left <= ttl
        assert await store.get("contract:ttl") == {"v": 1}
        assert await store.expires_in("contract:keep") is None
        assert await store.expires_in("contract:missing") is None
        await advance(3 * ttl)
        assert await store.get("contract:ttl") is None
        assert await store.expires_in("contract:ttl") is None
        assert await store.get("contract:keep") == {"v": 2}

    async def test_set_without_ttl_clears_expiry(self, store: SessionStore) -> None:
        if not isinstance(store, ExpiringStore):
            pytest.skip("store has no expiry")
        await store.set("contract:clear", {"v": 1}, ttl=0.3)
        await store.set("contract:clear", {"v": 2})
        assert await store.expires_in("contract:clear") is None

    async def test_touch_extends(self, store: SessionStore) -> None:
        if not isinstance(store, ExpiringStore):
            pytest.skip("store has no expiry")
        await store.set("contract:touch", {"v": 1}, ttl=0.3)
        assert await store.touch("contract:touch", 30)
        left = await store.expires_in("contract:touch")
        assert left is not None
        assert left > 10
        assert not await store.touch("contract:touch-missing", 30)

    async def test_invalid_ttl_refused(self, store: SessionStore) -> None:
        if not isinstance(store, BaseSessionStore):
            pytest.skip("ttl validation is part of BaseSessionStore")
        for ttl in (0, -1, float("nan"), float("inf")):
            with pytest.raises(InvalidValueError):
                await store.set("contract:badttl", {"v": 1}, ttl=ttl)
        assert await store.get("contract:badttl") is None

    async def test_scan_takes_prefix_literally(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, ScannableStore):
            pytest.skip("store cannot list keys")
        keys = ["scan:a*1", "scan:a*2", "scan:ab", "scan:a%", "scan:a_", "scan:a[x]", "other:a*"]
        for key in keys:
            await store.set(key, {})
        if isinstance(store, ExpiringStore):
            await store.set("scan:a*gone", {}, ttl=0.1)
            await advance(0.3)
        assert sorted([k async for k in store.scan("scan:a*")]) == ["scan:a*1", "scan:a*2"]
        assert sorted([k async for k in store.scan("scan:a%")]) == ["scan:a%"]
        assert sorted([k async for k in store.scan("scan:a_")]) == ["scan:a_"]
        assert sorted([k async for k in store.scan("scan:a[")]) == ["scan:a[x]"]
        everything = [k async for k in store.scan("scan:")]
        assert sorted(everything) == sorted(k for k in keys if k.startswith("scan:"))
        assert len([k async for k in store.scan("scan:", limit=2)]) == 2

    # -- append-only logs ------------------------------------------------------------------------

    async def test_log_append_and_read(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        assert await store.log_read("log:a") == []
        assert await store.log_length("log:a") == 0
        assert await store.log_last_seq("log:a") == 0
        assert await store.log_append("log:a", [{"n": 1}, {"n": 2}]) == [1, 2]
        assert await store.log_append("log:a", [{"n": 3, "text": "nul \u0000 🦜", "big": 2**70}]) == [3]
        got = await store.log_read("log:a")
        assert [e.seq for e in got] == [1, 2, 3]
        assert got[2].value == {"n": 3, "text": "nul \u0000 🦜", "big": 2**70}
        assert await store.log_length("log:a") == 3
        assert await store.log_last_seq("log:a") == 3
        assert await store.log_append("log:a", []) == []

    async def test_log_windows(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        await store.log_append("log:w", [{"n": i} for i in range(1, 11)])
        assert [e.seq for e in await store.log_read("log:w", last=3)] == [8, 9, 10]
        assert [e.seq for e in await store.log_read("log:w", after=7)] == [8, 9, 10]
        assert [e.seq for e in await store.log_read("log:w", before=3)] == [1, 2]
        assert [e.seq for e in await store.log_read("log:w", after=2, before=8, last=2)] == [6, 7]
        assert [e.value["n"] for e in await store.log_read("log:w", before=5, last=2)] == [3, 4]
        assert await store.log_read("log:w", after=10) == []
        assert await store.log_read("log:w", last=0) == []

    async def test_log_trim_keeps_numbering(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        await store.log_append("log:t", [{"n": i} for i in range(1, 6)], max_len=3)
        assert [e.seq for e in await store.log_read("log:t")] == [3, 4, 5]
        assert await store.log_append("log:t", [{"n": 6}], max_len=3) == [6]
        assert [e.seq for e in await store.log_read("log:t")] == [4, 5, 6]
        assert [e.seq for e in await store.log_read("log:t", after=1, last=10)] == [4, 5, 6]
        assert await store.log_length("log:t") == 3
        assert await store.log_last_seq("log:t") == 6

    async def test_log_is_separate_from_records(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        await store.set("log:s", {"record": True})
        await store.log_append("log:s", [{"entry": True}])
        await store.log_append("log:s*", [{"other": True}])
        await store.log_delete("log:s")
        assert await store.log_read("log:s") == []
        assert await store.get("log:s") == {"record": True}
        assert [e.value for e in await store.log_read("log:s*")] == [{"other": True}]
        await store.log_delete("log:never")

    async def test_log_concurrent_appends_gap_free(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")

        async def writer(task: int) -> list[int]:
            seqs: list[int] = []
            for i in range(20):
                seqs += await store.log_append("log:c", [{"task": task, "i": i}])
            return seqs

        results = await asyncio.gather(*(writer(t) for t in range(50)))
        assigned = sorted(s for r in results for s in r)
        assert assigned == list(range(1, 1001))
        entries = await store.log_read("log:c")
        assert [e.seq for e in entries] == list(range(1, 1001))
        for task, seqs in enumerate(results):
            assert [entries[s - 1].value for s in seqs] == [{"task": task, "i": i} for i in range(20)]

    async def test_log_ttl(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        ttl = 0.2
        await store.log_append("log:ttl", [{"n": 1}], ttl=ttl)
        await store.log_append("log:keep", [{"n": 1}])
        assert await store.log_length("log:ttl") == 1
        await advance(3 * ttl)
        assert await store.log_read("log:ttl") == []
        assert await store.log_length("log:ttl") == 0
        assert len(await store.log_read("log:keep")) == 1

    async def test_log_empty_append_only_slides_expiry(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        ttl = 0.3
        await store.log_append("log:slide", [{"n": 1}], ttl=ttl)
        for _ in range(9):  # 1.5 TTLs in all, a sixth of one between slides
            await advance(ttl / 6)
            assert await store.log_append("log:slide", [], ttl=ttl) == []
        assert [e.value for e in await store.log_read("log:slide")] == [{"n": 1}]
        assert await store.log_last_seq("log:slide") == 1

    async def test_log_bad_entry_refused_before_write(self, store: SessionStore) -> None:
        if not isinstance(store, LogStore):
            pytest.skip("store has no logs")
        await store.log_append("log:bad", [{"ok": 1}])
        with pytest.raises(InvalidValueError):
            await store.log_append("log:bad", [{"ok": 2}, {"bad": (1, 2)}])
        with pytest.raises(InvalidValueError):
            await store.log_append("log:bad", [{"ok": 3}], max_len=0)
        assert [e.value for e in await store.log_read("log:bad")] == [{"ok": 1}]

    # -- versions (compare-and-set) --------------------------------------------------------------

    async def test_versions_compare_and_set(self, store: SessionStore) -> None:
        if not isinstance(store, VersionedStore) or not isinstance(store, RawStore):
            pytest.skip("store has no versions")
        enc = store.codec.encode
        assert await store.get_versioned("cas:a") is None
        v1 = await store.set_versioned("cas:a", enc({"n": 1}), expected=0)
        with pytest.raises(ConflictError):
            await store.set_versioned("cas:a", enc({"n": -1}), expected=0)
        v2 = await store.set_versioned("cas:a", enc({"n": 2}), expected=v1)
        assert v2 != v1
        with pytest.raises(ConflictError):
            await store.set_versioned("cas:a", enc({"n": -1}), expected=v1)
        got = await store.get_versioned("cas:a")
        assert got is not None
        assert (got.data, got.version) == (enc({"n": 2}), v2)
        await store.set("cas:a", {"n": 3})
        after_plain_set = await store.get_versioned("cas:a")
        assert after_plain_set is not None
        assert after_plain_set.version not in (v1, v2), "a plain set must change the version too"
        with pytest.raises(ConflictError):
            await store.delete_versioned("cas:a", expected=v2)
        assert await store.get("cas:a") == {"n": 3}
        await store.delete_versioned("cas:a", expected=after_plain_set.version)
        assert await store.get("cas:a") is None
        v = await store.set_versioned("cas:a", enc({"n": 4}), expected=None, ttl=30)
        assert v not in (0, v1, v2)
        assert await store.get("cas:a") == {"n": 4}

    async def test_concurrent_compare_and_set_has_one_winner(self, store: SessionStore) -> None:
        if not isinstance(store, VersionedStore):
            pytest.skip("store has no versions")
        base = await store.set_versioned("cas:race", b'{"n":0}', expected=0)

        async def attempt(i: int) -> int | None:
            try:
                return await store.set_versioned("cas:race", b'{"n":%d}' % i, expected=base)
            except ConflictError:
                return None

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
        winners = [i for i, v in enumerate(results) if v is not None]
        assert len(winners) == 1
        got = await store.get_versioned("cas:race")
        assert got is not None
        assert (got.data, got.version) == (b'{"n":%d}' % winners[0], results[winners[0]])

    async def test_versioned_write_validates_before_writing(self, store: SessionStore) -> None:
        if not isinstance(store, VersionedStore) or not isinstance(store, BaseSessionStore):
            pytest.skip("store has no versions")
        v = await store.set_versioned("cas:big", store.codec.encode({"kept": True}), expected=0)
        with pytest.raises(ValueTooLargeError):
            await store.set_versioned("cas:big", b"{" + b" " * store.max_size + b"}", expected=v)
        assert await store.get("cas:big") == {"kept": True}

    # -- leases ----------------------------------------------------------------------------------

    async def test_lock_excludes_and_reads_under_the_lease(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, LockingStore) or not isinstance(store, RawStore):
            pytest.skip("store has no locks")
        await store.set("lock:a", {"n": 1})
        held = await store.lock("lock:a", lease=5, wait=0)
        assert held.record is not None
        assert store.codec.decode("lock:a", held.record.data) == {"n": 1}
        with pytest.raises(LockError):
            await store.lock("lock:a", lease=5, wait=0)
        waiting = asyncio.ensure_future(store.lock("lock:a", lease=5, wait=0.05))
        for _ in range(20):  # time passes until the waiter gives up: at most 1 s, well within the held 5 s lease
            if waiting.done():
                break
            await advance(0.05)
        with pytest.raises(LockError):
            await waiting
        other = await store.lock("lock:b", lease=5, wait=0)
        assert other.record is None
        await store.unlock(other.lease)
        version = await store.commit(held.lease, store.codec.encode({"n": 2}))
        assert version != held.record.version
        assert await store.get("lock:a") == {"n": 2}
        again = await store.lock("lock:a", lease=5, wait=0)
        assert again.record is not None
        assert again.record.version == version
        assert await store.commit(again.lease, None) == 0
        assert await store.get("lock:a") is None
        await store.unlock((await store.lock("lock:a", lease=5, wait=0)).lease)

    async def test_expired_lease_is_fenced(self, store: SessionStore, advance: Advance) -> None:
        if not isinstance(store, LockingStore) or not isinstance(store, RawStore):
            pytest.skip("store has no locks")
        lease = 0.2
        await store.set("lock:f", {"n": 1})
        await store.set("lock:g", {"n": 1})
        slow = await store.lock("lock:f", lease=lease, wait=0)
        lonely = await store.lock("lock:g", lease=lease, wait=0)  # expires with no one else taking it
        await advance(3 * lease)
        fast = await store.lock("lock:f", lease=5, wait=0)
        await store.commit(fast.lease, store.codec.encode({"n": 2}))
        with pytest.raises(LeaseExpiredError):
            await store.commit(slow.lease, store.codec.encode({"n": -1}))
        assert await store.get("lock:f") == {"n": 2}
        with pytest.raises(LeaseExpiredError):
            await store.commit(lonely.lease, store.codec.encode({"n": -2}))
        with pytest.raises(LeaseExpiredError):
            await store.renew(lonely.lease)
        assert await store.get("lock:g") == {"n": 1}
        assert await store.get("lock:f") == {"n": 2}

    async def test_renew_keeps_the_lease_and_only_the_owner_releases(
        self, store: SessionStore, advance: Advance
    ) -> None:
        if not isinstance(store, LockingStore) or not isinstance(store, RawStore):
            pytest.skip("store has no locks")
        lease = 0.6
        held = await store.lock("lock:r", lease=lease, wait=0)
        for _ in range(9):  # 1.5 leases in all, a sixth of one between renewals
            await advance(lease / 6)
            held = Locked(await store.renew(held.lease), held.record)
        impostor = Lease(held.lease.key, "0" * 32, 5)
        await store.unlock(impostor)
        with pytest.raises(LeaseExpiredError):
            await store.commit(impostor, store.codec.encode({"n": -1}))
        with pytest.raises(LockError):
            await store.lock("lock:r", lease=5, wait=0)
        await store.commit(held.lease, store.codec.encode({"n": 1}))
        assert await store.get("lock:r") == {"n": 1}

    async def test_lock_serialises_read_modify_write(self, store: SessionStore) -> None:
        if not isinstance(store, LockingStore) or not isinstance(store, RawStore):
            pytest.skip("store has no locks")

        async def increment() -> None:
            held = await store.lock("lock:c", lease=5, wait=10)
            n = 0 if held.record is None else store.codec.decode("lock:c", held.record.data)["n"]
            await asyncio.sleep(0)
            await store.commit(held.lease, store.codec.encode({"n": n + 1}))

        await asyncio.gather(*(increment() for _ in range(30)))
        assert await store.get("lock:c") == {"n": 30}


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


__all__ = ["BAD_VALUES", "ROUND_TRIP_VALUES", "Advance", "FakeClock", "StoreContract"]
