"""python-telegram-bot's persistence over sessionware: real ``telegram.ext.Application`` objects process updates
(``process_update``, and long polling against the stand-in Bot API), restart over the same store, resume a
``ConversationHandler``, write only what changed (counted at the store), and two instances share one store."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PersistenceInput,
    filters,
)

from sessionware import (
    BaseSessionStore,
    InMemorySessionStore,
    InvalidValueError,
    SessionDecodeError,
    StoreUnavailableError,
    open_store,
)
from sessionware.integrations.telegram import SessionwarePersistence, UnsupportedDataError

from .helpers import Calls, SeedStyleStore
from .telegram_api import TOKEN, BotAPI, callback_update, message_update

App = Application[Any, Any, Any, Any, Any, Any]
SIZE, CONFIRM = range(2)
_update_ids = itertools.count(1)


# -- the bot the tests run ---------------------------------------------------------------------------------------


async def count(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/count``: counts per user, per chat and per bot; replies with a keyboard whose button data is a tuple."""
    assert context.user_data is not None
    assert context.chat_data is not None
    assert update.effective_message
    context.user_data["count"] = context.user_data.get("count", 0) + 1
    context.chat_data["seen"] = True
    context.bot_data["total"] = context.bot_data.get("total", 0) + 1
    n = context.user_data["count"]
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("pick", callback_data=("pick", n, {"n": [n]}))]])
    await update.effective_message.reply_text(f"count: {n}", reply_markup=keyboard)


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/show``: reads only."""
    assert context.user_data is not None
    assert update.effective_message
    await update.effective_message.reply_text(f"count is {context.user_data.get('count', 0)}")


async def setter(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/set <key> <value>``: one key of user_data."""
    assert context.user_data is not None
    assert context.args
    key, value = context.args
    context.user_data[key] = value


async def pick(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a ``/count`` keyboard: the button's data comes back as the tuple it was."""
    query = update.callback_query
    assert query is not None
    assert context.user_data is not None
    await query.answer()
    assert isinstance(query.data, tuple), query.data
    _, n, extra = query.data
    context.user_data["picked"] = [n, extra]


async def plain_pick(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a button with plain string data (no callback data cache)."""
    query = update.callback_query
    assert query is not None
    assert context.user_data is not None
    assert isinstance(query.data, str)
    await query.answer()
    context.user_data["picked"] = query.data


async def order(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message
    await update.effective_message.reply_text("What size?")
    return SIZE


async def size(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message
    assert context.user_data is not None
    context.user_data["size"] = update.effective_message.text
    await update.effective_message.reply_text(f"{update.effective_message.text}? yes or no")
    return CONFIRM


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message
    assert context.user_data is not None
    await update.effective_message.reply_text(f"ordered {context.user_data['size']}")
    return ConversationHandler.END


def build(api: BotAPI, persistence: SessionwarePersistence, *, callback_data: bool = True) -> App:
    """The test bot on ``persistence``, talking to the stand-in Bot API (with the callback data cache by default)."""
    if callback_data and find_spec("cachetools") is None:
        message = "the callback data cache needs python-telegram-bot[callback-data] (cachetools)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    builder = ApplicationBuilder().token(TOKEN).base_url(f"{api.base_url}/bot").persistence(persistence)
    app: App = builder.arbitrary_callback_data(callback_data).build()
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("order", order)],
            states={
                SIZE: [MessageHandler(filters.TEXT & ~filters.COMMAND, size)],
                CONFIRM: [MessageHandler(filters.Regex("^yes$"), confirm)],
            },
            fallbacks=[],
            name="order",
            persistent=True,
        )
    )
    app.add_handler(CommandHandler("count", count))
    app.add_handler(CommandHandler("show", show))
    app.add_handler(CommandHandler("set", setter))
    app.add_handler(CallbackQueryHandler(pick if callback_data else plain_pick))
    return app


async def feed(app: App, data: dict[str, Any]) -> None:
    """Process one update as a webhook would: callback data resolved by the bot, then ``process_update``."""
    update = Update.de_json({**data, "update_id": next(_update_ids)}, app.bot)
    app.bot.insert_callback_data(update)
    await app.process_update(update)


def last_button(api: BotAPI) -> str:
    """The callback data of the button in the last message the bot sent."""
    for sent in reversed(api.sent):
        if "reply_markup" in sent:
            return str(sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    raise AssertionError(f"no keyboard was sent: {api.sent}")


def texts(api: BotAPI) -> list[str]:
    return [str(sent["text"]) for sent in api.sent]


@pytest.fixture
async def api() -> AsyncIterator[BotAPI]:
    async with BotAPI() as server:
        yield server


# -- one application on every backend ----------------------------------------------------------------------------


async def test_messages_and_callbacks_keep_user_chat_and_bot_data(store: BaseSessionStore, api: BotAPI) -> None:
    persistence = SessionwarePersistence(store)
    app = build(api, persistence)
    await app.initialize()
    try:
        await feed(app, message_update(1, "/count"))
        await feed(app, message_update(1, "/count"))
        await feed(app, message_update(2, "/count", chat_id=-100))
        await feed(app, callback_update(1, last_button(api)))
        await feed(app, message_update(1, "/set colour blue"))
        assert texts(api) == ["count: 1", "count: 2", "count: 1"]
        assert api.answered
        assert app.user_data[1]["picked"] == [1, {"n": [1]}]
        await app.update_persistence()
        assert await store.get(persistence.user_key(1)) == {"count": 2, "picked": [1, {"n": [1]}], "colour": "blue"}
        assert await store.get(persistence.user_key(2)) == {"count": 1}
        assert await store.get(persistence.chat_key(1)) == {"seen": True}
        assert await store.get(persistence.chat_key(-100)) == {"seen": True}
        assert await store.get("ptb:bot") == {"total": 3}
        cached = await store.get("ptb:callback_data")
        assert cached is not None
        assert sorted(name.split(":")[0] for name in cached) == ["keyboard"] * 3 + ["query"]  # the press is a query
    finally:
        await app.shutdown()


async def test_plain_callback_data_without_the_cache(store: BaseSessionStore, api: BotAPI) -> None:
    persistence = SessionwarePersistence(store)
    app = build(api, persistence, callback_data=False)
    await app.initialize()
    try:
        await feed(app, callback_update(5, "plain:7"))
        await app.update_persistence()
        assert await store.get(persistence.user_key(5)) == {"picked": "plain:7"}
        assert await store.get(persistence.callback_data_key) is None
    finally:
        await app.shutdown()


async def test_a_restart_restores_every_kind_of_data_and_resumes_the_conversation(
    store: BaseSessionStore, api: BotAPI
) -> None:
    first = build(api, SessionwarePersistence(store))
    await first.initialize()
    await feed(first, message_update(1, "/count"))
    button = last_button(api)
    await feed(first, message_update(1, "/order"))
    await feed(first, message_update(1, "large"))
    await feed(first, message_update(2, "/order", chat_id=-100))
    await feed(first, message_update(3, "/count", chat_id=-100))
    cache = first.bot.callback_data_cache
    assert cache is not None
    keyboards, queries = cache.persistence_data
    user_data = {uid: dict(data) for uid, data in first.user_data.items() if data}
    chat_data = {cid: dict(data) for cid, data in first.chat_data.items() if data}
    await first.shutdown()  # flushes

    persistence = SessionwarePersistence(store)
    second = build(api, persistence)
    await second.initialize()
    try:
        assert {uid: dict(data) for uid, data in second.user_data.items()} == user_data
        assert user_data[1] == {"count": 1, "size": "large"}
        assert {cid: dict(data) for cid, data in second.chat_data.items()} == chat_data
        assert second.bot_data == {"total": 2}
        restored = second.bot.callback_data_cache
        assert restored is not None
        assert restored.persistence_data == (keyboards, queries)
        assert await persistence.get_conversations("order") == {(1, 1): CONFIRM, (-100, 2): SIZE}

        api.sent.clear()
        await feed(second, message_update(1, "yes"))  # user 1 was asked to confirm before the restart
        await feed(second, message_update(2, "small", chat_id=-100))  # user 2 was asked for a size
        await feed(second, callback_update(1, button))  # a keyboard sent before the restart
        assert texts(api) == ["ordered large", "small? yes or no"]
        assert second.user_data[1]["picked"] == [1, {"n": [1]}]
        await second.update_persistence()
        stored = await store.get(persistence.conversation_key("order"))
        assert stored == {"[-100, 2]": CONFIRM}  # user 1's conversation ended and was removed
    finally:
        await second.shutdown()


async def test_polling_against_the_bot_api(store: BaseSessionStore, api: BotAPI) -> None:
    persistence = SessionwarePersistence(store)
    app = build(api, persistence)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        for text in ("/count", "/count", "/order", "medium", "/show"):
            await api.push(message_update(7, text))
        await api.wait_for(lambda a: len(a.sent) == 5)
        assert texts(api) == ["count: 1", "count: 2", "What size?", "medium? yes or no", "count is 2"]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert await store.get(persistence.user_key(7)) == {"count": 2, "size": "medium"}
    assert await store.get(persistence.conversation_key("order")) == {"[7, 7]": CONFIRM}
    assert not api.pending


async def test_only_what_changed_is_written(store: BaseSessionStore, api: BotAPI) -> None:
    calls = Calls(store)  # before the persistence binds the store's methods
    app = build(api, SessionwarePersistence(store), callback_data=False)
    await app.initialize()
    try:
        calls.take()
        await feed(app, message_update(1, "/count"))
        # The bot's, the chat's and the user's record are read before the handler.
        assert calls.take() == {"get_raw": 3}
        await app.update_persistence()
        # User, chat and bot data each changed: each written under its lease (taken and read in one call).
        assert calls.take() == {"lock": 3, "commit": 3}

        await app.update_persistence()
        assert calls.take() == {}  # nothing changed: not a single store call

        await feed(app, message_update(1, "/show"))
        await app.update_persistence()
        assert calls.take() == {"get_raw": 3}  # read before the handler, nothing written

        await feed(app, message_update(1, "/count"))
        await app.update_persistence()
        assert calls.take() == {"get_raw": 3, "lock": 2, "commit": 2}  # the chat's data is unchanged

        await feed(app, message_update(1, "/order"))
        await feed(app, message_update(1, "large"))
        await app.update_persistence()
        # The conversation's record (its two states, one write) and the user's size; nothing else.
        assert calls.take() == {"get_raw": 6, "lock": 2, "commit": 2}
    finally:
        await app.shutdown()
    assert calls.take() == {}  # the shutdown's flush had nothing left to write


async def test_without_refresh_an_update_reads_nothing(api: BotAPI) -> None:
    store = InMemorySessionStore()
    calls = Calls(store)
    app = build(api, SessionwarePersistence(store, refresh=False), callback_data=False)
    await app.initialize()
    try:
        calls.take()
        await feed(app, message_update(1, "/count"))
        assert calls.take() == {}
        await app.update_persistence()
        assert calls.take() == {"lock": 3, "commit": 3}
    finally:
        await app.shutdown()


async def test_many_conversations_of_one_handler_are_written_together(api: BotAPI) -> None:
    store = InMemorySessionStore()
    calls = Calls(store)
    persistence = SessionwarePersistence(store)
    app = build(api, persistence, callback_data=False)
    await app.initialize()
    try:
        for user in range(10, 30):
            await feed(app, message_update(user, "/order"))
        calls.take()
        await app.update_persistence()
        assert calls.take() == {"lock": 1, "commit": 1}  # the 20 new conversations in one write of the record
        stored = await store.get(persistence.conversation_key("order"))
        assert stored == {f"[{user}, {user}]": SIZE for user in range(10, 30)}
    finally:
        await app.shutdown()


# -- what is refused, and what is kept ----------------------------------------------------------------------------


async def test_data_that_is_not_json_is_refused_naming_where_it_is(api: BotAPI) -> None:
    store = InMemorySessionStore()
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    async def remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.user_data is not None
        assert context.args
        what = context.args[0]
        context.user_data["fine"] = what
        if what == "set":
            context.user_data["tags"] = {"a", "b"}
        elif what == "datetime":
            context.user_data["visits"] = [1, {"when": datetime(2026, 1, 1)}]
        elif what == "intkey":
            context.user_data[5] = "five"

    persistence = SessionwarePersistence(store)
    app = build(api, persistence, callback_data=False)
    app.add_handler(CommandHandler("remember", remember), group=1)
    app.add_error_handler(on_error)
    await app.initialize()
    try:
        for user, what in ((1, "set"), (2, "datetime"), (3, "intkey")):
            await feed(app, message_update(user, f"/remember {what}"))
        await feed(app, message_update(4, "/count"))
        await feed(app, message_update(1, "/count"))  # a bad value kept in memory does not stop the next update
        await app.update_persistence()
        messages = sorted(str(error) for error in errors)
        assert all(isinstance(error, UnsupportedDataError) for error in errors), errors
        only = "only dict, list, str, int, float, bool and None are stored"
        assert messages == [
            f"user_data[1]['tags'] is a set; {only}",
            f"user_data[2]['visits'][1]['when'] is a datetime; {only}",
            "user_data[3] has a non-str key 5 (int); keys must be str",
        ]
        for user in (1, 2, 3):
            assert await store.get(persistence.user_key(user)) is None  # nothing of a refused record is written
        assert await store.get(persistence.user_key(4)) == {"count": 1}  # the rest of the flush still is
        app.user_data[1].pop("tags")
        await feed(app, message_update(1, "/show"))
        await app.update_persistence()
        assert await store.get(persistence.user_key(1)) == {"fine": "set", "count": 1}
    finally:
        await app.shutdown()


async def test_a_write_the_store_refused_is_reported_and_made_again_at_shutdown(api: BotAPI) -> None:
    store = InMemorySessionStore()
    commit, failures = store.commit, [StoreUnavailableError("memory commit failed: the test made it fail")] * 2

    async def failing_commit(*args: Any, **kwargs: Any) -> int:
        if failures:
            raise failures.pop()
        return await commit(*args, **kwargs)

    store.commit = failing_commit  # type: ignore[method-assign]
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    persistence = SessionwarePersistence(store)
    app = build(api, persistence, callback_data=False)
    app.add_error_handler(on_error)
    await app.initialize()
    await feed(app, message_update(1, "/order"))
    await feed(app, message_update(2, "/set colour red"))
    await app.update_persistence()
    assert [type(error) for error in errors] == [StoreUnavailableError] * 2  # reported, not swallowed
    assert await store.get(persistence.user_key(2)) is None
    assert await store.get(persistence.conversation_key("order")) is None
    await app.shutdown()  # nothing is marked any more; the flush writes what was refused
    assert await store.get(persistence.user_key(2)) == {"colour": "red"}
    assert await store.get(persistence.conversation_key("order")) == {"[1, 1]": SIZE}


async def test_undecodable_stored_data_stops_the_start_and_is_left_alone(api: BotAPI) -> None:
    store = InMemorySessionStore()
    await store.set_raw("ptb:user:5", b"{not json")
    app = build(api, SessionwarePersistence(store), callback_data=False)
    with pytest.raises(SessionDecodeError, match="ptb:user:5"):
        await app.initialize()
    assert await store.get_raw("ptb:user:5") == b"{not json"


async def test_callback_data_converts_losslessly() -> None:
    store = InMemorySessionStore()
    buttons: dict[str, Any] = {
        "b1": ("pick", 1, (2.5, None), [("x",)]),
        "b2": {"$tuple": [1, 2]},  # a dict that looks like our tag stays a dict
        "b3": {"$dict": {"k": (1,)}},
        "b4": "plain",
    }
    data = ([("kb2", 20.0, {"b4": "plain"}), ("kb1", 10.5, buttons)], {"query1": "kb1"})
    persistence = SessionwarePersistence(store)
    await persistence.update_callback_data(data)
    again = await SessionwarePersistence(store).get_callback_data()
    assert again == ([data[0][1], data[0][0]], data[1])  # least recently used first
    assert isinstance(again[0][0][2]["b1"], tuple)
    assert isinstance(again[0][0][2]["b1"][3][0], tuple)
    with pytest.raises(UnsupportedDataError, match=r"callback_data\['keyboard:kb3'\]\[1\]\['b'\] is a set"):
        await persistence.update_callback_data(([("kb3", 1.0, {"b": {1}})], {}))


def test_a_store_that_cannot_list_its_keys_is_refused_unless_no_user_or_chat_data_is_kept() -> None:
    with pytest.raises(InvalidValueError, match="ScannableStore"):
        SessionwarePersistence(SeedStyleStore())
    kept = PersistenceInput(user_data=False, chat_data=False)
    persistence = SessionwarePersistence(SeedStyleStore(), store_data=kept)
    assert persistence.updates.name == "local"
    with pytest.raises(InvalidValueError, match="namespace"):
        SessionwarePersistence(InMemorySessionStore(), namespace="")


def test_without_python_telegram_bot_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionware import MissingExtraError

    for name in [m for m in sys.modules if m == "telegram" or m.startswith("telegram.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "sessionware.integrations.telegram")
    with pytest.raises(MissingExtraError, match=r"pip install 'sessionware\[telegram\]'"):
        import sessionware.integrations.telegram  # noqa: F401


# -- two instances on one store -----------------------------------------------------------------------------------


async def test_two_instances_merge_per_entry_and_the_last_flush_wins_an_entry_both_changed(
    store_url: str, api: BotAPI
) -> None:
    a = build(api, SessionwarePersistence(store_url), callback_data=False)
    b = build(api, SessionwarePersistence(store_url), callback_data=False)
    await a.initialize()
    await b.initialize()
    reader = open_store(store_url)
    try:

        async def user(uid: int) -> Any:
            return await reader.get(f"ptb:user:{uid}")

        # Different users on the two instances, flushed at the same moment: neither overwrites the other;
        # bot_data's "total" was changed on both (to 1): the later flush wins that entry.
        await feed(a, message_update(1, "/count"))
        await feed(b, message_update(2, "/count"))
        a.bot_data["from_a"] = True
        b.bot_data["from_b"] = True
        await asyncio.gather(a.update_persistence(), b.update_persistence())
        assert (await user(1), await user(2)) == ({"count": 1}, {"count": 1})
        assert await reader.get("ptb:bot") == {"total": 1, "from_a": True, "from_b": True}

        # The same user on both, one after the other with a flush in between: each sees the other's count.
        await feed(b, message_update(1, "/count"))
        await b.update_persistence()
        await feed(a, message_update(1, "/count"))
        await a.update_persistence()
        assert await user(1) == {"count": 3}
        assert a.bot_data == {"total": 3, "from_a": True, "from_b": True}  # b's total and from_b taken in

        # The same user on both between flushes, different keys: both kept.
        await feed(a, message_update(1, "/set from a"))
        await feed(b, message_update(1, "/set from b"))
        await feed(b, message_update(1, "/set only_b yes"))
        await a.update_persistence()
        await b.update_persistence()
        assert await user(1) == {"count": 3, "from": "b", "only_b": "yes"}
        await feed(a, message_update(1, "/show"))
        assert a.user_data[1] == {"count": 3, "from": "b", "only_b": "yes"}

        # The same key of the same user on both between flushes: the last flush wins, one increment is lost.
        await feed(a, message_update(1, "/count"))
        await feed(b, message_update(1, "/count"))
        await b.update_persistence()
        await a.update_persistence()
        assert (await user(1))["count"] == 4

        # A drop on one instance reaches the other before its next handler.
        a.drop_user_data(2)
        await a.update_persistence()
        assert await user(2) is None
        await feed(b, message_update(2, "/count"))
        assert b.user_data[2] == {"count": 1}

        # Conversations of one handler on both instances: both kept, and a restart resumes each.
        await feed(a, message_update(5, "/order"))
        await feed(b, message_update(6, "/order"))
        await asyncio.gather(a.update_persistence(), b.update_persistence())
    finally:
        await a.shutdown()
        await b.shutdown()
    third = build(api, SessionwarePersistence(store_url), callback_data=False)
    await third.initialize()
    try:
        api.sent.clear()
        await feed(third, message_update(5, "large"))
        await feed(third, message_update(6, "small"))
        assert texts(api) == ["large? yes or no", "small? yes or no"]
        assert third.user_data[1]["count"] == 4
    finally:
        await third.shutdown()
        await reader.close()


async def test_a_store_opened_from_a_url_is_closed_by_the_shutdown_and_opened_again(
    tmp_path: Path, api: BotAPI
) -> None:
    persistence = SessionwarePersistence(f"sqlite:///{tmp_path}/bot.db")
    app = build(api, persistence, callback_data=False)
    for expected in (1, 2):
        await app.initialize()
        await feed(app, message_update(1, "/count"))
        await app.shutdown()
        store = open_store(f"sqlite:///{tmp_path}/bot.db")
        assert await store.get("ptb:user:1") == {"count": expected}
        await store.close()
