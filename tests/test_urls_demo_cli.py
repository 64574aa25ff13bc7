"""open_store URLs, the missing-extra error, the demo and the console script, run as a user would."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionware import InMemorySessionStore, InvalidStoreURLError, open_store
from sessionware.demo import run_demo

from .conftest import require_server

SCRIPT = Path(sys.executable).with_name("sessionware")


def test_memory_url() -> None:
    store = open_store("memory://?max_sessions=7")
    assert isinstance(store, InMemorySessionStore)
    assert store.max_sessions == 7


def test_sqlite_urls(tmp_path: Path) -> None:
    from sessionware import SQLiteSessionStore

    absolute = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteSessionStore)
    relative = open_store("sqlite:///relative.db")
    assert isinstance(relative, SQLiteSessionStore)


def test_redis_and_postgres_urls_keep_their_options() -> None:
    from sessionware import PostgresSessionStore, RedisSessionStore

    redis_store = open_store("redis://127.0.0.1:6379/9?prefix=bots")
    assert isinstance(redis_store, RedisSessionStore)
    assert redis_store.prefix == "bots"
    pg = open_store("postgresql://postgres@127.0.0.1:5432/test?table=my_sessions")
    assert isinstance(pg, PostgresSessionStore)
    assert pg.table == "my_sessions"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "not a store URL"),
        ("ftp://host/x", "unknown store URL scheme"),
        ("sqlite://", "bad SQLite URL"),
        ("memory://?max_sessions=lots", "must be an integer"),
        ("memory://?colour=blue", "unknown parameter"),
    ],
)
def test_bad_urls_are_clear_typed_errors(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreURLError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "module", "extra", "name"),
    [
        ("redis://127.0.0.1/0", "redis", "redis", "RedisSessionStore"),
        ("postgresql://127.0.0.1/test", "asyncpg", "postgres", "PostgresSessionStore"),
    ],
)
def test_missing_driver_names_the_extra(url: str, module: str, extra: str, name: str) -> None:
    for use in (f"open_store({url!r})", f"sessionware.{name}"):
        code = (
            f"import sys; sys.modules[{module!r}] = None\n"
            "import sessionware\n"
            "from sessionware import open_store, MissingExtraError\n"
            f"try:\n    {use}\n"
            "except MissingExtraError as e:\n    assert isinstance(e, ImportError); print(e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert f"pip install 'sessionware[{extra}]'" in out, use


async def test_demo_persists_sessions_between_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    first = await run_demo(url, out=io.StringIO(), burst=20)
    assert first["101"]["visits"] == 1
    assert first["101"]["likes"] == 20
    assert first["202"]["notes"] == ["call the plumber"]
    out = io.StringIO()
    second = await run_demo(url, out=out, burst=20)
    assert second["101"] == {
        "visits": 2,
        "notes": ["buy oat milk", "book train tickets", "buy oat milk", "book train tickets"],
        "likes": 40,
    }
    assert "Welcome back Alice: visit #2." in out.getvalue()
    assert "20 of 20 updates kept" in out.getvalue()


def test_console_script_demo_runs_twice(tmp_path: Path) -> None:
    env = {**os.environ, "SESSIONWARE_STORE": f"sqlite:///{tmp_path}/cli.db"}
    for visit in (1, 2):
        done = subprocess.run(
            [str(SCRIPT), "demo", "--burst", "5"], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert ("first visit" if visit == 1 else "visit #2") in done.stdout
        assert "5 of 5 updates kept" in done.stdout


def test_console_script_bad_store_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "demo", "--store", "ftp://nowhere"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "unknown store URL scheme" in done.stderr
    assert "Traceback" not in done.stderr


def test_console_script_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    require_server("redis")
    done = subprocess.run(
        [str(SCRIPT), "demo", "--store", "redis://127.0.0.1:1/0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("sessionware: ")
