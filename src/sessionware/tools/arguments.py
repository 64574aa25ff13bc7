"""Tool arguments: their JSON Schema, schemas derived from typed functions, and checking what a model sends."""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .context import ToolContext
from .errors import ToolDefinitionError
from .results import ErrorInfo, error_info

ExecuteFn = Callable[..., Any]
"""``execute(args, context)`` or ``execute(args)``, sync or async; ``args`` is a schema instance."""

ContextStyle = Literal["positional", "keyword", "none"]
"""How an execute function takes the context: second positional argument, ``context=`` keyword, or not at all."""

MAX_ISSUES_IN_MESSAGE = 5

ModelT = TypeVar("ModelT", bound=BaseModel)


def context_style(fn: Callable[..., Any], name: str) -> ContextStyle:
    """How ``fn`` takes the context; raise :class:`ToolDefinitionError` if it cannot take the arguments."""
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


def parameters_schema(name: str, schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``schema`` as a tool's parameters (an object, without a title)."""
    try:
        parameters = schema.model_json_schema(by_alias=True, mode="validation")
    except Exception as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot build a JSON Schema from {schema.__name__}: {exc}") from exc
    if parameters.get("type") != "object":
        raise ToolDefinitionError(f"tool {name!r}: schema {schema.__name__} must describe a JSON object")
    parameters.pop("title", None)
    parameters.setdefault("properties", {})
    return parameters


# -- checking what the model sent -----------------------------------------------------------------


def _issue_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


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


def parse_arguments(
    tool_name: str, schema: type[ModelT], raw: object
) -> tuple[dict[str, Any] | str, ModelT | None, ErrorInfo | None]:
    """Decode and validate ``raw`` (a mapping or a JSON string) against ``schema``.

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
            return raw, None, validation_error(tool_name, [issue], code="invalid_json")
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
        return (raw if isinstance(raw, str) else {}), None, validation_error(tool_name, [issue])
    try:
        model = schema.model_validate(decoded)
    except ValidationError as exc:
        issues = [
            {"path": _issue_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return decoded, None, validation_error(tool_name, issues)
    return decoded, model, None


# -- schemas from typed functions -----------------------------------------------------------------


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", name) if part) or "Tool"


def _wants_context(param: inspect.Parameter, hint: Any) -> bool:
    return param.name == "context" or hint is ToolContext


def schema_from_function(
    fn: Callable[..., Any], *, name: str | None, description: str | None
) -> tuple[str, str, type[BaseModel], ExecuteFn]:
    """Name, description, schema and execute function of a tool made from a typed function.

    The schema has one field per typed parameter (extra keys refused); a
    parameter named ``context`` (or typed :class:`ToolContext`) receives the
    call context; the description defaults to the docstring.
    """
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


__all__ = [
    "ContextStyle",
    "ExecuteFn",
    "context_style",
    "parameters_schema",
    "parse_arguments",
    "schema_from_function",
    "validation_error",
]
