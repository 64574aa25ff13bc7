"""The router: middleware order, handler matching, context and replies."""

from __future__ import annotations

import io
import re

import pytest

from sessionware import ConsoleClient, Context, Incoming, Router, RouterError
from sessionware.bot.router import Next  # the type of a middleware's next(); sessionware.bot does not re-export it

from .helpers import callback, message


async def test_middleware_runs_in_onion_order_around_the_handler() -> None:
    router = Router()
    order: list[str] = []

    def mw(name: str):
        async def middleware(ctx: Context, next: Next) -> None:
            order.append(f"{name} in")
            await next()
            order.append(f"{name} out")

        return middleware

    router.use(mw("a")).use(mw("b"))

    @router.command("start")
    async def start(ctx: Context) -> None:
        order.append("handler")

    await router.handle(message(1, "/start"))
    assert order == ["a in", "b in", "handler", "b out", "a out"]


async def test_middleware_can_stop_the_chain() -> None:
    router = Router()
    seen: list[str] = []

    async def gate(ctx: Context, next: Next) -> None:
        if ctx.from_user and ctx.from_user["id"] == 666:
            return
        await next()

    router.use(gate)

    @router.text()
    async def any_text(ctx: Context) -> None:
        seen.append(ctx.text or "")

    await router.handle(message(666, "blocked"))
    await router.handle(message(1, "ok"))
    assert seen == ["ok"]


async def test_next_twice_is_an_error() -> None:
    router = Router()

    async def twice(ctx: Context, next: Next) -> None:
        await next()
        await next()

    router.use(twice)
    with pytest.raises(RouterError, match="more than once"):
        await router.handle(message(1, "hi"))


async def test_commands_text_and_callbacks_match_and_fill_params() -> None:
    router = Router()
    hits: list[tuple[str, dict[str, object]]] = []

    @router.command("add")
    async def add(ctx: Context) -> None:
        hits.append(("add", dict(ctx.params)))

    @router.text(re.compile(r"buy (?P<item>\w+)"))
    async def buy(ctx: Context) -> None:
        hits.append(("buy", {"item": ctx.params["item"]}))

    @router.text("hello")
    async def hello(ctx: Context) -> None:
        hits.append(("hello", {}))

    @router.callback(re.compile(r"like:(?P<post>\d+)"))
    async def like(ctx: Context) -> None:
        hits.append(("like", {"post": ctx.params["post"]}))

    @router.text()
    async def fallback(ctx: Context) -> None:
        hits.append(("fallback", {"text": ctx.text}))

    await router.handle(message(1, "/add@mybot milk eggs"))
    await router.handle(message(1, "buy bread"))
    await router.handle(message(1, "hello"))
    await router.handle(callback(1, "like:42"))
    await router.handle(message(1, "buy two breads"))
    await router.handle(callback(1, "unmatched"))
    await router.handle({"update_id": 9, "poll": {}})
    assert hits == [
        ("add", {"command": "add", "args": "milk eggs", "argv": ["milk", "eggs"]}),
        ("buy", {"item": "bread"}),
        ("hello", {}),
        ("like", {"post": "42"}),
        ("fallback", {"text": "buy two breads"}),
    ]


async def test_context_exposes_update_user_chat_and_replies_to_the_chat() -> None:
    out = io.StringIO()
    client = ConsoleClient(out, names={-100: "group"})
    router = Router(client=client)

    @router.command("whoami")
    async def whoami(ctx: Context) -> None:
        ctx.state["seen"] = True
        assert ctx.from_user is not None
        await ctx.reply(f"you are {ctx.from_user['id']}")

    ctx = await router.handle(message(7, "/whoami", chat=-100))
    assert ctx.update["message"]["text"] == "/whoami"
    assert ctx.chat == {"id": -100, "type": "group"}
    assert ctx.state == {"seen": True}
    assert client.sent == [(-100, "you are 7")]
    assert out.getvalue() == "  bot → group: you are 7\n"


async def test_reply_without_client_is_a_clear_error() -> None:
    router = Router()

    @router.text()
    async def echo(ctx: Context) -> None:
        await ctx.reply("x")

    with pytest.raises(RouterError, match="client"):
        await router.handle(message(1, "hi"))


async def test_platform_neutral_adapter() -> None:
    class SlackLike:
        def parse(self, update: dict[str, object]) -> Incoming:
            return Incoming("text", {"id": update["user"]}, {"id": update["channel"]}, str(update["text"]))

    router = Router(adapter=SlackLike())
    got: list[object] = []

    @router.text("ping")
    async def ping(ctx: Context) -> None:
        got.append((ctx.from_user, ctx.chat))

    await router.handle({"user": "U1", "channel": "C1", "text": "ping"})
    assert got == [({"id": "U1"}, {"id": "C1"})]


def test_sync_handler_and_bad_middleware_are_refused() -> None:
    router = Router()
    with pytest.raises(RouterError, match="async"):
        router.text()(lambda ctx: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(RouterError, match="callable"):
        router.use("nope")  # type: ignore[arg-type]
