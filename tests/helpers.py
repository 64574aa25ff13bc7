"""Small real stores and update builders shared by tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

from sessionware import BaseSessionStore


class SeedStyleStore:
    """A store written exactly to the seed's contract: get/set/delete, no ttl, returns its own objects."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def get(self, key: str) -> dict[str, Any] | None:
        self.calls.append(f"get {key}")
        return self.data.get(key)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.calls.append(f"set {key}")
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.calls.append(f"delete {key}")
        self.data.pop(key, None)


class Counting:
    """Counts the writes that reach a real store, passing every call through to it."""

    def __init__(self, store: BaseSessionStore) -> None:
        self.store = store
        self.writes = 0
        self.deletes = 0
        orig_set_raw, orig_delete = store.set_raw, store.delete

        async def set_raw(key: str, data: bytes, *, ttl: Any = None) -> None:
            self.writes += 1
            await orig_set_raw(key, data, ttl=ttl)

        async def delete(key: str) -> None:
            self.deletes += 1
            await orig_delete(key)

        store.set_raw = set_raw  # type: ignore[method-assign]
        store.delete = delete  # type: ignore[method-assign]


def message(user: int, text: str, chat: int | None = None, update_id: int = 1) -> dict[str, Any]:
    """A Telegram-shaped message update."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": user, "first_name": f"user{user}"},
            "chat": {"id": chat if chat is not None else user, "type": "private" if chat is None else "group"},
            "text": text,
        },
    }


def callback(user: int, data: str, chat: int | None = None) -> dict[str, Any]:
    """A Telegram-shaped callback query update."""
    return {
        "update_id": 1,
        "callback_query": {
            "id": "cb1",
            "from": {"id": user},
            "message": {"message_id": 1, "chat": {"id": chat if chat is not None else user}},
            "data": data,
        },
    }


class Calls:
    """Counts the calls that reach a real store, passing every one through to it."""

    NAMES: tuple[str, ...] = (
        "get",
        "get_raw",
        "set",
        "set_raw",
        "delete",
        "touch",
        "lock",
        "commit",
        "unlock",
        "renew",
    )

    def __init__(self, store: Any) -> None:
        self.counts: dict[str, int] = {}
        for name in self.NAMES:
            original = getattr(store, name, None)
            if original is not None:
                setattr(store, name, self._counting(name, original))

    def _counting(self, name: str, original: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] = self.counts.get(name, 0) + 1
            return await original(*args, **kwargs)

        return call

    def take(self) -> dict[str, int]:
        """The calls of each method since the last take."""
        counts, self.counts = self.counts, {}
        return counts


def import_without(blocked: str, module: str) -> str:
    """What a fresh interpreter prints importing ``module`` while package ``blocked`` is missing:
    ``"<extra> <message>"`` of the :class:`~sessionware.MissingExtraError` it raised."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{blocked!r}] = None
        from sessionware import MissingExtraError
        try:
            import {module}
        except MissingExtraError as e:
            print(e.extra, e)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def run_module_example(module: ModuleType, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the example of ``module``'s docstring (the ``::`` block before the first ``:class:`` paragraph)."""
    doc = module.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1].split("\n:class:", 1)[0])
    return subprocess.run([sys.executable, "-c", example], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_worker_processes(module: str, configs: list[dict[str, Any]], timeout: float = 300) -> list[str]:
    """Run ``python -m <module> '<json config>'`` once per config, side by side; return what each printed.

    Every worker must exit 0 (its stderr is the assertion message otherwise).
    """
    import json

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", module, json.dumps(config)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    printed = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        printed.append(out)
    return printed
