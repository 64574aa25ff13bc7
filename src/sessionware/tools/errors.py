"""Exceptions of the tool surface: bad definitions, and structured failures raised by tools.

:class:`ToolDefinitionError` and :class:`ProviderFormatError` are defined in
:mod:`sessionware.providers.errors` (the provider formats raise them too, and
that package imports no surface); this is their public home.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..errors import SessionwareError
from ..providers.errors import ProviderFormatError, ToolDefinitionError

ErrorCategory = Literal[
    "not_found",
    "validation",
    "permission",
    "timeout",
    "cancelled",
    "unavailable",
    "execution",
    "internal",
]
"""What kind of failure a :class:`~sessionware.tools.ErrorInfo` describes.

``not_found``: no tool of that name. ``validation``: the call or its arguments
are malformed. ``permission``: a policy, middleware or the session binding
refused the call. ``timeout``: the tool ran past its time limit and was
cancelled. ``cancelled``: the call was not run because an earlier call of a
batch stopped it. ``unavailable``: a service the call needs (such as the
session store) could not be reached. ``execution``: the tool itself raised.
``internal``: a policy, middleware or hook raised.
"""


class ToolError(SessionwareError):
    """Raise from a tool, policy or middleware to fail the call with a structured error.

    The toolbox turns it into a ``ToolResult`` with outcome ``error`` carrying
    this code, category, message, retryable flag and details.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "tool_error",
        category: ErrorCategory = "execution",
        retryable: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.category: ErrorCategory = category
        self.retryable = retryable
        self.details: dict[str, Any] = dict(details or {})


class ToolDenied(ToolError):
    """Raise from a tool, policy or middleware to deny the call (outcome ``denied``)."""

    def __init__(self, reason: str, *, code: str = "denied", details: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason, code=code, category="permission", details=details)


class ToolTimeoutError(ToolError, TimeoutError):
    """A tool ran past its time limit and was cancelled (code and category ``timeout``, retryable)."""

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message, code="timeout", category="timeout", retryable=True, details={"timeout": timeout})
        self.timeout = timeout


__all__ = [
    "ErrorCategory",
    "ProviderFormatError",
    "ToolDefinitionError",
    "ToolDenied",
    "ToolError",
    "ToolTimeoutError",
]
