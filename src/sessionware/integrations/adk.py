"""Google ADK sessions in a :class:`~sessionware.SessionManager` (``pip install 'sessionware[adk]'``).

::

    service = SessionwareSessionService(manager)                   # any ADK BaseSessionService user takes it
    runner = Runner(app_name="support", agent=agent, session_service=service)

One ADK session is one session of the manager, owned by ``app_name`` and the
ADK ``user_id`` together (so listing, reading and deleting stay within one
app and one user), under a session id derived from the three (ADK session
ids may be any string). Its state lives in the session's metadata; every
:class:`~google.adk.events.Event` is one history message whose ``source``
is the event's JSON form (provider ``"adk"``), so it reads back exactly,
and whose role and content are what the event's ``Content`` says (read as
Gemini content: text, tool calls, tool results), so exports and the
inspector read it too. App state (``app:`` keys) and user state
(``user:`` keys) are records of their own, shared by every session of the
app or of the user; ``temp:`` keys are never stored.

Every stored session has an integer revision (the session record's
version), carried by the ``Session`` objects this service returns;
:meth:`SessionwareSessionService.append_event` on a ``Session`` older than
the stored one raises ADK's ``StaleSessionError`` and writes nothing.
:meth:`SessionwareSessionService.turn` holds a session for a whole run
(with ``isolation="distributed"``, across processes by a store lease), so
runs of one session from several processes never interleave.

An event is written in two steps under the session's hold: its state
delta with the revision check (nothing is written if that fails), then the
event itself; a process that dies between the two leaves the state one
event ahead of the events, and ``Session`` objects read before it stale.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import unquote

from ..agents.errors import MissingCapabilityError
from ..agents.errors import SessionNotFoundError as _MissingSession
from ..agents.keyspace import escape_user_id
from ..agents.manager import SessionManager
from ..agents.models import Session as _Stored
from ..errors import ConflictError, InvalidValueError, MissingExtraError
from ..isolation import DEFAULT_LEASE, DEFAULT_LOCK_WAIT, Isolation
from ..keys import TTL
from ..providers.errors import ProviderFormatError
from ..providers.gemini import messages_from_gemini
from ..store import LogEntry, ScannableStore
from ._ids import session_id_for
from ._turns import checked_manager, hold_turn, turn_isolation

try:
    from google.adk.errors.already_exists_error import AlreadyExistsError
    from google.adk.errors.session_not_found_error import SessionNotFoundError
    from google.adk.events.event import Event
    from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
    from google.adk.sessions.session import Session
    from google.adk.sessions.state import State
    from pydantic_core import to_jsonable_python
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Google ADK", "adk", "google.adk") from e

try:
    from google.adk.errors._stale_session_error import StaleSessionError
except ImportError:  # pragma: no cover - ADK before its StaleSessionError raised ValueError
    StaleSessionError = ValueError  # type: ignore[assignment,misc]

PROVIDER = "adk"
"""The ``source.provider`` of history messages made from ADK events."""

_CONTINUED = {"kind": "continued"}
"""The ``source.item`` of the second and later history messages made from one event."""

_SEP = "\x1f"
_APP, _USER, _ID, _STATE, _UPDATED = "adk_app", "adk_user", "adk_session", "adk_state", "adk_updated"
STALE_MESSAGE = (
    "The session has been changed in storage since it was loaded (its revision is older than the stored one). "
    "Reload it with get_session and retry."
)


class SessionwareSessionService(BaseSessionService):
    """An ADK session service keeping sessions in ``manager``.

    New sessions get ``ttl`` (default: the manager's, sliding on every
    event) and ``metadata`` besides their state. ``isolation`` keeps
    appends of one session (and :meth:`turn`) apart: ``"local"`` (default)
    in this process, ``"distributed"`` across processes by a store lease
    (``lease`` seconds, renewed while held; ``lock_wait`` to get it).
    """

    def __init__(
        self,
        manager: SessionManager,
        *,
        isolation: Literal["local", "distributed"] = "local",
        lease: float = DEFAULT_LEASE,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        ttl: TTL = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.manager = checked_manager(manager)
        self.ttl = ttl
        self.metadata = dict(metadata or {})
        reserved = sorted(set(self.metadata) & {_APP, _USER, _ID, _STATE, _UPDATED})
        if reserved:
            raise InvalidValueError("metadata", f"must not set the keys {reserved}: the service keeps them")
        self._holds: Isolation = turn_isolation(manager, isolation, lease=lease, lock_wait=lock_wait)

    # -- the ADK interface ----------------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session under ``session_id`` (``AlreadyExistsError`` if the user has one of that id) or a
        generated one; ``app:`` and ``user:`` keys of ``state`` go to the app's and the user's state."""
        owner = _owner(app_name, user_id)
        if session_id is None:
            session_id = str(uuid.uuid4())
        elif not isinstance(session_id, str) or not session_id:
            raise InvalidValueError("session_id", f"must be a non-empty str or None, not {session_id!r:.60}")
        deltas = _split(state or {})
        now = time.time()
        meta = {
            **self.metadata,
            _APP: app_name,
            _USER: user_id,
            _ID: session_id,
            _STATE: deltas["session"],
            _UPDATED: now,
        }
        try:
            stored = await self.manager.create_session(
                owner, session_id=_stored_id(app_name, user_id, session_id), metadata=meta, ttl=self.ttl
            )
        except ConflictError:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        app_state, user_state = await self._write_shared(app_name, user_id, deltas)
        return _session(stored, app_state, user_state, [])

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its state and events (``config``: only the ``num_recent_events`` newest, only
        those from ``after_timestamp`` on), or ``None`` if the user has no such session."""
        owner = _owner(app_name, user_id)
        if not isinstance(session_id, str) or not session_id:
            return None
        stored = await self.manager.get_session(
            _stored_id(app_name, user_id, session_id), user_id=owner, history=0, tool_invocations=0
        )
        if stored is None:
            return None
        events = await self._events(stored, config)
        app_state, user_state = await self._read_shared(app_name, user_id)
        return _session(stored, app_state, user_state, events)

    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        """The sessions of ``user_id`` in the app (of every user without it), least recently updated first,
        with their state and without events."""
        if user_id is not None:
            owners = [_owner(app_name, user_id)]
        else:
            owners = await self._owners(app_name)
        app_state = await self._read_state(self._app_key(app_name))
        sessions: list[Session] = []
        for owner in owners:
            user = owner.partition(_SEP)[2]
            user_state = await self._read_state(self._user_key(app_name, user))
            cursor: str | None = None
            while True:
                page = await self.manager.list_sessions(owner, limit=200, cursor=cursor)
                sessions.extend(
                    _session(stored, app_state, user_state, []) for stored in page.sessions if _is_adk(stored)
                )
                cursor = page.next_cursor
                if cursor is None:
                    break
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete the session and its events (nothing happens if the user has no such session)."""
        owner = _owner(app_name, user_id)
        if isinstance(session_id, str) and session_id:
            await self.manager.delete_session(_stored_id(app_name, user_id, session_id), user_id=owner, missing_ok=True)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state in the app, keys without their ``user:`` prefix (``{}`` if none is stored)."""
        _owner(app_name, user_id)
        return await self._read_state(self._user_key(app_name, user_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store ``event`` and its state delta (``temp:`` keys only in ``session``), then add it to ``session``.

        ``StaleSessionError`` (a ``ValueError``) if the stored session changed
        since ``session`` was read; ADK's ``SessionNotFoundError`` if it is gone.
        Partial (streamed) events are returned untouched.
        """
        if not isinstance(session, Session):
            raise InvalidValueError("session", f"must be an ADK Session, not {type(session).__name__}")
        if not isinstance(event, Event):
            raise InvalidValueError("event", f"must be an ADK Event, not {type(event).__name__}")
        if event.partial:
            return event
        owner = _owner(session.app_name, session.user_id)
        stored_id = _stored_id(session.app_name, session.user_id, session.id)
        async with hold_turn(self._holds, self.manager, stored_id, "adk"):
            expected = await self._revision(session, stored_id, owner)
            self._apply_temp_state(session, event)
            event = self._trim_temp_delta_state(event)
            deltas = _split(event.actions.state_delta if event.actions else {})
            entries = event_entries(event)
            updated = float(event.timestamp)

            def apply(meta: dict[str, Any]) -> None:
                meta[_STATE] = {**meta.get(_STATE, {}), **deltas["session"]}
                meta[_UPDATED] = updated

            try:
                await self.manager.edit_metadata(stored_id, apply, user_id=owner, expected_version=expected)
            except ConflictError:
                raise StaleSessionError(STALE_MESSAGE) from None
            except _MissingSession:
                raise SessionNotFoundError(f"Session {session.id} not found.") from None
            await self._write_shared(session.app_name, session.user_id, deltas, read=False)
            await self.manager.add_messages(stored_id, entries, user_id=owner)
        session._storage_update_marker = str(expected + 2)  # the metadata edit, then the event's message
        session.last_update_time = updated
        return self._commit_event_to_session(session, event)

    # -- beyond ADK's interface --------------------------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, *, app_name: str, user_id: str, session_id: str) -> AsyncIterator[None]:
        """Hold the session for one run (``async with service.turn(...): async for e in runner.run_async(...)``):
        another holder of the same session, in this process or (distributed isolation) another, waits."""
        _owner(app_name, user_id)
        async with hold_turn(self._holds, self.manager, _stored_id(app_name, user_id, session_id), "adk-turn"):
            yield

    async def delete_user_data(self, *, app_name: str, user_id: str) -> int:
        """Delete every session of the user in the app and the user's state there; return how many sessions."""
        deleted = await self.manager.delete_user_data(_owner(app_name, user_id))
        async with self._holds.open(self._user_key(app_name, user_id)) as update:
            await update.delete()
        return deleted

    # -- internals ---------------------------------------------------------------------------------------------

    async def _revision(self, session: Session, stored_id: str, owner: str) -> int:
        """The stored revision, which ``session`` must be at (else ``StaleSessionError``)."""
        marker = session._storage_update_marker
        if isinstance(marker, str) and marker.isdigit() and int(marker) >= 1:
            return int(marker)  # checked by the metadata edit, which writes only at this revision
        stored = await self.manager.get_session(stored_id, user_id=owner, history=0, tool_invocations=0)
        if stored is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        if marker is not None:
            raise StaleSessionError(STALE_MESSAGE)
        # A Session made by hand (no revision): current only if its newest event is the stored newest one.
        newest = await self._events(stored, GetSessionConfig(num_recent_events=1))
        mine = session.events[-1].id if session.events else None
        if (newest[-1].id if newest else None) != mine:
            raise StaleSessionError(STALE_MESSAGE)
        return stored.version

    async def _events(self, stored: _Stored, config: GetSessionConfig | None) -> list[Event]:
        limit = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        if limit == 0:
            return []
        read = self.manager.history_entries  # across forks and rewinds of the session
        if limit is None or after is not None:
            items = _heads(await read(stored.id))
        else:
            # One event may make several history messages: read more than ``limit``, widening until
            # ``limit`` events are in the window or it holds the whole history.
            window = 2 * limit + 2
            while True:
                entries = await read(stored.id, last=window)
                items = _heads(entries)
                if len(items) >= limit or len(entries) < window:
                    break
                window *= 4
        events = [Event.model_validate(item) for item in items]
        if after is not None:
            events = [event for event in events if event.timestamp >= after]
        if limit is not None:
            events = events[-limit:]
        return events

    async def _owners(self, app_name: str) -> list[str]:
        """The owners (``app_name`` + separator + user id) with sessions in the app, from the manager's index."""
        store = self.manager.store
        if not isinstance(store, ScannableStore):
            raise MissingCapabilityError(store, "ScannableStore (scan)", "listing the sessions of every user")
        base = self.manager.keys.user_prefix(app_name + _SEP)[: -len(escape_user_id(app_name + _SEP)) - 1]
        owners: set[str] = set()
        async for key in store.scan(base + escape_user_id(app_name + _SEP)):
            escaped = key[len(base) :].partition(":")[0]
            owners.add(unquote(escaped, encoding="utf-8", errors="surrogatepass"))
        return sorted(owners)

    def _app_key(self, app_name: str) -> str:
        return f"{self.manager.keys.namespace}:adk:app:{escape_user_id(app_name)}"

    def _user_key(self, app_name: str, user_id: str) -> str:
        return f"{self.manager.keys.namespace}:adk:user:{escape_user_id(app_name)}:{escape_user_id(user_id)}"

    async def _read_state(self, key: str) -> dict[str, Any]:
        data = await self._holds.read(key)
        state = None if data is None else data.get("state")
        return dict(state) if isinstance(state, Mapping) else {}

    async def _read_shared(self, app_name: str, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return await self._read_state(self._app_key(app_name)), await self._read_state(
            self._user_key(app_name, user_id)
        )

    async def _write_shared(
        self, app_name: str, user_id: str, deltas: dict[str, dict[str, Any]], *, read: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Merge the app and user deltas into their records (each under its own hold); return both states
        (those without a delta read only if ``read``)."""
        out: list[dict[str, Any]] = []
        for key, delta in (
            (self._app_key(app_name), deltas["app"]),
            (self._user_key(app_name, user_id), deltas["user"]),
        ):
            if not delta:
                out.append(await self._read_state(key) if read else {})
                continue
            async with self._holds.open(key) as update:
                data = update.load() or {}
                state = {**(data.get("state") or {}), **delta}
                await update.save({"state": state, "revision": int(data.get("revision", 0)) + 1})
            out.append(state)
        return out[0], out[1]


# -- ids and state ------------------------------------------------------------------------------------------------


def _owner(app_name: object, user_id: object) -> str:
    """The sessionware owner of an app's user: both names, apart by a separator the app name may not hold."""
    if not isinstance(app_name, str) or not app_name or _SEP in app_name:
        raise InvalidValueError("app_name", f"must be a non-empty str without \\x1f, not {app_name!r:.60}")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidValueError("user_id", f"must be a non-empty str, not {user_id!r:.60}")
    return f"{app_name}{_SEP}{user_id}"


def _stored_id(app_name: str, user_id: str, session_id: str) -> str:
    """The sessionware session id of an ADK session: ADK ids are unique per app and user only."""
    return session_id_for(_SEP.join((app_name, user_id, session_id)))


def _split(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A state (delta) as JSON, split into app, user and session parts (prefixes removed); ``temp:`` keys dropped."""
    out: dict[str, dict[str, Any]] = {"app": {}, "user": {}, "session": {}}
    for key, value in state.items():
        if key.startswith(State.APP_PREFIX):
            out["app"][key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            out["user"][key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            out["session"][key] = value
    try:
        jsonable: dict[str, dict[str, Any]] = to_jsonable_python(out)
    except Exception as e:  # pydantic_core raises its own error type for values without a JSON form
        raise InvalidValueError("state", f"holds a value with no JSON form: {e}") from e
    return jsonable


def _merged(
    session_state: Mapping[str, Any], app_state: Mapping[str, Any], user_state: Mapping[str, Any]
) -> dict[str, Any]:
    state: dict[str, Any] = _plain(session_state)
    state.update({State.APP_PREFIX + key: value for key, value in _plain(app_state).items()})
    state.update({State.USER_PREFIX + key: value for key, value in _plain(user_state).items()})
    return state


def _plain(value: Any) -> Any:
    """Thawed (frozen maps and lists of snapshots as dicts and lists)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _is_adk(stored: _Stored) -> bool:
    return _ID in stored.metadata and _APP in stored.metadata


def _session(
    stored: _Stored, app_state: Mapping[str, Any], user_state: Mapping[str, Any], events: list[Event]
) -> Session:
    meta = stored.metadata
    session = Session(
        id=meta[_ID],
        app_name=meta[_APP],
        user_id=meta[_USER],
        state=_merged(meta.get(_STATE) or {}, app_state, user_state),
        events=events,
        last_update_time=float(meta.get(_UPDATED) or stored.updated_at.timestamp()),
    )
    session._storage_update_marker = str(stored.version)
    return session


# -- events and history messages ----------------------------------------------------------------------------------


def event_entries(event: Event) -> list[dict[str, Any]]:
    """The history messages (``add_messages`` mappings) that keep ``event`` losslessly."""
    item = event.model_dump(mode="json", exclude_none=True)
    plain_role = "user" if event.author == "user" else "assistant"
    made: list[dict[str, Any]] = []
    if event.content is not None and event.content.parts:
        content = event.content.model_dump(mode="json", exclude_none=True)
        content.setdefault("role", "user" if event.author == "user" else "model")
        try:
            made = [dict(entry) for entry in messages_from_gemini(content)]
        except ProviderFormatError:
            made = []
    if not made:
        made = [{"role": plain_role, "content": []}]
    for i, entry in enumerate(made):
        entry["source"] = {"provider": PROVIDER, "item": item if i == 0 else _CONTINUED}
    return made


def _heads(entries: list[LogEntry]) -> list[Any]:
    """The stored events (JSON) of history log entries, oldest first: the first message made from each."""
    items: list[Any] = []
    for entry in entries:
        source = entry.value.get("source")
        if isinstance(source, Mapping) and source.get("provider") == PROVIDER:
            item = source.get("item")
            if item != _CONTINUED:
                items.append(item)
    return items


__all__ = ["PROVIDER", "STALE_MESSAGE", "SessionwareSessionService", "StaleSessionError", "event_entries"]
