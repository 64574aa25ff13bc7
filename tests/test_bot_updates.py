"""Every kind of Telegram update reaches the right session; topics have presets; an update without a key
refuses changes instead of losing them; a nested update of the same session fails at once; session() takes
a store URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sessionware import Context, NestedUpdateError, Router, TelegramAdapter, open_store, session

ALICE = {"id": 101, "is_bot": False, "first_name": "Alice"}
GROUP = {"id": -100200, "type": "supergroup", "title": "Forum"}
CHANNEL = {"id": -100300, "type": "channel", "title": "News"}


def msg(**fields: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1_780_000_000, **fields}


# (update, kind, sender id, chat id, text, thread id)
UPDATES: list[tuple[dict[str, Any], str, int | None, int | None, str | None, int | None]] = [
    ({"message": msg(**{"from": ALICE, "chat": GROUP, "text": "hi"})}, "text", 101, -100200, "hi", None),
    (
        {"edited_message": msg(**{"from": ALICE, "chat": GROUP, "text": "/edit x"})},
        "command",
        101,
        -100200,
        "/edit x",
        None,
    ),
    (
        {"message": msg(**{"from": ALICE, "chat": GROUP, "caption": "/start look", "photo": [{"file_id": "p"}]})},
        "command",
        101,
        -100200,
        "/start look",
        None,
    ),
    (
        {"message": msg(**{"from": ALICE, "chat": GROUP, "text": "in a topic", "message_thread_id": 7})},
        "text",
        101,
        -100200,
        "in a topic",
        7,
    ),
    ({"channel_post": msg(chat=CHANNEL, text="news")}, "text", None, -100300, "news", None),
    ({"edited_channel_post": msg(chat=CHANNEL, text="fixed")}, "text", None, -100300, "fixed", None),
    ({"business_message": msg(**{"from": ALICE, "chat": GROUP, "text": "b2b"})}, "text", 101, -100200, "b2b", None),
    ({"edited_business_message": msg(**{"from": ALICE, "chat": GROUP, "text": "b"})}, "text", 101, -100200, "b", None),
    (
        {"callback_query": {"id": "1", "from": ALICE, "data": "like", "message": msg(chat=GROUP, message_thread_id=7)}},
        "callback",
        101,
        -100200,
        "like",
        7,
    ),
    ({"inline_query": {"id": "q", "from": ALICE, "query": "cats", "offset": ""}}, "other", 101, None, "cats", None),
    ({"chosen_inline_result": {"result_id": "r", "from": ALICE, "query": "cats"}}, "other", 101, None, "cats", None),
    ({"shipping_query": {"id": "s", "from": ALICE, "invoice_payload": "p"}}, "other", 101, None, None, None),
    ({"pre_checkout_query": {"id": "c", "from": ALICE, "currency": "EUR"}}, "other", 101, None, None, None),
    ({"poll_answer": {"poll_id": "p", "user": ALICE, "option_ids": [0]}}, "other", 101, None, None, None),
    ({"my_chat_member": {"chat": GROUP, "from": ALICE, "date": 1}}, "other", 101, -100200, None, None),
    ({"chat_member": {"chat": GROUP, "from": ALICE, "date": 1}}, "other", 101, -100200, None, None),
    ({"chat_join_request": {"chat": GROUP, "from": ALICE, "date": 1}}, "other", 101, -100200, None, None),
    (
        {"message_reaction": {"chat": GROUP, "message_id": 1, "user": ALICE, "date": 1}},
        "other",
        101,
        -100200,
        None,
        None,
    ),
    (
        {"message_reaction_count": {"chat": GROUP, "message_id": 1, "date": 1, "reactions": []}},
        "other",
        None,
        -100200,
        None,
        None,
    ),
    ({"chat_boost": {"chat": GROUP, "boost": {}}}, "other", None, -100200, None, None),
    ({"removed_chat_boost": {"chat": GROUP, "boost_id": "b"}}, "other", None, -100200, None, None),
    ({"business_connection": {"id": "bc", "user": ALICE, "user_chat_id": 101}}, "other", 101, None, None, None),
    ({"poll": {"id": "p", "question": "?"}}, "other", None, None, None, None),
]


@pytest.mark.parametrize(("update", "kind", "sender", "chat", "text", "thread"), UPDATES)
def test_the_telegram_adapter_reads_every_update_type(
    update: dict[str, Any], kind: str, sender: int | None, chat: int | None, text: str | None, thread: int | None
) -> None:
    incoming = TelegramAdapter().parse({"update_id": 1, **update})
    assert incoming.kind == kind
    assert (incoming.from_user or {}).get("id") == sender
    assert (incoming.chat or {}).get("id") == chat
    assert incoming.text == text
    assert incoming.thread_id == thread
    assert incoming.type == next(iter(update))


async def test_a_command_in_a_caption_is_routed_as_a_command() -> None:
    router = Router()
    seen: list[Any] = []

    @router.command("start")
    async def start(ctx: Context) -> None:
        seen.append(ctx.params["args"])

    await router.handle({"update_id": 1, **UPDATES[2][0]})
    assert seen == ["look"]


async def test_topic_presets_keep_one_session_per_topic() -> None:
    from sessionware import InMemorySessionStore

    store = InMemorySessionStore()
    router = Router()
    router.use(session(store, key="user_in_topic"))

    @router.text()
    async def count(ctx: Context) -> None:
        ctx.session["n"] = ctx.session.get("n", 0) + 1

    def in_topic(thread: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"from": ALICE, "chat": GROUP, "text": "x"}
        if thread is not None:
            fields["message_thread_id"] = thread
        return {"update_id": 1, "message": msg(**fields)}

    for thread in (7, 7, 9, None):
        await router.handle(in_topic(thread))
    assert await store.get("-100200:7:101") == {"n": 2}
    assert await store.get("-100200:9:101") == {"n": 1}
    assert await store.get("-100200:101") == {"n": 1}
    topics = Router()
    topics.use(session(store, key="chat_topic"))
    topics.text()(count)
    await topics.handle(in_topic(9))
    await topics.handle(in_topic(None))
    assert await store.get("-100200:9") == {"n": 1}
    assert await store.get("-100200") == {"n": 1}


async def test_an_update_without_a_sender_refuses_changes_to_a_per_user_session() -> None:
    from sessionware import InMemorySessionStore, RouterError

    store = InMemorySessionStore()
    router = Router()
    router.use(session(store))

    @router.text()
    async def write(ctx: Context) -> None:
        ctx.session["seen"] = True

    @router.on("other")
    async def read(ctx: Context) -> None:
        ctx.state["read"] = dict(ctx.session)

    with pytest.raises(RouterError, match="no session key"):
        await router.handle({"update_id": 1, **UPDATES[4][0]})  # a channel post: no sender
    ctx = await router.handle({"update_id": 2, **UPDATES[-1][0]})  # a poll: no sender, only read
    assert ctx.state["read"] == {}
    replaced = Router()
    replaced.use(session(store))

    @replaced.text()
    async def assign(ctx: Context) -> None:
        ctx.session = {"replaced": True}

    with pytest.raises(RouterError, match="no session key"):
        await replaced.handle({"update_id": 3, **UPDATES[4][0]})
    assert len(store) == 0


async def test_a_nested_update_of_the_same_session_fails_at_once() -> None:
    middleware = session()
    router = Router()
    router.use(middleware)

    @router.command("outer")
    async def outer(ctx: Context) -> None:
        ctx.session["outer"] = True
        await router.handle({"update_id": 2, "message": msg(**{"from": ALICE, "chat": GROUP, "text": "/inner"})})

    @router.command("other")
    async def other(ctx: Context) -> None:
        # Another user's session from inside an update is fine.
        await router.handle({"update_id": 3, "message": msg(**{"from": {"id": 202}, "chat": GROUP, "text": "/inner"})})

    @router.command("inner")
    async def inner(ctx: Context) -> None:
        ctx.session["inner"] = True

    with pytest.raises(NestedUpdateError, match="already being updated by this task"):
        await asyncio.wait_for(
            router.handle({"update_id": 1, "message": msg(**{"from": ALICE, "chat": GROUP, "text": "/outer"})}), 5
        )
    await router.handle({"update_id": 4, "message": msg(**{"from": ALICE, "chat": GROUP, "text": "/other"})})
    store = middleware.store
    assert await store.get("202") == {"inner": True}
    assert await store.get("101") is None, "the outer update failed, so it wrote nothing"


async def test_session_takes_a_store_url_and_closes_what_it_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    middleware = session(url)
    router = Router()
    router.use(middleware)

    @router.text()
    async def note(ctx: Context) -> None:
        ctx.session["text"] = ctx.text

    await router.handle({"update_id": 1, "message": msg(**{"from": ALICE, "chat": GROUP, "text": "kept"})})
    await middleware.close()
    reopened = open_store(url)
    try:
        assert await reopened.get("101") == {"text": "kept"}
    finally:
        await reopened.close()
