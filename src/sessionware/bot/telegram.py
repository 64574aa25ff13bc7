"""A Telegram Bot API client on httpx: typed errors, retries only where they cannot duplicate, the token kept hidden.

Every call is retried, with a jittered exponential backoff, when Telegram did
not carry it out: a 429 (after its ``retry_after``) and a connection that
could not be made. When the request may have reached Telegram (a 5xx, a
timeout or a connection lost after sending), only idempotent methods are
retried (:data:`IDEMPOTENT_METHODS`: the reads, ``getUpdates``,
``setWebhook``, ...); ``sendMessage`` and the other methods with an effect
raise instead, so a reply is sent at most once: a lost reply is an error the
handler sees, a duplicate would be a message the user sees twice. Pass
``idempotent=True`` to :meth:`TelegramClient.call` to choose otherwise.

The token appears only in the request URL: not in ``repr()``, not in error
messages or their chained causes, and not in httpx's request log, whose
records this module rewrites to ``/bot<token>/``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final

from ..codec import JsonDict
from ..errors import InvalidValueError, MissingExtraError, SessionwareError
from ..keys import check_seconds

try:
    import httpx
except ImportError as e:  # pragma: no cover - exercised in a subprocess without the extra
    raise MissingExtraError("Telegram Bot API", "bot", "httpx") from e

DEFAULT_BASE_URL: Final = "https://api.telegram.org"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_RETRIES: Final = 5
DEFAULT_MAX_RETRY_AFTER: Final = 30.0
BACKOFF_BASE: Final = 0.1
BACKOFF_MAX: Final = 5.0

IDEMPOTENT_METHODS: Final = frozenset(
    {
        "getMe",
        "getUpdates",
        "getWebhookInfo",
        "setWebhook",
        "deleteWebhook",
        "getChat",
        "getChatMember",
        "getChatAdministrators",
        "getChatMemberCount",
        "getFile",
        "getUserProfilePhotos",
        "getMyCommands",
        "setMyCommands",
        "deleteMyCommands",
        "getMyName",
        "getMyDescription",
        "getMyShortDescription",
    }
)
"""Methods that read or set a state to a given value: calling one twice does what calling it once does."""

_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
_TOKEN_IN_URL = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

logger = logging.getLogger(__name__)


class TelegramError(SessionwareError):
    """A Bot API call failed: Telegram's ``error_code``, ``description`` and, on a 429, ``retry_after``."""

    def __init__(
        self,
        method: str,
        description: str,
        *,
        error_code: int | None = None,
        retry_after: float | None = None,
        parameters: JsonDict | None = None,
    ) -> None:
        self.method = method
        self.description = description
        self.error_code = error_code
        self.retry_after = retry_after
        self.parameters: JsonDict = parameters or {}
        code = "" if error_code is None else f" {error_code}"
        wait = "" if retry_after is None else f" (retry after {retry_after:g} s)"
        super().__init__(f"Bot API {method} failed:{code} {description}{wait}")


class TelegramUnavailableError(TelegramError):
    """Telegram could not be reached or did not answer in time.

    ``maybe_sent`` tells whether the request may have reached Telegram (a
    timeout or a connection lost after sending): then it may have been
    carried out. A refused connection was not.
    """

    def __init__(self, method: str, description: str, *, maybe_sent: bool) -> None:
        self.maybe_sent = maybe_sent
        outcome = "it may have been carried out" if maybe_sent else "the request was not sent"
        super().__init__(method, f"Telegram cannot be reached ({description}); {outcome}")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (from 0): exponential, jittered, at most :data:`BACKOFF_MAX`."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2.0**attempt) * (0.5 + random.random() / 2)


class _RedactTokens(logging.Filter):
    """Rewrites ``/bot<id>:<secret>`` in log records to ``/bot<token>`` (httpx logs every request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            redacted = _TOKEN_IN_URL.sub("/bot<token>", message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def _install_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactTokens) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactTokens())


_install_redaction()


class TelegramClient:
    """A Bot API client: the router's reply client (:meth:`send_message`) and what the transports call.

    - ``token``: the bot's token (``123456:ABC...``); never shown.
    - ``base_url``: the Bot API server (a local Bot API server or a stand-in in tests).
    - ``timeout``: seconds for each request (a long poll gets its wait on top).
    - ``retries``: how many times a failed call is retried where that is safe (see the module).
    - ``max_retry_after``: a 429 asking to wait longer than this is raised at once, not waited for.
    - ``http``: an ``httpx.AsyncClient`` of your own (proxies, limits); it is not closed by :meth:`close`.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
            raise InvalidValueError("token", "must look like '123456:ABC-DEF...' (the bot's id, a colon, its secret)")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidValueError("base_url", "must be an http:// or https:// URL")
        if _TOKEN_IN_URL.search(base_url):
            raise InvalidValueError("base_url", "must not hold the token; pass it as token")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidValueError("retries", f"must be a non-negative int, not {retries!r}")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = check_seconds("timeout", timeout)
        self.retries = retries
        self.max_retry_after = check_seconds("max_retry_after", max_retry_after)
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()

    def __repr__(self) -> str:
        return f"TelegramClient(base_url={self.base_url!r})"

    @property
    def closed(self) -> bool:
        """Whether the HTTP client is closed."""
        return self._http.is_closed

    async def close(self) -> None:
        """Close the HTTP client (unless it was passed in); the Bot API's own ``close`` method is ``call("close")``."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> TelegramClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the calls -------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
        retries: int | None = None,
        request_timeout: float | httpx.Timeout | None = None,
    ) -> Any:
        """Call a Bot API ``method`` with ``params`` (``None`` values left out); return its ``result``.

        Raises :class:`TelegramError` (Telegram answered with an error) or
        :class:`TelegramUnavailableError` (no answer) once the retries allowed
        for the method are spent. ``idempotent`` overrides whether
        :data:`IDEMPOTENT_METHODS` lists the method; ``retries`` and
        ``request_timeout`` override the client's.
        """
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        budget = self.retries if retries is None else retries
        body = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                return await self._once(method, body, self.timeout if request_timeout is None else request_timeout)
            except TelegramError as exc:
                delay = self._retry_delay(exc, safe=safe, attempt=attempt, budget=budget)
                if delay is None:
                    raise
                logger.debug("Bot API %s failed (%s); retry %d in %.2f s", method, exc.description, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def _retry_delay(self, exc: TelegramError, *, safe: bool, attempt: int, budget: int) -> float | None:
        """How long to wait before retrying after ``exc``, or ``None`` to raise it."""
        if attempt >= budget:
            return None
        if exc.retry_after is not None:  # a 429: Telegram refused the call without carrying it out
            if exc.retry_after > self.max_retry_after:
                return None
            # up to 10% more, so callers told the same wait do not all come back at once
            return exc.retry_after * (1 + random.random() / 10)
        if isinstance(exc, TelegramUnavailableError):
            return backoff(attempt) if safe or not exc.maybe_sent else None
        if exc.error_code is not None and exc.error_code >= 500 and safe:
            return backoff(attempt)
        return None

    async def _once(self, method: str, body: JsonDict, request_timeout: float | httpx.Timeout) -> Any:
        url = f"{self.base_url}/bot{self._token}/{method}"
        try:
            response = await self._http.post(url, json=body, timeout=request_timeout)
        except httpx.TransportError as exc:
            error = TelegramUnavailableError(method, self._describe(exc), maybe_sent=not isinstance(exc, _NOT_SENT))
            if self._token in f"{exc}{exc!r}":
                raise error from None
            raise error from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True:
            return answer.get("result")
        if isinstance(answer, dict) and isinstance(answer.get("description"), str):
            parameters = answer.get("parameters")
            parameters = parameters if isinstance(parameters, dict) else {}
            retry_after = parameters.get("retry_after") if response.status_code == 429 else None
            code = answer.get("error_code")
            raise TelegramError(
                method,
                answer["description"],
                error_code=code if isinstance(code, int) else response.status_code,
                retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
                parameters=parameters,
            )
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        raise TelegramError(method, f"unexpected answer: {status}", error_code=response.status_code)

    def _describe(self, exc: httpx.TransportError) -> str:
        text = str(exc).replace(self._token, "<token>")
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    async def get_me(self) -> JsonDict:
        """The bot's own user."""
        result: JsonDict = await self.call("getMe")
        return result

    async def get_updates(
        self,
        offset: int | None = None,
        *,
        limit: int = 100,
        poll_timeout: float = 0,
        allowed_updates: Sequence[str] | None = None,
        retries: int | None = None,
    ) -> list[JsonDict]:
        """Updates from ``offset`` on, waiting up to ``poll_timeout`` s for one; acknowledges those before it."""
        params = {"offset": offset, "limit": limit, "timeout": poll_timeout, "allowed_updates": allowed_updates}
        wait = httpx.Timeout(self.timeout, read=self.timeout + poll_timeout)
        result = await self.call("getUpdates", params, retries=retries, request_timeout=wait)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    async def send_message(self, chat_id: Any, text: str, **options: Any) -> JsonDict:
        """Send ``text`` to ``chat_id`` (``parse_mode``, ``reply_markup``, ... as options); the sent message."""
        result: JsonDict = await self.call("sendMessage", {"chat_id": chat_id, "text": text, **options})
        return result

    async def answer_callback_query(self, callback_query_id: str, text: str | None = None, **options: Any) -> bool:
        """Answer a callback query (its button stops spinning); ``text``: a notice, an alert with ``show_alert``."""
        params = {"callback_query_id": callback_query_id, "text": text, **options}
        return bool(await self.call("answerCallbackQuery", params))

    async def answer_callback(self, update: Mapping[str, Any], text: str | None = None, **options: Any) -> bool:
        """Answer the callback query ``update`` carries (what ``ctx.answer_callback()`` calls)."""
        query = update.get("callback_query")
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            raise InvalidValueError("update", "carries no callback query to answer")
        return await self.answer_callback_query(query["id"], text, **options)

    async def set_webhook(
        self,
        url: str,
        *,
        secret_token: str | None = None,
        allowed_updates: Sequence[str] | None = None,
        drop_pending_updates: bool = False,
        max_connections: int | None = None,
        **options: Any,
    ) -> bool:
        """Have Telegram deliver updates to ``url`` with ``secret_token`` in ``X-Telegram-Bot-Api-Secret-Token``."""
        params = {
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": allowed_updates,
            "drop_pending_updates": drop_pending_updates,
            "max_connections": max_connections,
            **options,
        }
        return bool(await self.call("setWebhook", params))

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> bool:
        """Stop webhook deliveries (needed before :meth:`get_updates` works)."""
        return bool(await self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates}))


__all__ = [
    "DEFAULT_BASE_URL",
    "IDEMPOTENT_METHODS",
    "TelegramClient",
    "TelegramError",
    "TelegramUnavailableError",
    "backoff",
]
