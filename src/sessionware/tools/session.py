"""The session middleware: bind each call to the caller's session, and record the call on it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic_core import PydanticSerializationError

from ..agents import InvalidSessionIdError, Session, SessionManager, bound_caller
from ..errors import InvalidValueError, StoreUnavailableError
from .errors import ToolDefinitionError
from .invocation import Invocation
from .middleware import CallNext, Middleware
from .results import ToolResult, error_info, jsonable

SESSION_ARGUMENT_NAMES = ("session_id", "sessionId")
"""Argument names that, anywhere in a call's arguments, must name the bound session."""

SESSION_UNAVAILABLE = "the session bound to this call does not exist, has expired, or is not accessible to this user"
SESSION_MISMATCH = (
    "the arguments name a session other than the one bound to this call; a tool can only use the caller's own session"
)

Window = int | Literal["all"] | None


def _normal(name: object) -> str:
    """An argument name without case or separators: ``SessionId``, ``session-id``, ``SESSION_ID`` are one."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _named_sessions(value: object, names: frozenset[str], depth: int = 0) -> Iterable[object]:
    """Every value found under a key whose normal form is in ``names``, at any depth of ``value``.

    Strings holding a JSON object or array (a ``Json[...]`` field) are looked into too.
    """
    if depth > 64:
        return
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                return
            yield from _named_sessions(parsed, names, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if _normal(key) in names:
                yield item
            yield from _named_sessions(item, names, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _named_sessions(item, names, depth + 1)


def _recordable(value: Any) -> Any:
    """``value`` as JSON the session store accepts, or ``None`` when it has no JSON form."""
    try:
        plain = jsonable(value)
        json.dumps(plain, allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError, RecursionError):
        return None
    return plain


class SessionToolMiddleware(Middleware):
    """Middleware built by :func:`session_middleware`."""

    __slots__ = (
        "_argument_names",
        "_history",
        "_manager",
        "_record",
        "_require_session",
        "_require_user",
        "_session_key",
        "_tool_invocations",
        "_user_key",
    )

    def __init__(
        self,
        manager: SessionManager,
        *,
        session_key: str,
        user_key: str,
        argument_names: Iterable[str],
        require_session: bool,
        require_user: bool,
        record: bool,
        history: Window,
        tool_invocations: Window,
    ) -> None:
        if not isinstance(manager, SessionManager):
            raise ToolDefinitionError(f"session_middleware needs a SessionManager, not {type(manager).__name__}")
        if isinstance(argument_names, str):
            raise ToolDefinitionError("argument_names must be a collection of names, not a str")
        super().__init__(self._handle, name="session")
        self._manager = manager
        self._session_key = session_key
        self._user_key = user_key
        self._argument_names = frozenset(_normal(name) for name in argument_names)
        self._require_session = require_session
        self._require_user = require_user
        self._record = record
        self._history = history
        self._tool_invocations = tool_invocations

    async def _handle(self, invocation: Invocation, call_next: CallNext) -> ToolResult:
        context = invocation.context
        session_id = context.get(self._session_key)
        user_id = context.get(self._user_key)
        if session_id is None:
            if self._require_session:
                return invocation.deny("no session is bound to this call", code="session_required")
            if self._names_a_session(invocation, None):
                return invocation.deny(SESSION_MISMATCH, code="session_mismatch")
            return await call_next(invocation)
        if user_id is None and self._require_user:
            return invocation.deny("no user is bound to this call", code="user_required")
        if not isinstance(session_id, str) or (user_id is not None and not isinstance(user_id, str)):
            return invocation.deny(SESSION_UNAVAILABLE, code="session_unavailable")
        session = await self._load(invocation, session_id, user_id)
        if isinstance(session, ToolResult):
            return session
        if self._names_a_session(invocation, session_id):
            result = invocation.deny(SESSION_MISMATCH, code="session_mismatch")
        else:
            scoped = invocation.with_context(session=session, sessions=self._manager.for_user(session.user_id))
            with bound_caller(session.user_id):
                result = await call_next(scoped)
        if not self._record:
            return result
        return await self._track(invocation, result, session_id, user_id)

    def _names_a_session(self, invocation: Invocation, session_id: str | None) -> bool:
        """True if the arguments name any session other than ``session_id``."""
        names = self._argument_names
        found = list(_named_sessions(invocation.raw_arguments, names))
        if invocation.arguments is not None:  # field names behind aliases
            found.extend(_named_sessions(invocation.arguments.model_dump(), names))
        return any(value != session_id or session_id is None for value in found)

    async def _load(self, invocation: Invocation, session_id: str, user_id: str | None) -> Session | ToolResult:
        try:
            session = await self._manager.get_session(
                session_id, user_id=user_id, history=self._history, tool_invocations=self._tool_invocations
            )
        except (InvalidSessionIdError, InvalidValueError) as exc:
            denied = invocation.deny(SESSION_UNAVAILABLE, code="session_unavailable")
            return denied.with_exception(exc)
        if session is None:
            return invocation.deny(SESSION_UNAVAILABLE, code="session_unavailable")
        return session

    async def _track(
        self, invocation: Invocation, result: ToolResult, session_id: str, user_id: str | None
    ) -> ToolResult:
        recorded: Any = _recordable(result.result)
        if result.outcome == "action_required" and result.action is not None:
            recorded = {"action_required": result.action.model_dump()}
        try:
            await self._manager.track_tool_invocation(
                session_id,
                invocation.tool_name,
                call_id=invocation.id,
                arguments=invocation.raw_arguments,
                status=result.outcome,
                result=recorded,
                error=None if result.error is None else result.error.model_dump(mode="json"),
                started_at=result.started_at,
                duration=result.duration,
                user_id=user_id,
            )
        except Exception as exc:
            unreachable = isinstance(exc, StoreUnavailableError)
            error = error_info(
                "record_failed",
                "unavailable" if unreachable else "internal",
                f"the call ended with {result.outcome} but recording it on the session failed: "
                f"{type(exc).__name__}: {exc}",
                details={"tool_outcome": result.outcome},
            )
            return result.replace(outcome="error", error=error).with_exception(exc)
        return result


def session_middleware(
    manager: SessionManager,
    *,
    session_key: str = "session_id",
    user_key: str = "user_id",
    argument_names: Iterable[str] = SESSION_ARGUMENT_NAMES,
    require_session: bool = True,
    require_user: bool = True,
    record: bool = True,
    history: Window = 0,
    tool_invocations: Window = 0,
) -> Middleware:
    """Middleware that gives every tool the caller's session as ``context.session``.

    The session is the one named by the trusted call context,
    ``toolbox.execute(call, context={"user_id": ..., "session_id": ...})``,
    loaded with an ownership check; a session id never comes from the model.
    A call is ``denied`` when no session (or, with ``require_user``, no user)
    is bound, when the bound session is missing, expired or someone else's
    (one message for all three, naming no id), or when its arguments carry a
    session id argument (``session_id`` in any case or spelling: ``SessionId``,
    ``session-id``, ``SESSION_ID``; by alias or field name; at any depth, JSON
    strings included) other than the bound one. The tool runs with
    ``context.sessions`` (``manager.for_user(owner)``) and inside
    :func:`~sessionware.agents.bound_caller`, so every ``SessionManager`` call
    it makes sees only the caller's sessions.

    After the call, the invocation is recorded on the session with its real
    outcome, arguments, error and duration, denied and failed calls included
    (not when the bound session itself was unavailable). If recording fails,
    the result becomes an ``error`` with code ``record_failed`` that still
    carries the tool's value. ``history`` / ``tool_invocations`` are passed to
    ``get_session`` to size the snapshot: none by default, so a call costs
    two store round trips (load and check, record) however long the session
    is; a tool that needs the history reads it with
    ``context.sessions.history(...)``, or ask for ``history=N`` / ``"all"``
    here. List it first in ``middleware=`` so it records what the other
    middleware decided.
    """
    return SessionToolMiddleware(
        manager,
        session_key=session_key,
        user_key=user_key,
        argument_names=argument_names,
        require_session=require_session,
        require_user=require_user,
        record=record,
        history=history,
        tool_invocations=tool_invocations,
    )


__all__ = ["SESSION_ARGUMENT_NAMES", "SessionToolMiddleware", "session_middleware"]
