"""One process of the cross-process aiogram test: concurrent updates for one user through a real Dispatcher.

Run as ``python -m tests.aiogram_worker '<json config>'`` (``url``, ``isolation``:
``"sessionware"`` or ``"disabled"``, ``worker``, ``updates``). It opens the
store, says ``ready``, waits for a line on stdin, feeds its updates all at
once and says ``done <seconds it took>``. The handler reads the counter, awaits, then writes it
back plus one (the read-modify-write only the event isolation can keep
whole), and marks its own update in the same ``update_data``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiogram import Bot, Dispatcher, F
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.types import Message, Update

from sessionware import open_store
from sessionware.integrations.aiogram import SessionwareStorage
from tests.telegram_api import TOKEN, message_update

USER = 4242


def counter_update(worker: int, n: int) -> Update:
    """The ``n``-th "inc" message of ``worker``, with a message id no other update has."""
    payload: dict[str, Any] = message_update(USER, "inc")
    payload["message"]["message_id"] = worker * 100_000 + n
    return Update.model_validate({"update_id": worker * 100_000 + n, **payload})


async def main(config: dict[str, Any]) -> None:
    store = open_store(config["url"])
    storage = SessionwareStorage(store)
    isolation: BaseEventIsolation = (
        storage.create_isolation(lease=10, lock_wait=120)
        if config["isolation"] == "sessionware"
        else DisabledEventIsolation()
    )
    dp = Dispatcher(storage=storage, events_isolation=isolation)

    @dp.message(F.text == "inc")
    async def inc(message: Message, state: FSMContext) -> None:
        data = await state.get_data()
        await asyncio.sleep(0.005)
        await state.update_data({"count": data.get("count", 0) + 1, f"seen_{message.message_id}": True})

    bot = Bot(TOKEN)
    updates = [counter_update(config["worker"], n) for n in range(config["updates"])]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    await asyncio.gather(*(dp.feed_update(bot, update) for update in updates))
    elapsed = time.monotonic() - started
    await dp.fsm.close()
    await bot.session.close()
    await store.close()
    print(f"done {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
