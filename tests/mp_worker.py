"""A worker process for the cross-process tests: ``python -m tests.mp_worker '<json config>'``.

It opens the store by URL, waits until the start time so every worker begins
together, then runs ``tasks`` concurrent tasks of ``updates`` each, either
increments of one counter through Router + session() or add_message calls.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from sessionware import Router, SessionManager, open_store, session

from .helpers import message


async def main(config: dict[str, Any]) -> None:
    store = open_store(config["url"])
    delay = config["start_at"] - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    if config["mode"] == "counter":
        router = Router()
        router.use(session(store, isolation=config["isolation"], lease=10, lock_wait=120))

        @router.command("inc")
        async def inc(ctx: Any) -> None:
            n = ctx.session.get("n", 0)
            await asyncio.sleep(0)
            ctx.session["n"] = n + 1

        async def task(t: int) -> None:
            for i in range(config["updates"]):
                await router.handle(message(1, "/inc", update_id=t * 1000 + i))

    else:
        manager = SessionManager(store, isolation=config["isolation"], lease=10, lock_wait=120)

        async def task(t: int) -> None:
            for i in range(config["updates"]):
                await manager.add_message(config["session_id"], "user", f"{config['worker']}-{t}-{i}")

    await asyncio.gather(*(task(t) for t in range(config["tasks"])))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
