"""Several sessions per update, lazy sessions and typed (pydantic) sessions, on every backend."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sessionware import BaseSessionStore, InMemorySessionStore, InvalidValueError
from sessionware.bot import (
    Context,
    Router,
    RouterError,
    SessionConflictError,
    SessionValidationError,
    session,
)

from .helpers import Calls, message


def two_sessions_router(store: BaseSessionStore) -> Router:
    router = Router()
    router.use(session(store))  # ctx.session, keyed by user, stored under the user id as 0.1 did
    router.use(session(store, key="chat", property="chat_session"))  # keyed by chat, under "chat_session:"

    @router.command("ping")
    async def ping(ctx: Context) -> None:
        user_n = ctx.session.get("n", 0)
        chat_n = ctx.chat_session.get("n", 0)
        await asyncio.sleep(random.random() / 1000)  # interleave the updates between read and write
        ctx.session["n"] = user_n + 1
        ctx.chat_session["n"] = chat_n + 1
        ctx.chat_session.setdefault("users", [])
        if ctx.from_user is not None and ctx.from_user["id"] not in ctx.chat_session["users"]:
            ctx.chat_session["users"].append(ctx.from_user["id"])

    return router


async def test_a_user_and_a_chat_session_on_one_store_stay_exact_under_interleaved_updates(
    store: BaseSessionStore,
) -> None:
    router = two_sessions_router(store)
    pings = [(user, chat) for user in (1, 2, 3) for chat in (100, 200) for _ in range(5)]
    random.Random(16).shuffle(pings)
    await asyncio.gather(
        *(router.handle(message(user, "/ping", chat=chat, update_id=i)) for i, (user, chat) in enumerate(pings))
    )
    for user in (1, 2, 3):
        assert await store.get(str(user)) == {"n": 10}
    for chat in (100, 200):
        stored = await store.get(f"chat_session:{chat}")
        assert stored is not None
        assert stored["n"] == 15
        assert sorted(stored["users"]) == [1, 2, 3]
        assert await store.get(str(chat)) is None, "the chat session never lands on a user's key"


async def test_prefix_is_put_before_the_key_as_given() -> None:
    store = InMemorySessionStore()
    router = Router()
    router.use(session(store, key="chat", property="group", prefix="xyz-"))

    @router.command("hi")
    async def hi(ctx: Context) -> None:
        ctx.group["said"] = "hi"

    await router.handle(message(5, "/hi", chat=42))
    assert await store.get("xyz-42") == {"said": "hi"}
    assert [key async for key in store.scan()] == ["xyz-42"]


def test_two_middlewares_on_one_property_are_refused() -> None:
    router = Router()
    router.use(session())
    with pytest.raises(SessionConflictError, match=r"ctx\.session"):
        router.use(session(key="chat"))


def test_the_same_middleware_twice_is_refused() -> None:
    middleware = session()
    router = Router().use(middleware)
    with pytest.raises(SessionConflictError, match="already on the router"):
        router.use(middleware)


def test_one_prefix_twice_on_one_store_is_refused_and_on_two_stores_allowed() -> None:
    store = InMemorySessionStore()
    router = Router().use(session(store, property="a", prefix="p:"))
    with pytest.raises(SessionConflictError, match="same key prefix 'p:'"):
        router.use(session(store, property="b", prefix="p:"))
    Router().use(session(store, property="a", prefix="p:")).use(
        session(InMemorySessionStore(), property="b", prefix="p:")
    )


def test_one_prefix_twice_on_one_store_url_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    first, second = session(url, property="a", prefix="p:"), session(url, property="b", prefix="p:")
    with pytest.raises(SessionConflictError, match="same key prefix"):
        Router().use(first).use(second)


async def test_a_key_that_falls_into_a_longer_prefix_of_another_middleware_is_refused_and_nothing_written() -> None:
    store = InMemorySessionStore()
    router = Router()
    router.use(session(store, key=lambda ctx: str(ctx.text).split()[1], property="short", prefix="u"))
    router.use(session(store, key="user", property="long", prefix="u:"))

    @router.command("set")
    async def set_(ctx: Context) -> None:
        ctx.short["x"] = 1
        ctx.long["y"] = 2

    await router.handle(message(7, "/set v"))
    assert await store.get("uv") == {"x": 1}
    assert await store.get("u:7") == {"y": 2}
    with pytest.raises(SessionConflictError, match="key namespace of another"):
        await router.handle(message(7, "/set :7"))  # "u" + ":7" is the long middleware's key for user 7
    assert await store.get("u:7") == {"y": 2}, "the other middleware's session is left as it was"


async def test_the_default_property_keeps_the_keys_of_0_1_and_other_properties_get_their_own() -> None:
    store = InMemorySessionStore()
    await store.set("9", {"n": 41})  # as 0.1 stored user 9
    router = Router()
    router.use(session(store))
    router.use(session(store, key="user", property="prefs"))

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        ctx.session["n"] += 1
        ctx.prefs["seen"] = True

    await router.handle(message(9, "/inc"))
    assert await store.get("9") == {"n": 42}
    assert await store.get("prefs:9") == {"seen": True}


@pytest.mark.parametrize("name", ["not an identifier", "class", "_private", "state", "reply", 3])
def test_a_property_that_cannot_be_a_context_attribute_is_refused(name: Any) -> None:
    with pytest.raises(InvalidValueError, match="property"):
        session(property=name)


# Lazy sessions: store calls counted on every backend.


def lazy_router(store: BaseSessionStore, **options: Any) -> Router:
    router = Router()
    router.use(session(store, lazy=True, **options))

    @router.command("look")
    async def look(ctx: Context) -> None:
        ctx.state["seen"] = dict(await ctx.load_session())
        ctx.state["again"] = await ctx.load_session() is ctx.session

    @router.command("inc")
    async def inc(ctx: Context) -> None:
        current = await ctx.load_session()
        current["n"] = current.get("n", 0) + 1

    @router.command("fresh")
    async def fresh(ctx: Context) -> None:
        ctx.session = {"n": 100}

    @router.command("peek")
    async def peek(ctx: Context) -> None:
        ctx.session.get("n")

    @router.on("other")
    async def sticker(ctx: Context) -> None:
        ctx.state["ignored"] = True

    return router


def sticker(user: int) -> dict[str, Any]:
    update = message(user, "")
    del update["message"]["text"]
    update["message"]["sticker"] = {"file_id": "s", "file_unique_id": "s", "type": "regular"}
    return update


def reads(counts: dict[str, int]) -> int:
    return counts.get("get", 0) + counts.get("get_raw", 0)


def writes(counts: dict[str, int]) -> int:
    return counts.get("set", 0) + counts.get("set_raw", 0) + counts.get("commit", 0)


@pytest.mark.parametrize("isolation", ["local", "distributed"])
async def test_lazy_sessions_read_the_store_only_when_a_handler_loads_them(
    store: BaseSessionStore, isolation: str
) -> None:
    await store.set("1", {"n": 1})
    calls = Calls(store)
    router = lazy_router(store, isolation=isolation)

    ctx = await router.handle(sticker(1))
    assert ctx.state["ignored"] is True
    assert calls.take() == {}, "an untouched lazy session costs no store call, no lease either"

    # Under "distributed" the lease call reads the record with the lease: one round trip, no separate get.
    read, write = ("get_raw", "set_raw") if isolation == "local" else ("lock", "commit")
    ctx = await router.handle(message(1, "/look"))
    assert ctx.state == {"seen": {"n": 1}, "again": True}
    counts = calls.take()
    assert counts.get(read) == 1, counts
    assert reads(counts) + counts.get("lock", 0) == 1, counts
    assert writes(counts) == 0, counts

    await router.handle(message(1, "/inc"))
    counts = calls.take()
    assert (counts.get(read), counts.get(write)) == (1, 1), counts
    assert await store.get("1") == {"n": 2}
    calls.take()

    await router.handle(message(1, "/fresh"))
    counts = calls.take()
    assert reads(counts) == 0, f"a value assigned before any read is written without reading: {counts}"
    assert counts.get(write) == 1, counts
    assert await store.get("1") == {"n": 100}


async def test_reading_a_lazy_session_before_loading_it_is_a_clear_error(store: BaseSessionStore) -> None:
    await store.set("1", {"n": 5})
    router = lazy_router(store)
    with pytest.raises(RouterError, match=r"load_session"):
        await router.handle(message(1, "/peek"))
    assert await store.get("1") == {"n": 5}


async def test_lazy_increments_from_concurrent_updates_are_not_lost(store: BaseSessionStore) -> None:
    router = lazy_router(store)
    await asyncio.gather(*(router.handle(message(1, "/inc", update_id=i)) for i in range(20)))
    assert await store.get("1") == {"n": 20}


async def test_a_lazy_session_on_another_property_is_loaded_by_name(store: BaseSessionStore) -> None:
    await store.set("chat_session:100", {"topic": "tea"})
    calls = Calls(store)
    router = Router()
    router.use(session(store, key="chat", property="chat_session", lazy=True))

    @router.command("topic")
    async def topic(ctx: Context) -> None:
        ctx.state["topic"] = (await ctx.load_session("chat_session"))["topic"]
        ctx.state["attr"] = ctx.chat_session["topic"]

    ctx = await router.handle(message(1, "/topic", chat=100))
    assert ctx.state == {"topic": "tea", "attr": "tea"}
    assert reads(calls.take()) == 1


async def test_loading_a_session_no_middleware_hangs_is_a_clear_error() -> None:
    router = Router()
    router.use(session(InMemorySessionStore(), property="chat_session", lazy=True))

    @router.command("x")
    async def x(ctx: Context) -> None:
        await ctx.load_session("user_session")

    with pytest.raises(RouterError, match=r"no session middleware hangs ctx\.user_session"):
        await router.handle(message(1, "/x"))


# Typed sessions.


class Profile(BaseModel):
    name: str = ""
    visits: int = 0
    tags: list[str] = []


def typed_router(store: BaseSessionStore, **options: Any) -> Router[Profile]:
    router: Router[Profile] = Router()
    router.use(session(store, model=Profile, **options))

    @router.command("visit")
    async def visit(ctx: Context[Profile]) -> None:
        profile = ctx.session if not options.get("lazy") else await ctx.load_session()
        profile.visits += 1
        ctx.state["type"] = type(profile).__name__

    @router.command("look")
    async def look(ctx: Context[Profile]) -> None:
        ctx.state["visits"] = ctx.session.visits

    @router.command("tag")
    async def tag(ctx: Context[Profile]) -> None:
        ctx.session.tags.append(str(ctx.text).split()[1])

    @router.command("forget")
    async def forget(ctx: Context[Profile]) -> None:
        ctx.session = None  # type: ignore[assignment]

    @router.command("wrong")
    async def wrong(ctx: Context[Profile]) -> None:
        ctx.session = {"visits": 3}  # type: ignore[assignment]

    return router


async def test_a_typed_session_is_a_model_instance_saved_only_when_its_encoding_changed(
    store: BaseSessionStore,
) -> None:
    calls = Calls(store)
    router = typed_router(store)
    ctx = await router.handle(message(1, "/look"))
    assert ctx.state["visits"] == 0
    assert writes(calls.take()) == 0, "an untouched new typed session is not written"

    ctx = await router.handle(message(1, "/visit"))
    assert ctx.state["type"] == "Profile"
    assert writes(calls.take()) == 1
    assert await store.get("1") == {"name": "", "visits": 1, "tags": []}

    await router.handle(message(1, "/look"))
    assert writes(calls.take()) == 0, "a typed session read and left alone is not written"

    await router.handle(message(1, "/tag tea"))  # a change nested in a list field is seen
    assert writes(calls.take()) == 1
    assert await store.get("1") == {"name": "", "visits": 1, "tags": ["tea"]}

    await router.handle(message(1, "/forget"))
    assert await store.get("1") is None, "None as the value deletes the session"


async def test_a_stored_session_that_does_not_validate_names_the_key_and_field_and_is_left_as_it_was(
    store: BaseSessionStore,
) -> None:
    await store.set("1", {"name": "ann", "visits": "many"})
    router = typed_router(store)
    with pytest.raises(SessionValidationError) as raised:
        await router.handle(message(1, "/visit"))
    assert raised.value.key == "1"
    assert raised.value.field == "visits"
    assert "'1'" in str(raised.value)
    assert "visits" in str(raised.value)
    assert await store.get("1") == {"name": "ann", "visits": "many"}


async def test_a_session_that_does_not_validate_goes_to_quarantine_when_asked(store: BaseSessionStore) -> None:
    await store.set("1", {"visits": [1, 2]})
    router = typed_router(store, on_decode_error="quarantine", quarantine_key=lambda key: f"bad:{key}")
    await router.handle(message(1, "/visit"))
    assert await store.get("1") == {"name": "", "visits": 1, "tags": []}
    assert await store.get("bad:1") == {"visits": [1, 2]}


async def test_a_value_of_another_type_in_a_typed_session_is_refused_and_nothing_stored(
    store: BaseSessionStore,
) -> None:
    await store.set("1", {"name": "ann", "visits": 2, "tags": []})
    router = typed_router(store)
    with pytest.raises(InvalidValueError, match=r"ctx\.session.*Profile"):
        await router.handle(message(1, "/wrong"))
    assert await store.get("1") == {"name": "ann", "visits": 2, "tags": []}


def rename(value: dict[str, Any]) -> dict[str, Any]:
    return {"name": value.pop("nick", ""), **value}


def count_as_int(value: dict[str, Any]) -> None:
    value["visits"] = int(value.get("visits", 0))


async def test_typed_sessions_with_migrations_ttl_lazy_and_a_property(store: BaseSessionStore) -> None:
    await store.set("profile:1", {"nick": "bo", "visits": "4"})  # version 0: before the model had its shape
    router: Router[Any] = Router()
    router.use(
        session(
            store,
            model=Profile,
            migrations={1: rename, 2: count_as_int},
            ttl=3600,
            lazy=True,
            property="profile",
        )
    )

    @router.command("visit")
    async def visit(ctx: Context[Any]) -> None:
        profile: Profile = await ctx.load_session("profile")
        profile.visits += 1

    await router.handle(message(1, "/visit"))
    assert await store.get("profile:1") == {"$version": 2, "name": "bo", "visits": 5, "tags": []}
    ttl = await store.expires_in("profile:1")  # type: ignore[attr-defined]
    assert ttl is not None
    assert 3500 < ttl <= 3600
    await router.handle(message(2, "/visit"))
    assert await store.get("profile:2") == {"$version": 2, "name": "", "visits": 1, "tags": []}


class Account(BaseModel):
    owner: str
    balance: int = 0


def test_a_model_with_required_fields_needs_an_initial() -> None:
    with pytest.raises(InvalidValueError, match=r"initial.*owner"):
        session(model=Account)
    session(model=Account, initial=lambda: Account(owner="nobody"))
    with pytest.raises(InvalidValueError, match="pydantic model"):
        session(model=dict)  # type: ignore[arg-type]


async def test_a_dict_initial_is_validated_into_the_model() -> None:
    store = InMemorySessionStore()
    router: Router[Account] = Router()
    router.use(session(store, model=Account, initial=lambda: {"owner": "shop"}))

    @router.command("pay")
    async def pay(ctx: Context[Account]) -> None:
        ctx.session.balance += 10

    await router.handle(message(1, "/pay"))
    assert await store.get("1") == {"owner": "shop", "balance": 10}


async def test_a_typed_session_of_an_update_without_a_key_reads_as_new_and_refuses_a_change() -> None:
    store = InMemorySessionStore()
    keyless = {"update_id": 1, "poll": {"id": "p", "question": "?", "options": []}}
    reader: Router[Profile] = Router()
    reader.use(session(store, model=Profile))

    @reader.on("other")
    async def poll(ctx: Context[Profile]) -> None:
        ctx.state["visits"] = ctx.session.visits

    ctx = await reader.handle(keyless)
    assert ctx.state["visits"] == 0

    router: Router[Profile] = Router()
    router.use(session(store, model=Profile))

    @router.on("other")
    async def change(ctx: Context[Profile]) -> None:
        ctx.session.visits = 9

    with pytest.raises(RouterError, match="no session key"):
        await router.handle(keyless)
    assert [key async for key in store.scan()] == []


TYPED_HANDLERS = """
from pydantic import BaseModel

from sessionware.bot import Context, Router, session


class Profile(BaseModel):
    visits: int = 0


router: Router[Profile] = Router()
router.use(session(model=Profile))


@router.command("visit")
async def visit(ctx: Context[Profile]) -> None:
    ctx.session.visits += 1
    reveal_type(ctx.session)
    ctx.session.vistis += 1
    name: str = ctx.session.visits


@router.command("plain")
async def plain(ctx: Context) -> None:
    reveal_type(ctx.session)
"""


@pytest.mark.slow
def test_mypy_knows_the_type_of_a_typed_session_in_handlers(tmp_path: Path) -> None:
    from mypy import api

    source = tmp_path / "typed_bot.py"
    source.write_text(TYPED_HANDLERS)
    out, err, status = api.run(["--strict", "--cache-dir", str(tmp_path / ".mypy"), str(source)])
    assert status == 1, out + err
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(str(source))]
    assert 'note: Revealed type is "typed_bot.Profile"' in lines
    assert any('"Profile" has no attribute "vistis"' in line for line in lines), "a typo in a field is caught"
    assert any('expression has type "int", variable has type "str"' in line for line in lines)
    assert any("Context[dict[str, Any]]" in line and "Context[Profile]" in line for line in lines), (
        "a handler typed for a dict session is refused on a Router[Profile]"
    )
    assert 'note: Revealed type is "dict[str, Any]"' in lines, "an untyped Context keeps the dict session"
    assert len([line for line in lines if line.startswith("error")]) == 3, out
