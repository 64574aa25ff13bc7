"""Tools: a name, a description, a pydantic schema for the arguments, and a function to run."""

from __future__ import annotations

import inspect
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .context import ToolContext
from .errors import ToolDefinitionError
from .results import ErrorInfo, ToolCall, ToolResult, error_info, new_call_id

if TYPE_CHECKING:
    from .toolbox import Toolbox

ArgsT = TypeVar("ArgsT", bound=BaseModel)

ExecuteFn = Callable[..., Any]
"""``execute(args, context)`` or ``execute(args)``, sync or async; ``args`` is a schema instance."""

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""Tool names every provider accepts: a letter or ``_`` first, then letters, digits, ``_``, ``-``; 64 max."""

MAX_ISSUES_IN_MESSAGE = 5


def check_timeout(timeout: float | None, what: str) -> float | None:
    """``timeout`` as float seconds, or ``None``; raise :class:`ToolDefinitionError` naming ``what`` if invalid."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ToolDefinitionError(f"{what} timeout must be seconds, not {type(timeout).__name__}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ToolDefinitionError(f"{what} timeout must be a positive, finite number of seconds, not {timeout!r}")
    return float(timeout)


def _context_style(fn: Callable[..., Any], name: str) -> str:
    """How ``fn`` takes the context: ``"positional"``, ``"keyword"`` or ``"none"``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot read the signature of execute: {exc}") from exc
    positional = 0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return "positional"
        if param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    if positional >= 2:
        return "positional"
    if "context" in signature.parameters:
        return "keyword"
    if positional == 1:
        return "none"
    raise ToolDefinitionError(f"tool {name!r}: execute must take the arguments: execute(args, context)")


def _issue_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


def validation_error(tool_name: str, issues: list[dict[str, Any]], *, code: str = "invalid_arguments") -> ErrorInfo:
    """An ``error``/``validation`` :class:`ErrorInfo` listing ``issues`` (``path``, ``message``, ``type``)."""
    shown = "; ".join(f"{i['path']}: {i['message']}" for i in issues[:MAX_ISSUES_IN_MESSAGE])
    more = len(issues) - MAX_ISSUES_IN_MESSAGE
    if more > 0:
        shown += f"; and {more} more"
    return error_info(
        code,
        "validation",
        f"invalid arguments for tool {tool_name!r}: {shown}",
        details={"issues": issues},
    )


class Tool(Generic[ArgsT]):
    """A tool the model can call. Build one with :func:`create_tool`.

    Tools are immutable: :meth:`with_context` returns a new tool. A tool made
    with ``toolbox=`` runs through that toolbox (its context, policy and
    middleware) even when called directly with :meth:`execute`.
    """

    __slots__ = (
        "_context_style",
        "_execute",
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
    toolbox: Toolbox | None

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
        toolbox: Toolbox | None = None,
    ) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ToolDefinitionError(
                f"tool name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', starting with a letter or '_'"
            )
        if not isinstance(description, str) or not description.strip():
            raise ToolDefinitionError(f"tool {name!r} needs a non-empty description")
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise ToolDefinitionError(f"tool {name!r}: schema must be a pydantic model class, not {schema!r}")
        if not callable(execute):
            raise ToolDefinitionError(f"tool {name!r}: execute must be callable")
        if isinstance(tags, str):
            raise ToolDefinitionError(f"tool {name!r}: tags must be a collection of str, not a str")
        tag_set = frozenset(tags)
        if not all(isinstance(t, str) for t in tag_set):
            raise ToolDefinitionError(f"tool {name!r}: tags must be str")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ToolDefinitionError(f"tool {name!r}: metadata must be a mapping")
        parameters = _parameters_schema(name, schema)
        self.name = name
        self.description = description.strip()
        self.schema = schema
        self.tags = tag_set
        self.metadata = MappingProxyType(dict(metadata or {}))
        self.timeout = check_timeout(timeout, f"tool {name!r}")
        self.context = MappingProxyType(dict(ToolContext(context)))
        self.toolbox = toolbox
        self._execute = execute
        self._context_style = _context_style(execute, name)
        self._parameters = parameters

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments (a fresh copy, safe to change)."""
        return json.loads(json.dumps(self._parameters))  # type: ignore[no-any-return]

    def with_context(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> Tool[ArgsT]:
        """A copy of this tool with ``values`` bound into its context (not registered anywhere)."""
        return Tool(
            name=self.name,
            description=self.description,
            schema=self.schema,
            execute=self._execute,
            tags=self.tags,
            metadata=self.metadata,
            timeout=self.timeout,
            context=ToolContext(self.context, values, **more),
            toolbox=self.toolbox,
        )

    def parse_arguments(self, raw: object) -> tuple[dict[str, Any] | str, ArgsT | None, ErrorInfo | None]:
        """Decode and validate ``raw`` (a dict or a JSON string).

        Returns the decoded object, the schema instance (or ``None``) and the
        validation error (or ``None``). A malformed JSON string is an error,
        never an empty argument set.
        """
        if isinstance(raw, str):
            try:
                decoded = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                reason = (
                    f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                    if isinstance(exc, json.JSONDecodeError)
                    else str(exc) or type(exc).__name__
                )
                issue = {"path": "$", "message": f"not valid JSON: {reason}", "type": "json_invalid"}
                return raw, None, validation_error(self.name, [issue], code="invalid_json")
        elif isinstance(raw, Mapping):
            decoded = dict(raw)
        else:
            decoded = raw
        if not isinstance(decoded, dict):
            issue = {
                "path": "$",
                "message": f"arguments must be a JSON object, not {_json_type(decoded)}",
                "type": "object_type",
            }
            return (raw if isinstance(raw, str) else {}), None, validation_error(self.name, [issue])
        try:
            model = self.schema.model_validate(decoded)
        except ValidationError as exc:
            issues = [
                {"path": _issue_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            return decoded, None, validation_error(self.name, issues)
        return decoded, model, None

    async def run(self, arguments: ArgsT, context: ToolContext) -> Any:
        """Run the function with validated ``arguments``; awaits it if it is async."""
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
        middleware apply), else on its own.
        """
        from .toolbox import Toolbox

        call = ToolCall(name=self.name, arguments=_call_arguments(arguments), id=id or new_call_id())
        toolbox = self.toolbox if self.toolbox is not None else Toolbox()
        return await toolbox.run_tool(self, call, context=context)


def _call_arguments(arguments: object) -> dict[str, Any] | str:
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, Mapping):
        return dict(arguments)
    raise ToolDefinitionError(f"tool arguments must be a mapping or a JSON string, not {type(arguments).__name__}")


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _parameters_schema(name: str, schema: type[BaseModel]) -> dict[str, Any]:
    try:
        parameters = schema.model_json_schema(by_alias=True, mode="validation")
    except Exception as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot build a JSON Schema from {schema.__name__}: {exc}") from exc
    if parameters.get("type") != "object":
        raise ToolDefinitionError(f"tool {name!r}: schema {schema.__name__} must describe a JSON object")
    parameters.pop("title", None)
    parameters.setdefault("properties", {})
    return parameters


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", name) if part) or "Tool"


def _wants_context(param: inspect.Parameter, hint: Any) -> bool:
    return param.name == "context" or hint is ToolContext


def _from_function(
    fn: Callable[..., Any], *, name: str | None, description: str | None
) -> tuple[str, str, type[BaseModel], ExecuteFn]:
    """Name, description, schema and execute function of a tool made from a typed function."""
    if not callable(fn):
        raise ToolDefinitionError(f"create_tool needs a function, not {type(fn).__name__}")
    tool_name = name if name is not None else getattr(fn, "__name__", "")
    text = description if description is not None else (inspect.getdoc(fn) or "")
    if not text.strip():
        raise ToolDefinitionError(f"tool {tool_name!r} needs a description: pass description= or write a docstring")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve the type hints of {fn!r}: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, inspect.Parameter.empty)
        if _wants_context(param, hint):
            context_param = param.name
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *{param.name} cannot become a tool argument")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"tool {tool_name!r}: positional-only {param.name!r} cannot be an argument")
        if hint is inspect.Parameter.empty:
            raise ToolDefinitionError(f"tool {tool_name!r}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hint, default)
    schema: type[BaseModel] = create_model(
        f"{_camel(str(tool_name))}Arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    names = tuple(fields)

    def execute(args: BaseModel, context: ToolContext) -> Any:
        values = {field: getattr(args, field) for field in names}
        if context_param is not None:
            values[context_param] = context
        return fn(**values)

    return str(tool_name), text, schema, execute


@overload
def create_tool(fn: Callable[..., Any], /) -> Tool[Any]: ...


@overload
def create_tool(
    *,
    name: str,
    description: str,
    schema: type[ArgsT],
    execute: ExecuteFn,
    toolbox: Toolbox | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool[ArgsT]: ...


@overload
def create_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    toolbox: Toolbox | None = None,
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
    toolbox: Toolbox | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Tool[Any] | Callable[[Callable[..., Any]], Tool[Any]]:
    """Create a tool; with ``toolbox=`` it is also registered there.

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
        if toolbox is not None:
            toolbox.register(tool)
        return tool

    if fn is not None:
        if schema is not None or execute is not None:
            raise ToolDefinitionError("create_tool(fn) derives the schema from fn; do not pass schema= or execute=")
        return make(*_from_function(fn, name=name, description=description))
    if execute is not None or schema is not None:
        if name is None or description is None or schema is None or execute is None:
            given = {"name": name, "description": description, "schema": schema, "execute": execute}
            missing = ", ".join(f"{arg}=" for arg, value in given.items() if value is None)
            raise ToolDefinitionError(f"create_tool is missing {missing}")
        return make(name, description, schema, execute)

    def decorate(function: Callable[..., Any]) -> Tool[Any]:
        return make(*_from_function(function, name=name, description=description))

    return decorate


def with_context(tool: Tool[ArgsT], /, **values: Any) -> Tool[ArgsT]:
    """A copy of ``tool`` with ``values`` bound into its context.

    Bound values sit over the toolbox context and under the per-call context.
    """
    if not isinstance(tool, Tool):
        raise ToolDefinitionError(f"with_context needs a Tool, not {type(tool).__name__}")
    return tool.with_context(values)


__all__ = ["ExecuteFn", "NAME_PATTERN", "Tool", "create_tool", "validation_error", "with_context"]
