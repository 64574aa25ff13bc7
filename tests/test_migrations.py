"""Migrations: sessions stored at an older version are brought to the newest on load, written back with the
next save, on every backend; for bot sessions and for agent session metadata."""

from __future__ import annotations

from typing import Any

import pytest

from sessionware import BaseSessionStore, Context, InvalidValueError, Router, SessionManager, session
from sessionware.migrations import MigrationError

from .helpers import Calls, message


def add_cart(value: dict[str, Any]) -> None:
    value["cart"] = []


def rename_lang(value: dict[str, Any]) -> dict[str, Any]:
    value["language"] = value.pop("lang", "en")
    return value


def items_as_records(value: dict[str, Any]) -> None:
    value["items"] = [{"id": item} for item in value.get("items", [])]


MIGRATIONS = {1: add_cart, 2: rename_lang, 3: items_as_records}


def recording_router(store: Any, **options: Any) -> tuple[Router, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    router = Router()
    router.use(session(store, migrations=MIGRATIONS, **options))

    @router.command("look")
    async def look(ctx: Context) -> None:
        seen.append(dict(ctx.session))

    @router.command("buy")
    async def buy(ctx: Context) -> None:
        ctx.session.setdefault("cart", []).append("tea")

    return router, seen


async def test_a_session_stored_at_version_0_is_migrated_to_3_and_written_back(store: BaseSessionStore) -> None:
    await store.set("1", {"lang": "nb", "items": [7, 8]})  # as an earlier release stored it
    calls = Calls(store)  # before the middleware, which takes the store's methods when it is made
    router, seen = recording_router(store)
    await router.handle(message(1, "/look"))
    assert seen == [{"language": "nb", "items": [{"id": 7}, {"id": 8}], "cart": []}]
    assert await store.get("1") == {"$version": 3, "language": "nb", "items": [{"id": 7}, {"id": 8}], "cart": []}
    assert calls.take().get("set_raw") == 1, "the migrated value is written back with the save"
    await router.handle(message(1, "/look"))
    assert "set_raw" not in calls.take(), "a session at the newest version that did not change is not written"
    await router.handle(message(1, "/buy"))
    stored = await store.get("1")
    assert stored is not None
    assert next(iter(stored)) == "$version"
    assert stored["cart"] == ["tea"]


async def test_only_the_migrations_above_the_stored_version_run(store: BaseSessionStore) -> None:
    await store.set("2", {"$version": 1, "lang": "de", "cart": ["kept"], "items": [1]})
    router, seen = recording_router(store)
    await router.handle(message(2, "/look"))
    assert seen == [{"language": "de", "cart": ["kept"], "items": [{"id": 1}]}]


async def test_a_new_session_starts_at_the_newest_version_and_an_untouched_one_is_not_stored(
    store: BaseSessionStore,
) -> None:
    router, seen = recording_router(store, initial=lambda: {"cart": []}, ttl=60)
    await router.handle(message(3, "/look"))
    assert seen == [{"cart": []}]
    assert await store.get("3") is None
    await router.handle(message(3, "/buy"))
    assert await store.get("3") == {"$version": 3, "cart": ["tea"]}
    left = await store.expires_in("3")  # type: ignore[attr-defined]
    assert left is not None
    assert left > 30


async def test_a_newer_or_broken_session_is_refused_and_left_as_it_was(store: BaseSessionStore) -> None:
    await store.set("4", {"$version": 9, "language": "fr"})
    router, _ = recording_router(store)
    with pytest.raises(MigrationError, match="version 9, newer than the newest migration"):
        await router.handle(message(4, "/look"))
    assert await store.get("4") == {"$version": 9, "language": "fr"}

    def broken(value: dict[str, Any]) -> None:
        raise KeyError("missing")

    await store.set("5", {"lang": "en"})
    failing = Router()
    failing.use(session(store, migrations={1: broken}))

    @failing.command("look")
    async def look(ctx: Context) -> None:
        raise AssertionError("the handler must not run on an unmigrated session")

    with pytest.raises(MigrationError, match=r"migration 1 of session '5' failed: KeyError"):
        await failing.handle(message(5, "/look"))
    assert await store.get("5") == {"lang": "en"}


@pytest.mark.parametrize("bad", [{}, {0: add_cart}, {True: add_cart}, {"1": add_cart}, {1: "not callable"}, [add_cart]])
def test_migrations_are_checked(bad: Any) -> None:
    with pytest.raises(InvalidValueError, match="migrations"):
        session(migrations=bad)
    with pytest.raises(InvalidValueError, match="metadata_migrations"):
        SessionManager(metadata_migrations=bad)


async def test_agent_session_metadata_is_migrated_the_same_way(store: BaseSessionStore) -> None:
    before = SessionManager(store)
    old = await before.create_session("u", metadata={"lang": "nb", "items": [3]})
    manager = SessionManager(store, metadata_migrations=MIGRATIONS)
    got = await manager.get_session(old.id, user_id="u")
    assert got is not None
    assert dict(got.metadata) == {"language": "nb", "items": [{"id": 3}], "cart": []}
    assert (await before.get_session(old.id)).metadata == {"lang": "nb", "items": [3]}, "reads write nothing"  # type: ignore[union-attr]
    await manager.update_session(old.id, metadata={"cart": ["tea"]}, user_id="u")
    assert (await before.get_session(old.id)).metadata == {  # type: ignore[union-attr]
        "language": "nb",
        "items": [{"id": 3}],
        "cart": ["tea"],
    }, "the next change writes the migrated metadata"
    fresh = await manager.create_session("u", metadata={"cart": []})
    again = await manager.get_session(fresh.id)
    assert again is not None
    assert dict(again.metadata) == {"cart": []}, "a new session starts at the newest version: nothing runs on it"
