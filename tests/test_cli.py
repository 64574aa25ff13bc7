"""The ``sessionware`` command, run in a subprocess against real stores, as an operator would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sessionware import Router, SessionManager, open_store, session

from .conftest import POSTGRES_URL, REDIS_URL, require_server, unique
from .helpers import message

SCRIPT = Path(sys.executable).with_name("sessionware")
CLI_BACKENDS = ["sqlite", "redis", "postgres"]


def cli(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, input=stdin, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def store_url(backend: str, tmp_path: Path) -> str:
    require_server(backend)
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{unique()}.db"
    if backend == "redis":
        return f"{REDIS_URL}?prefix={unique('cli-')}"
    return f"{POSTGRES_URL}?table={unique('sessionware_cli_')}"


async def drop(url: str) -> None:
    store: Any = open_store(url)
    if url.startswith("redis"):
        keys = [k async for k in store.client.scan_iter(match=f"{store.prefix}:*", count=1000)]
        if keys:
            await store.client.delete(*keys)
    elif url.startswith("postgresql"):
        await store.drop_tables()
    await store.close()


@pytest.fixture(params=CLI_BACKENDS)
async def urls(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    source, target = store_url(request.param, tmp_path), store_url(request.param, tmp_path)
    yield source, target
    await drop(source)
    await drop(target)


async def fill(url: str) -> str:
    """Two bot sessions and one agent conversation with a trimmed history and a tool call."""
    store = open_store(url)
    router = Router()
    router.use(session(store))

    @router.text()
    async def note(ctx: Any) -> None:
        ctx.session.setdefault("notes", []).append(ctx.text)

    await router.handle(message(1, "buy milk"))
    await router.handle(message(2, "nul \u0000 and 🦜"))
    manager = SessionManager(store, max_messages=4)
    s = await manager.create_session("user-7", metadata={"plan": "pro"})
    for i in range(3):
        await manager.add_message(s.id, "user", f"question {i}")
    await manager.add_message(
        s.id, "assistant", "", tool_calls=[{"id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}]
    )
    await manager.add_message(s.id, "tool", '{"temp": 3}', tool_call_id="c1")
    await manager.track_tool_invocation(s.id, "weather", call_id="c1", arguments={"city": "Oslo"}, duration=0.012)
    await store.close()
    return s.id


async def test_ls_show_and_rm(urls: tuple[str, str]) -> None:
    url = urls[0]
    session_id = await fill(url)
    plain = cli("ls", "--store", url).stdout.splitlines()
    assert plain[0].split("\t") == ["key", "kind", "bytes", "expires_in"]
    kinds = {line.split("\t")[0]: line.split("\t")[1] for line in plain[1:]}
    assert kinds["1"] == "bot"
    assert kinds[f"agent:s:{{{session_id}}}"] == "agent"
    rows = [json.loads(line) for line in cli("ls", "--store", url, "--json").stdout.splitlines()]
    assert {r["key"] for r in rows} >= {"1", "2", f"agent:s:{{{session_id}}}"}
    mine = [json.loads(line) for line in cli("ls", "--store", url, "--user", "user-7", "--json").stdout.splitlines()]
    assert [(r["id"], r["messages"], r["tools"]) for r in mine] == [(session_id, 5, 1)]
    assert cli("ls", "--store", url, "--user", "user-8", "--json").stdout == ""

    assert json.loads(cli("show", "2", "--store", url).stdout) == {"notes": ["nul \u0000 and 🦜"]}
    group = open_store(url)
    await group.set("-100123", {"group": True})  # Telegram group chats have negative ids
    await group.close()
    assert json.loads(cli("show", "--store", url, "--", "-100123").stdout) == {"group": True}
    transcript = cli("show", session_id, "--store", url).stdout
    assert "user user-7" in transcript
    assert "#2 user: question 1" in transcript
    assert '#4 assistant: → weather({"city": "Oslo"}) [c1]' in transcript
    assert '#5 tool [c1]: {"temp": 3}' in transcript
    assert "weather success 12 ms" in transcript
    assert "#1 user" not in transcript, "the oldest message was trimmed by max_messages"

    assert cli("rm", session_id, "1", "--store", url).stdout.split("\n")[:2] == [f"removed {session_id}", "removed 1"]
    missing = cli("show", "1", "--store", url, ok=False)
    assert missing.returncode == 1
    assert missing.stderr == f"sessionware: no session '1' in {url}\n"
    store = open_store(url)
    manager = SessionManager(store)
    assert await manager.get_session(session_id) is None
    assert await store.log_length(f"agent:h:{{{session_id}}}") == 0  # type: ignore[attr-defined]
    await store.close()


async def test_export_import_round_trips_exactly(urls: tuple[str, str], tmp_path: Path) -> None:
    source, target = urls
    session_id = await fill(source)
    dump = tmp_path / "dump.jsonl"
    cli("export", "--store", source, "-o", str(dump))
    lines = dump.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "sessionware-export/1"
    assert [json.loads(x)["seq"] for x in lines if f'"agent:h:{{{session_id}}}"' in x] == [2, 3, 4, 5]
    done = cli("import", str(dump), "--store", target)
    assert done.stdout.strip() == "imported 3 sessions (5 log entries)"
    again = cli("export", "--store", target).stdout.splitlines()
    assert sorted(again) == sorted(lines)
    manager = SessionManager(target)
    restored = await manager.get_session(session_id, user_id="user-7", history="all")
    assert restored is not None
    assert [m.seq for m in restored.conversation_history] == [2, 3, 4, 5]
    assert dict(restored.metadata) == {"plan": "pro"}
    msg = await manager.add_message(session_id, "user", "after import", user_id="user-7")
    assert msg.seq == 6
    await manager.close()
    refused = cli("import", str(dump), "--store", target, ok=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("sessionware: 3 session(s) already exist, e.g. ")
    assert refused.stderr.endswith(
        "; nothing was imported (use --replace to overwrite them or --continue-on-conflict to skip them)\n"
    )
    skipped = cli("import", str(dump), "--store", target, "--continue-on-conflict")
    assert skipped.stdout.strip() == "imported 0 sessions (0 log entries); skipped 4 that already exist"
    cli("import", str(dump), "--store", target, "--replace")


def test_import_of_garbage_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\n")
    done = cli("import", str(bad), "--store", f"sqlite:///{tmp_path}/x.db", ok=False)
    assert done.returncode == 1
    assert done.stderr.startswith("sessionware: ")
    assert "Traceback" not in done.stderr


async def test_purge_expired(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    store = open_store(url)
    await store.set("gone", {"v": 1}, ttl=0.05)
    await store.set("kept", {"v": 1})
    await store.close()
    await asyncio.sleep(0.1)
    assert cli("purge-expired", "--store", url).stdout.strip() == "purged 1 expired record"
    require_server("redis")
    assert cli("purge-expired", "--store", REDIS_URL).stdout.startswith("RedisSessionStore expires records by itself")


def test_store_from_environment_and_errors(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SESSIONWARE_STORE": f"sqlite:///{tmp_path}/env.db"}
    absent = subprocess.run([str(SCRIPT), "ls"], capture_output=True, text=True, env=env)
    assert absent.returncode == 1
    assert absent.stderr == f"sessionware: no SQLite database at '{tmp_path}/env.db'\n"
    assert not (tmp_path / "env.db").exists(), "a command that only reads created the file"
    import sqlite3

    sqlite3.connect(tmp_path / "env.db").close()
    done = subprocess.run([str(SCRIPT), "ls"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "key\tkind\tbytes\texpires_in\n"
    tables = sqlite3.connect(tmp_path / "env.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [], "a command that only reads created tables"
    missing = subprocess.run([str(SCRIPT), "ls"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert missing.returncode == 2
    for url, text in [("bogus://x", "unknown store URL scheme"), ("redis://127.0.0.1:1/0", "redis")]:
        done = cli("ls", "--store", url, ok=False)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert text in done.stderr
        assert "Traceback" not in done.stderr


def test_benchmarks_run_from_the_checkout_not_the_cli(tmp_path: Path) -> None:
    gone = cli("bench", "--help", ok=False)
    assert gone.returncode == 2
    assert "No such command 'bench'" in gone.stderr
    root = Path(__file__).resolve().parent.parent
    report = tmp_path / "bench.json"
    args = ["--quick", "--workloads", "w3", "--backends", "memory", "--no-progress", "--json", str(report)]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "W3 lost updates" in done.stdout
    rows = json.loads(report.read_text())
    assert rows["config"]["quick"] is True
