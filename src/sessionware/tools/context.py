"""What a call carries through the toolbox: its context values and the :class:`Invocation`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .errors import ToolDefinitionError
from .results import ErrorInfo, RequiredAction, ToolCall, ToolResult, error_info

if TYPE_CHECKING:
    from .tool import Tool


class ToolContext(Mapping[str, Any]):
    """Read-only values a call runs with, readable as ``context["key"]`` or ``context.key``.

    A call's context is the toolbox context, overlaid by the tool's own bound
    values (:func:`~sessionware.tools.with_context`), overlaid by the per-call
    context given to ``toolbox.execute``; middleware may add more (the session
    middleware adds ``session``).
    """

    __slots__ = ("_values",)

    def __init__(self, *layers: Mapping[str, Any] | None, **values: Any) -> None:
        merged: dict[str, Any] = {}
        for layer in (*layers, values):
            if not layer:
                continue
            if not isinstance(layer, Mapping):
                raise ToolDefinitionError(f"a tool context must be a mapping, not {type(layer).__name__}")
            for key, value in layer.items():
                if not isinstance(key, str):
                    raise ToolDefinitionError(f"tool context keys must be str, not {type(key).__name__}")
                merged[key] = value
        self._values = merged

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the tool context has no value {name!r}") from None

    def __repr__(self) -> str:
        return f"ToolContext({', '.join(sorted(self._values))})"

    def with_values(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> ToolContext:
        """A new context with ``values`` and ``more`` laid over this one."""
        return ToolContext(self._values, values, **more)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call on its way through middleware and policy to the tool.

    ``arguments`` is the validated schema instance, or ``None`` when validation
    failed (then ``error`` says why). ``raw_arguments`` is the decoded JSON
    object as the model sent it (or the original string when it was not JSON).
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
        outcome = "denied" if error.category == "permission" else "error"
        return self._result(outcome=outcome, error=error).with_exception(exception)

    def deny(self, reason: str, *, code: str = "denied", details: Mapping[str, Any] | None = None) -> ToolResult:
        """A ``denied`` result giving ``reason``; the tool does not run."""
        return self.fail(error_info(code, "permission", reason, details=details))

    def require(self, action: RequiredAction) -> ToolResult:
        """An ``action_required`` result; the tool does not run until the action is done."""
        return self._result(outcome="action_required", action=action)


__all__ = ["Invocation", "ToolContext"]
