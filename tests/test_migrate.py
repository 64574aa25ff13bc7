"""Stores written by sessionware 0.1 still work: bot sessions read as they are, agent sessions move with
``sessionware migrate`` (their keys gained a hash tag in 0.2) and keep their sequence numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sessionware import BaseSessionStore, Router, SessionManager, open_store, session
from sessionware.agents.migrate import migrate_agent_sessions
from sessionware.cli import restore

from .helpers import message

DATA = Path(__file__).resolve().parent / "data"
SCRIPT = Path(sys.executable).with_name("sessionware")


def migrate(url: str, *options: str) -> str:
    """Run ``sessionware migrate`` as an operator would; return what it printed."""
    done = subprocess.run([str(SCRIPT), "migrate", "--store", url, *options], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def legacy_ids() -> dict[str, str]:
    """The session ids of the two agent sessions in the 0.1 export, by owner."""
    ids = {}
    for line in (DATA / "export-0.1.jsonl").read_text().splitlines()[1:]:
        item = json.loads(line)
        if item.get("key", "").startswith("agent:s:"):
            ids[item["value"]["user_id"]] = item["value"]["id"]
    return ids


async def check_migrated(store: BaseSessionStore, ids: dict[str, str]) -> None:
    manager = SessionManager(store)
    alice = await manager.get_session(ids["alice"], user_id="alice", history="all", tool_invocations="all")
    assert alice is not None
    assert dict(alice.metadata) == {"preferences": {"theme": "dark"}}
    assert [(m.seq, m.role) for m in alice.conversation_history] == [(3, "assistant"), (4, "tool"), (5, "assistant")]
    assert alice.conversation_history[0].tool_calls[0].name == "weather"
    assert alice.message_count == 5
    assert [(t.seq, t.tool_name, t.duration) for t in alice.tool_invocations] == [(1, "weather", 0.25)]
    # Numbering carries on where 0.1 left it.
    assert (await manager.add_message(ids["alice"], "user", "and tomorrow?", user_id="alice")).seq == 6
    assert [s.id for s in (await manager.list_sessions("alice")).sessions] == [ids["alice"]]
    bob = await manager.get_session(ids["bob"], user_id="bob")
    assert bob is not None
    assert bob.ttl == 10**8
    assert bob.expires_at is not None
    assert await manager.get_session(ids["bob"], user_id="alice") is None
    # No key of the 0.1 agent layout is left.
    keys = [key async for key in store.scan("agent:")]  # type: ignore[attr-defined]
    assert all("{" in key for key in keys), keys


async def test_sqlite_store_of_0_1_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copy(DATA / "store-0.1.sqlite3", path)
    url = f"sqlite:///{path}"
    ids = legacy_ids()
    store = open_store(url)
    try:
        router = Router()
        router.use(session(store))

        @router.command("start")
        async def start(ctx: Any) -> None:
            ctx.session["visits"] += 1

        await router.handle(message(101, "/start"))
        assert await store.get("101") == {"visits": 3, "notes": ["oat milk", "会话 🦜"]}
        assert await SessionManager(store).get_session(ids["alice"]) is None  # not until migrated
    finally:
        await store.close()

    assert "would move 2 agent sessions" in migrate(url, "--dry-run")
    assert "moved 2 agent sessions (5 log entries); 0 already moved, 0 expired" in migrate(url)
    assert "moved 0 agent sessions" in migrate(url)

    store = open_store(url)
    try:
        await check_migrated(store, ids)
        assert await store.get("202") == {"visits": 2, "notes": ["oat milk", "会话 🦜"]}
    finally:
        await store.close()


async def test_export_of_0_1_imports_and_migrates_on_every_backend(store: BaseSessionStore) -> None:
    await import_into(store)
    ids = legacy_ids()
    report = await migrate_agent_sessions(store)
    assert (report.sessions, report.entries, report.finished, report.expired) == (2, 5, 0, 0)
    await check_migrated(store, ids)
    assert await store.get("101") == {"visits": 2, "notes": ["oat milk", "会话 🦜"]}


async def test_an_interrupted_migration_finishes_without_copying_twice(store: BaseSessionStore) -> None:
    await import_into(store)
    ids = legacy_ids()
    await migrate_agent_sessions(store)
    await import_into(store, replace=True)  # the old keys are back, as if the first run stopped before removing them
    report = await migrate_agent_sessions(store)
    assert (report.sessions, report.entries, report.finished) == (0, 0, 2)
    manager = SessionManager(store)
    alice = await manager.get_session(ids["alice"], history="all")
    assert alice is not None
    assert [m.seq for m in alice.conversation_history] == [3, 4, 5]
    await check_migrated(store, ids)


async def import_into(store: BaseSessionStore, *, replace: bool = False) -> None:
    """Load the 0.1 export into ``store`` as the command line's import does: keys exactly as 0.1 wrote them."""
    with (DATA / "export-0.1.jsonl").open(encoding="utf-8") as source:
        await restore(store, source, replace=replace)
