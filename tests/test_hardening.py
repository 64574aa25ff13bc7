"""Values, keys and URLs that used to be accepted and then broke: each refused with a typed error, or kept."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import pytest

from sessionware import BaseSessionStore, InvalidValueError, Router, session
from sessionware.bot import Context
from sessionware.codec import MAX_DEPTH
from sessionware.errors import InvalidStoreURLError, SessionDecodeError, StoreClosedError
from sessionware.keys import MAX_KEY_LENGTH, check_key
from sessionware.stores.sql.sqlite import SQLiteSessionStore
from sessionware.update import default_quarantine_key
from sessionware.urls import open_store

from .conftest import REDIS_URL, open_backend, require_server, unique
from .helpers import message


class Color(enum.IntEnum):
    RED = 1


class Mood(enum.StrEnum):
    CALM = "calm"


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_depth_limit_is_enforced_and_everything_accepted_reads_back(store: BaseSessionStore) -> None:
    await store.set("deep", _nested(MAX_DEPTH))
    assert await store.get("deep") == _nested(MAX_DEPTH)
    for levels in (MAX_DEPTH + 1, 900):
        with pytest.raises(InvalidValueError, match=f"deeper than {MAX_DEPTH}"):
            await store.set("deep", _nested(levels))
    assert await store.get("deep") == _nested(MAX_DEPTH), "a refused value leaves the stored one"


@pytest.mark.parametrize(
    ("value", "path"),
    [({"c": Color.RED}, "$['c']"), ({"m": [Mood.CALM]}, "$['m'][0]"), ({"k": {"x": Color.RED}}, "$['k']['x']")],
)
async def test_enum_members_are_refused_naming_the_path(store: BaseSessionStore, value: Any, path: str) -> None:
    with pytest.raises(InvalidValueError, match="enum member") as info:
        await store.set("e", value)
    assert info.value.path == path
    assert await store.get("e") is None


async def test_a_long_key_can_be_quarantined(store: BaseSessionStore) -> None:
    prefix = "q" * 999  # with the user id "1", a key of 1,000 characters
    key = prefix + "1"
    aside = default_quarantine_key(key)
    assert check_key(aside) == aside
    assert len(aside) <= MAX_KEY_LENGTH
    assert aside.startswith("q" * 900)
    assert default_quarantine_key("q" * 999 + "2")[:-25] != aside[:-25]
    await store.set_raw(key, b"\xff not json")
    router = Router()
    router.use(session(store, prefix=prefix, on_decode_error="quarantine"))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] = ctx.session.get("n", 0) + 1

    await router.handle(message(1, "/inc"))
    assert await store.get(key) == {"n": 1}


async def test_sqlite_tables_differing_in_case_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.db"
    lower = SQLiteSessionStore(path, table="tenant_a")
    await lower.set("k", {"who": "a"})
    upper = SQLiteSessionStore(path, table="Tenant_A")
    with pytest.raises(InvalidValueError, match="ignores the case"):
        await upper.get("k")
    other = SQLiteSessionStore(path, table="tenant_b")
    assert await other.get("k") is None
    assert await lower.get("k") == {"who": "a"}
    for s in (lower, upper, other):
        await s.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u:secret@[::1/db", "IPv6"),
        ("postgresql://u:secret@db:notaport/app", "notaport"),
        ("postgresql://u:secret@db:99999/app", "out of range"),
        ("redis://u:secret@db:99999/0", "out of range"),
        ("postgresql+psycopg://bob:secret@db/app", "scheme"),
        ("sqlite:///x.db?password=secret&bogus=1", "bogus"),
    ],
)
def test_url_errors_name_the_problem_and_hide_the_password(url: str, problem: str) -> None:
    with pytest.raises(InvalidStoreURLError, match=problem) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_asyncpg_style_url_opens_without_connecting() -> None:
    require_server("postgres")
    store = open_store("postgresql+asyncpg://bob:secret@db/app")
    assert type(store).__name__ == "PostgresSessionStore"


async def test_a_closed_store_refuses_every_call(backend: str, tmp_path: Path) -> None:
    store, cleanup = await open_backend(backend, tmp_path)
    await store.set("k", {"v": 1})
    await store.delete("k")  # nothing is left behind: the store's own client cannot clean up once closed
    await store.close()
    assert store.closed
    calls = [store.get("k"), store.set("k", {"v": 2}), store.delete("k"), store.get_raw("k")]
    for call in calls:
        with pytest.raises(StoreClosedError, match="closed"):
            await call
    await store.close()  # closing again is harmless
    if backend != "redis":
        await cleanup()


async def test_redis_record_without_frame_is_quarantined() -> None:
    require_server("redis")
    import redis.asyncio as aioredis

    prefix = unique("frame-")
    store = open_store(f"{REDIS_URL}?prefix={prefix}")
    raw = aioredis.from_url(REDIS_URL)
    try:
        await raw.set(f"{prefix}:1", b'{"n": 41}')  # a record of a plain JSON store
        with pytest.raises(SessionDecodeError, match="frame"):
            await store.get("1")
        router = Router()
        router.use(session(store, on_decode_error="quarantine", quarantine_key=lambda k: f"bad:{k}"))

        @router.command("inc")
        async def inc(ctx: Context) -> None:
            ctx.session["n"] = ctx.session.get("n", 0) + 1

        await router.handle(message(1, "/inc"))
        await router.handle(message(1, "/inc"))
        assert await store.get("1") == {"n": 2}
        aside = await store.get_raw("bad:1")
        assert aside is not None
        assert aside.endswith(b'{"n": 41}'), "the original bytes are kept aside"
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await store.close()


async def test_a_key_at_the_byte_limit_works_on_every_backend_and_one_over_is_refused(store: BaseSessionStore) -> None:
    from sessionware.errors import InvalidKeyError
    from sessionware.keys import MAX_KEY_BYTES

    widest = "会" * (MAX_KEY_BYTES // 3)  # 682 characters, 2,046 bytes: every backend indexes it
    await store.set(widest, {"n": 1})
    assert await store.get(widest) == {"n": 1}
    await store.log_append(widest, [{"m": 1}])  # type: ignore[attr-defined]
    assert [e.value for e in await store.log_read(widest)] == [{"m": 1}]  # type: ignore[attr-defined]
    held = await store.lock(widest, lease=5, wait=0)  # type: ignore[attr-defined]
    await store.commit(held.lease, store.codec.encode({"n": 2}))  # type: ignore[attr-defined]
    assert await store.get(widest) == {"n": 2}
    aside = default_quarantine_key(widest)
    assert check_key(aside) == aside
    await store.set_raw(aside, b"\xff")
    assert await store.get_raw(aside) == b"\xff"
    too_wide = "会" * 1024  # 1,024 characters, but 3,072 bytes
    for call in (store.set(too_wide, {"n": 1}), store.get(too_wide)):
        with pytest.raises(InvalidKeyError, match="3072 bytes in UTF-8, over the limit of 2048"):
            await call
