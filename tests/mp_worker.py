"""A worker process for the cross-process tests: ``python -m tests.mp_worker '<json config>'``.

It opens the store by URL, waits until the start time so every worker begins
together, then runs ``tasks`` concurrent tasks of ``updates`` each: increments
of one counter through Router + session() (mode "counter"), add_message calls
("messages"), or batches of 1-3 raw log appends, each followed by a record
write ("log"; the assigned sequence numbers are printed as JSON).
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

    elif config["mode"] == "messages":
        manager = SessionManager(store, isolation=config["isolation"], lease=10, lock_wait=120)

        async def task(t: int) -> None:
            for i in range(config["updates"]):
                await manager.add_message(config["session_id"], "user", f"{config['worker']}-{t}-{i}")

    else:
        w = config["worker"]
        batches: dict[int, list[list[int]]] = {}

        async def task(t: int) -> None:
            seqs = batches.setdefault(t, [])
            for i in range(config["updates"]):
                entries = [{"w": w, "t": t, "i": i, "part": p} for p in range(1 + i % 3)]
                seqs.append(await store.log_append("shared", entries))  # type: ignore[attr-defined]
                await store.set(f"w{w}:t{t}:i{i}", {"w": w, "t": t, "i": i})

    await asyncio.gather(*(task(t) for t in range(config["tasks"])))
    await store.close()
    if config["mode"] == "log":
        print(json.dumps([batches[t] for t in range(config["tasks"])]))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
