"""A stand-in for Telegram's Bot API on loopback, for the tests of the Router transport and the integrations.

It answers the few methods the bots here use with Telegram's envelope
(``{"ok": true, "result": ...}``, or ``{"ok": false, "error_code": ...,
"description": ..., "parameters": {"retry_after": ...}}``), at the paths
Telegram uses (``/bot<token>/<method>``), with parameters as JSON, a query
string, a form or multipart, as the clients send them:

- ``getMe``, ``getUpdates`` (long polling: ``offset`` acknowledges, ``timeout`` waits for updates),
  ``sendMessage`` (recorded in :attr:`BotAPI.sent`), ``answerCallbackQuery``, ``editMessageText``,
  ``setWebhook`` / ``deleteWebhook`` / ``getWebhookInfo``, ``close``, ``logOut``;
- :meth:`BotAPI.fail` makes the next calls of a method fail (a 429 with ``retry_after``, a 5xx);
- :meth:`BotAPI.restart` stops and starts the server on the same port, as a restart of Telegram's side would;
- with a webhook set, :meth:`BotAPI.push` posts the update to it with the ``X-Telegram-Bot-Api-Secret-Token``
  header, and keeps posting until the webhook answers 2xx, as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

TOKEN = "123456:TEST-token_for_the_stand-in"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Stand-in", "username": "stand_in_bot"}


@dataclass
class Failure:
    """How the next call of a method fails."""

    status: int
    description: str
    retry_after: int | None = None


@dataclass
class BotAPI:
    """The stand-in server; ``async with BotAPI() as api:`` runs it on a free loopback port."""

    token: str = TOKEN
    host: str = "127.0.0.1"
    port: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Every ``sendMessage`` (and ``editMessageText``) call's parameters, in order."""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every method called, with its parameters."""
    answered: list[dict[str, Any]] = field(default_factory=list)
    """Every ``answerCallbackQuery`` call's parameters."""
    webhook: dict[str, Any] | None = None
    webhook_deliveries: list[int] = field(default_factory=list)
    """The HTTP status of every webhook delivery attempt."""

    def __post_init__(self) -> None:
        self._pending: deque[dict[str, Any]] = deque()
        self._next_update = itertools.count(1)
        self._next_message = itertools.count(1)
        self._arrived = asyncio.Condition()
        self._failures: dict[str, deque[Failure]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._deliver: asyncio.Task[None] | None = None

    # -- running ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port``; the bot's methods are at ``{base_url}/bot{token}/{method}``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> BotAPI:
        """Start serving (on a free port the first time, on the same port after a restart)."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop serving; open long polls end as a dropped connection would."""
        if self._deliver is not None:
            self._deliver.cancel()
            self._deliver = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, and start again on the same port; pending updates are kept."""
        await self.stop()
        await asyncio.sleep(down_for)
        await self.start()

    async def __aenter__(self) -> BotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what a test does ------------------------------------------------------------------------

    async def push(self, update: dict[str, Any]) -> int:
        """Queue ``update`` (its ``update_id`` assigned here) for getUpdates, or deliver it to the webhook."""
        update = {**update, "update_id": next(self._next_update)}
        async with self._arrived:
            self._pending.append(update)
            self._arrived.notify_all()
        if self.webhook is not None and self._deliver is None:
            self._deliver = asyncio.get_running_loop().create_task(self._deliver_all())
        return int(update["update_id"])

    def fail(self, method: str, *, status: int = 429, retry_after: int | None = 1, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``status`` (429: with ``retry_after``)."""
        description = "Too Many Requests: retry later" if status == 429 else "Internal Server Error"
        queue = self._failures.setdefault(method, deque())
        queue.extend(Failure(status, description, retry_after if status == 429 else None) for _ in range(times))

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Updates not yet acknowledged by a getUpdates offset (or a 2xx webhook answer)."""
        return list(self._pending)

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds (polling every 10 ms), or fail the test."""
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"the stand-in Bot API never saw what the test waited for; calls: {self.calls}")
            await asyncio.sleep(0.01)

    # -- the Bot API -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append((method, params))
        failures = self._failures.get(method)
        if failures:
            failure = failures.popleft()
            extra = {} if failure.retry_after is None else {"parameters": {"retry_after": failure.retry_after}}
            return _error(failure.status, failure.description, **extra)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _m_getme(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _m_getupdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        async with self._arrived:
            self._acknowledge(offset)
            if not self._pending and timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait_for(lambda: bool(self._pending)), timeout)
            self._acknowledge(offset)
            return list(itertools.islice(self._pending, limit))

    def _acknowledge(self, offset: int) -> None:
        while self._pending and offset and self._pending[0]["update_id"] < offset:
            self._pending.popleft()

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        if "chat_id" not in params or "text" not in params:
            return _error(400, "Bad Request: chat_id and text are required")
        self.sent.append(params)
        return self._message(params)

    async def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        self.sent.append(params)
        return self._message(params)

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        self.answered.append(params)
        return True

    async def _m_setwebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        if self._pending and self._deliver is None:
            self._deliver = asyncio.get_running_loop().create_task(self._deliver_all())
        return True

    async def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self._pending.clear()
        return True

    async def _m_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        url = "" if self.webhook is None else self.webhook["url"]
        return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self._pending)}

    async def _m_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _m_logout(self, params: dict[str, Any]) -> Any:
        return True

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params["chat_id"]
        chat_id = int(chat_id) if str(chat_id).lstrip("-").isdigit() else chat_id
        return {
            "message_id": next(self._next_message),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": params.get("text", ""),
        }

    async def _deliver_all(self) -> None:
        """Post pending updates to the webhook one by one, retrying each until it is answered 2xx."""
        try:
            async with ClientSession() as http:
                while self.webhook is not None and self._pending:
                    update = self._pending[0]
                    headers = {"Content-Type": "application/json"}
                    if self.webhook.get("secret_token"):
                        headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
                    try:
                        async with http.post(self.webhook["url"], data=json.dumps(update), headers=headers) as answer:
                            self.webhook_deliveries.append(answer.status)
                            if 200 <= answer.status < 300:
                                self._pending.popleft()
                                continue
                    except OSError:
                        self.webhook_deliveries.append(0)
                    await asyncio.sleep(0.05)
        finally:
            self._deliver = None


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read().decode()  # type: ignore[union-attr]
    for key, value in list(params.items()):
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


def _error(status: int, description: str, **extra: Any) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, "description": description, **extra}, status=status)


def message_update(
    user_id: int, text: str, *, chat_id: int | None = None, thread_id: int | None = None
) -> dict[str, Any]:
    """A Telegram message update from ``user_id`` (in its private chat unless ``chat_id``), without its update_id."""
    chat = {"id": chat_id or user_id, "type": "private" if chat_id is None else "supergroup"}
    message: dict[str, Any] = {
        "message_id": int(time.time() * 1000) % 1_000_000,
        "date": int(time.time()),
        "chat": chat,
        "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if thread_id is not None:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
    return {"message": message}


def callback_update(user_id: int, data: str, *, chat_id: int | None = None) -> dict[str, Any]:
    """A Telegram callback query update from ``user_id``, without its update_id."""
    return {
        "callback_query": {
            "id": f"cb{int(time.time() * 1000)}",
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "chat_instance": "ci1",
            "data": data,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": chat_id or user_id, "type": "private"},
                "text": "pick one",
            },
        }
    }
