"""One call on its way through middleware and policy to the tool: :class:`Invocation`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from .context import ToolContext
from .errors import ToolDefinitionError
from .results import ErrorInfo, RequiredAction, ToolCall, ToolResult, error_info, failure_outcome
from .tool import Tool


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call on its way through middleware and policy to the tool.

    ``arguments`` is the validated schema instance, or ``None`` when validation
    failed (then ``error`` says why). ``raw_arguments`` is the decoded JSON
    object as the model sent it (or the original string when it was not JSON).
    ``tool`` is the tool as registered, configuration middleware applied.
    """

    call: ToolCall
    tool: Tool[Any]
    context: ToolContext
    arguments: BaseModel | None
    raw_arguments: dict[str, Any] | str
    started_at: datetime
    started: float
    error: ErrorInfo | None = None

    @property
    def id(self) -> str:
        """The call id."""
        return self.call.id

    @property
    def tool_name(self) -> str:
        """The tool's name."""
        return self.tool.name

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The tool's metadata."""
        return self.tool.metadata

    @property
    def tags(self) -> frozenset[str]:
        """The tool's tags."""
        return self.tool.tags

    @property
    def params(self) -> dict[str, Any]:
        """The validated arguments as a dict by field name (empty when validation failed)."""
        return {} if self.arguments is None else self.arguments.model_dump()

    def with_context(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> Invocation:
        """This invocation with ``values`` laid over its context."""
        return dataclasses.replace(self, context=self.context.with_values(values, **more))

    def with_arguments(self, arguments: BaseModel) -> Invocation:
        """This invocation with other validated arguments (an instance of the tool's schema)."""
        if not isinstance(arguments, self.tool.schema):
            raise ToolDefinitionError(
                f"arguments for tool {self.tool.name!r} must be a {self.tool.schema.__name__}, "
                f"not {type(arguments).__name__}"
            )
        return dataclasses.replace(self, arguments=arguments, error=None)

    def _result(self, **fields: Any) -> ToolResult:
        return ToolResult(
            id=self.call.id,
            name=self.tool.name,
            started_at=self.started_at,
            duration=time.perf_counter() - self.started,
            **fields,
        )

    def success(self, value: Any) -> ToolResult:
        """A ``success`` result carrying ``value``."""
        return self._result(outcome="success", result=value)

    def fail(self, error: ErrorInfo, exception: BaseException | None = None) -> ToolResult:
        """An ``error`` result (or ``denied`` for a ``permission`` error)."""
        return self._result(outcome=failure_outcome(error), error=error).with_exception(exception)

    def deny(self, reason: str, *, code: str = "denied", details: Mapping[str, Any] | None = None) -> ToolResult:
        """A ``denied`` result giving ``reason``; the tool does not run."""
        return self.fail(error_info(code, "permission", reason, details=details))

    def require(self, action: RequiredAction) -> ToolResult:
        """An ``action_required`` result; the tool does not run until the action is done."""
        return self._result(outcome="action_required", action=action)


__all__ = ["Invocation"]
