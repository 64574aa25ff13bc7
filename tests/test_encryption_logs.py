"""Key rotation of log entries: agent histories and tool logs re-sealed in place on every backend, so the old key
can leave the ring; concurrent appends, pops and rotations lose nothing; unknown keys are errors, never losses."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from sessionware import BaseSessionStore, EncryptedStore, EncryptionError, InvalidValueError, KeyRing, rotate_keys
from sessionware.agents import SessionManager, agent_log_keys
from sessionware.encryption import LOG_FIELD
from sessionware.store import LogRewrite, RewriteResult

from .helpers import Calls
from .test_encryption import KEY_A, KEY_B, SECRET

KEY_C = base64.urlsafe_b64encode(bytes(range(64, 96))).decode()


def old_ring() -> KeyRing:
    return KeyRing({"old": KEY_A})


def both_rings() -> KeyRing:
    return KeyRing({"new": KEY_B, "old": KEY_A})


def new_ring() -> KeyRing:
    return KeyRing({"new": KEY_B})


def key_id(value: dict[str, Any]) -> str:
    """The key id of a stored log entry's envelope."""
    envelope = base64.b64decode(value[LOG_FIELD])
    return envelope.split(b":")[1].decode()


async def conversations(manager: SessionManager) -> list[str]:
    """Three sessions (one with an expiry, one with a gap left by a pop) and a fork sharing its parent's log."""
    chats = []
    for i in range(3):
        chat = await manager.create_session(f"user{i}", metadata={"note": SECRET}, ttl=3600 if i == 0 else None)
        for j in range(7):
            await manager.add_message(chat.id, "user" if j % 2 == 0 else "assistant", f"{SECRET} {i}.{j}")
        await manager.track_tool_invocation(chat.id, "lookup", arguments={"q": SECRET}, call_id=f"c{i}")
        chats.append(chat.id)
    await manager.pop_message(chats[1])
    await manager.add_message(chats[1], "user", "after the pop")
    fork = await manager.fork_session(chats[0], at=3)
    await manager.add_message(fork.id, "user", "in the fork")
    return [*chats, fork.id]


async def what_they_read(manager: SessionManager, chats: list[str]) -> list[Any]:
    seen: list[Any] = []
    for chat in chats:
        got = await manager.get_session(chat)
        assert got is not None
        seen.append((got.metadata, got.message_count))
        seen.append([(m.seq, m.role, m.text) for m in await manager.history(chat)])
        seen.append([(t.tool_name, t.call_id, dict(t.arguments)) for t in await manager.tool_invocations(chat)])
    return seen


async def test_rotation_reseals_every_history_and_tool_log_so_the_old_key_can_go(store: BaseSessionStore) -> None:
    chats = await conversations(SessionManager(EncryptedStore(store, old_ring())))
    before = await what_they_read(SessionManager(EncryptedStore(store, old_ring())), chats)
    inner: Any = store
    rotating = EncryptedStore(store, both_rings())
    logs = [key async for key in agent_log_keys(rotating)]
    assert len(logs) == 8, "each session's history and tool log, the fork's own two (it shares its parent's too)"
    total = sum([len(await inner.log_read(key)) for key in logs])
    assert total == 3 * 7 + 3 + 1, "the messages (one popped, one added back), tool invocations, the fork's message"

    done = await rotate_keys(rotating, logs=agent_log_keys(rotating))
    assert (done.logs, done.entries_resealed, done.entries_current, done.entries_raced) == (8, total, 0, 0)
    assert done.resealed == len([key async for key in inner.scan()]), "records too"
    for key in logs:
        assert {key_id(entry.value) for entry in await inner.log_read(key)} <= {"new"}

    after = await what_they_read(SessionManager(EncryptedStore(store, new_ring())), chats)
    assert after == before, "every record and every history entry reads without the old key"
    page = await SessionManager(EncryptedStore(store, new_ring())).list_sessions("user0")
    assert len(page.sessions) == 2, "the index entries too (the session and its fork)"

    again = await rotate_keys(rotating, logs=agent_log_keys(rotating))
    assert (again.resealed, again.entries_resealed, again.entries_current) == (0, 0, total), "a rerun is a no-op"


async def test_without_rotation_the_old_key_is_still_needed(store: BaseSessionStore) -> None:
    chats = await conversations(SessionManager(EncryptedStore(store, old_ring())))
    await rotate_keys(EncryptedStore(store, both_rings()))  # records only: no logs named
    manager = SessionManager(EncryptedStore(store, new_ring()))
    assert await manager.store.get(manager.keys.record(chats[0])) is not None, "the record reads"
    with pytest.raises(EncryptionError, match="key 'old', which is not in the key ring"):
        await manager.history(chats[0])


class LogCalls(Calls):
    NAMES = ("log_read", "log_rewrite")


async def test_rotation_costs_one_read_and_one_rewrite_per_page(store: BaseSessionStore) -> None:
    await EncryptedStore(store, old_ring()).log_append("log:pages", [{"n": i} for i in range(1000)])
    await EncryptedStore(store, both_rings()).log_append("log:pages", [{"n": i} for i in range(1000, 1100)])
    calls = LogCalls(store)
    done = await rotate_keys(EncryptedStore(store, both_rings()), logs=["log:pages"], page=500)
    assert (done.entries_resealed, done.entries_current) == (1000, 100)
    assert calls.take() == {"log_read": 3, "log_rewrite": 3}, "1100 entries: three pages, each read and rewritten once"
    again = await rotate_keys(EncryptedStore(store, both_rings()), logs=["log:pages"], page=500)
    assert again.entries_current == 1100
    assert calls.take() == {"log_read": 3}, "a rerun only reads"


async def test_an_append_during_rotation_is_kept(store: BaseSessionStore, backend: str) -> None:
    sealed = EncryptedStore(store, old_ring())
    await sealed.log_append("log:busy", [{"n": i} for i in range(400)])
    writer = EncryptedStore(store, both_rings())
    rotating = asyncio.ensure_future(rotate_keys(writer, logs=["log:busy"], page=20))
    during = []
    for i in range(400, 460):
        await writer.log_append("log:busy", [{"n": i}])
        during.append(not rotating.done())
        await asyncio.sleep(0)
    rotation = await rotating
    if backend not in ("memory", "sqlite"):  # these never suspend: a rotation there runs between two appends
        assert sum(during[1:]) >= 5, "appends landed while the rotation was under way"
    assert rotation.entries_resealed == 400
    read = await EncryptedStore(store, new_ring()).log_read("log:busy")
    assert [entry.value["n"] for entry in read] == list(range(460)), "nothing lost, all under the new key"
    assert [entry.seq for entry in read] == list(range(1, 461)), "numbers kept"


async def test_messages_added_and_popped_during_rotation(store: BaseSessionStore) -> None:
    old = SessionManager(EncryptedStore(store, old_ring()))
    chat = await old.create_session("ada")
    await old.add_messages(chat.id, [{"role": "user", "content": f"m{i}"} for i in range(300)])
    rotating = EncryptedStore(store, both_rings())
    live = SessionManager(rotating)

    async def talk() -> None:
        for i in range(300, 330):
            await live.add_message(chat.id, "user", f"m{i}")
            if i % 3 == 0:
                await live.pop_message(chat.id)
            await asyncio.sleep(0)

    rotation, _ = await asyncio.gather(rotate_keys(rotating, logs=agent_log_keys(rotating), page=16), talk())
    kept = [m.text for m in await SessionManager(EncryptedStore(store, new_ring())).history(chat.id, last=None)]
    expected = [f"m{i}" for i in range(300)] + [f"m{i}" for i in range(300, 330) if i % 3]
    assert kept == expected
    assert rotation.entries_resealed + rotation.entries_raced >= 300 - 10


async def test_two_rotations_at_once_reseal_each_entry_once(store: BaseSessionStore) -> None:
    await EncryptedStore(store, old_ring()).log_append("log:twice", [{"n": i} for i in range(300)])
    first, second = EncryptedStore(store, both_rings()), EncryptedStore(store, both_rings())
    a, b = await asyncio.gather(
        rotate_keys(first, logs=["log:twice"], page=30), rotate_keys(second, logs=["log:twice"], page=30)
    )
    assert a.entries_resealed + b.entries_resealed == 300, (a, b)
    assert a.entries_resealed + a.entries_current + a.entries_raced == 300
    read = await EncryptedStore(store, new_ring()).log_read("log:twice")
    assert [entry.value["n"] for entry in read] == list(range(300))


async def test_an_entry_sealed_with_an_unknown_key_is_an_error_and_is_kept(store: BaseSessionStore) -> None:
    inner: Any = store
    await EncryptedStore(store, old_ring()).log_append("log:mixed", [{"n": 1}, {"n": 2}])
    await EncryptedStore(store, KeyRing({"lost": KEY_C})).log_append("log:mixed", [{"n": 3}])
    await EncryptedStore(store, old_ring()).log_append("log:mixed", [{"n": 4}])
    stored = await inner.log_read("log:mixed")
    rotating = EncryptedStore(store, both_rings())
    with pytest.raises(EncryptionError, match=r"entry 3 of log 'log:mixed' is sealed with key 'lost'"):
        await rotate_keys(rotating, logs=["log:mixed"])
    assert await inner.log_read("log:mixed") == stored, "nothing of that page was written"
    with pytest.raises(EncryptionError, match="entry 3 of log 'log:mixed'"):
        await rotate_keys(rotating, logs=["log:mixed"], page=1)
    after = await inner.log_read("log:mixed")
    assert after[2] == stored[2], "the entry that does not open is left exactly as it was"
    assert key_id(after[3].value) == "new", "the newer entry was re-sealed before the error"
    with pytest.raises(EncryptionError, match="'lost'"):
        await rotating.log_read("log:mixed")

    found = EncryptedStore(store, KeyRing({"new": KEY_B, "old": KEY_A, "lost": KEY_C}))
    done = await rotate_keys(found, logs=["log:mixed"])
    assert (done.entries_resealed, done.entries_current) == (3, 1), "once the key is found, the rerun finishes"
    read = await EncryptedStore(store, new_ring()).log_read("log:mixed")
    assert [entry.value["n"] for entry in read] == [1, 2, 3, 4]


async def test_damaged_and_plaintext_entries(store: BaseSessionStore) -> None:
    inner: Any = store
    await inner.log_append("log:plain", [{"from": "before encryption"}])
    lenient = EncryptedStore(store, both_rings(), accept_plaintext=True)
    done = await rotate_keys(lenient, logs=["log:plain"])
    assert (done.entries_plaintext, done.entries_resealed) == (1, 0)
    assert await EncryptedStore(store, new_ring()).log_read("log:plain") == [(1, {"from": "before encryption"})]

    await inner.log_append("log:damaged", [{LOG_FIELD: "not base64!"}])
    with pytest.raises(EncryptionError, match="entry 1 of log 'log:damaged' holds a damaged envelope"):
        await rotate_keys(lenient, logs=["log:damaged"])
    assert (await inner.log_read("log:damaged"))[0].value == {LOG_FIELD: "not base64!"}


async def test_encrypted_log_rewrite_compares_plaintexts(store: BaseSessionStore) -> None:
    sealed = EncryptedStore(store, old_ring())
    inner: Any = store
    await sealed.log_append("log:e", [{"n": 1}, {"n": 2}, {"n": 3}])
    results = await sealed.log_rewrite(
        "log:e",
        [LogRewrite(2, {"n": 2}, {"n": 20, "s": SECRET}), LogRewrite(3, {"n": 0}, {"n": 30}), LogRewrite(7, {}, {})],
    )
    assert results == [RewriteResult.APPLIED, RewriteResult.CHANGED, RewriteResult.MISSING]
    assert [entry.value for entry in await sealed.log_read("log:e")] == [{"n": 1}, {"n": 20, "s": SECRET}, {"n": 3}]
    raw = (await inner.log_read("log:e"))[1].value
    assert list(raw) == [LOG_FIELD]
    assert "launch code" not in str(raw)
    for bad in ([LogRewrite(1, {"n": 1}, {"n": 2}), LogRewrite(1, {"n": 1}, {"n": 3})], [LogRewrite(0, {}, {})]):
        with pytest.raises(InvalidValueError, match="seq"):
            await sealed.log_rewrite("log:e", bad)
    assert [entry.value["n"] for entry in await sealed.log_read("log:e")] == [1, 20, 3]


async def test_rotation_arguments_are_checked(store: BaseSessionStore) -> None:
    rotating = EncryptedStore(store, both_rings())
    with pytest.raises(InvalidValueError, match="page"):
        await rotate_keys(rotating, logs=[], page=0)
    with pytest.raises(InvalidValueError, match="logs"):
        await rotate_keys(rotating, logs="log:one")


async def test_agent_log_keys_follow_namespace_and_prefix(store: BaseSessionStore) -> None:
    sealed = EncryptedStore(store, old_ring())
    chats = await conversations(SessionManager(sealed))
    other = SessionManager(sealed, namespace="other")
    elsewhere = await other.create_session("bob")
    await other.add_message(elsewhere.id, "user", "hi")
    mine = [key async for key in agent_log_keys(sealed)]
    assert len(mine) == len(set(mine)) == 8
    assert all(key.startswith("agent:") for key in mine)
    assert [key async for key in agent_log_keys(sealed, namespace="other")] == [
        f"other:h:{{{elsewhere.id}}}",
        f"other:t:{{{elsewhere.id}}}",
    ]
    one = [key async for key in agent_log_keys(sealed, prefix=f"agent:s:{{{chats[1]}}}")]
    assert one == [f"agent:h:{{{chats[1]}}}", f"agent:t:{{{chats[1]}}}"]
    assert [key async for key in agent_log_keys(sealed, prefix="bot:")] == []
    assert len([key async for key in agent_log_keys(sealed, prefix="agent")]) == 8


APPENDER = """
import asyncio, sys, time
from sessionware import EncryptedStore, KeyRing, open_store

async def main(url, keys, first, count):
    store = EncryptedStore(open_store(url), KeyRing.from_string(keys))
    try:
        for n in range(first, first + count):
            await store.log_append("log:mp", [{"n": n}])
            print(time.monotonic(), flush=True)
            await asyncio.sleep(0.001)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
async def test_appends_from_another_process_during_rotation_are_kept(backend: str, tmp_path: Any) -> None:
    import sys
    import time

    from sessionware import open_store

    from .test_cli import drop, store_url

    url = store_url(backend, tmp_path)
    try:
        sealed = EncryptedStore(open_store(url), old_ring())
        await sealed.log_append("log:mp", [{"n": i} for i in range(3000)])
        await sealed.close()
        keys = f"new:{KEY_B},old:{KEY_A}"
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPENDER, url, keys, "3000", "400", stdout=asyncio.subprocess.PIPE
        )
        assert writer.stdout is not None
        await writer.stdout.readline()  # its first append is in
        rotating = EncryptedStore(open_store(url), both_rings())
        try:
            began = time.monotonic()
            done = await rotate_keys(rotating, logs=["log:mp"], page=10)
            ended = time.monotonic()
        finally:
            await rotating.close()
        out = (await asyncio.wait_for(writer.stdout.read(), timeout=120)).decode()
        assert await writer.wait() == 0
        during = [t for t in map(float, out.split()) if began <= t <= ended]
        assert during, "appends landed while the rotation ran"
        assert done.entries_resealed == 3000
        reader = EncryptedStore(open_store(url), new_ring())
        try:
            read = await reader.log_read("log:mp")
        finally:
            await reader.close()
        assert [entry.value["n"] for entry in read] == list(range(3400)), "every append kept, all under the new key"
        print(f"\n{backend}: {len(during)} appends from another process during a rotation of 3000 entries")
    finally:
        await drop(url)


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
async def test_rotate_keys_on_the_command_line_reseals_histories_and_tool_logs(
    backend: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionware import open_store

    from .test_cli import cli, drop, store_url

    url = store_url(backend, tmp_path)
    try:
        sealed = EncryptedStore(open_store(url), old_ring())
        chats = await conversations(SessionManager(sealed))
        await sealed.close()

        monkeypatch.setenv("SESSIONWARE_KEYS", f"new:{KEY_B}")
        refused = cli("show", chats[0], "--store", url, ok=False)
        assert refused.returncode == 1, "the history needs the old key before rotation"
        assert "key 'old'" in refused.stderr

        monkeypatch.setenv("SESSIONWARE_KEYS", f"new:{KEY_B},old:{KEY_A}")
        done = cli("rotate-keys", "--store", url).stdout
        assert "re-sealed 8 records with key 'new'" in done  # 4 session records, 4 index entries
        assert "re-sealed 25 log entries of 8 logs; 0 already were, 0 changed or removed meanwhile" in done
        again = cli("rotate-keys", "--store", url).stdout
        assert "re-sealed 0 log entries of 8 logs; 25 already were" in again, "a second run has nothing to do"

        monkeypatch.setenv("SESSIONWARE_KEYS", f"new:{KEY_B}")
        shown = cli("show", chats[2], "--store", url).stdout
        assert f"{SECRET} 2.6" in shown, "the history reads with the new key alone"
        exported = cli("export", "--store", url).stdout
        assert "in the fork" in exported
        assert exported.count('"log"') == 25
    finally:
        await drop(url)
