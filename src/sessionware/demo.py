"""The demo: a scripted multi-user conversation through the router, persisted in a store."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from .bot import ConsoleClient, Context, Router, session
from .store import BaseSessionStore, ScannableStore
from .urls import open_store

DEFAULT_STORE_URL = "sqlite:///sessionware-demo.db"

ALICE = {"id": 101, "first_name": "Alice"}
BOB = {"id": 202, "first_name": "Bob"}
NAMES = {101: "Alice", 202: "Bob"}


def build_bot(store: BaseSessionStore, client: ConsoleClient) -> Router:
    """The demo bot: visits, notes (last five kept) and likes, all in ``ctx.session``."""
    router = Router(client=client)
    router.use(session(store, initial=lambda: {"visits": 0, "notes": [], "likes": 0}))

    @router.command("start")
    async def start(ctx: Context) -> None:
        ctx.session["visits"] += 1
        name = (ctx.from_user or {}).get("first_name", "there")
        if ctx.session["visits"] == 1:
            await ctx.reply(f"Hello {name}! This is your first visit.")
        else:
            await ctx.reply(f"Welcome back {name}: visit #{ctx.session['visits']}.")

    @router.command("notes")
    async def notes(ctx: Context) -> None:
        await ctx.reply("your notes: " + (", ".join(ctx.session["notes"]) or "none yet"))

    @router.callback("like")
    async def like(ctx: Context) -> None:
        likes = ctx.session["likes"]
        await asyncio.sleep(0.001)  # some I/O between reading and writing the session
        ctx.session["likes"] = likes + 1

    @router.command("likes")
    async def likes(ctx: Context) -> None:
        await ctx.reply(f"you have liked {ctx.session['likes']} posts")

    @router.text()
    async def note(ctx: Context) -> None:
        ctx.session["notes"] = [*ctx.session["notes"], ctx.text][-5:]
        await ctx.reply(f"noted ({len(ctx.session['notes'])} kept)")

    return router


def _message(user: dict[str, Any], text: str, update_id: int) -> dict[str, Any]:
    chat = {"id": user["id"], "type": "private"}
    return {"update_id": update_id, "message": {"message_id": update_id, "from": user, "chat": chat, "text": text}}


def _like(user: dict[str, Any], update_id: int) -> dict[str, Any]:
    message = {"message_id": 1, "chat": {"id": user["id"]}}
    query = {"id": str(update_id), "from": user, "message": message, "data": "like"}
    return {"update_id": update_id, "callback_query": query}


SCRIPT: list[tuple[dict[str, Any], str]] = [
    (ALICE, "/start"),
    (BOB, "/start"),
    (ALICE, "buy oat milk"),
    (BOB, "call the plumber"),
    (ALICE, "book train tickets"),
    (ALICE, "/notes"),
    (BOB, "/notes"),
]


async def run_demo(url: str = DEFAULT_STORE_URL, *, out: TextIO | None = None, burst: int = 50) -> dict[str, Any]:
    """Run the scripted conversation on the store at ``url``; return the stored sessions."""
    out = out or sys.stdout
    store = open_store(url)
    try:
        client = ConsoleClient(out, names=NAMES)
        bot = build_bot(store, client)
        print(f"sessionware demo — sessions in {url}", file=out)
        update_id = 0
        for user, text in SCRIPT:
            update_id += 1
            print(f"{user['first_name']}: {text}", file=out)
            await bot.handle(_message(user, text, update_id))
        before = (await store.get(str(ALICE["id"])) or {}).get("likes", 0)
        print(f"Alice taps 'like' {burst} times at once…", file=out)
        await asyncio.gather(*(bot.handle(_like(ALICE, update_id + i)) for i in range(1, burst + 1)))
        after = (await store.get(str(ALICE["id"])) or {}).get("likes", 0)
        print(f"  likes went from {before} to {after}: {after - before} of {burst} updates kept", file=out)
        print("Alice: /likes", file=out)
        await bot.handle(_message(ALICE, "/likes", update_id + burst + 1))
        sessions: dict[str, Any] = {}
        keys = [k async for k in store.scan()] if isinstance(store, ScannableStore) else ["101", "202"]
        print("stored sessions:", file=out)
        for key in sorted(keys):
            sessions[key] = await store.get(key)
            print(f"  {key}: {sessions[key]}", file=out)
        print("run it again: the visits and likes carry on from here.", file=out)
        return sessions
    finally:
        await store.close()
