"""Google Gemini.

Function declarations out, ``function_call`` parts in, ``function_response``
parts out. Everything works on plain dicts shaped like the API; the SDK is
not imported, but its objects are read (anything with ``model_dump()``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .calls import ToolCall
from .common import JsonDict, ToolOutcome, ToolSource, as_data, field, items, make_call, result_payload, tool_specs

PROVIDER = "Gemini"

GEMINI_GENERATED_ID_PREFIX = "gemini_call_"
"""Prefix of ids made up for Gemini calls that came without one; such ids are not sent back."""

_FUNCTION_CALL_KEYS = frozenset({"id", "name", "args", "partial_args", "will_continue", "partialArgs", "willContinue"})

# -- tool definitions -----------------------------------------------------------------------------


def to_gemini_tools(tools: ToolSource) -> list[JsonDict]:
    """Gemini ``tools=``: one ``{"function_declarations": [...]}`` with a JSON Schema per tool."""
    declarations = [
        {"name": tool.name, "description": tool.description, "parameters_json_schema": tool.parameters()}
        for tool in tool_specs(tools)
    ]
    return [{"function_declarations": declarations}]


# -- tool calls in --------------------------------------------------------------------------------


def _function_call(part: Mapping[str, Any]) -> Any:
    """The function call in ``part`` (a ``Part`` or a bare ``FunctionCall``), or ``None``."""
    function_call = part.get("function_call", part.get("functionCall"))
    if function_call is None and "name" in part and set(part) <= _FUNCTION_CALL_KEYS:
        function_call = part
    return function_call


def from_gemini_tool_calls(response: object) -> list[ToolCall]:
    """Calls from a Gemini response (first candidate), a ``Content``, or a list of parts / function calls.

    A call without an id gets one starting with :data:`GEMINI_GENERATED_ID_PREFIX`,
    which :func:`to_gemini_function_responses` leaves out again.
    """
    data = as_data(response)
    if isinstance(data, Mapping) and "candidates" in data:
        candidates = data["candidates"]
        data = (as_data(candidates[0]).get("content") if candidates else None) or {"parts": []}
    calls = []
    for part in items(data, "parts", "role"):
        function_call = _function_call(part)
        if function_call is None:
            continue
        function_call = as_data(function_call)
        calls.append(
            make_call(
                PROVIDER,
                function_call.get("id") or f"{GEMINI_GENERATED_ID_PREFIX}{uuid.uuid4().hex}",
                field(function_call, "name", PROVIDER),
                function_call.get("args") or {},
            )
        )
    return calls


# -- tool results out -----------------------------------------------------------------------------


def to_gemini_function_responses(results: Iterable[ToolOutcome]) -> JsonDict:
    """A user ``Content`` of ``function_response`` parts: ``{"output": ...}`` or ``{"error": ...}``."""
    parts = []
    for r in results:
        payload = result_payload(r)
        response = {"output": payload} if r.ok else payload
        if not isinstance(response, dict):
            response = {"output": response}
        function_response: JsonDict = {"name": r.name, "response": response}
        if not r.id.startswith(GEMINI_GENERATED_ID_PREFIX):
            function_response["id"] = r.id
        parts.append({"function_response": function_response})
    return {"role": "user", "parts": parts}


__all__ = [
    "GEMINI_GENERATED_ID_PREFIX",
    "from_gemini_tool_calls",
    "to_gemini_function_responses",
    "to_gemini_tools",
]
