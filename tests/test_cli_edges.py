"""The command line's edges, run as an operator would: imports that must write nothing, expiries kept,
odd keys escaped, file errors as one line, durations human on a terminal and exact in ``--json``."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sessionware import SessionManager, open_store

from .test_cli import SCRIPT, cli, drop, store_url

EDGE_BACKENDS = ["sqlite", "redis"]
HEADER = json.dumps({"format": "sessionware-export/1", "namespace": "agent"})


@pytest.fixture(params=EDGE_BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    address = store_url(request.param, tmp_path)
    yield address
    await drop(address)


def export_file(tmp_path: Path, *items: dict[str, Any] | str) -> Path:
    path = tmp_path / "dump.jsonl"
    lines = [HEADER, *(item if isinstance(item, str) else json.dumps(item) for item in items)]
    path.write_text("\n".join(lines) + "\n")
    return path


async def snapshot(url: str) -> dict[str, Any]:
    """Every record of the store at ``url`` (a SQLite file that is not there yet reads as empty)."""
    if url.startswith("sqlite:///") and not os.path.exists(url.removeprefix("sqlite://")):  # noqa: ASYNC240
        return {}
    store: Any = open_store(url)
    try:
        return {key: await store.get(key) async for key in store.scan("")}
    finally:
        await store.close()


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("sessionware: ")
    assert "Traceback" not in done.stderr
    return done.stderr.removeprefix("sessionware: ").rstrip("\n")


async def test_import_skips_what_expired_before_the_export_finished(url: str, tmp_path: Path) -> None:
    dump = export_file(
        tmp_path,
        {"key": "gone", "value": {"v": 1}, "ttl": 0.0},
        {"key": "long-gone", "value": {"v": 2}, "ttl": -5},
        {"key": "kept", "value": {"v": 3}, "ttl": None},
        {"key": "soon", "value": {"v": 4}, "ttl": 600.0},
    )
    done = cli("import", str(dump), "--store", url)
    assert (
        done.stdout.strip() == "imported 2 sessions (0 log entries); skipped 2 that expired before the export finished"
    )
    assert await snapshot(url) == {"kept": {"v": 3}, "soon": {"v": 4}}


async def test_an_expired_agent_session_is_skipped_with_its_logs(url: str, tmp_path: Path) -> None:
    source = store_url("sqlite", tmp_path)
    manager = SessionManager(source, ttl=600)
    s = await manager.create_session("user-1")
    await manager.add_message(s.id, "user", "hello")
    await manager.close()
    lines = cli("export", "--store", source).stdout.splitlines()
    items = [json.loads(line) for line in lines]
    for item in items:
        if item.get("key") == f"agent:s:{{{s.id}}}":
            item["ttl"] = 0.0
    dump = tmp_path / "expired.jsonl"
    dump.write_text("".join(json.dumps(item) + "\n" for item in items))
    done = cli("import", str(dump), "--store", url)
    assert "skipped 1 that expired before the export finished" in done.stdout
    store: Any = open_store(url)
    try:
        assert await store.log_length(f"agent:h:{{{s.id}}}") == 0, "the expired session's history was not written"
    finally:
        await store.close()


@pytest.mark.parametrize(("seq", "shown"), [(0, "0"), (-3, "-3"), ("1", "'1'"), (True, "True"), (1.5, "1.5")])
async def test_a_bad_seq_is_refused_naming_its_line(url: str, tmp_path: Path, seq: Any, shown: str) -> None:
    dump = export_file(
        tmp_path,
        {"key": "chat:1", "value": {"v": 1}, "ttl": None},
        {"log": "notes", "seq": 1, "value": {"n": 1}},
        {"log": "other", "seq": seq, "value": {"n": 2}},
    )
    error = one_line_error(cli("import", str(dump), "--store", url, ok=False))
    assert error == f"line 4: seq must be a positive integer, not {shown}"
    assert await snapshot(url) == {}, "nothing was written"


async def test_a_log_with_gaps_imports_with_its_numbers_and_one_going_back_is_refused(url: str, tmp_path: Path) -> None:
    gapped = export_file(
        tmp_path, {"log": "notes", "seq": 4, "value": {"n": 1}}, {"log": "notes", "seq": 6, "value": {"n": 2}}
    )
    cli("import", str(gapped), "--store", url)
    store: Any = open_store(url)
    try:
        assert [(e.seq, e.value) for e in await store.log_read("notes")] == [(4, {"n": 1}), (6, {"n": 2})]
    finally:
        await store.close()
    back = export_file(
        tmp_path, {"log": "other", "seq": 4, "value": {"n": 1}}, {"log": "other", "seq": 3, "value": {"n": 2}}
    )
    error = one_line_error(cli("import", str(back), "--store", url, ok=False))
    assert error == "line 3: log 'other' goes back from seq 4 to 3"


@pytest.mark.parametrize("seq", [10**15, 10_000_002])
async def test_a_log_starting_beyond_what_an_import_can_fill_is_refused_at_once(
    url: str, tmp_path: Path, seq: int
) -> None:
    dump = export_file(tmp_path, {"log": "far", "seq": seq, "value": {"n": 1}})
    error = one_line_error(cli("import", str(dump), "--store", url, ok=False))
    assert (
        error
        == f"line 2: log 'far' skips to seq {seq}; an import fills in the numbers it skips, at most 10,000,000 of them"
    )
    assert await snapshot(url) == {}


async def test_a_session_with_a_popped_message_exports_and_imports_with_its_numbers(url: str, tmp_path: Path) -> None:
    from sessionware import SessionManager

    source = f"sqlite:///{tmp_path / 'source.db'}"
    async with SessionManager(source) as manager:
        chat = await manager.create_session("ada")
        for text in ("one", "two", "three"):
            await manager.add_message(chat.id, "user", text)
        await manager.pop_message(chat.id)
        await manager.add_message(chat.id, "user", "four")
        before = [(m.seq, m.text) for m in await manager.history(chat.id)]
    assert before == [(1, "one"), (2, "two"), (4, "four")]
    dump = tmp_path / "popped.jsonl"
    dump.write_text(cli("export", "--store", source).stdout)
    cli("import", str(dump), "--store", url)
    async with SessionManager(url) as manager:
        assert [(m.seq, m.text) for m in await manager.history(chat.id)] == before
        got = await manager.get_session(chat.id)
        assert got is not None
        assert got.message_count == 3


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("not json", "line 4 is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "line 4 is not a JSON object"),
        ('{"key": "", "value": {}}', "line 4: session key must not be empty"),
        (
            '{"key": "x", "value": {"v": 1}, "ttl": "soon"}',
            "line 4: ttl must be a number of seconds or null, not 'soon'",
        ),
        ('{"key": "chat:1", "value": {"v": 9}}', "line 4: session 'chat:1' appears twice"),
    ],
)
async def test_replace_with_a_bad_line_writes_nothing(url: str, tmp_path: Path, bad: str, error: str) -> None:
    store: Any = open_store(url)
    await store.set("chat:1", {"v": "old"})
    await store.close()
    dump = export_file(
        tmp_path,
        {"key": "chat:1", "value": {"v": "new"}, "ttl": None},
        {"key": "chat:2", "value": {"v": 2}, "ttl": None},
        bad,
    )
    assert one_line_error(cli("import", str(dump), "--store", url, "--replace", ok=False)) == error
    assert await snapshot(url) == {"chat:1": {"v": "old"}}, "the bad line stopped the import before any write"


@pytest.mark.slow
async def test_imported_logs_keep_their_sessions_expiry(url: str, tmp_path: Path) -> None:
    source = store_url("sqlite", tmp_path)
    manager = SessionManager(source, ttl=15)
    s = await manager.create_session("user-1")
    await manager.add_message(s.id, "user", "hello")
    await manager.track_tool_invocation(s.id, "lookup", duration=0.01)
    await manager.close()
    dump = tmp_path / "dump.jsonl"
    cli("export", "--store", source, "-o", str(dump))
    assert "(2 log entries)" in cli("import", str(dump), "--store", url).stdout
    store: Any = open_store(url)
    try:
        history, tools = f"agent:h:{{{s.id}}}", f"agent:t:{{{s.id}}}"
        assert await store.log_length(history) == 1
        assert await store.log_length(tools) == 1
        left = await store.expires_in(f"agent:s:{{{s.id}}}")
        assert left is not None
        assert 0 < left <= 15
        await asyncio.sleep(left + 0.3)
        assert await store.get(f"agent:s:{{{s.id}}}") is None
        assert await store.log_length(history) == 0, "the imported history outlived its session"
        assert await store.log_length(tools) == 0, "the imported tool log outlived its session"
    finally:
        await store.close()


async def test_keys_with_control_characters_are_one_escaped_cell(url: str) -> None:
    store: Any = open_store(url)
    await store.set("two\nlines\tand tab", {"v": 1})
    await store.set("back\\slash", {"v": 2})
    await store.close()
    rows = cli("ls", "--store", url).stdout.splitlines()
    assert rows[0] == "key\tkind\tbytes\texpires_in"
    assert sorted(row.split("\t")[0] for row in rows[1:]) == ["back\\\\slash", "two\\nlines\\tand tab"]
    assert all(row.count("\t") == 3 for row in rows), "an escaped key never splits a row or a column"
    exact = [json.loads(line)["key"] for line in cli("ls", "--store", url, "--json").stdout.splitlines()]
    assert sorted(exact) == ["back\\slash", "two\nlines\tand tab"], "--json keeps the key exactly"
    removed = cli("rm", "two\nlines\tand tab", "--store", url).stdout
    assert removed == "removed two\\nlines\\tand tab\n"


def test_a_lone_surrogate_in_an_argument_is_escaped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    cli("import", str(export_file(tmp_path, {"key": "k", "value": {"v": 1}, "ttl": None})), "--store", url)
    done = subprocess.run([os.fsencode(SCRIPT), b"show", b"caf\xff", b"--store", url.encode()], capture_output=True)
    assert done.returncode == 1
    assert done.stderr == b"sessionware: session key 'caf\\udcff' is not valid unicode: surrogates not allowed\n"
    removed = subprocess.run([os.fsencode(SCRIPT), b"rm", b"x\xfe\n", b"--store", url.encode()], capture_output=True)
    assert removed.returncode == 1
    assert removed.stderr == b"sessionware: session key 'x\\udcfe\\n' is not valid unicode: surrogates not allowed\n"


def test_file_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    missing = tmp_path / "missing.jsonl"
    assert one_line_error(cli("import", str(missing), "--store", url, ok=False)) == (
        f"cannot read {str(missing)!r}: No such file or directory"
    )
    assert one_line_error(cli("import", str(tmp_path), "--store", url, ok=False)) == (
        f"cannot read {str(tmp_path)!r}: Is a directory"
    )
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(HEADER.encode() + b'\n{"key": "caf\xe9", "value": {}}\n')
    assert one_line_error(cli("import", str(latin), "--store", url, ok=False)) == (
        f"{str(latin)!r} is not UTF-8 text: invalid continuation byte"
    )
    cli("import", str(export_file(tmp_path, {"key": "k", "value": {"v": 1}, "ttl": None})), "--store", url)
    nowhere = tmp_path / "no-such-folder" / "out.jsonl"
    assert one_line_error(cli("export", "--store", url, "-o", str(nowhere), ok=False)) == (
        f"cannot write {str(nowhere)!r}: No such file or directory"
    )
    assert not nowhere.parent.exists()
    absent = tmp_path / "absent.db"
    for command in (["ls"], ["show", "k"], ["export"], ["rm", "k"]):
        assert one_line_error(cli(*command, "--store", f"sqlite:///{absent}", ok=False)) == (
            f"no SQLite database at {str(absent)!r}"
        )
    assert not absent.exists()


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(*args: str) -> str:
    """Run the command with its stdout on a pseudo-terminal; return what it showed, without colours."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([str(SCRIPT), *args], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    return ANSI.sub("", b"".join(chunks).decode())


async def test_durations_are_human_on_a_terminal_and_exact_in_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    store: Any = open_store(url)
    await store.set("day", {"v": 1}, ttl=93784)
    await store.set("hour", {"v": 1}, ttl=2761.9)
    await store.set("forever", {"v": 1})
    await store.close()
    manager = SessionManager(url)
    await manager.create_session("user-1")
    await manager.close()
    shown = await asyncio.to_thread(on_a_terminal, "ls", "--store", url)
    rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if line.count("│") >= 4}
    assert re.search(r"│\s+1d 2h\s+│", rows["day"]), rows["day"]
    assert re.search(r"│\s+4[56]m \d\ds\s+│", rows["hour"]), rows["hour"]
    assert re.search(r"│\s+-\s+│$", rows["forever"].rstrip()), rows["forever"]
    assert not re.search(r"\d{4}", rows["hour"] + rows["day"]), "no raw seconds on a terminal"
    exact = {row["key"]: row for row in map(json.loads, cli("ls", "--store", url, "--json").stdout.splitlines())}
    assert 93784 - 60 < exact["day"]["expires_in"] <= 93784, "a loaded machine may take seconds, never a minute"
    assert 2761.9 - 60 < exact["hour"]["expires_in"] <= 2761.9
    assert exact["hour"]["expires_in"] != round(exact["hour"]["expires_in"]), "--json gives the exact seconds"
    assert exact["forever"]["expires_in"] is None
    piped = cli("ls", "--store", url).stdout
    assert "│" not in piped, "piped output is plain tab-separated text"
    assert re.search(r"\nhour\tbot\t7\t4[56]m \d\ds\n", piped), piped

    user = await asyncio.to_thread(on_a_terminal, "ls", "--store", url, "--user", "user-1")
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", user)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", user), "a terminal shows whole seconds"
    mine = json.loads(cli("ls", "--store", url, "--user", "user-1", "--json").stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", mine["created"]), mine["created"]


async def test_replace_restores_the_history_exactly_and_counts_read_right(url: str, tmp_path: Path) -> None:
    source = store_url("sqlite", tmp_path)
    manager = SessionManager(source)
    s = await manager.create_session("user-1")
    await manager.add_message(s.id, "user", "one")
    await manager.close()
    dump = tmp_path / "one.jsonl"
    exported = cli("export", "--store", source, "-o", str(dump))
    assert exported.stderr == f"exported 1 session (1 log entry) to {dump}\n"
    assert cli("import", str(dump), "--store", url).stdout == "imported 1 session (1 log entry)\n"
    later = SessionManager(url)
    await later.add_message(s.id, "user", "two, written after the import")
    await later.close()
    assert cli("import", str(dump), "--store", url, "--replace").stdout == "imported 1 session (1 log entry)\n"
    again = SessionManager(url)
    restored = await again.get_session(s.id)
    await again.close()
    assert restored is not None
    assert [(m.seq, m.text) for m in restored.conversation_history] == [(1, "one")]
    assert restored.message_count == 1


async def test_a_fork_and_its_original_export_and_import_with_their_shared_history(url: str, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'forks.db'}"
    async with SessionManager(source) as manager:
        original = await manager.create_session("ada")
        for text in ("one", "two", "three"):
            await manager.add_message(original.id, "user", text)
        fork = await manager.fork_session(original.id, at=2)
        await manager.add_message(fork.id, "user", "fork's own")
        await manager.add_message(original.id, "user", "original's own")
        expected = {s: [(m.seq, m.text) for m in await manager.history(s)] for s in (original.id, fork.id)}
    assert expected[fork.id][:2] == [(1, "one"), (2, "two")]
    only_fork = tmp_path / "fork.jsonl"
    only_fork.write_text(cli("export", "--store", source, "--prefix", f"agent:s:{{{fork.id}}}").stdout)
    cli("import", str(only_fork), "--store", url)
    async with SessionManager(url) as manager:
        got = [(m.seq, m.text) for m in await manager.history(fork.id)]
        assert got == expected[fork.id], "a fork exported alone brings the history it shares"
    both = tmp_path / "forks.jsonl"
    both.write_text(cli("export", "--store", source).stdout)
    shared = [line for line in both.read_text().splitlines() if f'"log":"agent:h:{{{original.id}}}"' in line]
    assert len(shared) == 4, "a log shared by a fork is exported once"
    cli("import", str(both), "--store", url, "--replace")
    async with SessionManager(url) as manager:
        for session_id, history in expected.items():
            assert [(m.seq, m.text) for m in await manager.history(session_id)] == history
