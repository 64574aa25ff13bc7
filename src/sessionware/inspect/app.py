"""The inspector's Starlette application: the pages, the access token, the read-only guard, the live etag."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..agents import SessionManager
from ..agents.keyspace import AgentKeys
from ..cli import (
    AGENT,
    AGENT_INDEX,
    BOT,
    CliError,
    browse,
    check_storable,
    delete_session,
    describe,
    kind_of,
    updates_of,
)
from ..errors import InvalidKeyError, InvalidValueError, SessionDecodeError, SessionwareError
from ..isolation import Isolation
from ..keys import check_key
from ..store import ExpiringStore
from ..update import StoreIO
from . import pages

COOKIE = "sessionware_inspect"
READ_ONLY = "The inspector is read-only: start it with --write to delete or edit sessions."
PAGE_SIZE = 50
HISTORY_SHOWN = 500
"""The newest messages and tool calls an agent session's page shows."""


@dataclass(slots=True)
class Inspector:
    """What every request of one inspector shares."""

    store: Any
    token: str
    write: bool
    namespace: str
    store_name: str
    poll_ms: int
    page_size: int

    @property
    def keys(self) -> AgentKeys:
        """The agent key layout of the namespace."""
        return AgentKeys(self.namespace)

    def updates(self) -> Isolation:
        """The update unit edits and deletions go through: under a lease where the store has leases."""
        return updates_of(self.store)


def new_token() -> str:
    """A fresh random access token."""
    return secrets.token_urlsafe(24)


def create_app(
    store: Any,
    *,
    token: str,
    write: bool = False,
    namespace: str = "agent",
    store_name: str = "the store",
    poll_ms: int = 1000,
    page_size: int = PAGE_SIZE,
) -> Starlette:
    """The inspector as an ASGI app over ``store`` (which the caller opens and closes).

    Every request must carry ``token``: as ``?token=`` (the first visit; it is then kept in a cookie) or
    the cookie; without it the answer is 403. Unless ``write``, the routes that change sessions answer 403.
    ``poll_ms`` is how often a session's page asks whether the session changed; ``page_size`` how many
    sessions the list shows at a time.
    """
    inspector = Inspector(store, token, write, namespace, store_name, poll_ms, page_size)

    def handler(fn: Callable[[Inspector, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(inspector, request)
            except (CliError, SessionDecodeError, InvalidValueError, InvalidKeyError) as exc:
                return _say(inspector, request, "Cannot show that", str(exc), status=400)
            except SessionwareError as exc:
                return _say(inspector, request, "The store failed", f"{type(exc).__name__}: {exc}", status=503)

        return endpoint

    routes = [
        Route("/", handler(list_page)),
        Route("/session", handler(session_page)),
        Route("/api/etag", handler(etag_api)),
        Route("/api/list-etag", handler(list_etag_api)),
        Route("/delete", handler(delete_page), methods=["GET", "POST"]),
        Route("/edit", handler(edit_page), methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenMiddleware, token=token)])


class TokenMiddleware(BaseHTTPMiddleware):
    """Refuses (403) every request without the access token; a first visit with ``?token=`` gets the cookie."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        cookie = cookie_name(request)
        nonce = request.state.nonce = secrets.token_urlsafe(12)
        given = request.query_params.get("token")
        if given is not None and _same(given, self.token):
            if request.method == "GET" and not request.url.path.startswith("/api/"):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + ("?" + urlencode(rest) if rest else "")
                response: Response = RedirectResponse(target, status_code=303)
            else:
                response = await call_next(request)
            response.set_cookie(cookie, self.token, httponly=True, samesite="strict", path="/")
            return _secured(response, nonce)
        if not _same(request.cookies.get(cookie, ""), self.token):
            return _secured(
                HTMLResponse(
                    "<!doctype html><title>403</title><h1>403 Forbidden</h1><p id=message>This inspector needs "
                    "its access token: open the URL the <code>sessionware inspect</code> command printed.</p>",
                    status_code=403,
                ),
                "",
            )
        return _secured(await call_next(request), nonce)


def cookie_name(request: Request) -> str:
    """The token's cookie, one per port: browsers share cookies across the ports of a host, inspectors must not."""
    return f"{COOKIE}_{request.url.port or 0}"


def _same(given: str, token: str) -> bool:
    return secrets.compare_digest(given.encode(), token.encode())


def _secured(response: Response, nonce: str) -> Response:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["content-security-policy"] = (
        f"default-src 'none'; script-src {script}; style-src 'unsafe-inline'; img-src 'self' data: https: http:; "
        "media-src data: https: http:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "no-referrer"
    response.headers["cache-control"] = "no-store"
    return response


def _html(
    inspector: Inspector, request: Request, title: str, body: str, *, status: int = 200, script: str = ""
) -> HTMLResponse:
    """A page around ``body`` (HTML, already escaped); ``script`` runs under the request's nonce."""
    nonce = getattr(request.state, "nonce", "")
    return HTMLResponse(pages.page(title, body, nonce=nonce, write=inspector.write, script=script), status_code=status)


def _say(inspector: Inspector, request: Request, title: str, message: str, *, status: int = 200) -> HTMLResponse:
    """A page that only says ``message`` (plain text, escaped here)."""
    return _html(inspector, request, title, pages.message_page(title, message), status=status)


def _key(request: Request, form: Any = None) -> str:
    key = (form if form is not None else request.query_params).get("key")
    if not isinstance(key, str) or not key:
        raise CliError("no session key given (?key=...)")
    try:
        return check_key(key)
    except SessionwareError as exc:
        raise CliError(str(exc)) from exc


async def _raw(store: Any, key: str) -> bytes | None:
    """The stored bytes of ``key`` as the update unit reads them (so etags taken here and there agree)."""
    return await StoreIO(store).load(key)


def etag_of(data: bytes | None) -> str:
    """What the live pages compare: a digest of the stored record (``gone`` once it is deleted)."""
    return "gone" if data is None else hashlib.sha256(data).hexdigest()[:20]


# -- pages -----------------------------------------------------------------------------------------------


async def list_page(inspector: Inspector, request: Request) -> Response:
    """Every session (bot and agent), filtered by owner, key prefix and kind, a page at a time."""
    q = request.query_params
    owner, prefix, kind, cursor = q.get("owner", ""), q.get("prefix", ""), q.get("kind", ""), q.get("cursor")
    rows, next_cursor = await _browse(inspector, request)
    body = pages.session_list(
        rows,
        owner=owner,
        prefix=prefix,
        kind=kind,
        cursor=cursor,
        next_cursor=next_cursor,
        store_name=inspector.store_name,
    )
    poll = "/api/list-etag?" + urlencode(list(request.query_params.multi_items()))
    watch = pages.watch_script(poll, _list_etag(rows, next_cursor), reload=True, interval_ms=inspector.poll_ms * 3)
    return _html(inspector, request, "Sessions", body, script=watch)


def _list_etag(rows: list[Any], next_cursor: str | None) -> str:
    """What the list page compares: a digest of what its rows show (their expiry excepted, which always runs)."""
    seen = [(r.key, r.size, r.version, r.messages, r.updated_at, r.expires_in is None) for r in rows]
    return hashlib.sha256(json.dumps([seen, next_cursor]).encode()).hexdigest()[:20]


async def list_etag_api(inspector: Inspector, request: Request) -> Response:
    """``{"etag": ...}`` of a page of the list, which changes when a session on it (or joining it) changes."""
    rows, next_cursor = await _browse(inspector, request)
    return JSONResponse({"etag": _list_etag(rows, next_cursor)})


async def _browse(inspector: Inspector, request: Request) -> tuple[list[Any], str | None]:
    q = request.query_params
    return await browse(
        inspector.store,
        inspector.namespace,
        prefix=q.get("prefix", ""),
        kind=q.get("kind") or None,
        owner=q.get("owner") or None,
        limit=inspector.page_size,
        cursor=q.get("cursor"),
    )


async def session_page(inspector: Inspector, request: Request) -> Response:
    """A bot session's JSON, or an agent session's transcript; reloads itself when the session changes."""
    key = _key(request)
    store, keys = inspector.store, inspector.keys
    data = await _raw(store, key)
    row = await describe(store, keys, key)
    if data is None or row is None:
        missing = f"No session {key!r} in {inspector.store_name}."
        return _say(inspector, request, "No such session", missing, status=404)
    watch = pages.watch_script(pages.etag_url(key), etag_of(data), reload=True, interval_ms=inspector.poll_ms)
    kind = kind_of(keys, key)
    try:
        if kind == AGENT:
            session_id = keys.session_id_of(key)
            assert session_id is not None
            manager = SessionManager(store, namespace=inspector.namespace)
            session = await manager.get_session(session_id, history=HISTORY_SHOWN, tool_invocations=HISTORY_SHOWN)
            if session is None:
                gone = f"Agent session {session_id!r} is gone."
                return _say(inspector, request, "No such session", gone, status=404)
            body = pages.agent_session(key, session, row, write=inspector.write)
            return _html(inspector, request, session.id, body, script=watch)
        value = StoreIO(store).codec.decode(key, data)
    except SessionDecodeError as exc:
        body = pages.undecodable(key, row, data, exc.reason, write=inspector.write)
        return _html(inspector, request, key, body, script=watch)
    if kind == AGENT_INDEX:
        body = f"<h1>index entry {pages.text(key)}</h1>{pages.json_tree(value)}"
        return _html(inspector, request, key, body, script=watch)
    body = pages.bot_session(key, row, value, write=inspector.write)
    return _html(inspector, request, key, body, script=watch)


async def etag_api(inspector: Inspector, request: Request) -> Response:
    """``{"etag": ...}`` of a session, which changes whenever the session is written or deleted."""
    key = _key(request)
    return JSONResponse({"key": key, "etag": etag_of(await _raw(inspector.store, key))})


def _read_only(inspector: Inspector, request: Request) -> Response | None:
    if inspector.write:
        return None
    return _say(inspector, request, "Read-only", READ_ONLY, status=403)


async def _form(inspector: Inspector, request: Request) -> Any:
    """The posted form, once its token proves it came from an inspector page (not another site)."""
    form = await request.form()
    given = form.get("token")
    if not isinstance(given, str) or not _same(given, inspector.token):
        raise _Refused("The form did not carry the inspector's token; open the page again and retry.")
    return form


class _Refused(CliError):
    """A write request the inspector will not carry out."""


async def delete_page(inspector: Inspector, request: Request) -> Response:
    """GET: ask for confirmation; POST (from that page): delete the session under its isolation."""
    if (refused := _read_only(inspector, request)) is not None:
        return refused
    if request.method == "GET":
        key = _key(request)
        row = await describe(inspector.store, inspector.keys, key)
        if row is None:
            return _say(inspector, request, "No such session", f"No session {key!r}.", status=404)
        return _html(inspector, request, "Delete?", pages.confirm_delete(key, row, token=inspector.token))
    try:
        form = await _form(inspector, request)
    except _Refused as exc:
        return _say(inspector, request, "Refused", str(exc), status=403)
    key = _key(request, form)
    if kind_of(inspector.keys, key) == AGENT:
        removed = await delete_session(inspector.store, inspector.namespace, key)
    else:
        updates = inspector.updates()
        try:
            async with updates.open(key) as update:
                removed = await update.delete()
        finally:
            await updates.close()
    if not removed:
        return _say(inspector, request, "No such session", f"No session {key!r}; nothing was deleted.", status=404)
    return _say(inspector, request, "Deleted", f"Deleted {key!r}.")


async def edit_page(inspector: Inspector, request: Request) -> Response:
    """GET: a bot session's JSON in an editor; POST: store the edited JSON if it is a valid session value,
    under the session's isolation, keeping its expiry; a session changed since it was opened is not overwritten."""
    if (refused := _read_only(inspector, request)) is not None:
        return refused
    store, keys = inspector.store, inspector.keys
    if request.method == "GET":
        key = _key(request)
        if kind_of(keys, key) != BOT:
            return _say(inspector, request, "Not editable", _NOT_EDITABLE, status=400)
        data = await _raw(store, key)
        if data is None:
            return _say(inspector, request, "No such session", f"No session {key!r}.", status=404)
        value = await store.get(key)
        source = json.dumps(value, indent=2, ensure_ascii=False)
        return _edit(inspector, request, key, source, etag_of(data))
    try:
        form = await _form(inspector, request)
    except _Refused as exc:
        return _say(inspector, request, "Refused", str(exc), status=403)
    key = _key(request, form)
    source, etag = str(form.get("value", "")), str(form.get("etag", ""))
    if kind_of(keys, key) != BOT:
        return _say(inspector, request, "Not editable", _NOT_EDITABLE, status=400)
    try:
        value = _parse(store, source)
    except ValueError as exc:
        return _edit(inspector, request, key, source, etag, error=f"Not saved: {exc}", status=422)
    updates = inspector.updates()
    try:
        async with updates.open(key) as update:
            if etag_of(update.stored) != etag:
                problem = (
                    "Not saved: the session was deleted since you opened it."
                    if update.stored is None
                    else "Not saved: the session changed since you opened it; reload to edit the newest version."
                )
                return _edit(inspector, request, key, source, etag, error=problem, status=409)
            update.load()
            ttl = await store.expires_in(key) if isinstance(store, ExpiringStore) else None
            await update.save(value, ttl=ttl)
    finally:
        await updates.close()
    return RedirectResponse("/session?" + urlencode({"key": key}), status_code=303)


_NOT_EDITABLE = "Only bot sessions can be edited here; change an agent session through its SessionManager."


def _edit(
    inspector: Inspector,
    request: Request,
    key: str,
    source: str,
    etag: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    body = pages.edit_form(key, source, etag, token=inspector.token, error=error)
    watch = pages.watch_script(pages.etag_url(key), etag, reload=False, interval_ms=inspector.poll_ms)
    return _html(inspector, request, f"Edit {key}", body, status=status, script=watch)


def _parse(store: Any, source: str) -> dict[str, Any]:
    """The edited text as a session value, or :class:`ValueError` saying what is wrong with it."""
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ValueError(f"a session is a JSON object, not {type(value).__name__}")
    if not value:
        raise ValueError("an empty object would delete the session; use delete instead")
    try:
        check_storable(store, value)
    except CliError as exc:
        raise ValueError(str(exc)) from None
    return value
