"""Long polling and a webhook that feed Telegram's updates to a :class:`~sessionware.bot.Router`.

Both run updates the same way: one lane per key (``key="user"``, the sender,
by default; ``"chat"``, ``"user_in_chat"`` or a callable ``ctx -> key``), each
lane in arrival order, lanes side by side with at most ``concurrency``
handlers running at once (updates without a key, such as channel posts,
share one lane). Replies (``ctx.reply()``) and callback answers
(``ctx.answer_callback()``) go through the transport's :class:`TelegramClient`.

A handler that raises is reported to ``on_error(update, exc)`` (by default
logged with the update id) and then counts as finished: it is not run again,
so one bad update cannot hold up its user's lane forever nor send its replies
twice; ``on_error`` gets the whole update to keep or replay.

- :class:`TelegramPolling` acknowledges an update (advances getUpdates'
  offset past it) only once it and every update before it finished, since the
  offset is one mark. After a crash, updates past the oldest unfinished one
  may be delivered again (at least once); within a run none is handled twice.
- :class:`TelegramWebhook` answers ``200`` when the update was handled
  (``ack="handled"``, the default: Telegram keeps an update until then,
  redelivers it after a crash, and holds back when the handlers are slow) or
  as soon as it is queued (``ack="queued"``: for handlers slower than
  Telegram's delivery timeout; an update queued when the process dies is
  lost, a clean shutdown finishes the queue first). A redelivered update id
  is not run again.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, MutableMapping, Sequence
from typing import Any, Final, Literal

from ..errors import InvalidValueError
from ..keys import check_seconds
from .adapters import Update
from .router import Context, Router, RouterError
from .session import by_chat, by_user, by_user_in_chat
from .telegram import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    TelegramClient,
    TelegramError,
    TelegramUnavailableError,
    backoff,
)

LaneKey = Callable[[Context], Hashable | None]
ErrorHandler = Callable[[Update, Exception], Awaitable[None] | None]
Ack = Literal["handled", "queued"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_CONCURRENCY: Final = 16
DEFAULT_GRACE: Final = 10.0
RECHECK: Final = 0.5
"""Seconds between looks for new updates while the oldest fetched one still runs (the offset cannot pass it)."""
RETRY_AFTER: Final = 1
"""The ``Retry-After`` of the webhook's 503 when its queue is full."""

LANE_PRESETS: Final[dict[str, LaneKey]] = {"user": by_user, "chat": by_chat, "user_in_chat": by_user_in_chat}
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")

logger = logging.getLogger(__name__)


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _positive_int(name: str, value: object, *, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        bound = f" up to {most}" if most is not None else ""
        raise InvalidValueError(name, f"must be a positive int{bound}, not {value!r}")
    return value


def _lane_key(key: str | LaneKey) -> LaneKey:
    if isinstance(key, str):
        if key not in LANE_PRESETS:
            raise InvalidValueError("key", f"must be a callable or one of {sorted(LANE_PRESETS)}, not {key!r}")
        return LANE_PRESETS[key]
    if not callable(key) or inspect.iscoroutinefunction(key):
        raise InvalidValueError("key", "must be a preset name or a plain (not async) callable ctx -> key")
    return key


def _client(token: str | TelegramClient, base_url: str, timeout: float) -> tuple[TelegramClient, bool]:
    """The client to use and whether it is ours to close."""
    if isinstance(token, TelegramClient):
        return token, False
    return TelegramClient(token, base_url=base_url, timeout=timeout), True


class _Runner:
    """Runs updates through the router: one lane per key in arrival order, at most ``concurrency`` at a time."""

    def __init__(
        self,
        router: Router[Any],
        client: TelegramClient,
        *,
        concurrency: int,
        key: str | LaneKey,
        on_error: ErrorHandler | None,
    ) -> None:
        self._router = router
        self._client = client
        self._slots = asyncio.Semaphore(_positive_int("concurrency", concurrency))
        self._key = _lane_key(key)
        if on_error is not None and not callable(on_error):
            raise InvalidValueError("on_error", f"must be callable, not {type(on_error).__name__}")
        self._on_error = on_error
        self._lanes: dict[Hashable, deque[tuple[Update, asyncio.Future[None]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def owns(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` runs one of the lanes (a handler is calling)."""
        return task in self._tasks

    def submit(self, update: Update) -> asyncio.Future[None]:
        """Queue ``update`` on its lane; the future completes once it was handled (or reported to ``on_error``)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        try:
            key = self._key(self._router.context(update))
        except Exception:
            uid = update.get("update_id")
            logger.warning("the lane key of update %s failed; it runs with the keyless ones", uid, exc_info=True)
            key = None
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            task = loop.create_task(self._drain(key, lane), name=f"sessionware-lane-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        lane.append((update, done))
        return done

    async def _drain(self, key: Hashable, lane: deque[tuple[Update, asyncio.Future[None]]]) -> None:
        try:
            while lane:
                update, done = lane[0]
                async with self._slots:
                    await self._run(update)
                lane.popleft()
                if not done.done():
                    done.set_result(None)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for _, done in lane:  # cancelled: these never finished
                done.cancel()

    async def _run(self, update: Update) -> None:
        try:
            await self._router.handle(update, client=self._client)
        except Exception as exc:
            await self._report(update, exc)

    async def _report(self, update: Update, exc: Exception) -> None:
        if self._on_error is None:
            uid = update.get("update_id")
            logger.error("update %s failed; it counts as handled and is not run again", uid, exc_info=exc)
            return
        try:
            result = self._on_error(update, exc)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_error failed for update %s", update.get("update_id"))

    async def finish(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for every queued update, then cancel the handlers still running."""
        try:
            if self._tasks and grace > 0:
                await asyncio.wait(set(self._tasks), timeout=grace)
        finally:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


class TelegramPolling:
    """Long polling for a :class:`Router`: ``await polling.run()`` until :meth:`stop` or cancellation.

    - ``token``: the bot's token, or a :class:`TelegramClient` (then ``base_url``/``timeout`` are its own,
      and it is left open).
    - ``poll_timeout``: seconds Telegram holds a getUpdates open waiting for an update.
    - ``limit`` (1-100): getUpdates returns at most this many updates from the offset, and the offset
      cannot pass a running update: while the oldest fetched update runs, at most ``limit`` updates are
      fetched (others wait at Telegram), and new ones are looked for every :data:`RECHECK` seconds.
    - ``allowed_updates``: the update types to receive (Telegram's default when ``None``).
    - ``concurrency``, ``key``, ``on_error``: as in the module's description.
    - ``delete_webhook``: remove a webhook first (getUpdates fails while one is set);
      ``drop_pending_updates``: and drop what Telegram holds.
    - ``grace``: seconds :meth:`stop` lets running updates finish before cancelling them.

    Failures of getUpdates (429, 5xx, network errors, a 409 while another
    poller runs) are retried for as long as they last, with a jittered backoff
    capped at 5 s or the 429's ``retry_after``; a 401, 404 or other 4xx ends
    :meth:`run` with the :class:`TelegramError`. On cancellation the running
    handlers are cancelled (their updates are delivered again next time), the
    finished ones acknowledged, and the client closed.
    """

    def __init__(
        self,
        router: Router[Any],
        token: str | TelegramClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        poll_timeout: float = 30.0,
        limit: int = 100,
        allowed_updates: Sequence[str] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: str | LaneKey = "user",
        on_error: ErrorHandler | None = None,
        delete_webhook: bool = True,
        drop_pending_updates: bool = False,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.router = router
        self._poll_timeout = check_seconds("poll_timeout", poll_timeout, zero=True)
        self._limit = _positive_int("limit", limit, most=100)
        self._grace = check_seconds("grace", grace, zero=True)
        self._allowed = None if allowed_updates is None else list(allowed_updates)
        self._delete_webhook = delete_webhook
        self._drop_pending = drop_pending_updates
        self.client, self._own_client = _client(token, base_url, timeout)
        self._runner = _Runner(router, self.client, concurrency=concurrency, key=key, on_error=on_error)
        self._window: OrderedDict[int, bool] = OrderedDict()  # fetched, not yet acknowledged: id -> finished
        self._last_seen: int | None = None
        self._committed: int | None = None  # the offset Telegram last received
        self._state: Literal["new", "running", "stopped"] = "new"
        self._ran = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # set when an update finished, and on stop
        self._stopped = asyncio.Event()
        self._stop_grace: float | None = None
        self._poll: asyncio.Task[list[Update]] | None = None

    def __repr__(self) -> str:
        return f"TelegramPolling({self.client!r}, state={self._state!r}, offset={self.offset!r})"

    @property
    def offset(self) -> int | None:
        """The next getUpdates offset: the oldest fetched update not yet finished (``None`` before any)."""
        if self._window:
            return next(iter(self._window))
        return None if self._last_seen is None else self._last_seen + 1

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._state == "running"

    async def run(self) -> None:
        """Poll and handle updates until :meth:`stop` is called (or the task is cancelled)."""
        if self._state == "stopped" and not self._ran:  # stopped before it began
            return
        if self._state != "new":
            raise RouterError("a TelegramPolling runs once; make a new one with router.polling(...)")
        self._ran = True
        self._state = "running"
        grace = 0.0
        try:
            if self._delete_webhook:
                await self.client.delete_webhook(drop_pending_updates=self._drop_pending)
            await self._loop()
            grace = self._grace if self._stop_grace is None else self._stop_grace
        finally:
            await self._shutdown(grace)

    async def stop(self, grace: float | None = None) -> None:
        """Stop fetching, let running updates finish (up to ``grace`` s), acknowledge them and close the client.

        Called from a handler it returns at once; :meth:`run` ends once that handler returned.
        """
        if grace is not None:
            self._stop_grace = check_seconds("grace", grace, zero=True)
        if self._state == "new":
            self._state = "stopped"
            if self._own_client:
                await self.client.close()
            self._stopped.set()
            return
        self._stopping.set()
        self._wake.set()
        if self._poll is not None:
            self._poll.cancel()
        if not self._runner.owns(asyncio.current_task()):
            await self._stopped.wait()

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if len(self._window) >= self._limit:  # getUpdates would only return these again
                await self._pause(None)
                continue
            offset = self.offset
            wait = 0 if self._window else self._poll_timeout
            self._wake.clear()
            poll = self.client.get_updates(
                offset, limit=self._limit, poll_timeout=wait, allowed_updates=self._allowed, retries=0
            )
            self._poll = asyncio.ensure_future(poll)
            try:
                updates = await self._poll
            except asyncio.CancelledError:
                if _cancelling():
                    raise
                break  # stop() ended the poll
            except TelegramError as exc:
                delay = self._failure_delay(exc, failures)
                failures += 1
                await self._pause(delay, progress=False)
                continue
            finally:
                self._poll = None
            if failures:
                logger.info("getUpdates works again after %d failures", failures)
                failures = 0
            self._committed = offset
            if updates and not self._take(updates):  # only updates still running: wait for one to finish
                await self._pause(RECHECK)

    def _failure_delay(self, exc: TelegramError, failures: int) -> float:
        """Seconds to wait before polling again after ``exc``; raises ``exc`` when retrying cannot help."""
        if exc.retry_after is not None:
            delay = exc.retry_after
        elif isinstance(exc, TelegramUnavailableError) or (exc.error_code or 0) >= 500:
            delay = backoff(failures)
        elif exc.error_code == 409:  # another poller, or a webhook set meanwhile
            delay = max(1.0, backoff(failures))
        else:
            raise exc
        (logger.warning if failures == 0 else logger.debug)("%s; polling again in %.2f s", exc, delay)
        return delay

    def _take(self, updates: list[Update]) -> int:
        """Submit the updates not seen before; return how many there were."""
        fresh = 0
        for update in updates:
            uid = update.get("update_id")
            if isinstance(uid, bool) or not isinstance(uid, int):
                continue
            if self._last_seen is not None and uid <= self._last_seen:
                continue
            self._last_seen = uid
            self._window[uid] = False
            self._runner.submit(update).add_done_callback(functools.partial(self._finished, uid))
            fresh += 1
        return fresh

    def _finished(self, uid: int, done: asyncio.Future[None]) -> None:
        if done.cancelled():  # never finished: stays unacknowledged, Telegram delivers it again
            return
        self._window[uid] = True
        while self._window and self._window[next(iter(self._window))]:
            self._window.popitem(last=False)
        self._wake.set()

    async def _pause(self, delay: float | None, *, progress: bool = True) -> None:
        """Sleep ``delay`` seconds (``None``: without end), until stopped or, with ``progress``, an update
        finished since the last poll was sent."""
        deadline = None if delay is None else time.monotonic() + delay
        while not self._stopping.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return
            self._wake.clear()
            if progress:
                return

    async def _shutdown(self, grace: float) -> None:
        self._state = "stopped"
        self._stopping.set()
        try:
            await self._runner.finish(grace)
            await self._commit()
        finally:
            if self._own_client:
                await self.client.close()
            self._stopped.set()

    async def _commit(self) -> None:
        """Tell Telegram the offset, so the finished updates are not delivered again."""
        offset = self.offset
        if offset is None or offset == self._committed:
            return
        try:
            await asyncio.wait_for(self.client.get_updates(offset, limit=1, retries=1), 2 * self.client.timeout)
            self._committed = offset
        except (TelegramError, TimeoutError) as exc:
            logger.warning("updates before %d not acknowledged (%s); Telegram will deliver them again", offset, exc)


class TelegramWebhook:
    """An ASGI app that takes Telegram's webhook deliveries for a :class:`Router`.

    Serve it with any ASGI server (``uvicorn.run(app)``) and register it with
    :meth:`set_webhook`. Each POST must carry ``X-Telegram-Bot-Api-Secret-Token``
    equal to ``secret_token`` (else ``403``, compared in constant time) and
    an update as JSON (else ``400``; over ``max_body`` bytes, ``413``). At most
    ``queue_size`` updates are taken and not yet finished; past that, and
    while stopping, the answer is ``503`` with ``Retry-After`` so Telegram
    delivers it again. ``ack`` chooses when the ``200`` goes out (see the
    module). The ASGI lifespan starts and stops it (on shutdown the taken
    updates get ``grace`` seconds to finish); without lifespan it starts on the
    first request and :meth:`stop` stops it. With ``ack="handled"`` a request
    waits for its handler, so give the server a graceful-shutdown timeout
    (uvicorn's ``timeout_graceful_shutdown``): an update cut off there was not
    answered 2xx, and Telegram delivers it again.
    """

    def __init__(
        self,
        router: Router[Any],
        token: str | TelegramClient,
        *,
        secret_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        queue_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: str | LaneKey = "user",
        ack: Ack = "handled",
        on_error: ErrorHandler | None = None,
        grace: float = DEFAULT_GRACE,
        max_body: int = 1 << 20,
    ) -> None:
        if not isinstance(secret_token, str) or _SECRET.fullmatch(secret_token) is None:
            raise InvalidValueError("secret_token", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if ack not in ("handled", "queued"):
            raise InvalidValueError("ack", f"must be 'handled' or 'queued', not {ack!r}")
        self.router = router
        self._secret = secret_token
        self._queue_size = _positive_int("queue_size", queue_size)
        self._ack: Ack = ack
        self._grace = check_seconds("grace", grace, zero=True)
        self._max_body = _positive_int("max_body", max_body)
        self.client, self._own_client = _client(token, base_url, timeout)
        self._runner = _Runner(router, self.client, concurrency=concurrency, key=key, on_error=on_error)
        self._taken = 0
        self._recent: OrderedDict[int, asyncio.Future[None]] = OrderedDict()  # redeliveries are not run again
        self._remember = max(1000, 2 * self._queue_size)
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._stopped = asyncio.Event()

    def __repr__(self) -> str:
        return f"TelegramWebhook({self.client!r}, state={self._state!r}, taken={self._taken})"

    @property
    def pending(self) -> int:
        """Updates taken and not yet finished."""
        return self._taken

    async def set_webhook(
        self,
        url: str,
        *,
        allowed_updates: Sequence[str] | None = None,
        drop_pending_updates: bool = False,
        max_connections: int | None = None,
    ) -> bool:
        """Tell Telegram to deliver to ``url`` (where this app is served) with this app's secret token."""
        return await self.client.set_webhook(
            url,
            secret_token=self._secret,
            allowed_updates=allowed_updates,
            drop_pending_updates=drop_pending_updates,
            max_connections=max_connections,
        )

    async def start(self) -> None:
        """Start taking updates (the lifespan startup does this)."""
        if self._state in ("stopping", "stopped"):
            raise RouterError("a stopped TelegramWebhook does not start again; make a new one")
        self._state = "running"

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new updates (503), let the taken ones finish (up to ``grace`` s, then cancel), close the client."""
        if self._state in ("stopping", "stopped"):
            await self._stopped.wait()
            return
        if self._runner.owns(asyncio.current_task()):
            raise RouterError("TelegramWebhook.stop() cannot be awaited from a handler; stop the ASGI server")
        self._state = "stopping"
        try:
            await self._runner.finish(self._grace if grace is None else check_seconds("grace", grace, zero=True))
        finally:
            if self._own_client:
                await self.client.close()
            self._state = "stopped"
            self._stopped.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await _respond(send, 405, b"Telegram delivers updates with POST", [(b"allow", b"POST")])
            return
        given = next((v for k, v in scope.get("headers", ()) if k.lower() == b"x-telegram-bot-api-secret-token"), b"")
        if not hmac.compare_digest(given, self._secret.encode()):
            await _respond(send, 403, b"wrong or missing X-Telegram-Bot-Api-Secret-Token")
            return
        body = await _read_body(receive, self._max_body)
        if body is None:
            await _respond(send, 413, b"the body is larger than a Telegram update can be")
            return
        try:
            update = json.loads(body)
        except ValueError:
            await _respond(send, 400, b"the body is not JSON")
            return
        uid = update.get("update_id") if isinstance(update, dict) else None
        if isinstance(uid, bool) or not isinstance(uid, int):
            await _respond(send, 400, b"the body is not a Telegram update (no integer update_id)")
            return
        if self._state == "new":
            await self.start()
        done = self._recent.get(uid)
        if done is None or done.cancelled():
            if self._state != "running" or self._taken >= self._queue_size:
                await _respond(send, 503, b"busy; deliver again later", [(b"retry-after", b"%d" % RETRY_AFTER)])
                return
            done = self._take(uid, update)
        if self._ack == "handled" and not done.done():
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                if _cancelling():
                    raise
        if done.cancelled():  # stopped before it finished: Telegram delivers it again
            await _respond(send, 503, b"stopping; deliver again later", [(b"retry-after", b"%d" % RETRY_AFTER)])
            return
        await _respond(send, 200, b"")

    def _take(self, uid: int, update: Update) -> asyncio.Future[None]:
        done = self._runner.submit(update)
        self._taken += 1
        done.add_done_callback(self._release)
        self._recent[uid] = done
        self._recent.move_to_end(uid)
        while len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        return done

    def _release(self, done: asyncio.Future[None]) -> None:
        self._taken -= 1


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` when it is over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


__all__ = ["Ack", "ErrorHandler", "LaneKey", "TelegramPolling", "TelegramWebhook"]
