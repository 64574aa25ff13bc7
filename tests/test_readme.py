"""Every code block of the README runs as written: the Python ones in order in one namespace (top-level awaits
included), then the shell ones with the ``sessionware`` command, in the same folder.

The two set-up commands (marked ``demo-command`` and ``test-command``) make a
virtual environment from nothing; CI runs them verbatim (``.ci/run``), so they
are only checked here to be there. ``text`` blocks are pictures, not code.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SETUP_MARKERS = ("<!-- demo-command -->", "<!-- test-command -->")

Block = tuple[str, str, bool]
"""A code block: its language, its source, and whether it is one of the two set-up commands."""


def blocks() -> list[Block]:
    text = README.read_text()
    found: list[Block] = []
    for match in re.finditer(r"(?m)^```(\w+)\n(.*?)^```$", text, flags=re.S):
        before = text[: match.start()].rstrip()
        setup = before.endswith(SETUP_MARKERS)
        found.append((match.group(1), match.group(2), setup))
    return found


async def run_python(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if result is not None:
        await result


def run_shell(source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SESSIONWARE_STORE", None)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", source], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_only_python_shell_and_text_blocks_and_both_setup_commands() -> None:
    found = blocks()
    assert {language for language, _, _ in found} <= {"python", "sh", "text"}
    setup = [source for _, source, is_setup in found if is_setup]
    assert len(setup) == 2
    assert "sessionware demo" in setup[0]
    assert "pytest" in setup[1]


async def test_every_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    python = [source for language, source, _ in blocks() if language == "python"]
    for source in python:
        await run_python(source, namespace)
    # What the examples claim, checked from outside them.
    assert [m["role"] for m in namespace["openai_messages"]] == ["user", "assistant", "tool"]
    assert namespace["result"].outcome == "success"
    await namespace["manager"].close()
    await namespace["router"]._middleware[0].store.close()
    await namespace["tg_router"]._middleware[0].store.close()

    from sessionware import open_store

    store = open_store("sqlite:///bot.db")
    try:
        assert await store.get("42") == {"visits": 1}
    finally:
        await store.close()

    for language, source, setup in blocks():
        if language != "sh" or setup:
            continue
        done = run_shell(source, tmp_path)
        assert done.returncode == 0, f"{source}\n{done.stdout}\n{done.stderr}"
    store = open_store("sqlite:///bot.db")
    try:
        assert await store.get("42") == {"visits": 1}, "rm, then import of the export, gives the session back"
    finally:
        await store.close()
