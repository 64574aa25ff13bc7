"""Property tests over keys and values on every backend: exact round trip, or a clear error before any write."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionware import BaseSessionStore, InvalidKeyError, InvalidValueError, ScannableStore, ValueTooLargeError
from sessionware.codec import MAX_DEPTH

from .conftest import open_backend

T = TypeVar("T")

TRICKY = ["*", "?", "[", "]", "%", "_", "\\", "'", '"', ":", "\x00", "\n", " ", "é", "🦜", "\ud800"]

keys = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(TRICKY), min_size=1, max_size=8).map("".join),
    st.text(min_size=1000, max_size=1100),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
sessions = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
non_json = st.sampled_from([(1, 2), {1, 2}, b"x", float("nan"), float("-inf"), object(), 1j])


class LoopThread:
    """An event loop in a thread, so synchronous hypothesis tests can drive async stores."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def runner() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture
def sync_store(backend: str, tmp_path: Path, runner: LoopThread) -> Iterator[BaseSessionStore]:
    store, cleanup = runner.run(open_backend(backend, tmp_path))
    yield store
    runner.run(cleanup())


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(key=keys, value=sessions)
def test_any_key_and_value_round_trips_or_is_refused(
    sync_store: BaseSessionStore, runner: LoopThread, key: str, value: dict[str, Any]
) -> None:
    async def check() -> None:
        try:
            await sync_store.set(key, value)
        except InvalidKeyError:
            with pytest.raises(InvalidKeyError):
                await sync_store.get(key)
            return
        assert await sync_store.get(key) == value
        await sync_store.delete(key)
        assert await sync_store.get(key) is None

    runner.run(check())


@PROPERTY
@given(key=keys, other=keys)
def test_no_key_reaches_another_keys_data(
    sync_store: BaseSessionStore, runner: LoopThread, key: str, other: str
) -> None:
    async def check() -> None:
        if key == other:
            return
        try:
            await sync_store.set(other, {"owner": "other"})
            await sync_store.set(key, {"owner": "key"})
        except InvalidKeyError:
            return
        await sync_store.delete(key)
        assert await sync_store.get(other) == {"owner": "other"}
        if isinstance(sync_store, ScannableStore):
            listed = [k async for k in sync_store.scan(key)]
            assert all(k.startswith(key) for k in listed)
        await sync_store.delete(other)

    runner.run(check())


@PROPERTY
@given(value=sessions, bad=non_json, where=st.sampled_from(["top", "list", "nested"]))
def test_non_json_is_refused_before_any_write(
    sync_store: BaseSessionStore, runner: LoopThread, value: dict[str, Any], bad: Any, where: str
) -> None:
    poisoned: dict[str, Any] = dict(value)
    if where == "top":
        poisoned["bad"] = bad
    elif where == "list":
        poisoned["bad"] = [1, bad]
    else:
        poisoned["bad"] = {"deeper": {"x": bad}}

    async def check() -> None:
        await sync_store.set("prop:victim", {"kept": True})
        with pytest.raises(InvalidValueError) as info:
            await sync_store.set("prop:victim", poisoned)
        assert "['bad']" in str(info.value)
        assert await sync_store.get("prop:victim") == {"kept": True}

    runner.run(check())


def test_deep_nesting_and_huge_strings(sync_store: BaseSessionStore, runner: LoopThread) -> None:
    deep: Any = "leaf"
    for _ in range((MAX_DEPTH - 2) // 2):  # {"v": deep} is MAX_DEPTH - 1 levels of containers
        deep = {"d": [deep]}
    too_deep: Any = "leaf"
    for _ in range(100_000):
        too_deep = [too_deep]

    async def check() -> None:
        await sync_store.set("prop:deep", {"v": deep})
        assert await sync_store.get("prop:deep") == {"v": deep}
        with pytest.raises(InvalidValueError, match="nested deeper"):
            await sync_store.set("prop:deep", {"v": too_deep})
        assert await sync_store.get("prop:deep") == {"v": deep}
        huge = "x" * (sync_store.max_size - 100)
        await sync_store.set("prop:huge", {"s": huge})
        assert await sync_store.get("prop:huge") == {"s": huge}
        with pytest.raises(ValueTooLargeError):
            await sync_store.set("prop:huge", {"s": huge + "y" * 200})
        assert await sync_store.get("prop:huge") == {"s": huge}

    runner.run(check())
