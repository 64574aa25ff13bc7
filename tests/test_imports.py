"""The public face: ``import sessionware`` loads no store driver, agent or tool module; every top-level name
resolves on first use; a backend without its extra names the extra; the layers import only downwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sessionware

SRC = Path(sessionware.__file__).resolve().parent


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    show = "\nimport sys; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code + show], capture_output=True, text=True, timeout=60, check=True)
    return set(done.stdout.split())


def test_import_sessionware_loads_only_the_errors() -> None:
    modules = loaded_by("import sessionware")
    ours = {m for m in modules if m.startswith("sessionware")}
    assert ours == {"sessionware", "sessionware.errors"}
    for heavy in ("pydantic", "pydantic_core", "redis", "asyncpg", "hiredis", "sqlite3", "typer"):
        assert heavy not in modules


def test_the_seed_names_load_the_bot_surface_and_the_memory_store_only() -> None:
    modules = loaded_by("from sessionware import Router, session, InMemorySessionStore")
    for absent in ("sessionware.agents", "sessionware.tools", "sessionware.stores.redis", "sessionware.stores.sql"):
        assert not any(m == absent or m.startswith(absent + ".") for m in modules), absent
    assert "pydantic" not in modules
    assert {"sessionware.bot.router", "sessionware.update", "sessionware.stores.memory"} <= modules


def test_every_public_name_resolves() -> None:
    for name in sessionware.__all__:
        assert getattr(sessionware, name) is not None, name
    assert sessionware.SQLiteSessionStore.__module__ == "sessionware.stores.sql.sqlite"
    assert sessionware.RedisSessionStore.__module__.startswith("sessionware.stores.redis")
    assert sessionware.PostgresSessionStore.__module__ == "sessionware.stores.sql.postgres"
    assert sorted(dir(sessionware)) == sorted(sessionware.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = sessionware.Nope


def test_0_1_names_still_work() -> None:
    with pytest.warns(DeprecationWarning, match="SessionStore"):
        assert sessionware.BasicSessionStore is sessionware.SessionStore
    from sessionware.stores.postgres import PostgresSessionStore
    from sessionware.stores.sqlite import SQLiteSessionStore

    assert SQLiteSessionStore is sessionware.SQLiteSessionStore
    assert PostgresSessionStore is sessionware.PostgresSessionStore


def imports_of(path: Path) -> set[str]:
    """The sessionware modules ``path`` imports, as absolute names (``from ..x import y`` included)."""
    package = ".".join(("sessionware", *path.relative_to(SRC).with_suffix("").parts))
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level)[0]
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module and node.module.startswith("sessionware"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sessionware"))
    return found


LAYERS = {
    # package: what it must never import
    "sessionware.stores": (
        "sessionware.bot",
        "sessionware.agents",
        "sessionware.tools",
        "sessionware.update",
        "sessionware.integrations",
    ),
    "sessionware.bot": ("sessionware.agents", "sessionware.tools", "sessionware.cli", "sessionware.integrations"),
    "sessionware.agents": ("sessionware.bot", "sessionware.tools", "sessionware.cli", "sessionware.integrations"),
    # an integration reaches a backend only through open_store(url), and no other surface
    "sessionware.integrations": ("sessionware.stores", "sessionware.cli"),
}
CORE = ("_lazy", "errors", "codec", "keys", "store", "locks", "frozen", "isolation", "update", "logs", "urls")


def test_layers_import_only_downwards() -> None:
    for path in SRC.rglob("*.py"):
        module = ".".join(("sessionware", *path.relative_to(SRC).with_suffix("").parts))
        deps = imports_of(path)
        if module.removeprefix("sessionware.") in CORE:
            surfaces = (
                "sessionware.bot",
                "sessionware.agents",
                "sessionware.tools",
                "sessionware.cli",
                "sessionware.integrations",
            )
            assert not {d for d in deps if d.startswith(surfaces)}, (module, deps)
        for package, forbidden in LAYERS.items():
            if module.startswith(package + "."):
                assert not {d for d in deps if d.startswith(forbidden)}, (module, deps)
        backend = module.split(".")[2] if module.startswith("sessionware.stores.") else None
        if backend in ("memory", "sql", "redis"):
            others = {f"sessionware.stores.{b}" for b in ("memory", "sql", "redis")} - {f"sessionware.stores.{backend}"}
            assert not {d for d in deps if d.startswith(tuple(others))}, (module, deps)
