"""aiogram over sessionware: ``SessionwareStorage`` and ``SessionwareEventIsolation`` under a real Dispatcher.

aiogram's own storage and isolation cases (its ``tests/test_fsm/storage``)
are restated first and run on every backend; then what ours adds: one record
per key, exact round trips, TTLs, write-on-change, the lock held and renewed
for the handler with its write fenced, and a bounded lock table. The
Dispatcher is real throughout: updates fed by hand (messages, callbacks,
forum topics, a StatesGroup flow, scenes, a restart) and a Bot long-polling
the stand-in Bot API server. The slow test runs four processes against one
store and counts what each isolation lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import DataNotDictLikeError
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.scene import Scene, SceneRegistry, on
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import DisabledEventIsolation, MemoryStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import CallbackQuery, Message, Update

import sessionware.integrations.aiogram as integration
from sessionware import BaseSessionStore, InMemorySessionStore, InvalidValueError, LeaseExpiredError, LockError
from sessionware.integrations.aiogram import SessionwareEventIsolation, SessionwareStorage
from sessionware.isolation import shared_locks
from sessionware.store import ExpiringStore, LockingStore, VersionedStore
from sessionware.testing import Advance, FakeClock
from tests.helpers import SeedStyleStore, import_without, run_module_example
from tests.telegram_api import TOKEN, BotAPI, callback_update, message_update

REPO = Path(__file__).resolve().parents[1]
BOT_ID = int(TOKEN.split(":")[0])
KEY = StorageKey(bot_id=BOT_ID, chat_id=-1, user_id=2)

_update_ids = itertools.count(1)


def update(payload: dict[str, Any]) -> Update:
    """An aiogram Update from one of the stand-in's payloads."""
    return Update.model_validate({"update_id": next(_update_ids), **payload})


def user_key(user: int, *, chat: int | None = None, thread: int | None = None) -> StorageKey:
    return StorageKey(bot_id=BOT_ID, chat_id=chat or user, user_id=user, thread_id=thread)


@pytest.fixture
async def storage(store: BaseSessionStore) -> AsyncIterator[SessionwareStorage]:
    s = SessionwareStorage(store)
    yield s
    await s.close()


@pytest.fixture
async def api() -> AsyncIterator[BotAPI]:
    async with BotAPI() as server:
        yield server


@pytest.fixture
async def bot(api: BotAPI) -> AsyncIterator[Bot]:
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
    yield b
    await b.session.close()


def texts(api: BotAPI) -> list[str]:
    return [str(sent["text"]) for sent in api.sent]


# -- aiogram's storage and isolation cases, restated ----------------------------------------------


class TestAiogramCases:
    """What aiogram asks of every storage and isolation (its test_storages.py and test_isolation.py)."""

    async def test_a_state_is_none_until_set_and_none_again_once_cleared(self, storage: SessionwareStorage) -> None:
        assert await storage.get_state(KEY) is None
        await storage.set_state(KEY, "state")
        assert await storage.get_state(KEY) == "state"
        await storage.set_state(KEY, None)
        assert await storage.get_state(KEY) is None

    async def test_data_replaces_reads_by_value_with_defaults_and_clears(self, storage: SessionwareStorage) -> None:
        assert await storage.get_data(KEY) == {}
        assert await storage.get_value(KEY, "foo") is None
        assert await storage.get_value(KEY, "foo", "baz") == "baz"

        await storage.set_data(KEY, {"foo": "bar"})
        assert await storage.get_data(KEY) == {"foo": "bar"}
        assert await storage.get_value(KEY, "foo") == "bar"
        assert await storage.get_value(KEY, "foo", "baz") == "bar"

        await storage.set_data(KEY, {})
        assert await storage.get_data(KEY) == {}
        assert await storage.get_value(KEY, "foo") is None
        assert await storage.get_value(KEY, "foo", "baz") == "baz"

    async def test_a_typed_dict_is_data_and_a_non_dict_is_refused(self, storage: SessionwareStorage) -> None:
        class Order(TypedDict, total=False):
            foo: str
            bar: str

        await storage.set_data(KEY, Order(foo="bar", bar="baz"))
        assert await storage.get_data(KEY) == {"foo": "bar", "bar": "baz"}
        assert await storage.get_value(KEY, "foo", "baz") == "bar"
        with pytest.raises(DataNotDictLikeError):
            await storage.set_data(KEY, ())  # type: ignore[arg-type]
        assert await storage.get_data(KEY) == {"foo": "bar", "bar": "baz"}

    async def test_update_data_merges_like_dict_update_and_returns_the_result(
        self, storage: SessionwareStorage
    ) -> None:
        assert await storage.get_data(KEY) == {}
        assert await storage.update_data(KEY, {"foo": "bar"}) == {"foo": "bar"}
        assert await storage.update_data(KEY, {}) == {"foo": "bar"}
        assert await storage.get_data(KEY) == {"foo": "bar"}
        assert await storage.update_data(KEY, {"baz": "spam"}) == {"foo": "bar", "baz": "spam"}
        assert await storage.get_data(KEY) == {"foo": "bar", "baz": "spam"}
        assert await storage.update_data(KEY, {"baz": "test"}) == {"foo": "bar", "baz": "test"}
        assert await storage.get_data(KEY) == {"foo": "bar", "baz": "test"}

    async def test_the_isolation_lock_can_be_entered_and_closed(self, store: BaseSessionStore) -> None:
        isolation = SessionwareEventIsolation(store)
        async with isolation.lock(KEY):
            pass
        await isolation.close()

    async def test_create_isolation_shares_the_store_and_the_key_builder(self, store: BaseSessionStore) -> None:
        builder = DefaultKeyBuilder(prefix="bot", with_bot_id=True, with_destiny=True)
        storage = SessionwareStorage(store, key_builder=builder)
        isolation = storage.create_isolation()
        assert isinstance(isolation, BaseEventIsolation)
        assert isolation.store is storage.store
        assert isolation.key_builder is builder
        assert isolation.isolation == "distributed"  # every sessionware backend has leases
        assert SessionwareEventIsolation(store).key_builder is not None


# -- the storage ----------------------------------------------------------------------------------


async def test_state_and_data_are_one_record_under_the_built_key(
    storage: SessionwareStorage, store: BaseSessionStore
) -> None:
    record = f"fsm:{BOT_ID}:-1:2:default"
    assert storage.record_key(KEY) == record
    await storage.set_state(KEY, "Signup:name")
    await storage.update_data(KEY, {"name": "Ann"})
    assert await store.get(record) == {"state": "Signup:name", "data": {"name": "Ann"}}
    await storage.set_state(KEY, None)
    assert await store.get(record) == {"data": {"name": "Ann"}}
    await storage.set_data(KEY, {})
    assert await store.get(record) is None  # nothing left: the record is deleted


async def test_every_part_of_the_storage_key_keeps_its_own_record(storage: SessionwareStorage) -> None:
    base = StorageKey(bot_id=1, chat_id=10, user_id=100)
    variants = [
        base,
        StorageKey(bot_id=2, chat_id=10, user_id=100),
        StorageKey(bot_id=1, chat_id=11, user_id=100),
        StorageKey(bot_id=1, chat_id=10, user_id=101),
        StorageKey(bot_id=1, chat_id=10, user_id=100, thread_id=5),
        StorageKey(bot_id=1, chat_id=10, user_id=100, business_connection_id="bc-1"),
        StorageKey(bot_id=1, chat_id=10, user_id=100, destiny="scenes_history"),
    ]
    for n, key in enumerate(variants):
        await storage.set_state(key, f"s{n}")
        await storage.set_data(key, {"n": n})
    for n, key in enumerate(variants):
        assert await storage.get_state(key) == f"s{n}"
        assert await storage.get_data(key) == {"n": n}
    assert len({storage.record_key(key) for key in variants}) == len(variants)
    assert storage.record_key(variants[5]) == "fsm:1:bc-1:10:100:default"


async def test_a_state_object_is_stored_by_its_name(storage: SessionwareStorage) -> None:
    class Signup(StatesGroup):
        name = State()

    await storage.set_state(KEY, Signup.name)
    assert await storage.get_state(KEY) == "Signup:name"
    with pytest.raises(InvalidValueError, match="state must be a str"):
        await storage.set_state(KEY, 42)  # type: ignore[arg-type]


async def test_data_round_trips_exactly_and_non_json_is_refused_with_nothing_written(
    storage: SessionwareStorage,
) -> None:
    data = {
        "name": "Zoë 🐍",
        "big": 2**63 + 1,
        "ratio": 0.1,
        "none": None,
        "flags": [True, False, None],
        "nested": {"list": [1, [2, {"deep": "x"}]], "empty": {}},
        "": "empty key",
    }
    await storage.set_data(KEY, data)
    back = await storage.get_data(KEY)
    assert back == data
    assert json.dumps(back) == json.dumps(data)  # the same types, in the same order
    back["nested"]["list"].append("changed")
    assert await storage.get_data(KEY) == data  # a copy: changing it changes nothing stored

    for bad, where in (
        ({"when": time}, "$['when']"),
        ({"pair": (1, 2)}, "$['pair']"),
        ({"ids": {1, 2}}, "$['ids']"),
        ({"x": float("nan")}, "$['x']"),
        ({"answers": {0: "a"}}, "$['answers']"),
        ({"raw": b"\x00"}, "$['raw']"),
    ):
        with pytest.raises(InvalidValueError) as caught:
            await storage.set_data(KEY, bad)
        assert caught.value.path == where
        with pytest.raises(InvalidValueError):
            await storage.update_data(KEY, bad)
    assert await storage.get_data(KEY) == data


async def test_an_unchanged_write_writes_nothing(storage: SessionwareStorage, store: BaseSessionStore) -> None:
    assert isinstance(store, VersionedStore)
    record = storage.record_key(KEY)
    await storage.set_state(KEY, "a")
    await storage.update_data(KEY, {"n": 1})
    before = await store.get_versioned(record)
    await storage.set_state(KEY, "a")
    await storage.update_data(KEY, {"n": 1})
    await storage.set_data(KEY, {"n": 1})
    assert await store.get_versioned(record) == before


async def test_update_data_from_many_tasks_loses_no_key(storage: SessionwareStorage) -> None:
    await asyncio.gather(*(storage.update_data(KEY, {f"k{n}": n}) for n in range(40)))
    assert await storage.get_data(KEY) == {f"k{n}": n for n in range(40)}


async def test_state_and_data_expire_each_after_their_own_ttl(
    store: BaseSessionStore, backend: str, clock: FakeClock, advance: Advance
) -> None:
    # Memory runs on the fake clock (the store's and the storage's); the servers on real time.
    storage = SessionwareStorage(store, state_ttl=0.5, data_ttl=1.0, clock=clock if backend == "memory" else time.time)
    await storage.set_state(KEY, "asking")
    await storage.set_data(KEY, {"name": "Ann"})
    record = storage.record_key(KEY)
    assert isinstance(store, ExpiringStore)
    left = await store.expires_in(record)
    assert left is not None
    assert 0.5 < left <= 1.0  # the record lasts as long as its longest-lived part
    await advance(0.75)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {"name": "Ann"}
    await storage.update_data(KEY, {"age": 33})  # a write of the data starts its TTL again
    await advance(0.5)
    assert await storage.get_data(KEY) == {"name": "Ann", "age": 33}
    await advance(0.75)
    assert await storage.get_data(KEY) == {}
    assert await store.get(record) is None


async def test_ttls_need_a_store_that_takes_one() -> None:
    with pytest.raises(InvalidValueError, match="state_ttl cannot be used: SeedStyleStore"):
        SessionwareStorage(SeedStyleStore(), state_ttl=60)
    with pytest.raises(InvalidValueError, match="data_ttl must be a positive"):
        SessionwareStorage(InMemorySessionStore(), data_ttl=0)
    storage = SessionwareStorage(SeedStyleStore())  # without TTLs, the bare seed contract is enough
    await storage.update_data(KEY, {"a": 1})
    assert await storage.get_data(KEY) == {"a": 1}
    assert storage.updates.name == "local"


async def test_a_record_that_is_not_an_fsm_record_is_refused(
    storage: SessionwareStorage, store: BaseSessionStore
) -> None:
    from sessionware import SessionDecodeError

    await store.set(storage.record_key(KEY), {"visits": 3})
    with pytest.raises(SessionDecodeError, match="not an aiogram FSM record"):
        await storage.get_state(KEY)
    with pytest.raises(SessionDecodeError):
        await storage.set_state(KEY, "x")
    assert await store.get(storage.record_key(KEY)) == {"visits": 3}


async def test_close_closes_only_a_store_opened_from_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    class Passed(InMemorySessionStore):
        async def close(self) -> None:
            closed.append("passed")

    passed = Passed()
    await SessionwareStorage(passed).close()
    await SessionwareEventIsolation(passed).close()
    assert closed == []

    for owner in (SessionwareStorage(f"sqlite:///{tmp_path}/a.db"), SessionwareEventIsolation("memory://")):
        opened = owner.store
        assert isinstance(opened, BaseSessionStore)
        original = opened.close

        async def close(original: Any = original) -> None:
            closed.append("opened")
            await original()

        monkeypatch.setattr(opened, "close", close)
        await owner.close()
    assert closed == ["opened", "opened"]
    with pytest.raises(InvalidValueError, match="store must be a SessionStore or a store URL"):
        SessionwareStorage(42)  # type: ignore[arg-type]


# -- the event isolation --------------------------------------------------------------------------


async def test_the_lock_runs_one_key_at_a_time_and_other_keys_freely(
    storage: SessionwareStorage,
) -> None:
    isolation = storage.create_isolation()
    events: list[str] = []

    async def handle(key: StorageKey, name: str) -> None:
        async with isolation.lock(key):
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    other = user_key(3)
    await asyncio.gather(handle(KEY, "a"), handle(KEY, "b"), handle(other, "c"))
    assert events.index("a out") < events.index("b in")
    assert events.index("c in") < events.index("a out")  # another key did not wait


async def test_the_lock_table_holds_only_keys_in_use(storage: SessionwareStorage, store: BaseSessionStore) -> None:
    isolation = storage.create_isolation()

    async def handle(user: int) -> None:
        async with isolation.lock(user_key(user)):
            await storage.update_data(user_key(user), {"seen": True})
            await asyncio.sleep(0)

    await asyncio.gather(*(handle(user) for user in range(300)))
    await asyncio.gather(*(handle(user % 7) for user in range(50)))
    assert len(shared_locks(store)) == 0
    assert await storage.get_data(user_key(299)) == {"seen": True}


async def test_writes_under_the_lock_are_written_once_when_the_handler_ends(
    storage: SessionwareStorage, store: BaseSessionStore
) -> None:
    isolation = storage.create_isolation()
    record = storage.record_key(KEY)
    async with isolation.lock(KEY):
        await storage.set_state(KEY, "Signup:age")
        await storage.update_data(KEY, {"name": "Ann"})
        await storage.update_data(KEY, {"age": 33})
        assert await storage.get_state(KEY) == "Signup:age"  # the handler sees its own writes at once
        assert await storage.get_data(KEY) == {"name": "Ann", "age": 33}
        assert await store.get(record) is None  # ... the store sees them when it ends
    assert await store.get(record) == {"state": "Signup:age", "data": {"name": "Ann", "age": 33}}


async def test_the_lease_is_held_and_renewed_while_the_handler_runs(
    storage: SessionwareStorage, store: BaseSessionStore
) -> None:
    assert isinstance(store, LockingStore)
    isolation = storage.create_isolation(lease=0.3, lock_wait=0)
    record = storage.record_key(KEY)
    async with isolation.lock(KEY):
        await storage.set_state(KEY, "mine")
        await asyncio.sleep(1.0)  # three lease lengths: only renewals keep it
        with pytest.raises(LockError):
            await store.lock(record, lease=1, wait=0)  # as another process would
    assert await storage.get_state(KEY) == "mine"
    locked = await store.lock(record, lease=1, wait=0)  # released at the end
    await store.unlock(locked.lease)


async def test_a_write_after_the_lease_was_lost_is_refused(
    storage: SessionwareStorage, store: BaseSessionStore
) -> None:
    assert isinstance(store, LockingStore)
    leases = store
    isolation = storage.create_isolation(lease=0.3)
    record = storage.record_key(KEY)
    await storage.set_state(KEY, "before")

    async def stalls() -> None:
        async with isolation.lock(KEY):
            # The process stalls past its lease (the loop is blocked, so no renewal runs)...
            time.sleep(0.5)  # noqa: ASYNC251 - the stall is the point
            # ... and another process takes the key and writes.
            locked = await leases.lock(record, lease=5, wait=0)
            await leases.commit(locked.lease, store.codec.encode({"state": "theirs"}))
            await storage.set_state(KEY, "ours")

    with pytest.raises(LeaseExpiredError):
        await stalls()
    assert await storage.get_state(KEY) == "theirs"


async def test_a_handler_that_raises_keeps_what_it_set_and_a_cancelled_one_writes_nothing(
    storage: SessionwareStorage,
) -> None:
    isolation = storage.create_isolation()

    async def fails() -> None:
        async with isolation.lock(KEY):
            await storage.set_state(KEY, "set before the error")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await fails()
    assert await storage.get_state(KEY) == "set before the error"

    inside = asyncio.Event()

    async def hangs() -> None:
        async with isolation.lock(KEY):
            await storage.set_state(KEY, "never written")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hangs())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await storage.get_state(KEY) == "set before the error"
    async with asyncio.timeout(1), isolation.lock(KEY):  # released: taken again at once
        pass


async def test_without_leases_the_lock_is_in_process_only() -> None:
    store = SeedStyleStore()
    storage = SessionwareStorage(store)
    isolation = storage.create_isolation(lease=0.1)
    assert isolation.isolation == "local"
    order: list[int] = []

    async def handle(n: int) -> None:
        async with isolation.lock(KEY):
            data = await storage.get_data(KEY)
            await asyncio.sleep(0.01)
            await storage.set_data(KEY, {"count": data.get("count", 0) + 1})
            order.append(n)

    await asyncio.gather(*(handle(n) for n in range(10)))
    assert await storage.get_data(KEY) == {"count": 10}
    assert order == list(range(10))


async def test_a_storage_refuses_an_isolation_over_another_store_or_key_builder() -> None:
    store = InMemorySessionStore()
    storage = SessionwareStorage(store)
    for isolation in (
        SessionwareEventIsolation(InMemorySessionStore()),
        SessionwareEventIsolation(store, key_builder=DefaultKeyBuilder(prefix="x", with_destiny=True)),
    ):
        async with isolation.lock(KEY):
            with pytest.raises(InvalidValueError, match=r"storage\.create_isolation\(\)"):
                await storage.get_state(KEY)


# -- a real Dispatcher, updates fed by hand -------------------------------------------------------


class Signup(StatesGroup):
    name = State()
    age = State()


def signup_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state(Signup.name)
        await message.answer("What is your name?")

    @router.message(Signup.name, F.text)
    async def name(message: Message, state: FSMContext) -> None:
        await state.update_data(name=message.text)
        await state.set_state(Signup.age)
        await message.answer("How old are you?")

    @router.message(Signup.age, F.text.isdigit())
    async def age(message: Message, state: FSMContext) -> None:
        data = await state.update_data(age=int(message.text or 0))
        await state.set_state(None)
        await message.answer(f"{data['name']}, {data['age']}")

    @router.message(Signup.age)
    async def not_an_age(message: Message) -> None:
        await message.answer("Digits, please.")

    @router.message(StateFilter(None))
    async def idle(message: Message) -> None:
        await message.answer("Say /start.")

    return router


def dispatcher(store: BaseSessionStore, *routers: Router, **options: Any) -> Dispatcher:
    storage = SessionwareStorage(store)
    dp = Dispatcher(storage=storage, events_isolation=storage.create_isolation(), **options)
    if routers:
        dp.include_routers(*routers)
    return dp


async def test_a_states_group_flow_with_filters_survives_a_restart(
    store: BaseSessionStore, api: BotAPI, bot: Bot
) -> None:
    dp = dispatcher(store, signup_router())
    for text in ("hello", "/start", "Ann", "thirty"):
        await dp.feed_update(bot, update(message_update(7, text)))
    assert texts(api) == ["Say /start.", "What is your name?", "How old are you?", "Digits, please."]
    await dp.fsm.close()  # the store was passed in: it stays open

    restarted = dispatcher(store, signup_router())
    await restarted.feed_update(bot, update(message_update(7, "33")))
    assert texts(api)[-1] == "Ann, 33"
    assert await restarted.storage.get_state(user_key(7)) is None
    assert await restarted.storage.get_data(user_key(7)) == {"name": "Ann", "age": 33}


async def test_callback_queries_are_answered_in_their_state(store: BaseSessionStore, api: BotAPI, bot: Bot) -> None:
    class Pick(StatesGroup):
        colour = State()

    router = Router()

    @router.message(Command("colour"))
    async def ask(message: Message, state: FSMContext) -> None:
        await state.set_state(Pick.colour)
        await message.answer("Red or blue?")

    @router.callback_query(Pick.colour, F.data.startswith("colour:"))
    async def picked(callback: CallbackQuery, state: FSMContext) -> None:
        colour = (callback.data or "").removeprefix("colour:")
        await state.update_data(colour=colour)
        await state.set_state(None)
        await callback.answer(f"{colour} it is")

    @router.callback_query()
    async def stale(callback: CallbackQuery) -> None:
        await callback.answer("That question is closed.")

    dp = dispatcher(store, router)
    await dp.feed_update(bot, update(message_update(8, "/colour")))
    await dp.feed_update(bot, update(callback_update(8, "colour:red")))
    await dp.feed_update(bot, update(callback_update(8, "colour:blue")))
    assert [a["text"] for a in api.answered] == ["red it is", "That question is closed."]
    assert await dp.storage.get_data(user_key(8)) == {"colour": "red"}


async def test_forum_topics_keep_their_own_state(store: BaseSessionStore, api: BotAPI, bot: Bot) -> None:
    group = -100123
    dp = dispatcher(store, signup_router(), fsm_strategy=FSMStrategy.USER_IN_TOPIC)
    await dp.feed_update(bot, update(message_update(9, "/start", chat_id=group, thread_id=7)))
    await dp.feed_update(bot, update(message_update(9, "Ann", chat_id=group, thread_id=11)))
    await dp.feed_update(bot, update(message_update(9, "Ann", chat_id=group, thread_id=7)))
    assert texts(api) == ["What is your name?", "Say /start.", "How old are you?"]
    assert [int(sent["message_thread_id"]) for sent in api.sent] == [7, 11, 7]
    in_topic = user_key(9, chat=group, thread=7)
    assert await store.get(f"fsm:{BOT_ID}:{group}:7:9:default") == {"state": "Signup:age", "data": {"name": "Ann"}}
    assert await dp.storage.get_state(in_topic) == "Signup:age"
    assert await dp.storage.get_state(user_key(9, chat=group, thread=11)) is None


class Size(Scene, state="size"):
    @on.message.enter()
    async def ask(self, message: Message) -> None:
        await message.answer("Small or big?")

    @on.message(F.text.in_({"small", "big"}))
    async def chosen(self, message: Message, state: FSMContext) -> None:
        await state.update_data(size=message.text)
        await self.wizard.goto(Confirm)

    @on.message()
    async def other(self, message: Message) -> None:
        await message.answer("Small or big, please.")


class Confirm(Scene, state="confirm"):
    @on.message.enter()
    async def ask(self, message: Message, state: FSMContext) -> None:
        await message.answer(f"{(await state.get_data())['size']}, right?")

    @on.message(F.text == "back")
    async def back(self, message: Message) -> None:
        await self.wizard.back()

    @on.message(F.text == "yes")
    async def yes(self, message: Message) -> None:
        await self.wizard.exit()

    @on.message.exit()
    async def done(self, message: Message, state: FSMContext) -> None:
        await message.answer(f"Ordered: {(await state.get_data())['size']}.")
        await state.set_data({})


def scene_dispatcher(store: BaseSessionStore) -> Dispatcher:
    dp = dispatcher(store)
    dp.message.register(Size.as_handler(), Command("order"))
    SceneRegistry(dp).add(Size, Confirm)
    return dp


async def test_scenes_move_back_and_forth_across_a_restart(store: BaseSessionStore, api: BotAPI, bot: Bot) -> None:
    dp = scene_dispatcher(store)
    for text in ("/order", "huge", "big"):
        await dp.feed_update(bot, update(message_update(10, text)))
    assert await dp.storage.get_state(user_key(10)) == "confirm"
    history = StorageKey(bot_id=BOT_ID, chat_id=10, user_id=10, destiny="scenes_history")
    assert (await dp.storage.get_data(history))["history"] == [{"state": "size", "data": {"size": "big"}}]

    dp = scene_dispatcher(store)  # a restart in the middle of the scene
    for text in ("back", "small", "yes"):
        await dp.feed_update(bot, update(message_update(10, text)))
    assert texts(api) == [
        "Small or big?",
        "Small or big, please.",
        "big, right?",
        "Small or big?",
        "small, right?",
        "Ordered: small.",
    ]
    assert await dp.storage.get_state(user_key(10)) is None
    assert await dp.storage.get_data(user_key(10)) == {}


async def test_the_state_is_read_under_the_lock(store: BaseSessionStore, api: BotAPI, bot: Bot) -> None:
    # aiogram issue #1317: a second message arriving while the first is handled must see the first's state.
    def router() -> Router:
        r = Router()

        @r.message(CommandStart())
        async def start(message: Message, state: FSMContext) -> None:
            await asyncio.sleep(0.1)
            await state.set_state(Signup.name)

        @r.message(Signup.name)
        async def name(message: Message) -> None:
            await message.answer("name received")

        @r.message()
        async def lost(message: Message) -> None:
            await message.answer("no state")

        return r

    for isolation, expected in (("ours", "name received"), ("disabled", "no state")):
        storage = SessionwareStorage(store)
        events = storage.create_isolation() if isolation == "ours" else DisabledEventIsolation()
        dp = Dispatcher(storage=storage, events_isolation=events)
        dp.include_router(router())
        user = 11 if isolation == "ours" else 12
        await asyncio.gather(
            dp.feed_update(bot, update(message_update(user, "/start"))),
            dp.feed_update(bot, update(message_update(user, "Ann"))),
        )
        assert texts(api)[-1] == expected, isolation


async def counted_run(
    store: BaseSessionStore, bot: Bot, events: BaseEventIsolation, user: int, n: int, storage: BaseStorage | None = None
) -> int:
    storage = storage or SessionwareStorage(store)
    dp = Dispatcher(storage=storage, events_isolation=events)

    @dp.message(F.text == "inc")
    async def inc(message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        await asyncio.sleep(0.005)
        await state.update_data(count=data.get("count", 0) + 1)

    await asyncio.gather(*(dp.feed_update(bot, update(message_update(user, "inc"))) for _ in range(n)))
    return int((await storage.get_data(user_key(user)))["count"])


async def test_concurrent_updates_of_one_user_lose_nothing_under_our_isolation(
    store: BaseSessionStore, bot: Bot
) -> None:
    ours = await counted_run(store, bot, SessionwareStorage(store).create_isolation(), 13, 30)
    theirs = await counted_run(store, bot, DisabledEventIsolation(), 14, 30)
    print(f"one process, 30 concurrent updates: sessionware {ours}/30, DisabledEventIsolation {theirs}/30")
    assert ours == 30
    assert theirs < 30


async def test_the_isolation_alone_also_guards_aiogram_s_own_storage(bot: Bot) -> None:
    store = InMemorySessionStore()
    assert await counted_run(store, bot, SessionwareEventIsolation(store), 16, 20, MemoryStorage()) == 20


# -- a Bot long-polling the stand-in Bot API ------------------------------------------------------


async def test_a_bot_long_polling_the_bot_api_keeps_its_state(store: BaseSessionStore, api: BotAPI, bot: Bot) -> None:
    dp = dispatcher(store, signup_router())
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        for n, text in enumerate(("/start", "Bob", "41"), 1):
            await api.push(message_update(15, text))
            await api.wait_for(lambda a, n=n: len(a.sent) == n)
    finally:
        await dp.stop_polling()
        await polling
    assert texts(api) == ["What is your name?", "How old are you?", "Bob, 41"]
    assert [int(s["chat_id"]) for s in api.sent] == [15, 15, 15]
    assert await SessionwareStorage(store).get_data(user_key(15)) == {"name": "Bob", "age": 41}


# -- the extra, and the module's own example ------------------------------------------------------


def test_without_aiogram_the_integration_names_its_extra() -> None:
    out = import_without("aiogram", "sessionware.integrations.aiogram")
    assert out.startswith("aiogram ")
    assert "pip install 'sessionware[aiogram]'" in out


def test_the_module_example_runs_as_written(tmp_path: Path) -> None:
    done = run_module_example(integration, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bot.db").exists()


# -- four processes, one user ---------------------------------------------------------------------

WORKERS = 4
UPDATES = 25


def start_worker(config: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.aiogram_worker", json.dumps(config)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_workers(url: str, isolation: str) -> float:
    """Start the workers, let them all go at once, wait for them to finish; the longest worker's seconds."""
    procs = [
        start_worker({"url": url, "isolation": isolation, "worker": w, "updates": UPDATES}) for w in range(WORKERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", proc.stderr.read() if proc.stderr else line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        took = 0.0
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            done, seconds = out.split()
            assert done == "done", out
            took = max(took, float(seconds))
        return took
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
async def test_four_processes_lose_no_update_under_our_isolation_and_some_without(
    store_url: str,
) -> None:
    from sessionware import open_store
    from tests.aiogram_worker import USER

    total = WORKERS * UPDATES
    backend = store_url.split(":")[0]
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for isolation in ("sessionware", "disabled"):
        store = open_store(store_url)
        storage = SessionwareStorage(store)
        key = user_key(USER)
        await storage.set_data(key, {})
        seconds[isolation] = await asyncio.get_running_loop().run_in_executor(None, run_workers, store_url, isolation)
        data = await storage.get_data(key)
        counts[isolation] = data["count"]
        # Every update's own mark survives either way: update_data is itself one update under a lease.
        assert sum(1 for k in data if k.startswith("seen_")) == total, isolation
        await storage.set_data(key, {})
        await store.close()
    print(
        f"\n{WORKERS} processes x {UPDATES} concurrent updates of one user on {backend}: "
        f"SessionwareEventIsolation {counts['sessionware']}/{total} ({seconds['sessionware']:.2f}s), "
        f"DisabledEventIsolation {counts['disabled']}/{total} ({seconds['disabled']:.2f}s)"
    )
    assert counts["sessionware"] == total
    assert counts["disabled"] < total
