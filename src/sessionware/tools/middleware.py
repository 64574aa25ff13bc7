"""Middleware: functions that wrap every call a toolbox runs.

Order: with ``create_toolbox(middleware=[a, b, c])`` a call goes
``a → b → c → policy.before_execute → tool → policy.after_execute`` and the
result comes back ``c → b → a``: the first middleware listed is the outermost,
runs first and sees the final result last. Middleware run for every call to a
known tool, including calls whose arguments failed validation
(``invocation.arguments is None``) so they can record them; an unknown tool
name never reaches middleware.

A middleware is ``async def mw(invocation, call_next) -> ToolResult``. It may
change the invocation (``invocation.with_context(...)``) before passing it on,
return a result of its own without calling ``call_next`` (e.g.
``invocation.deny(reason)``), or raise :class:`~sessionware.tools.ToolError`
/ :class:`~sessionware.tools.ToolDenied`. ``call_next`` never raises: every
failure further in arrives as a ``ToolResult``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .context import Invocation
from .errors import ToolDefinitionError
from .results import ToolResult

CallNext = Callable[[Invocation], Awaitable[ToolResult]]
MiddlewareFn = Callable[[Invocation, CallNext], Awaitable[ToolResult]]


class Middleware:
    """A named wrapper around every call; build one with :func:`create_middleware`."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: MiddlewareFn, *, name: str | None = None) -> None:
        if not callable(fn):
            raise ToolDefinitionError(f"middleware must be callable, not {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def __repr__(self) -> str:
        return f"Middleware({self.name!r})"

    def __call__(self, invocation: Invocation, call_next: CallNext) -> Awaitable[ToolResult]:
        return self.fn(invocation, call_next)


def create_middleware(fn: MiddlewareFn, *, name: str | None = None) -> Middleware:
    """Wrap ``async fn(invocation, call_next) -> ToolResult`` as toolbox middleware."""
    return fn if isinstance(fn, Middleware) and name is None else Middleware(fn, name=name)


def as_middleware(item: Any) -> Middleware:
    """A :class:`Middleware` from a middleware or a plain ``(invocation, call_next)`` callable."""
    if isinstance(item, Middleware):
        return item
    if callable(item):
        return Middleware(item)
    raise ToolDefinitionError(f"cannot use {type(item).__name__} as tool middleware")


__all__ = ["CallNext", "Middleware", "MiddlewareFn", "as_middleware", "create_middleware"]
