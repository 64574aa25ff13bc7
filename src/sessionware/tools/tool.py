"""Tools: a name, a description, a pydantic schema for the arguments, and a function to run.

A tool's definition is a :class:`ToolConfig`; the configuration form of
middleware receives it and returns a changed one (see
:func:`~sessionware.tools.create_middleware`). A tool knows its toolbox only
as a :class:`ToolHost`, so this module needs nothing above it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from pydantic import BaseModel

from .arguments import (
    ContextStyle,
    ExecuteFn,
    context_style,
    parameters_schema,
    parse_arguments,
    schema_from_function,
    validation_error,
)
from .context import ToolContext
from .errors import ToolDefinitionError, ToolTimeoutError
from .results import ErrorInfo, ToolCall, ToolResult, error_from_exception, error_info, failure_outcome, new_call_id

ArgsT = TypeVar("ArgsT", bound=BaseModel)

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""Tool names every provider accepts: a letter or ``_`` first, then letters, digits, ``_``, ``-``; 64 max."""

CONFIG_KEYS = ("name", "description", "schema", "execute", "tags", "metadata", "timeout")
"""The keys of a :class:`ToolConfig`, in order."""


def check_timeout(timeout: float | None, what: str) -> float | None:
    """``timeout`` as float seconds, or ``None``; raise :class:`ToolDefinitionError` naming ``what`` if invalid."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ToolDefinitionError(f"{what} timeout must be seconds, not {type(timeout).__name__}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ToolDefinitionError(f"{what} timeout must be a positive, finite number of seconds, not {timeout!r}")
    return float(timeout)


def _tag_set(name: object, tags: object) -> frozenset[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ToolDefinitionError(f"tool {name!r}: tags must be a collection of str, not a {type(tags).__name__}")
    tag_set = frozenset(tags)
    if not all(isinstance(t, str) for t in tag_set):
        raise ToolDefinitionError(f"tool {name!r}: tags must be str")
    return tag_set


@dataclass(frozen=True, slots=True, eq=False)
class ToolConfig(Mapping[str, Any]):
    """A tool's definition, as the configuration form of middleware receives and returns it.

    ``execute`` is ``async execute(args, context)`` when handed to a
    middleware (the tool's :meth:`Tool.run`); a replacement may be any
    function :func:`create_tool` accepts. Every field is checked when a
    config is made, so a bad value fails where it is set. Change one with
    :meth:`replace`, or spread it like the seed's ``{...toolConfiguration}``:
    ``{**config, "execute": execute}`` (a config is a read-only mapping of
    its fields).
    """

    name: str
    description: str
    schema: type[BaseModel]
    execute: ExecuteFn
    tags: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timeout: float | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ToolDefinitionError(
                f"tool name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', starting with a letter or '_'"
            )
        if not isinstance(self.description, str) or not self.description.strip():
            raise ToolDefinitionError(f"tool {name!r} needs a non-empty description")
        if not (isinstance(self.schema, type) and issubclass(self.schema, BaseModel)):
            raise ToolDefinitionError(f"tool {name!r}: schema must be a pydantic model class, not {self.schema!r}")
        if not callable(self.execute):
            raise ToolDefinitionError(f"tool {name!r}: execute must be callable")
        tags = _tag_set(name, self.tags)
        if not isinstance(self.metadata, Mapping):
            raise ToolDefinitionError(f"tool {name!r}: metadata must be a mapping")
        object.__setattr__(self, "description", self.description.strip())
        object.__setattr__(self, "tags", tags)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        object.__setattr__(self, "timeout", check_timeout(self.timeout, f"tool {name!r}"))

    def __getitem__(self, key: str) -> Any:
        if key not in CONFIG_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(CONFIG_KEYS)

    def __len__(self) -> int:
        return len(CONFIG_KEYS)

    def replace(self, **changes: Any) -> ToolConfig:
        """A copy with ``changes`` (any of ``name``, ``description``, ``schema``, ``execute``, ``tags``, ...)."""
        unknown = sorted(set(changes) - set(CONFIG_KEYS))
        if unknown:
            raise ToolDefinitionError(
                f"a tool configuration has no {', '.join(map(repr, unknown))}; its keys are {', '.join(CONFIG_KEYS)}"
            )
        return dataclasses.replace(self, **changes)


class ToolHost(Protocol):
    """What a tool made with ``toolbox=`` needs of it; a :class:`~sessionware.tools.Toolbox` is one."""

    def register(self, tool: Tool[Any], *, replace: bool = False) -> Tool[Any]:
        """Add ``tool`` and return the tool as registered (configured by the host's middleware)."""
        ...

    def run_tool(
        self, tool: Tool[Any], call: ToolCall, *, context: Mapping[str, Any] | None = None
    ) -> Awaitable[ToolResult]:
        """Run ``call`` on ``tool`` through the host's pipeline."""
        ...


class Tool(Generic[ArgsT]):
    """A tool the model can call. Build one with :func:`create_tool`.

    Tools are immutable: :meth:`with_context` and :meth:`with_config` return
    new tools. A tool made with ``toolbox=`` runs through that toolbox (its
    context, policy and middleware) even when called directly with
    :meth:`execute`; a tool without one runs alone, under its own timeout.
    """

    __slots__ = (
        "_context_style",
        "_execute",
        "_origin",
        "_parameters",
        "context",
        "description",
        "metadata",
        "name",
        "schema",
        "tags",
        "timeout",
        "toolbox",
    )

    name: str
    description: str
    schema: type[ArgsT]
    tags: frozenset[str]
    metadata: Mapping[str, Any]
    timeout: float | None
    context: Mapping[str, Any]
    toolbox: ToolHost | None
    _execute: ExecuteFn
    _context_style: ContextStyle
    _parameters: dict[str, Any]
    _origin: Tool[Any]

    def __init__(
        self,
        *,
        name: str,
        description: str,
        schema: type[ArgsT],
        execute: ExecuteFn,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        toolbox: ToolHost | None = None,
    ) -> None:
        config = ToolConfig(
            name=name,
            description=description,
            schema=schema,
            execute=execute,
            tags=_tag_set(name, tags),
            metadata={} if metadata is None else metadata,
            timeout=timeout,
        )
        self._setup(config, context=ToolContext(context), toolbox=toolbox, base=None)

    def _setup(
        self, config: ToolConfig, *, context: Mapping[str, Any], toolbox: ToolHost | None, base: Tool[Any] | None
    ) -> None:
        """Take ``config``, reusing what ``base`` (the tool this one derives from, if any) worked out already."""
        if base is not None and config.schema is base.schema:
            parameters = base._parameters
        else:
            parameters = parameters_schema(config.name, config.schema)
        if base is not None and config.execute == base.run:
            execute, style = base._execute, base._context_style
        else:
            execute, style = config.execute, context_style(config.execute, config.name)
        self.name = config.name
        self.description = config.description
        self.schema = cast("type[ArgsT]", config.schema)
        self.tags = config.tags
        self.metadata = config.metadata
        self.timeout = config.timeout
        self.context = MappingProxyType(dict(context))
        self.toolbox = toolbox
        self._execute = execute
        self._context_style = style
        self._parameters = parameters
        self._origin = self if base is None else base._origin

    def _derive(self, config: ToolConfig, context: Mapping[str, Any]) -> Tool[Any]:
        tool: Tool[Any] = Tool.__new__(Tool)
        tool._setup(config, context=context, toolbox=self.toolbox, base=self)
        return tool

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    @property
    def config(self) -> ToolConfig:
        """This tool's definition; its ``execute`` is :meth:`run`."""
        return ToolConfig(
            name=self.name,
            description=self.description,
            schema=self.schema,
            execute=self.run,
            tags=self.tags,
            metadata=self.metadata,
            timeout=self.timeout,
        )

    def same_tool(self, other: Tool[Any]) -> bool:
        """True if ``other`` and this tool derive from one tool (by configuration or bound context)."""
        return self._origin is other._origin

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments (a fresh copy, safe to change)."""
        return json.loads(json.dumps(self._parameters))  # type: ignore[no-any-return]

    def with_context(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> Tool[ArgsT]:
        """A copy of this tool with ``values`` bound into its context (not registered anywhere)."""
        return self._derive(self.config, ToolContext(self.context, values, **more))

    def with_config(self, config: ToolConfig) -> Tool[Any]:
        """A copy of this tool defined by ``config``, keeping its bound context and toolbox (not registered)."""
        if not isinstance(config, ToolConfig):
            raise ToolDefinitionError(f"with_config needs a ToolConfig, not {type(config).__name__}")
        return self._derive(config, self.context)

    def parse_arguments(self, raw: object) -> tuple[dict[str, Any] | str, ArgsT | None, ErrorInfo | None]:
        """Decode and validate ``raw`` (a dict or a JSON string).

        Returns the decoded object, the schema instance (or ``None``) and the
        validation error (or ``None``). A malformed JSON string is an error,
        never an empty argument set.
        """
        return parse_arguments(self.name, self.schema, raw)

    def parse_call(self, call: ToolCall) -> tuple[dict[str, Any] | str, ArgsT | None, ErrorInfo | None]:
        """:meth:`parse_arguments` of ``call``: its object if it has one, else the text the model wrote."""
        return self.parse_arguments(call.arguments if call.arguments is not None else call.raw_arguments)

    async def run(self, arguments: ArgsT, context: ToolContext, *, time_limit: float | None = None) -> Any:
        """Run the function with validated ``arguments``; awaits it if it is async.

        With ``time_limit`` (seconds) a run that takes longer is cancelled and
        raises :class:`~sessionware.tools.ToolTimeoutError`; a ``TimeoutError``
        the function raises itself passes through unchanged.
        """
        if time_limit is None:
            return await self._call(arguments, context)
        deadline = asyncio.timeout(time_limit)
        try:
            async with deadline:
                return await self._call(arguments, context)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            message = f"tool {self.name!r} did not finish within {time_limit:g} s and was cancelled"
            raise ToolTimeoutError(message, timeout=time_limit) from exc

    async def _call(self, arguments: ArgsT, context: ToolContext) -> Any:
        if self._context_style == "positional":
            value = self._execute(arguments, context)
        elif self._context_style == "keyword":
            value = self._execute(arguments, context=context)
        else:
            value = self._execute(arguments)
        if inspect.isawaitable(value):
            value = await value
        return value

    async def execute(
        self,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> ToolResult:
        """Run this tool once and return its :class:`ToolResult`.

        Through its toolbox if it was made with one (toolbox context, policy and
        middleware apply), else on its own (its bound context and ``context``).
        """
        call = ToolCall(name=self.name, arguments=_call_arguments(arguments), id=id or new_call_id())
        if self.toolbox is not None:
            return await self.toolbox.run_tool(self, call, context=context)
        return await self._run_alone(call, ToolContext(self.context, context))

    async def _run_alone(self, call: ToolCall, context: ToolContext) -> ToolResult:
        started, started_at = time.perf_counter(), datetime.now(UTC)

        def finished(**fields: Any) -> ToolResult:
            duration = time.perf_counter() - started
            return ToolResult(id=call.id, name=self.name, started_at=started_at, duration=duration, **fields)

        _, arguments, error = self.parse_call(call)
        if arguments is None:
            invalid = error or error_info("invalid_arguments", "validation", f"invalid arguments for {self.name!r}")
            return finished(outcome=failure_outcome(invalid), error=invalid)
        try:
            value = await self.run(arguments, context, time_limit=self.timeout)
        except Exception as exc:
            error = error_from_exception(exc, "tool")
            return finished(outcome=failure_outcome(error), error=error).with_exception(exc)
        return finished(outcome="success", result=value)


def _call_arguments(arguments: object) -> dict[str, Any] | str:
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, Mapping):
        return dict(arguments)
    raise ToolDefinitionError(f"tool arguments must be a mapping or a JSON string, not {type(arguments).__name__}")


@overload
def create_tool(fn: Callable[..., Any], /) -> Tool[Any]: ...


@overload
def create_tool(
    *,
    name: str,
    description: str,
    schema: type[ArgsT],
    execute: ExecuteFn,
    toolbox: ToolHost | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool[ArgsT]: ...


@overload
def create_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    toolbox: ToolHost | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool[Any]]: ...


def create_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    schema: type[BaseModel] | None = None,
    execute: ExecuteFn | None = None,
    toolbox: ToolHost | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool[Any] | Callable[[Callable[..., Any]], Tool[Any]]:
    """Create a tool; with ``toolbox=`` it is also registered there, and the tool as registered is returned.

    Explicit form: ``create_tool(name=, description=, schema=Model, execute=fn)``
    where ``fn(args, context)`` gets a ``Model`` instance. Decorator form:
    ``@create_tool`` or ``@create_tool(name=..., toolbox=...)`` on a function with
    typed parameters; the schema is built from them (extra keys refused), the
    description from the docstring, and a parameter named ``context`` (or
    typed :class:`ToolContext`) receives the call context.
    """

    def make(name: str, description: str, schema: type[BaseModel], execute: ExecuteFn) -> Tool[Any]:
        tool: Tool[Any] = Tool(
            name=name,
            description=description,
            schema=schema,
            execute=execute,
            tags=tags,
            metadata=metadata,
            timeout=timeout,
            toolbox=toolbox,
        )
        return toolbox.register(tool) if toolbox is not None else tool

    if fn is not None:
        if schema is not None or execute is not None:
            raise ToolDefinitionError("create_tool(fn) derives the schema from fn; do not pass schema= or execute=")
        return make(*schema_from_function(fn, name=name, description=description))
    if execute is not None or schema is not None:
        if name is None or description is None or schema is None or execute is None:
            given = {"name": name, "description": description, "schema": schema, "execute": execute}
            missing = ", ".join(f"{arg}=" for arg, value in given.items() if value is None)
            raise ToolDefinitionError(f"create_tool is missing {missing}")
        return make(name, description, schema, execute)

    def decorate(function: Callable[..., Any]) -> Tool[Any]:
        return make(*schema_from_function(function, name=name, description=description))

    return decorate


def with_context(tool: Tool[ArgsT], /, **values: Any) -> Tool[ArgsT]:
    """A copy of ``tool`` with ``values`` bound into its context.

    Bound values sit over the toolbox context and under the per-call context.
    """
    if not isinstance(tool, Tool):
        raise ToolDefinitionError(f"with_context needs a Tool, not {type(tool).__name__}")
    return tool.with_context(values)


__all__ = [
    "CONFIG_KEYS",
    "NAME_PATTERN",
    "ExecuteFn",
    "Tool",
    "ToolConfig",
    "ToolHost",
    "check_timeout",
    "create_tool",
    "validation_error",
    "with_context",
]
