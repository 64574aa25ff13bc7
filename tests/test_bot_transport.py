"""The Router's Telegram transport end to end: the Bot API client, long polling and the webhook app, against the
stand-in Bot API server (tests/telegram_api.py) and uvicorn on loopback; no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sessionware import InvalidValueError, MissingExtraError, Router, RouterError, SessionwareError, session
from sessionware.bot import ConsoleClient, Context, TelegramClient, TelegramError, TelegramUnavailableError
from sessionware.bot.transport import TelegramPolling

from .telegram_api import BOT_USER, TOKEN, BotAPI, callback_update, message_update

SRC = Path(__file__).resolve().parents[1] / "src" / "sessionware"
SECRET = "s3cret_Token-1"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The conversation test runs on an embedded and a server store; the other tests need no store."""
    return str(request.param)


@pytest.fixture
async def api() -> AsyncIterator[BotAPI]:
    async with BotAPI() as server:
        yield server


def our_tasks() -> set[asyncio.Task[Any]]:
    """Unfinished tasks running sessionware's code (the stand-in's own tasks are not ours to judge)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not asyncio.current_task() and not task.done() and code and str(SRC) in code.co_filename:
            found.add(task)
    return found


@contextlib.asynccontextmanager
async def running(polling: TelegramPolling) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``polling`` in a task; stop it afterwards and check it ended cleanly."""
    task = asyncio.create_task(polling.run())
    try:
        yield task
    finally:
        await polling.stop()
        await task
        assert polling.client.closed
        assert not our_tasks()


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/telegram"
    finally:
        server.should_exit = True
        await task
        sock.close()


def replies(api: BotAPI, chat_id: int) -> list[str]:
    return [m["text"] for m in api.sent if int(m["chat_id"]) == chat_id]


# -- polling ---------------------------------------------------------------------------------------


async def test_polling_a_conversation_for_several_users(api: BotAPI, store: Any) -> None:
    router = Router()
    router.use(session(store))

    @router.command("start")
    async def start(ctx: Context) -> None:
        ctx.session["n"] = 0
        await ctx.reply("welcome")

    @router.text()
    async def count(ctx: Context) -> None:
        ctx.session["n"] += 1
        await ctx.reply(f"{ctx.text} #{ctx.session['n']}")

    @router.callback()
    async def pick(ctx: Context) -> None:
        await ctx.answer_callback(f"picked {ctx.text}")

    users = [101, 102, 103]
    for user in users:
        await api.push(message_update(user, "/start"))
    for i in range(1, 4):
        for user in users:
            await api.push(message_update(user, f"m{i}"))
    await api.push(callback_update(101, "pick:1"))

    async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)):
        await api.wait_for(lambda a: len(a.sent) == 12 and len(a.answered) == 1)

    for user in users:
        assert replies(api, user) == ["welcome", "m1 #1", "m2 #2", "m3 #3"]
        assert await store.get(str(user)) == {"n": 3}
    assert api.answered[0]["text"] == "picked pick:1"
    assert api.pending == []  # every update acknowledged


async def test_one_users_updates_run_in_order_and_users_side_by_side_within_the_bound(api: BotAPI) -> None:
    router = Router()
    events: list[tuple[int, str, str]] = []
    active = peak = 0

    @router.text()
    async def work(ctx: Context) -> None:
        nonlocal active, peak
        user = (ctx.from_user or {})["id"]
        events.append((user, "start", ctx.text or ""))
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(random.uniform(0, 0.03))
        active -= 1
        events.append((user, "end", ctx.text or ""))
        await ctx.reply(ctx.text or "")

    users = range(1, 7)
    for i in range(5):
        for user in users:
            await api.push(message_update(user, f"m{i}"))

    async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1, concurrency=3)):
        await api.wait_for(lambda a: len(a.sent) == 30)

    for user in users:
        mine = [(kind, text) for u, kind, text in events if u == user]
        assert mine == [(kind, f"m{i}") for i in range(5) for kind in ("start", "end")]  # in order, never overlapping
        assert replies(api, user) == [f"m{i}" for i in range(5)]
    assert peak == 3


async def test_a_running_update_holds_the_offset_and_at_most_limit_updates_are_fetched_past_it(api: BotAPI) -> None:
    router = Router()
    release = asyncio.Event()
    runs: list[str] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        runs.append(ctx.text or "")
        if ctx.text == "slow":
            await release.wait()
        await ctx.reply(f"did {ctx.text}")

    slow = await api.push(message_update(1, "slow"))
    for i in range(4):
        await api.push(message_update(2, f"b{i}"))
    polling = router.polling(TOKEN, base_url=api.base_url, poll_timeout=1, limit=3)
    async with running(polling):
        await api.wait_for(lambda a: len(a.sent) == 2)  # user 2 goes on within the window of 3 updates
        await asyncio.sleep(0.3)
        assert runs == ["slow", "b0", "b1"]
        assert polling.offset == slow  # nothing past the running update is acknowledged
        assert [u["update_id"] for u in api.pending] == list(range(slow, slow + 5))
        polls = [m for m, _ in api.calls].count("getUpdates")
        await asyncio.sleep(0.5)
        assert [m for m, _ in api.calls].count("getUpdates") == polls  # a full window waits, it does not poll
        release.set()
        await api.wait_for(lambda a: len(a.sent) == 5)
    assert runs == ["slow", "b0", "b1", "b2", "b3"]
    assert api.pending == []


async def test_stopping_before_running_is_a_no_op(api: BotAPI) -> None:
    polling = Router().polling(TOKEN, base_url=api.base_url)
    run = asyncio.create_task(polling.run())
    await polling.stop()
    await run
    assert polling.client.closed
    assert not polling.running


async def test_a_429_on_send_message_waits_its_retry_after(api: BotAPI) -> None:
    router = Router()
    waited: list[float] = []

    @router.text()
    async def echo(ctx: Context) -> None:
        began = time.monotonic()
        await ctx.reply(f"echo {ctx.text}")
        waited.append(time.monotonic() - began)

    api.fail("sendMessage", status=429, retry_after=1)
    await api.push(message_update(5, "hi"))
    async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)):
        await api.wait_for(lambda a: len(a.sent) == 1)

    assert [m for m, _ in api.calls].count("sendMessage") == 2
    assert replies(api, 5) == ["echo hi"]
    assert 1.0 <= waited[0] < 3.0


async def test_a_5xx_on_get_updates_is_retried(api: BotAPI, caplog: pytest.LogCaptureFixture) -> None:
    router = Router()

    @router.text()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo {ctx.text}")

    api.fail("getUpdates", status=502, times=3)
    await api.push(message_update(5, "hi"))
    with caplog.at_level(logging.WARNING, logger="sessionware.bot.transport"):
        async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)):
            await api.wait_for(lambda a: len(a.sent) == 1)

    assert [m for m, _ in api.calls].count("getUpdates") >= 4
    assert replies(api, 5) == ["echo hi"]
    assert "Internal Server Error; polling again" in caplog.text
    assert api.pending == []


async def test_a_bot_api_restart_loses_no_update_and_handles_none_twice(
    api: BotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    started: list[int] = []
    handled: list[int] = []

    @router.text()
    async def slow(ctx: Context) -> None:
        started.append(ctx.update["update_id"])
        await asyncio.sleep(0.3)  # the replies are sent while the server is down, and retried
        await ctx.reply(f"done {ctx.text}")
        handled.append(ctx.update["update_id"])

    ids = [await api.push(message_update(user, f"before {user}")) for user in (1, 2, 3, 4)]
    with caplog.at_level(logging.DEBUG, logger="sessionware.bot.telegram"):
        async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=0.5)):
            await api.wait_for(lambda a: len(started) == 4)
            restart = asyncio.create_task(api.restart(down_for=0.5))
            await asyncio.sleep(0.2)
            ids += [await api.push(message_update(user, f"while down {user}")) for user in (1, 5)]
            await restart
            ids += [await api.push(message_update(user, f"after {user}")) for user in (2, 6)]
            await api.wait_for(lambda a: len(a.sent) == 8)
            await asyncio.sleep(0.3)  # time for a duplicate to show up, were there one

    assert sorted(handled) == ids  # each once
    assert sorted(m["text"] for m in api.sent) == sorted(
        [f"done before {u}" for u in (1, 2, 3, 4)] + ["done while down 1", "done while down 5"]
        + ["done after 2", "done after 6"]
    )  # fmt: skip
    assert api.pending == []
    assert "sendMessage failed (Telegram cannot be reached" in caplog.text  # refused while down, so retried


async def test_an_update_whose_handler_raises_goes_to_on_error_once_and_is_acknowledged(api: BotAPI) -> None:
    router = Router()
    router.use(session())
    failed: list[tuple[int, BaseException]] = []
    runs: list[str] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        runs.append(ctx.text or "")
        ctx.session["seen"] = [*ctx.session.get("seen", []), ctx.text]
        if ctx.text == "boom":
            raise RuntimeError("boom")
        await ctx.reply(f"{ctx.session['seen']}")

    async def on_error(update: dict[str, Any], exc: Exception) -> None:
        failed.append((update["update_id"], exc))

    await api.push(message_update(9, "a"))
    boom = await api.push(message_update(9, "boom"))
    await api.push(message_update(9, "b"))
    async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1, on_error=on_error)):
        await api.wait_for(lambda a: len(a.sent) == 2)
        await asyncio.sleep(0.2)

    assert runs == ["a", "boom", "b"]  # not retried, and the user's next update went on
    assert [(uid, str(exc)) for uid, exc in failed] == [(boom, "boom")]
    assert replies(api, 9) == ["['a']", "['a', 'b']"]  # the failed update's session change was not saved
    assert api.pending == []


async def test_without_on_error_a_failed_update_is_logged_with_its_id(
    api: BotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()

    @router.text()
    async def handler(ctx: Context) -> None:
        raise ValueError("bad input")

    uid = await api.push(message_update(9, "x"))
    with caplog.at_level(logging.ERROR, logger="sessionware.bot.transport"):
        async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)):
            await api.wait_for(lambda a: not a.pending)
    assert f"update {uid} failed" in caplog.text
    assert "ValueError: bad input" in caplog.text


async def test_stop_lets_a_running_handler_finish_and_acknowledges_it(api: BotAPI) -> None:
    router = Router()
    began, release = asyncio.Event(), asyncio.Event()

    @router.text()
    async def slow(ctx: Context) -> None:
        began.set()
        await release.wait()
        await ctx.reply("finished")

    await api.push(message_update(3, "go"))
    polling = router.polling(TOKEN, base_url=api.base_url, poll_timeout=5)
    run = asyncio.create_task(polling.run())
    await began.wait()
    stopping = asyncio.create_task(polling.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # waiting for the handler
    release.set()
    await stopping
    await run
    assert replies(api, 3) == ["finished"]
    assert api.pending == []
    assert polling.client.closed
    assert not our_tasks()
    with pytest.raises(RouterError, match="runs once"):
        await polling.run()


async def test_cancelling_the_poller_cancels_handlers_and_leaves_their_updates_to_be_delivered_again(
    api: BotAPI,
) -> None:
    router = Router()
    hang = True
    runs: list[str] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        runs.append(ctx.text or "")
        if ctx.text == "slow" and hang:
            await asyncio.Event().wait()
        await ctx.reply(f"did {ctx.text}")

    await api.push(message_update(1, "quick"))
    await api.push(message_update(2, "slow"))
    first = router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)
    run = asyncio.create_task(first.run())
    await api.wait_for(lambda a: runs == ["quick", "slow"] and len(a.sent) == 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert first.client.closed
    assert not our_tasks()
    assert [u["message"]["text"] for u in api.pending] == ["slow"]  # "quick" finished and was acknowledged

    hang = False
    async with running(router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)):
        await api.wait_for(lambda a: len(a.sent) == 2)
    assert runs == ["quick", "slow", "slow"]
    assert api.pending == []


async def test_a_handler_can_stop_the_poller(api: BotAPI) -> None:
    router = Router()

    @router.command("stop")
    async def stop(ctx: Context) -> None:
        await ctx.reply("bye")
        await polling.stop()

    polling = router.polling(TOKEN, base_url=api.base_url, poll_timeout=1)
    await api.push(message_update(1, "/stop"))
    await asyncio.wait_for(polling.run(), 10)
    assert replies(api, 1) == ["bye"]
    assert api.pending == []
    assert not our_tasks()


async def test_a_wrong_token_ends_polling_with_a_typed_error(api: BotAPI) -> None:
    polling = Router().polling("42:not-the-token", base_url=api.base_url)
    with pytest.raises(TelegramError) as caught:
        await polling.run()
    assert caught.value.error_code == 401
    assert polling.client.closed


# -- webhook ---------------------------------------------------------------------------------------


async def test_webhook_checks_the_secret_token_and_the_body_and_handles_deliveries(api: BotAPI) -> None:
    router = Router()

    @router.text()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo {ctx.text}")

    @router.callback()
    async def pick(ctx: Context) -> None:
        await ctx.answer_callback("noted", show_alert=True)

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url)
    async with serve(app) as url, httpx.AsyncClient() as http:
        update = {"update_id": 1, **message_update(1, "direct")}
        right = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        assert (await http.post(url, json=update)).status_code == 403
        wrong = {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}
        assert (await http.post(url, json=update, headers=wrong)).status_code == 403
        assert (await http.post(url, content=b"{not json", headers=right)).status_code == 400
        assert (await http.post(url, json={"message": {}}, headers=right)).status_code == 400
        assert (await http.post(url, content=b"x" * (2 << 20), headers=right)).status_code == 413
        assert (await http.get(url, headers=right)).status_code == 405
        assert api.sent == []

        assert await app.set_webhook(url)
        await api.push(message_update(7, "hello"))
        await api.push(callback_update(7, "pick:1"))
        await api.wait_for(lambda a: len(a.sent) == 1 and len(a.answered) == 1)
        assert replies(api, 7) == ["echo hello"]
        assert api.answered[0]["text"] == "noted"
        assert api.answered[0]["show_alert"] in (True, "true", "True")

        await app.client.set_webhook(url, secret_token="someone-else")  # Telegram now sends a wrong secret
        await api.push(message_update(8, "again"))
        await api.wait_for(lambda a: a.webhook_deliveries.count(403) >= 3)
        assert replies(api, 8) == []
        assert len(api.pending) == 1  # refused, so Telegram keeps it
        await app.set_webhook(url)
        await api.wait_for(lambda a: replies(a, 8) == ["echo again"])
    assert api.pending == []
    assert set(api.webhook_deliveries) == {200, 403}
    assert app.client.closed
    assert not our_tasks()


async def test_webhook_full_queue_answers_503_and_telegram_delivers_again(api: BotAPI) -> None:
    router = Router()
    release = asyncio.Event()
    runs: list[str] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        runs.append(ctx.text or "")
        if ctx.text == "first":
            await release.wait()
        await ctx.reply(f"did {ctx.text}")

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url, queue_size=1, ack="queued")
    async with serve(app) as url:
        await app.set_webhook(url)
        for text in ("first", "second", "third"):
            await api.push(message_update(4, text))
        await api.wait_for(lambda a: a.webhook_deliveries.count(503) >= 3)
        assert runs == ["first"]
        assert app.pending == 1
        release.set()
        await api.wait_for(lambda a: len(a.sent) == 3)
    assert runs == ["first", "second", "third"]  # each once, in order
    assert replies(api, 4) == ["did first", "did second", "did third"]
    deliveries = api.webhook_deliveries
    assert deliveries[0] == 200
    assert deliveries.count(200) == 3
    assert set(deliveries) == {200, 503}
    assert api.pending == []


async def test_webhook_acknowledges_when_handled_by_default(api: BotAPI) -> None:
    router = Router()
    began, release = asyncio.Event(), asyncio.Event()

    @router.text()
    async def handler(ctx: Context) -> None:
        began.set()
        await release.wait()
        await ctx.reply("done")

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url)
    async with serve(app) as url:
        await app.set_webhook(url)
        await api.push(message_update(4, "work"))
        await began.wait()
        await asyncio.sleep(0.2)
        assert api.webhook_deliveries == []  # no answer before the handler finished
        assert len(api.pending) == 1
        release.set()
        await api.wait_for(lambda a: a.webhook_deliveries == [200])
    assert api.pending == []
    assert replies(api, 4) == ["done"]


async def test_webhook_redelivery_of_a_handled_update_is_not_run_again(api: BotAPI) -> None:
    router = Router()
    runs: list[int] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        runs.append(ctx.update["update_id"])

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url)
    async with serve(app) as url, httpx.AsyncClient() as http:
        update = {"update_id": 77, **message_update(1, "once")}
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        answers = await asyncio.gather(*(http.post(url, json=update, headers=headers) for _ in range(3)))
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert (await http.post(url, json=update, headers=headers)).status_code == 200
    assert runs == [77]


async def test_webhook_stops_cleanly_finishing_queued_updates(api: BotAPI) -> None:
    router = Router()
    runs: list[str] = []

    @router.text()
    async def handler(ctx: Context) -> None:
        await asyncio.sleep(0.1)
        runs.append(ctx.text or "")
        await ctx.reply(f"did {ctx.text}")

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url, ack="queued")
    async with serve(app) as url, httpx.AsyncClient() as http:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for uid in range(1, 5):
            update = {"update_id": uid, **message_update(1, f"m{uid}")}
            assert (await http.post(url, json=update, headers=headers)).status_code == 200
        assert app.pending > 0
    # the server stopped: the lifespan shutdown let the queued updates finish
    assert runs == ["m1", "m2", "m3", "m4"]
    assert replies(api, 1) == ["did m1", "did m2", "did m3", "did m4"]
    assert app.client.closed
    assert not our_tasks()


async def test_webhook_shutdown_with_a_hung_handler_leaves_the_update_to_telegram(api: BotAPI) -> None:
    router = Router()
    began = asyncio.Event()

    @router.text()
    async def hung(ctx: Context) -> None:
        began.set()
        await asyncio.Event().wait()

    app = router.webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url, grace=0.2)
    async with serve(app, timeout_graceful_shutdown=0.3) as url:
        await app.set_webhook(url)
        await api.push(message_update(4, "work"))
        await began.wait()
    assert len(api.pending) == 1  # never answered 2xx: Telegram delivers it again, to the next instance
    assert app.client.closed
    assert not our_tasks()


# -- the client ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server that reads requests and never answers; yields its URL and the requests' first lines."""
    seen: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        seen.append(await reader.readline())

    server = await asyncio.start_server(take, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_client_retries_only_what_cannot_be_duplicated(api: BotAPI) -> None:
    async with TelegramClient(TOKEN, base_url=api.base_url) as client:
        assert await client.get_me() == BOT_USER

        api.fail("getMe", status=500, times=2)
        assert await client.get_me() == BOT_USER  # a read: retried
        assert [m for m, _ in api.calls].count("getMe") == 4

        api.fail("sendMessage", status=500)
        with pytest.raises(TelegramError) as caught:
            await client.send_message(1, "maybe sent")
        assert caught.value.error_code == 500
        assert [m for m, _ in api.calls].count("sendMessage") == 1  # may have been sent: not retried

        api.fail("sendMessage", status=429, retry_after=5)
        short = TelegramClient(TOKEN, base_url=api.base_url, max_retry_after=1)
        with pytest.raises(TelegramError) as caught:
            await short.send_message(1, "later")
        await short.close()
        assert (caught.value.error_code, caught.value.retry_after) == (429, 5.0)
        assert "retry after 5 s" in str(caught.value)

        with pytest.raises(TelegramError, match="Bad Request") as caught:
            await client.call("sendMessage", {"chat_id": 1})
        assert caught.value.error_code == 400
        assert isinstance(caught.value, SessionwareError)

    async with silent_server() as (url, seen):
        client = TelegramClient(TOKEN, base_url=url, timeout=0.2, retries=2)
        with pytest.raises(TelegramUnavailableError) as unavailable:
            await client.send_message(1, "into the void")
        assert unavailable.value.maybe_sent
        assert "may have been carried out" in str(unavailable.value)
        assert len(seen) == 1  # a timeout after sending: not sent again
        with pytest.raises(TelegramUnavailableError):
            await client.get_me()
        assert len(seen) == 4  # a read: tried 1 + 2 times
        await client.close()

    refused = TelegramClient(TOKEN, base_url=f"http://127.0.0.1:{closed_port()}", retries=2)
    began = time.monotonic()
    with pytest.raises(TelegramUnavailableError) as unavailable:
        await refused.send_message(1, "nobody there")
    assert not unavailable.value.maybe_sent  # refused: certainly not sent, so it was retried
    assert time.monotonic() - began >= 0.05 + 0.1  # two backoffs, each at least half its base
    await refused.close()


async def test_the_token_is_never_shown(api: BotAPI, caplog: pytest.LogCaptureFixture) -> None:
    bad = "654321:WRONG-secret_token-value"
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    clients = [
        TelegramClient(bad, base_url=api.base_url, retries=1),
        TelegramClient(bad, base_url=f"http://127.0.0.1:{closed_port()}", retries=1),
    ]
    async with silent_server() as (url, _):
        clients.append(TelegramClient(bad, base_url=url, retries=1, timeout=0.2))
        for client in clients:
            assert "654321" not in repr(client)
            for call in (client.get_me(), client.send_message(1, "x"), client.get_updates(), client.delete_webhook()):
                with pytest.raises(TelegramError) as caught:
                    await call
                errors.append(caught.value)
            await client.close()
    assert {type(e) for e in errors} == {TelegramError, TelegramUnavailableError}
    assert any(getattr(e, "error_code", None) == 401 for e in errors)
    for error in errors:
        shown = "".join(traceback.format_exception(error)) + repr(error) + str(error.args)
        assert bad not in shown
        assert bad.split(":")[1] not in shown
    assert "HTTP Request: POST" in caplog.text  # httpx logged the requests, with the token taken out
    assert "/bot<token>/getMe" in caplog.text
    assert bad.split(":")[1] not in caplog.text

    with pytest.raises(InvalidValueError) as malformed:
        TelegramClient("no colon secret")
    assert "no colon secret" not in str(malformed.value)
    polling = Router().polling(TOKEN, base_url=api.base_url)
    webhook = Router().webhook_app(TOKEN, secret_token=SECRET, base_url=api.base_url)
    for shown in (repr(polling), repr(webhook)):
        assert TOKEN.split(":")[1] not in shown
        assert SECRET not in shown
    await polling.stop()
    await webhook.stop()


async def test_answer_callback_needs_a_callback_and_a_client_that_answers() -> None:
    router = Router(client=ConsoleClient())
    ctx = router.context({"update_id": 1, **callback_update(1, "x")})
    with pytest.raises(RouterError, match="needs a client with answer_callback"):
        await ctx.answer_callback("hi")
    ctx = router.context({"update_id": 2, **message_update(1, "text")})
    with pytest.raises(RouterError, match="answers callback queries"):
        await ctx.answer_callback("hi")


async def test_options_are_checked() -> None:
    router = Router()
    with pytest.raises(InvalidValueError, match="secret_token"):
        router.webhook_app(TOKEN, secret_token="has spaces")
    with pytest.raises(InvalidValueError, match="ack"):
        router.webhook_app(TOKEN, secret_token=SECRET, ack="never")
    with pytest.raises(InvalidValueError, match="limit"):
        router.polling(TOKEN, limit=101)
    with pytest.raises(InvalidValueError, match="concurrency"):
        router.polling(TOKEN, concurrency=0)
    with pytest.raises(InvalidValueError, match="key"):
        router.polling(TOKEN, key="nobody")
    with pytest.raises(InvalidValueError, match="base_url"):
        TelegramClient(TOKEN, base_url="api.telegram.org")
    with pytest.raises(InvalidValueError, match="must not hold the token") as caught:
        TelegramClient(TOKEN, base_url=f"https://api.telegram.org/bot{TOKEN}")
    assert TOKEN not in str(caught.value)


def test_the_transport_without_httpx_names_the_bot_extra() -> None:
    code = """
import sys
sys.modules["httpx"] = None
from sessionware import MissingExtraError, Router
from sessionware.bot import Router as BotRouter  # the bot surface itself needs no httpx
try:
    Router().polling("1:a")
except MissingExtraError as e:
    print(e.extra, "|", e)
try:
    from sessionware.bot import TelegramClient
except MissingExtraError as e:
    print(e.extra, "|", e)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:
        assert line.startswith("bot | ")
        assert "pip install 'sessionware[bot]'" in line
    assert issubclass(MissingExtraError, ImportError)
