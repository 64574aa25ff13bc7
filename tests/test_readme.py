"""The README's Python examples run as written (top-level awaits included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_starting(prefix: str) -> str:
    for block in python_blocks():
        if block.startswith(prefix):
            return block
    raise AssertionError(f"no README example starts with {prefix!r}")


async def run_block(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if result is not None:
        await result


async def test_agent_and_tool_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    await run_block(block_starting("from sessionware import SessionManager"), namespace)
    assert [m["role"] for m in namespace["openai_messages"]] == ["user", "assistant", "tool"]
    await run_block(block_starting("from pydantic import BaseModel"), namespace)
    assert namespace["result"].outcome == "success"
    await namespace["manager"].close()


async def test_bot_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from sessionware import ConsoleClient

    update = {"update_id": 1, "message": {"message_id": 1, "from": {"id": 5}, "chat": {"id": 5}, "text": "/start"}}
    namespace: dict[str, Any] = {"telegram_update": update}
    source = block_starting("from sessionware import Router")
    source = source.replace("router = Router()", "router = Router(client=ConsoleClient())")
    namespace["ConsoleClient"] = ConsoleClient
    await run_block(source, namespace)
    await run_block(source, namespace)
    store = namespace["router"]._middleware[0].store
    assert await store.get("5") == {"visits": 2}
    await store.close()
