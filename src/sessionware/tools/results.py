"""The data a toolbox takes and gives back: calls, results, structured errors."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import to_jsonable_python

from .errors import ErrorCategory

Outcome = Literal["success", "error", "denied", "action_required"]
"""How a call ended: it ran, it failed, it was refused, or it waits for a person."""


def new_call_id() -> str:
    """A fresh call id, for calls that arrive without one."""
    return f"call_{uuid.uuid4().hex}"


class ToolCall(BaseModel):
    """One request to run a tool: its name, its arguments (a dict or a JSON string) and an id."""

    model_config = ConfigDict(frozen=True)

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str = Field(default_factory=new_call_id)


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


def _mapping_fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (models dumped, any mapping a dict); raises if it cannot be."""
    return to_jsonable_python(value, fallback=_mapping_fallback)


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


__all__ = [
    "ErrorInfo",
    "Outcome",
    "RequiredAction",
    "ToolCall",
    "ToolResult",
    "error_info",
    "jsonable",
    "new_call_id",
]
