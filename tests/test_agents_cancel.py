"""Cancelled writes of SessionManager take effect whole or not at all, on every backend against the real servers.

Each round starts one write (``add_message``, ``add_messages``,
``track_tool_invocation``, ``pop_message`` or ``clear_history``) in a task and
cancels it after a random short delay (a real sleep, or a few turns of the
event loop), then checks that the record agrees with the logs: the counts
with what the logs hold, ``updated_at`` with the newest message, the store's
expiry of the record with the sliding TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from typing import Any, Literal

import pytest

from sessionware import BaseSessionStore, InMemorySessionStore, SessionManager
from sessionware.errors import LeaseExpiredError
from sessionware.store import ExpiringStore, Lease, LogStore

pytestmark = pytest.mark.slow

ROUNDS = 200
TTL = 120.0


async def consistent(manager: SessionManager, session_id: str) -> tuple[int, list[str]]:
    """The session's version, and what disagrees between its record and its logs (nothing, if all is well)."""
    got = await manager.get_session(session_id)
    assert got is not None
    wrong = []
    if got.message_count != len(got.conversation_history):
        wrong.append(f"message_count {got.message_count} != {len(got.conversation_history)} messages")
    if got.tool_invocation_count != len(got.tool_invocations):
        wrong.append(f"tool_invocation_count {got.tool_invocation_count} != {len(got.tool_invocations)} invocations")
    if got.conversation_history and got.updated_at < got.conversation_history[-1].created_at:
        wrong.append("updated_at is older than the newest message")
    if got.tool_invocations and got.updated_at < got.tool_invocations[-1].started_at:
        wrong.append("updated_at is older than the newest tool invocation")
    store = manager.store
    assert isinstance(store, ExpiringStore)
    left = await store.expires_in(manager.keys.record(session_id))
    assert got.expires_at is not None
    expected = got.expires_at.timestamp() - got.updated_at.timestamp()
    if left is None or not expected - 10 < left <= expected + 0.5:
        wrong.append(f"the record expires in {left}s, its TTL says about {expected}s")
    return got.version, wrong


def write(manager: SessionManager, session_id: str, kind: str) -> Any:
    if kind == "add_message":
        return manager.add_message(session_id, "user", "hello")
    if kind == "add_messages":
        return manager.add_messages(
            session_id, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        )
    if kind == "track_tool_invocation":
        return manager.track_tool_invocation(session_id, "search", arguments={"q": "x"}, result=[1])
    if kind == "pop_message":
        return manager.pop_message(session_id)
    return manager.clear_history(session_id)


KINDS = ["add_message", "add_messages", "track_tool_invocation", "add_message", "add_messages", "pop_message"]


async def cancel_at_random(manager: SessionManager, session_id: str, rng: random.Random) -> Counter[str]:
    """Run ``ROUNDS`` cancelled writes, checking after each; count what happened."""
    outcomes: Counter[str] = Counter()
    version, _ = await consistent(manager, session_id)
    for round_ in range(ROUNDS):
        kind = "clear_history" if round_ % 50 == 49 else rng.choice(KINDS)
        task = asyncio.ensure_future(write(manager, session_id, kind))
        if rng.random() < 0.5:
            await asyncio.sleep(rng.uniform(0, 0.004))
        else:
            for _ in range(rng.randrange(12)):
                await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "cancelled"
        now, wrong = await consistent(manager, session_id)
        assert not wrong, f"round {round_} ({kind}, {outcome}): {wrong}"
        outcomes[f"{outcome}, {'written' if now != version else 'not written'}"] += 1
        version = now
    return outcomes


@pytest.mark.parametrize("isolation", ["local", "distributed"])
async def test_cancelled_writes_are_whole_or_absent(
    store: BaseSessionStore, backend: str, isolation: Literal["local", "distributed"]
) -> None:
    manager = SessionManager(store, ttl=TTL, isolation=isolation)
    session = await manager.create_session("ada")
    rng = random.Random(f"{backend}-{isolation}")
    outcomes = await cancel_at_random(manager, session.id, rng)
    got = await manager.get_session(session.id)
    assert got is not None
    print(f"{backend}/{isolation}: {dict(outcomes)}; {got.message_count} messages, version {got.version}")
    assert outcomes["cancelled, written"] + outcomes["cancelled, not written"] >= 10, "the cancellations came"
    if isolation == "distributed":
        # The long way (lease, read, append, write): cancelled while it ran, it finished whole. With local
        # isolation an append is one fenced store step, which a cancellation finds done or not begun.
        assert outcomes["cancelled, written"] >= 10
    assert outcomes["cancelled, not written"] + outcomes["finished, not written"] >= 1


class LeaseLosingStore(InMemorySessionStore):
    """A memory store whose leases cannot be renewed and whose log appends are slower than a lease."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.slow = True

    async def renew(self, lease: Lease) -> Lease:
        raise LeaseExpiredError("renewal refused by the test")

    async def log_append(self, key: str, entries: Any, *, ttl: Any = None, max_len: Any = None) -> list[int]:
        if self.slow and entries:
            await asyncio.sleep(self.delay)
        return await super().log_append(key, entries, ttl=ttl, max_len=max_len)

    async def log_pop(self, key: str) -> Any:
        if self.slow:
            await asyncio.sleep(self.delay)
        return await super().log_pop(key)

    async def log_clear(self, key: str) -> int:
        if self.slow:
            await asyncio.sleep(self.delay)
        return await super().log_clear(key)


async def test_a_write_whose_lease_expired_is_stored_without_error() -> None:
    lease = 0.05
    store = LeaseLosingStore(delay=4 * lease)
    manager = SessionManager(store, isolation="distributed", lease=lease, lock_wait=5)
    session = await manager.create_session("ada")
    message = await manager.add_message(session.id, "user", "made it")
    invocation = await manager.track_tool_invocation(session.id, "search")
    got = await manager.get_session(session.id)
    assert got is not None
    assert [m.seq for m in got.conversation_history] == [message.seq]
    assert [t.seq for t in got.tool_invocations] == [invocation.seq]
    assert (got.message_count, got.tool_invocation_count) == (1, 1)
    assert got.version == session.version + 2
    assert got.updated_at >= message.created_at
    await manager.add_message(session.id, "assistant", "taken back")
    popped = await manager.pop_message(session.id)
    assert popped is not None
    assert popped.content == "taken back"
    got = await manager.get_session(session.id)
    assert got is not None
    assert (got.message_count, len(got.conversation_history), got.version) == (1, 1, session.version + 4)
    cleared = await manager.clear_history(session.id)
    assert (cleared.message_count, cleared.tool_invocation_count, cleared.version) == (0, 0, session.version + 5)
    got = await manager.get_session(session.id)
    assert got is not None
    assert len(got.conversation_history) == len(got.tool_invocations) == 0
    assert got.version == cleared.version
    # A record-only write refused for its lost lease stores nothing and says so.
    store.slow = False

    async def slow_edit(meta: dict[str, Any]) -> None:
        await asyncio.sleep(4 * lease)
        meta["late"] = True

    with pytest.raises(LeaseExpiredError):
        await manager.edit_metadata(session.id, slow_edit)
    again = await manager.get_session(session.id)
    assert again is not None
    assert "late" not in again.metadata
    assert again.version == got.version


async def test_a_cancelled_delete_leaves_the_whole_session_or_nothing(store: BaseSessionStore, backend: str) -> None:
    manager = SessionManager(store, ttl=TTL)
    rng = random.Random(f"delete-{backend}")
    outcomes: Counter[str] = Counter()
    for _ in range(40):
        session = await manager.create_session("ada")
        await manager.add_messages(
            session.id, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        )
        await manager.track_tool_invocation(session.id, "search")
        task = asyncio.ensure_future(manager.delete_session(session.id))
        if rng.random() < 0.5:
            for _ in range(rng.randrange(16)):
                await asyncio.sleep(0)
        else:  # later, by the clock: a server under load takes many loop turns per call
            await asyncio.sleep(rng.random() * 0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        got = await manager.get_session(session.id)
        logs = store
        assert isinstance(logs, LogStore)
        left = [
            await logs.log_length(manager.keys.history(session.id)),
            await logs.log_length(manager.keys.tools(session.id)),
        ]
        if got is None:
            assert left == [0, 0]
            outcomes["deleted"] += 1
        else:
            assert (len(got.conversation_history), len(got.tool_invocations)) == (2, 1)
            assert left == [2, 1]
            outcomes["kept"] += 1
    print(f"{backend}: {dict(outcomes)}")
    assert outcomes["deleted"] >= 1
