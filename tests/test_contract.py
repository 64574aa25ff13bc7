"""The shipped contract suite, run over every backend against the real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import pytest

from sessionware import BaseSessionStore, InMemorySessionStore
from sessionware.errors import InvalidKeyError, InvalidValueError, ValueTooLargeError
from sessionware.logs import LogRestore, iter_log
from sessionware.store import LogEditStore, LogEntry, LogRewrite, LogRewriteStore, LogStore, RewriteResult
from sessionware.stores.redis import RedisSessionStore
from sessionware.testing import Advance, FakeClock, StoreContract

from .conftest import unique
from .test_redis_cluster import client, cluster

__all__ = ["client", "cluster"]  # the Redis Cluster fixtures, started once for this module too


class TestEveryBackend(StoreContract):
    """``store`` comes from conftest, parametrized over memory, SQLite, Redis and PostgreSQL.

    Time passes through conftest's ``advance``: the memory store's fake clock
    is stepped, the servers are waited for (three TTLs before an expiry is asserted).
    """

    @pytest.fixture
    def advance(self, advance: Advance) -> Advance:
        return advance


class TestMemoryOnAFakeClock(StoreContract):
    """The recipe of the ``sessionware.testing`` docstring: every test, not only the timed ones, on a fake clock."""

    @pytest.fixture
    def store(self, clock: FakeClock) -> InMemorySessionStore:
        return InMemorySessionStore(clock=clock)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        return clock.sleep


class EditableLogs(LogStore, LogEditStore, Protocol):
    """A store with logs that can be popped and cleared."""


def editable(store: object) -> EditableLogs:
    assert isinstance(store, LogStore)
    assert isinstance(store, LogEditStore)
    return cast(EditableLogs, store)


class LogEditContract:
    """``log_pop`` and ``log_clear`` (:class:`~sessionware.store.LogEditStore`): numbers never come back.

    A mixin: the ``store`` fixture decides the backend (every backend below, and the Redis Cluster).
    """

    async def test_pop_and_clear_of_a_missing_log(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        assert await logs.log_pop("log:none") is None
        assert await logs.log_clear("log:none") == 0
        assert await logs.log_length("log:none") == 0
        assert await logs.log_last_seq("log:none") == 0
        assert await logs.log_append("log:none", [{"n": 1}]) == [1]

    async def test_pop_returns_the_newest_and_never_reuses_its_number(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        await logs.log_append("log:p", [{"n": 1}, {"n": 2}, {"n": 3}])
        assert await logs.log_pop("log:p") == LogEntry(3, {"n": 3})
        assert await logs.log_length("log:p") == 2
        assert await logs.log_last_seq("log:p") == 3
        assert [e.seq for e in await logs.log_read("log:p")] == [1, 2]
        assert await logs.log_append("log:p", [{"n": 4}, {"n": 5}]) == [4, 5]
        assert [e.seq for e in await logs.log_read("log:p")] == [1, 2, 4, 5]
        assert await logs.log_length("log:p") == 4
        # Windows over the gap left by the pop.
        assert [e.seq for e in await logs.log_read("log:p", after=2)] == [4, 5]
        assert [e.seq for e in await logs.log_read("log:p", after=3)] == [4, 5]
        assert [e.seq for e in await logs.log_read("log:p", before=4)] == [1, 2]
        assert [e.seq for e in await logs.log_read("log:p", before=5, last=2)] == [2, 4]
        assert [e.seq for e in await logs.log_read("log:p", last=3)] == [2, 4, 5]
        assert [e.seq for e in await logs.log_read("log:p", after=1, before=5)] == [2, 4]
        assert [e.seq async for e in iter_log(logs, "log:p", page=1)] == [1, 2, 4, 5]
        for expected in (5, 4, 2, 1):
            popped = await logs.log_pop("log:p")
            assert popped is not None
            assert popped.seq == expected
        assert await logs.log_pop("log:p") is None
        assert await logs.log_length("log:p") == 0
        assert await logs.log_last_seq("log:p") == 5
        assert await logs.log_append("log:p", [{"n": 6}]) == [6]

    async def test_trim_after_a_pop_keeps_max_len_entries(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        await logs.log_append("log:tp", [{"n": i} for i in range(1, 6)])
        await logs.log_pop("log:tp")
        assert await logs.log_append("log:tp", [{"n": 6}], max_len=3) == [6]
        assert [e.seq for e in await logs.log_read("log:tp")] == [3, 4, 6]
        await logs.log_pop("log:tp")
        await logs.log_pop("log:tp")
        assert await logs.log_append("log:tp", [{"n": 7}, {"n": 8}, {"n": 9}, {"n": 10}], max_len=3) == [7, 8, 9, 10]
        assert [e.seq for e in await logs.log_read("log:tp")] == [8, 9, 10]
        await logs.log_pop("log:tp")
        assert await logs.log_append("log:tp", [], max_len=1) == []
        assert [e.seq for e in await logs.log_read("log:tp")] == [9]

    async def test_clear_keeps_numbering(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        await logs.log_append("log:c", [{"n": i} for i in range(1, 5)])
        await logs.log_pop("log:c")
        assert await logs.log_clear("log:c") == 4
        assert await logs.log_read("log:c") == []
        assert await logs.log_length("log:c") == 0
        assert await logs.log_last_seq("log:c") == 4
        assert await logs.log_pop("log:c") is None
        assert await logs.log_clear("log:c") == 4
        assert await logs.log_append("log:c", [{"n": 5}]) == [5]
        assert [e.value for e in await logs.log_read("log:c", after=0)] == [{"n": 5}]
        assert [e.seq async for e in iter_log(logs, "log:c", page=2)] == [5]
        await logs.log_delete("log:c")
        assert await logs.log_last_seq("log:c") == 0
        assert await logs.log_append("log:c", [{"n": 1}]) == [1]

    async def test_pop_and_clear_keep_the_expiry(self, store: BaseSessionStore, advance: Advance) -> None:
        logs = editable(store)
        ttl = 0.3
        await logs.log_append("log:e", [{"n": 1}, {"n": 2}], ttl=ttl)
        await logs.log_pop("log:e")
        await logs.log_append("log:f", [{"n": 1}], ttl=ttl)
        await logs.log_clear("log:f")
        await logs.log_append("log:f", [], ttl=ttl)  # slides the expiry of the numbering alone
        await advance(3 * ttl)
        for key in ("log:e", "log:f"):
            assert await logs.log_read(key) == []
            assert await logs.log_last_seq(key) == 0
        assert await logs.log_append("log:e", [{"n": 1}]) == [1]

    async def test_concurrent_pops_and_appends_lose_nothing(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        await logs.log_append("log:x", [{"n": -i} for i in range(1, 41)])
        popped: list[LogEntry] = []
        appended: list[int] = []

        async def pop(times: int) -> None:
            for _ in range(times):
                entry = await logs.log_pop("log:x")
                if entry is not None:
                    popped.append(entry)

        async def append(task: int) -> None:
            for i in range(15):
                appended.extend(await logs.log_append("log:x", [{"task": task, "i": i}]))

        await asyncio.gather(pop(25), pop(25), append(0), append(1))
        assert len(appended) == len(set(appended)) == 30
        seqs = [e.seq for e in popped]
        assert len(seqs) == len(set(seqs)) >= 40  # never one popped twice
        left = [e.seq for e in await logs.log_read("log:x")]
        assert sorted(left + seqs) == sorted(set(range(1, 41)) | set(appended))
        assert await logs.log_length("log:x") == len(left) == 70 - len(seqs)
        assert await logs.log_last_seq("log:x") == 70

    async def test_a_log_with_gaps_is_restored_with_its_numbers(self, store: BaseSessionStore) -> None:
        logs = editable(store)
        await logs.log_append("log:g", [{"n": i} for i in range(1, 8)], max_len=5)  # 3..7 kept
        await logs.log_pop("log:g")
        await logs.log_pop("log:g")
        await logs.log_append("log:g", [{"n": 8}, {"n": 9}])
        await logs.log_pop("log:g")
        await logs.log_append("log:g", [{"n": 10}])
        original = [e async for e in iter_log(logs, "log:g", page=2)]
        assert [e.seq for e in original] == [3, 4, 5, 8, 10]
        restore = LogRestore(logs, "log:copy", page=2)
        for entry in original:
            await restore.add(entry.seq, entry.value)
        assert await restore.finish() == 5
        assert await logs.log_read("log:copy") == original
        with pytest.raises(InvalidValueError, match="goes back"):
            await restore.add(9, {"n": 9})


class RewritableLogs(LogStore, LogEditStore, LogRewriteStore, Protocol):
    """A store with logs that can be popped, cleared and rewritten in place."""


def rewritable(store: object) -> RewritableLogs:
    assert isinstance(store, LogStore)
    assert isinstance(store, LogEditStore)
    assert isinstance(store, LogRewriteStore)
    return cast(RewritableLogs, store)


APPLIED, CHANGED, MISSING = RewriteResult.APPLIED, RewriteResult.CHANGED, RewriteResult.MISSING


class LogRewriteContract:
    """``log_rewrite`` (:class:`~sessionware.store.LogRewriteStore`): in place, conditional, nothing else changes."""

    async def test_rewrites_in_place_only_what_still_holds_the_value_read(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        await logs.log_append("log:r", [{"n": i} for i in range(1, 6)])
        results = await logs.log_rewrite(
            "log:r",
            [
                LogRewrite(2, {"n": 2}, {"n": 20}),
                LogRewrite(4, {"n": 999}, {"n": 40}),  # not what it holds
                LogRewrite(9, {"n": 9}, {"n": 90}),  # never assigned
                LogRewrite(5, {"n": 5}, {"n": 50}),
            ],
        )
        assert results == [APPLIED, CHANGED, MISSING, APPLIED]
        assert await logs.log_read("log:r") == [
            LogEntry(1, {"n": 1}),
            LogEntry(2, {"n": 20}),
            LogEntry(3, {"n": 3}),
            LogEntry(4, {"n": 4}),
            LogEntry(5, {"n": 50}),
        ]
        assert (await logs.log_length("log:r"), await logs.log_last_seq("log:r")) == (5, 5)
        again = await logs.log_rewrite("log:r", [LogRewrite(2, {"n": 2}, {"n": 20})])
        assert again == [APPLIED], "a repeat (the reply of the first was lost) finds its own value and says so"
        assert await logs.log_rewrite("log:r", [LogRewrite(2, {"n": 2}, {"n": 21})]) == [CHANGED]
        assert (await logs.log_read("log:r", after=1, before=3))[0].value == {"n": 20}
        assert await logs.log_append("log:r", [{"n": 6}]) == [6], "the numbering goes on as before"
        assert await logs.log_rewrite("log:r", []) == []

    async def test_a_missing_log_and_removed_entries_are_missing(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        assert await logs.log_rewrite("log:none", [LogRewrite(1, {"n": 1}, {"n": 2})]) == [MISSING]
        assert await logs.log_read("log:none") == []
        assert await logs.log_last_seq("log:none") == 0, "a rewrite never creates a log"
        await logs.log_append("log:gone", [{"n": i} for i in range(1, 6)], max_len=3)  # 1 and 2 trimmed
        await logs.log_pop("log:gone")  # 5
        results = await logs.log_rewrite(
            "log:gone", [LogRewrite(seq, {"n": seq}, {"n": -seq}) for seq in (1, 2, 3, 4, 5)]
        )
        assert results == [MISSING, MISSING, APPLIED, APPLIED, MISSING]
        assert await logs.log_read("log:gone") == [LogEntry(3, {"n": -3}), LogEntry(4, {"n": -4})]
        await logs.log_clear("log:gone")
        assert await logs.log_rewrite("log:gone", [LogRewrite(3, {"n": -3}, {"n": 3})]) == [MISSING]
        assert await logs.log_read("log:gone") == []
        assert await logs.log_last_seq("log:gone") == 5

    async def test_finds_entries_across_gaps(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        await logs.log_append("log:g", [{"n": i} for i in range(1, 9)])
        for _ in range(3):
            await logs.log_pop("log:g")  # 8, 7, 6
        await logs.log_append("log:g", [{"n": i} for i in range(9, 14)])
        held = [e.seq for e in await logs.log_read("log:g")]
        assert held == [1, 2, 3, 4, 5, 9, 10, 11, 12, 13]
        wanted = [1, 5, 6, 7, 9, 13, 14]
        results = await logs.log_rewrite("log:g", [LogRewrite(seq, {"n": seq}, {"n": seq * 100}) for seq in wanted])
        assert results == [APPLIED, APPLIED, MISSING, MISSING, APPLIED, APPLIED, MISSING]
        assert [e.value["n"] for e in await logs.log_read("log:g")] == [100, 2, 3, 4, 500, 900, 10, 11, 12, 1300]

    async def test_many_in_one_call(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        await logs.log_append("log:m", [{"n": i} for i in range(1, 601)])
        results = await logs.log_rewrite("log:m", [LogRewrite(s, {"n": s}, {"n": s, "v": 2}) for s in range(1, 601)])
        assert results == [APPLIED] * 600
        assert [e.value for e in await logs.log_read("log:m")] == [{"n": s, "v": 2} for s in range(1, 601)]

    async def test_keeps_the_expiry(self, store: BaseSessionStore, advance: Advance) -> None:
        logs = rewritable(store)
        ttl = 0.3
        await logs.log_append("log:t", [{"n": 1}, {"n": 2}], ttl=ttl)
        assert await logs.log_rewrite("log:t", [LogRewrite(1, {"n": 1}, {"n": 10})]) == [APPLIED]
        await logs.log_append("log:keep", [{"n": 1}])
        assert await logs.log_rewrite("log:keep", [LogRewrite(1, {"n": 1}, {"n": 10})]) == [APPLIED]
        await advance(3 * ttl)
        assert await logs.log_read("log:t") == [], "the rewrite left the log's expiry as it was"
        assert await logs.log_rewrite("log:t", [LogRewrite(2, {"n": 2}, {"n": 20})]) == [MISSING]
        assert await logs.log_read("log:t") == []
        assert await logs.log_read("log:keep") == [LogEntry(1, {"n": 10})], "a log without expiry keeps none"

    async def test_concurrent_rewrites_of_one_entry_have_one_winner(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        await logs.log_append("log:w", [{"n": 0}] * 20)
        results = await asyncio.gather(
            *(
                logs.log_rewrite("log:w", [LogRewrite(seq, {"n": 0}, {"n": writer}) for seq in range(1, 21)])
                for writer in range(1, 9)
            )
        )
        for seq in range(20):
            winners = [writer for writer, got in enumerate(results, start=1) if got[seq] is APPLIED]
            assert len(winners) == 1, (seq, results)
            assert all(got[seq] in (APPLIED, CHANGED) for got in results)
        values = [e.value["n"] for e in await logs.log_read("log:w")]
        assert values == [next(w for w, got in enumerate(results, start=1) if got[i] is APPLIED) for i in range(20)]

    async def test_bad_rewrites_are_refused_before_anything_is_written(self, store: BaseSessionStore) -> None:
        logs = rewritable(store)
        await logs.log_append("log:b", [{"n": 1}, {"n": 2}])
        good = LogRewrite(1, {"n": 1}, {"n": 10})
        bad_calls: list[tuple[Any, type[Exception], str | None]] = [
            ([good, LogRewrite(0, {"n": 0}, {"n": 1})], InvalidValueError, r"rewrites\[1\]\.seq"),
            ([good, LogRewrite(True, {"n": 1}, {"n": 1})], InvalidValueError, "seq"),
            ([good, LogRewrite(1, {"n": 1}, {"n": 11})], InvalidValueError, "twice"),
            ([good, LogRewrite(2, {"n": 2}, {"x": "y" * (store.max_size + 1)})], ValueTooLargeError, None),
            ([good, LogRewrite(2, {"n": 2}, {"x": {1, 2}})], InvalidValueError, None),
            ([good, (2, {"n": 2})], InvalidValueError, r"rewrites\[1\]"),
            ({"seq": 1}, InvalidValueError, "rewrites"),
        ]
        for rewrites, error, match in bad_calls:
            with pytest.raises(error, match=match):
                await logs.log_rewrite("log:b", rewrites)
        with pytest.raises(InvalidKeyError):
            await logs.log_rewrite("", [good])
        assert await logs.log_read("log:b") == [LogEntry(1, {"n": 1}), LogEntry(2, {"n": 2})]


class TestLogRewriteEveryBackend(LogRewriteContract):
    """Over conftest's ``store``: memory, SQLite, Redis (both clients) and PostgreSQL."""


class _OnCluster:
    """A store on the Redis Cluster this module starts (3 primaries, 3 replicas), its keys removed afterwards."""

    @pytest.fixture
    async def store(self, client: Any) -> AsyncIterator[BaseSessionStore]:
        prefix = unique("cl")
        opened = RedisSessionStore(client, prefix)
        yield opened
        async for name in client.scan_iter(match=prefix + ":*", count=1000):
            await client.delete(name)

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep


@pytest.mark.slow
class TestLogRewriteOnCluster(_OnCluster, LogRewriteContract):
    """On the Redis Cluster: a rewrite touches the log's list alone."""


class TestLogEditEveryBackend(LogEditContract):
    """Over conftest's ``store``: memory, SQLite, Redis (both clients) and PostgreSQL."""


@pytest.mark.slow
class TestLogEditOnCluster(_OnCluster, LogEditContract):
    """On the Redis Cluster; the mark shares its list's hash slot."""

    async def test_marks_share_their_lists_slot(self, store: BaseSessionStore, client: Any) -> None:
        assert isinstance(store, RedisSessionStore)
        for key in ("plain", "user:{42}", "a{b", "k*?[1]"):
            await store.log_append(key, [{"n": 1}, {"n": 2}])
            await store.log_pop(key)
            assert await store.log_append(key, [{"n": 3}]) == [3]
            await store.log_clear(key)
            assert await store.log_last_seq(key) == 3
        names = [n async for n in client.scan_iter(match=store.prefix + ":*")]
        assert len(names) == 4
        for key in ("a}b", "x}{y"):
            assert await store.log_append(key, [{"n": 1}]) == [1]
            with pytest.raises(InvalidKeyError, match="log_pop"):
                await store.log_pop(key)
            with pytest.raises(InvalidKeyError, match="log_clear"):
                await store.log_clear(key)
            assert await store.log_last_seq(key) == 1
