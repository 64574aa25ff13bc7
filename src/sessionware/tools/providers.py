"""Provider formats: tool definitions out, tool calls in, tool results out.

Covers OpenAI chat completions, OpenAI responses, Anthropic messages and
Google Gemini. Everything here works on plain dicts shaped like each
provider's API; the provider SDKs are not imported. Inputs may be SDK objects
(anything with ``model_dump()``) or dicts.

Strict mode (OpenAI ``strict``, Anthropic ``strict``) is switched on only when
a tool's schema qualifies: every object closes ``additionalProperties``, lists
all its properties as required, and uses only keywords strict mode supports.
A pydantic model with ``extra="forbid"`` and no defaults qualifies; tools from
the ``@create_tool`` decorator forbid extra keys already.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import PydanticSerializationError

from .errors import ProviderFormatError, ToolDefinitionError
from .results import ToolCall, ToolResult, jsonable
from .tool import Tool
from .toolbox import Toolbox

ToolSource = Toolbox | Iterable[Tool[Any]]
"""A toolbox (all its tools) or any iterable of tools."""

STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "description",
        "title",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
"""JSON Schema keywords a strict-mode schema may use."""

_FUNCTION_CALL_KEYS = frozenset({"id", "name", "args", "partial_args", "will_continue", "partialArgs", "willContinue"})

GEMINI_GENERATED_ID_PREFIX = "gemini_call_"
"""Prefix of ids made up for Gemini calls that came without one; such ids are not sent back."""


# definitions


def strict_schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` cannot be used in strict mode, or ``None`` if it can."""
    if schema.get("type") != "object":
        return "the arguments schema is not a plain object"
    return _strict_problem(schema, "$")


def _strict_problem(node: object, path: str) -> str | None:
    if not isinstance(node, Mapping):
        return f"{path} is not a schema object"
    for key in node:
        if key not in STRICT_KEYWORDS:
            return f"{path} uses {key!r}"
    properties = node.get("properties")
    if node.get("type") == "object" or properties is not None:
        if node.get("additionalProperties") is not False:
            return f"{path} does not forbid additional properties"
        properties = properties or {}
        required = set(node.get("required") or ())
        for name, sub in properties.items():
            if name not in required:
                return f"{path}.{name} is optional"
            problem = _strict_problem(sub, f"{path}.{name}")
            if problem:
                return problem
    children: list[tuple[str, object]] = []
    if "items" in node:
        children.append((f"{path}[]", node["items"]))
    children.extend((f"{path}.anyOf[{i}]", sub) for i, sub in enumerate(node.get("anyOf") or ()))
    children.extend((f"$defs.{name}", sub) for name, sub in (node.get("$defs") or {}).items())
    for child_path, child in children:
        problem = _strict_problem(child, child_path)
        if problem:
            return problem
    return None


def _tools(source: ToolSource) -> list[Tool[Any]]:
    tools = list(source.tools if isinstance(source, Toolbox) else source)
    for tool in tools:
        if not isinstance(tool, Tool):
            raise ToolDefinitionError(f"expected tools, got {type(tool).__name__}")
    return tools


def _strict_for(tool: Tool[Any], parameters: Mapping[str, Any], strict: bool | None) -> bool:
    if strict is False:
        return False
    problem = strict_schema_problem(parameters)
    if strict is True and problem:
        raise ToolDefinitionError(f"tool {tool.name!r} cannot be strict: {problem}")
    return problem is None


def to_openai_chat_tools(tools: ToolSource, *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Chat-completions ``tools=``: ``{"type": "function", "function": {...}}`` per tool.

    ``strict=None`` turns strict mode on where the schema qualifies; ``True``
    demands it (raising for a tool that does not qualify); ``False`` never.
    """
    out = []
    for tool in _tools(tools):
        parameters = tool.parameters()
        function = {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
            "strict": _strict_for(tool, parameters, strict),
        }
        out.append({"type": "function", "function": function})
    return out


def to_openai_responses_tools(tools: ToolSource, *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Responses-API ``tools=``: ``{"type": "function", "name", "description", "parameters", "strict"}``."""
    out = []
    for tool in _tools(tools):
        parameters = tool.parameters()
        out.append(
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": parameters,
                "strict": _strict_for(tool, parameters, strict),
            }
        )
    return out


def to_anthropic_tools(tools: ToolSource, *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Anthropic ``tools=``: ``{"name", "description", "input_schema"}``, plus ``"strict": True`` where it qualifies."""
    out = []
    for tool in _tools(tools):
        parameters = tool.parameters()
        definition: dict[str, Any] = {
            "name": tool.name,
            "description": tool.description,
            "input_schema": parameters,
        }
        if _strict_for(tool, parameters, strict):
            definition["strict"] = True
        out.append(definition)
    return out


def to_gemini_tools(tools: ToolSource) -> list[dict[str, Any]]:
    """Gemini ``tools=``: one ``{"function_declarations": [...]}`` with a JSON Schema per tool."""
    declarations = [
        {"name": tool.name, "description": tool.description, "parameters_json_schema": tool.parameters()}
        for tool in _tools(tools)
    ]
    return [{"function_declarations": declarations}]


# calls


def _plain(value: object) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return value


def _items(value: object, container: str, *message_keys: str) -> list[Any]:
    """The list inside ``value``: itself if a list, else its ``container`` entry.

    A mapping without ``container`` but with one of ``message_keys`` is a
    message without tool calls (SDK dumps drop empty fields).
    """
    value = _plain(value)
    if isinstance(value, Mapping):
        if container in value:
            inner = value[container]
            return [] if isinstance(inner, str) else _items(inner, container)
        if any(key in value for key in message_keys):
            return []
        raise ProviderFormatError(f"expected {container!r} in {sorted(value)}")
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None:
        return []
    raise ProviderFormatError(f"cannot read tool calls from {type(value).__name__}")


def _field(item: Mapping[str, Any], key: str, provider: str) -> Any:
    if key not in item:
        raise ProviderFormatError(f"{provider} tool call has no {key!r}: {sorted(item)}")
    return item[key]


def _call(provider: str, call_id: Any, name: Any, arguments: Any) -> ToolCall:
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ProviderFormatError(f"{provider} tool call needs a string id and name, got {call_id!r} and {name!r}")
    if not isinstance(arguments, (str, Mapping)):
        raise ProviderFormatError(f"{provider} tool call {call_id} has arguments of type {type(arguments).__name__}")
    return ToolCall(id=call_id, name=name, arguments=arguments if isinstance(arguments, str) else dict(arguments))


def from_openai_chat_tool_calls(message: object) -> list[ToolCall]:
    """Calls from a chat completion, a choice, an assistant message or its ``tool_calls`` list.

    Arguments stay the JSON string the model wrote, so a malformed string is
    reported as a validation error when executed. Non-function tool calls are
    skipped.
    """
    plain = _plain(message)
    if isinstance(plain, Mapping) and "choices" in plain:
        choices = plain["choices"]
        plain = _plain(choices[0]) if choices else {}
    if isinstance(plain, Mapping) and "message" in plain:
        plain = _plain(plain["message"])
    calls = []
    for item in _items(plain, "tool_calls", "role", "content"):
        if item.get("type", "function") != "function":
            continue
        function = _field(item, "function", "OpenAI")
        calls.append(
            _call(
                "OpenAI",
                _field(item, "id", "OpenAI"),
                _field(function, "name", "OpenAI"),
                _field(function, "arguments", "OpenAI"),
            )
        )
    return calls


def from_openai_responses_tool_calls(response: object) -> list[ToolCall]:
    """Calls (``function_call`` items) from a Responses-API response or its ``output`` list."""
    return [
        _call(
            "OpenAI",
            _field(item, "call_id", "OpenAI"),
            _field(item, "name", "OpenAI"),
            _field(item, "arguments", "OpenAI"),
        )
        for item in _items(response, "output", "id", "status")
        if item.get("type") == "function_call"
    ]


def from_anthropic_tool_calls(message: object) -> list[ToolCall]:
    """Calls (``tool_use`` blocks) from an Anthropic message or its ``content`` list."""
    return [
        _call(
            "Anthropic",
            _field(block, "id", "Anthropic"),
            _field(block, "name", "Anthropic"),
            _field(block, "input", "Anthropic"),
        )
        for block in _items(message, "content", "role", "type")
        if block.get("type") == "tool_use"
    ]


def from_gemini_tool_calls(response: object) -> list[ToolCall]:
    """Calls from a Gemini response (first candidate), a ``Content``, or a list of parts / function calls.

    A call without an id gets one starting with :data:`GEMINI_GENERATED_ID_PREFIX`,
    which :func:`to_gemini_function_responses` leaves out again.
    """
    plain = _plain(response)
    if isinstance(plain, Mapping) and "candidates" in plain:
        candidates = plain["candidates"]
        plain = (_plain(candidates[0]).get("content") if candidates else None) or {"parts": []}
    calls = []
    for part in _items(plain, "parts", "role"):
        function_call = part.get("function_call", part.get("functionCall"))
        if function_call is None and "name" in part and set(part) <= _FUNCTION_CALL_KEYS:
            function_call = part
        if function_call is None:
            continue
        function_call = _plain(function_call)
        calls.append(
            _call(
                "Gemini",
                function_call.get("id") or f"{GEMINI_GENERATED_ID_PREFIX}{uuid.uuid4().hex}",
                _field(function_call, "name", "Gemini"),
                function_call.get("args") or {},
            )
        )
    return calls


# results


def result_payload(result: ToolResult) -> Any:
    """What the model is told about ``result``, as JSON-compatible data.

    The tool's return value on success; ``{"error": {...}}`` with code,
    message, retryable and (for validation) the field issues otherwise;
    ``{"action_required": {...}}`` when a person must act first.
    """
    if result.outcome == "success":
        try:
            return jsonable(result.result)
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise ProviderFormatError(
                f"the result of call {result.id} ({result.name}) cannot be serialised to JSON: {exc}"
            ) from exc
    if result.outcome == "action_required" and result.action is not None:
        return {"action_required": {"kind": result.action.kind, "reason": result.action.reason}}
    error = result.error
    payload: dict[str, Any] = {
        "code": error.code if error else result.outcome,
        "message": error.message if error else result.outcome,
        "retryable": error.retryable if error else False,
    }
    if error and "issues" in error.details:
        payload["issues"] = error.details["issues"]
    return {"error": payload}


def result_text(result: ToolResult) -> str:
    """:func:`result_payload` as text: a string result as is, anything else as JSON."""
    payload = result_payload(result)
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False)


def to_openai_chat_tool_messages(results: Iterable[ToolResult]) -> list[dict[str, Any]]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per result."""
    return [{"role": "tool", "tool_call_id": r.id, "content": result_text(r)} for r in results]


def to_openai_responses_tool_outputs(results: Iterable[ToolResult]) -> list[dict[str, Any]]:
    """One ``{"type": "function_call_output", "call_id", "output"}`` input item per result."""
    return [{"type": "function_call_output", "call_id": r.id, "output": result_text(r)} for r in results]


def to_anthropic_tool_results(results: Iterable[ToolResult]) -> dict[str, Any]:
    """A user message of ``tool_result`` blocks, ``is_error`` set on every result that did not succeed."""
    blocks = [
        {"type": "tool_result", "tool_use_id": r.id, "content": result_text(r), "is_error": not r.ok} for r in results
    ]
    return {"role": "user", "content": blocks}


def to_gemini_function_responses(results: Iterable[ToolResult]) -> dict[str, Any]:
    """A user ``Content`` of ``function_response`` parts: ``{"output": ...}`` or ``{"error": ...}``."""
    parts = []
    for r in results:
        payload = result_payload(r)
        response = {"output": payload} if r.ok else payload
        if not isinstance(response, dict):
            response = {"output": response}
        function_response: dict[str, Any] = {"name": r.name, "response": response}
        if not r.id.startswith(GEMINI_GENERATED_ID_PREFIX):
            function_response["id"] = r.id
        parts.append({"function_response": function_response})
    return {"role": "user", "parts": parts}


__all__ = [
    "GEMINI_GENERATED_ID_PREFIX",
    "STRICT_KEYWORDS",
    "ToolSource",
    "from_anthropic_tool_calls",
    "from_gemini_tool_calls",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "result_payload",
    "result_text",
    "strict_schema_problem",
    "to_anthropic_tool_results",
    "to_gemini_function_responses",
    "to_openai_chat_tool_messages",
    "to_openai_responses_tool_outputs",
    "to_gemini_tools",
    "to_anthropic_tools",
    "to_openai_chat_tools",
    "to_openai_responses_tools",
]
