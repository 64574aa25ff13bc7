"""The data a toolbox takes and gives back: calls, results, structured errors.

:class:`ToolCall` is the call both surfaces share, defined in
:mod:`sessionware.providers.calls` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..errors import StoreUnavailableError
from ..providers.calls import ToolCall, jsonable, new_call_id
from .errors import ErrorCategory, ToolError

Outcome = Literal["success", "error", "denied", "action_required"]
"""How a call ended: it ran, it failed, it was refused, or it waits for a person."""


class ErrorInfo(BaseModel):
    """Why a call did not succeed.

    Validation errors list each offending field in ``details["issues"]`` as
    ``{"path", "message", "type"}``; ``path`` is like ``items[0].name``, ``$``
    for the arguments as a whole.
    """

    model_config = ConfigDict(frozen=True)

    code: str
    category: ErrorCategory
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class RequiredAction(BaseModel):
    """What a person must do before the call can run: approve it, or supply input."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["approval", "input"]
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """The outcome of one call.

    ``result`` is what the tool returned (on ``success``); ``error`` says why it
    failed or was denied; ``action`` says what is needed on ``action_required``.
    ``duration`` is in seconds, from the call's start to its end, middleware
    included. ``exception`` (not serialised) is the exception behind an error.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    name: str
    outcome: Outcome
    result: Any = None
    error: ErrorInfo | None = None
    action: RequiredAction | None = None
    started_at: datetime
    duration: float = 0.0

    _exception: BaseException | None = PrivateAttr(default=None)

    @property
    def ok(self) -> bool:
        """True if the tool ran and succeeded."""
        return self.outcome == "success"

    @property
    def exception(self) -> BaseException | None:
        """The exception that caused an ``error`` outcome, if one did."""
        return self._exception

    def with_exception(self, exc: BaseException | None) -> ToolResult:
        """Attach ``exc`` as the cause of this result and return the result."""
        self._exception = exc
        return self

    def replace(self, **changes: Any) -> ToolResult:
        """A copy with ``changes`` applied, keeping the attached exception."""
        copy = self.model_copy(update=changes)
        copy._exception = self._exception
        return copy


def error_info(
    code: str,
    category: ErrorCategory,
    message: str,
    *,
    retryable: bool = False,
    details: Mapping[str, Any] | None = None,
) -> ErrorInfo:
    """Build an :class:`ErrorInfo` (a shorthand used across the tool surface)."""
    return ErrorInfo(code=code, category=category, message=message, retryable=retryable, details=dict(details or {}))


def failure_outcome(error: ErrorInfo) -> Outcome:
    """The outcome a failed call ends with: ``denied`` for a ``permission`` error, else ``error``."""
    return "denied" if error.category == "permission" else "error"


def error_from_exception(exc: Exception, stage: str) -> ErrorInfo:
    """Describe an exception raised while running a call.

    ``stage`` is what raised it (``tool``, ``policy``, ``middleware ...``).
    :class:`ToolError` keeps its own fields; an unreachable store is
    ``unavailable`` and retryable; anything else raised by the tool is
    ``execution``, by the machinery around it ``internal``.
    """
    kind = type(exc).__name__
    if isinstance(exc, ToolError):
        return error_info(exc.code, exc.category, exc.message, retryable=exc.retryable, details=exc.details)
    details = {"exception": kind, "stage": stage}
    if isinstance(exc, StoreUnavailableError):
        return error_info(
            "unavailable", "unavailable", f"{stage} could not reach the store: {exc}", retryable=True, details=details
        )
    if isinstance(exc, TimeoutError):
        return error_info("timeout", "timeout", f"{stage} timed out: {kind}: {exc}", retryable=True, details=details)
    if stage == "tool":
        return error_info("tool_failed", "execution", f"{kind}: {exc}", details=details)
    return error_info("internal_error", "internal", f"{stage} raised {kind}: {exc}", details=details)


__all__ = [
    "ErrorInfo",
    "Outcome",
    "RequiredAction",
    "ToolCall",
    "ToolResult",
    "error_from_exception",
    "error_info",
    "failure_outcome",
    "jsonable",
    "new_call_id",
]
