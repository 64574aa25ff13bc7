"""What the provider formats share: the shapes they read, reading SDK data, strict mode, result payloads, windows.

The formats read tools, tool results and history messages by their
attributes (the protocols below), so this package imports neither the tools
nor the agents surface: :class:`~sessionware.tools.Tool`,
:class:`~sessionware.tools.Toolbox`, :class:`~sessionware.tools.ToolResult`,
:class:`~sessionware.agents.Message` and :class:`~sessionware.agents.Session`
all fit them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic_core import PydanticSerializationError

from .calls import ToolCall, jsonable
from .errors import ProviderFormatError, ToolDefinitionError
from .parts import TextPart

# -- the shapes the formats read ------------------------------------------------------------------


@runtime_checkable
class ToolSpec(Protocol):
    """A tool as the formats describe it to a model (a :class:`~sessionware.tools.Tool` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def parameters(self) -> dict[str, Any]: ...


ToolSource = Iterable[ToolSpec]
"""A toolbox (all its tools) or any iterable of tools."""


class ErrorLike(Protocol):
    """Why a call failed (a :class:`~sessionware.tools.ErrorInfo` is one)."""

    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def retryable(self) -> bool: ...

    @property
    def details(self) -> Mapping[str, Any]: ...


class ActionLike(Protocol):
    """What a person must do before a call runs (a :class:`~sessionware.tools.RequiredAction` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def reason(self) -> str: ...


class ToolOutcome(Protocol):
    """The outcome of one call (a :class:`~sessionware.tools.ToolResult` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def result(self) -> Any: ...

    @property
    def error(self) -> ErrorLike | None: ...

    @property
    def action(self) -> ActionLike | None: ...


class SourceLike(Protocol):
    """The provider item a message came from (a :class:`~sessionware.agents.Source` is one)."""

    @property
    def provider(self) -> str: ...

    @property
    def item(self) -> Any: ...


class HistoryMessage(Protocol):
    """One message of a conversation (a :class:`~sessionware.agents.Message` is one).

    ``content`` is a str, a sequence of content parts
    (:mod:`sessionware.providers.parts`) or ``None``.
    """

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str | Sequence[Any] | None: ...

    @property
    def name(self) -> str | None: ...

    @property
    def tool_call_id(self) -> str | None: ...

    @property
    def tool_calls(self) -> Sequence[ToolCall]: ...

    @property
    def is_error(self) -> bool: ...

    @property
    def source(self) -> SourceLike | None: ...


@runtime_checkable
class Conversation(Protocol):
    """Something holding a history (a :class:`~sessionware.agents.Session` is one)."""

    @property
    def conversation_history(self) -> Sequence[HistoryMessage]: ...


History = Conversation | Iterable[HistoryMessage]
"""A session (its history window) or any iterable of messages."""

JsonDict = dict[str, Any]


# -- reading provider data ------------------------------------------------------------------------


def as_data(value: object) -> Any:
    """``value`` as plain data: an SDK object (anything with ``model_dump()``) dumped, anything else as is."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return value


def items(value: object, container: str, *message_keys: str) -> list[Any]:
    """The list inside ``value``: itself if a list, else its ``container`` entry.

    A mapping without ``container`` but with one of ``message_keys`` is a
    message without tool calls (SDK dumps drop empty fields).
    """
    value = as_data(value)
    if isinstance(value, Mapping):
        if container in value:
            inner = value[container]
            return [] if isinstance(inner, str) else items(inner, container)
        if any(key in value for key in message_keys):
            return []
        raise ProviderFormatError(f"expected {container!r} in {sorted(value)}")
    if isinstance(value, list | tuple):
        return [as_data(item) for item in value]
    if value is None:
        return []
    raise ProviderFormatError(f"cannot read tool calls from {type(value).__name__}")


def field(item: Mapping[str, Any], key: str, provider: str) -> Any:
    """``item[key]``, or a :class:`ProviderFormatError` naming what is there instead."""
    if key not in item:
        raise ProviderFormatError(f"{provider} tool call has no {key!r}: {sorted(item)}")
    return item[key]


def make_call(provider: str, call_id: object, name: object, arguments: object) -> ToolCall:
    """A :class:`ToolCall` from parts read from ``provider``'s data; arguments stay text if they were text."""
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ProviderFormatError(f"{provider} tool call needs a string id and name, got {call_id!r} and {name!r}")
    if not isinstance(arguments, str | Mapping):
        raise ProviderFormatError(f"{provider} tool call {call_id} has arguments of type {type(arguments).__name__}")
    return ToolCall(id=call_id, name=name, arguments=arguments if isinstance(arguments, str) else dict(arguments))


# -- tool definitions and strict mode -------------------------------------------------------------

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


def tool_specs(source: ToolSource) -> list[ToolSpec]:
    """The tools of ``source``, checked to be tools."""
    tools = list(source)
    for tool in tools:
        if not isinstance(tool, ToolSpec):
            raise ToolDefinitionError(f"expected tools, got {type(tool).__name__}")
    return tools


def strict_for(tool: ToolSpec, parameters: Mapping[str, Any], strict: bool | None) -> bool:
    """Whether to mark ``tool`` strict: never for ``False``, where it qualifies for ``None``, always for ``True``.

    ``True`` raises :class:`ToolDefinitionError` for a schema that does not qualify.
    """
    if strict is False:
        return False
    problem = strict_schema_problem(parameters)
    if strict is True and problem:
        raise ToolDefinitionError(f"tool {tool.name!r} cannot be strict: {problem}")
    return problem is None


# -- tool results ---------------------------------------------------------------------------------


def result_payload(result: ToolOutcome) -> Any:
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
    payload: JsonDict = {
        "code": error.code if error else result.outcome,
        "message": error.message if error else result.outcome,
        "retryable": error.retryable if error else False,
    }
    if error and "issues" in error.details:
        payload["issues"] = error.details["issues"]
    return {"error": payload}


def result_text(result: ToolOutcome) -> str:
    """:func:`result_payload` as text: a string result as is, anything else as JSON."""
    payload = result_payload(result)
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False)


# -- history --------------------------------------------------------------------------------------


def history_messages(history: History) -> list[HistoryMessage]:
    """The messages of ``history``: a session's window, or the messages given."""
    if isinstance(history, Conversation):
        return list(history.conversation_history)
    return list(history)


Dangling = Literal["interrupt", "drop"]
"""What an export does with a tool call that has no result (a call cut short by a crash or a timeout):
``"interrupt"`` (the default) answers it with an error result saying it was interrupted, ``"drop"``
leaves the call out. Either way every provider accepts the history: a call without a result is refused
by all of them."""

Unsupported = Literal["error", "drop"]
"""What an export does with a part its provider cannot take: ``"error"`` (the default) raises
:class:`ProviderFormatError` naming it, ``"drop"`` leaves it out."""

INTERRUPTED = "the tool call was interrupted before it returned a result"


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The error result an export gives a tool call that never got one (see :data:`Dangling`)."""

    tool_call_id: str
    name: str
    role: str = "tool"
    content: str = json.dumps({"error": {"code": "interrupted", "message": INTERRUPTED}})
    tool_calls: tuple[ToolCall, ...] = ()
    is_error: bool = True
    source: None = None


def paired(messages: Iterable[HistoryMessage], *, dangling: Dangling = "interrupt") -> list[HistoryMessage]:
    """``messages`` with every tool call and its result together, as every provider requires.

    A result whose call no earlier message made is left out (a window can
    start with one). The results of a message's calls follow it directly, in
    the order of its calls, wherever they were appended. A call with no
    result is answered or left out as ``dangling`` says; an assistant message
    left with nothing at all is dropped.
    """
    if dangling not in ("interrupt", "drop"):
        raise ProviderFormatError(f"dangling must be 'interrupt' or 'drop', not {dangling!r}")
    history = list(messages)
    called: set[str] = set()
    results: dict[str, HistoryMessage] = {}
    for message in history:
        if message.role == "tool":
            if message.tool_call_id in called and message.tool_call_id not in results:
                results[message.tool_call_id] = message
        else:
            called.update(call.id for call in message.tool_calls)
    out: list[HistoryMessage] = []
    for message in history:
        if message.role == "tool":
            continue  # placed after the message that made the call
        if not message.tool_calls:
            out.append(message)
            continue
        answered = [call for call in message.tool_calls if call.id in results]
        if dangling == "drop" and len(answered) < len(message.tool_calls):
            trimmed = _without_calls(message, answered)
            if trimmed is None:
                continue
            message = trimmed
        out.append(message)
        for call in message.tool_calls:
            out.append(results.get(call.id) or Interrupted(tool_call_id=call.id, name=call.name))
    return out


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which provider a changed message came from, without the item itself (it no longer matches)."""

    provider: str
    item: None = None


@dataclass(frozen=True, slots=True)
class _Trimmed:
    """A message shown with only some of its tool calls (the others had no result)."""

    role: str
    content: str | Sequence[Any] | None
    name: str | None
    tool_call_id: str | None
    tool_calls: tuple[ToolCall, ...]
    is_error: bool = False
    source: Provenance | None = None


def _without_calls(message: HistoryMessage, calls: Sequence[ToolCall]) -> HistoryMessage | None:
    if not calls and not message.content:
        return None
    origin = None if message.source is None else Provenance(message.source.provider)
    return _Trimmed(message.role, message.content, message.name, message.tool_call_id, tuple(calls), source=origin)


def parts_of(message: HistoryMessage) -> list[Any]:
    """A message's content as a list of parts (a string is one text part; ``None`` is none)."""
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    return list(content)


def unsupported(provider: str, part: Any, policy: Unsupported, where: str = "") -> None:
    """Handle a part ``provider`` cannot take: raise (``"error"``) naming it and where it was, or let the
    caller leave it out (``"drop"``)."""
    if policy == "drop":
        return
    if policy != "error":
        raise ProviderFormatError(f"unsupported must be 'error' or 'drop', not {policy!r}")
    kind = getattr(part, "type", type(part).__name__)
    detail = f" ({part.provider})" if kind == "provider" else ""
    article = "an" if kind[:1] in "aeiou" else "a"
    raise ProviderFormatError(
        f"{provider} cannot take {article} {kind} part{detail}{where}; pass unsupported='drop' to leave such parts out"
    )


def same_source(message: HistoryMessage, provider: str) -> Any | None:
    """The item ``message`` was imported from, if it came from ``provider`` and is unchanged, else ``None``
    (a message an export changed keeps only its :class:`Provenance`)."""
    source = message.source
    if source is None or source.provider != provider:
        return None
    return source.item


__all__ = [
    "STRICT_KEYWORDS",
    "ActionLike",
    "Conversation",
    "ErrorLike",
    "History",
    "HistoryMessage",
    "JsonDict",
    "ToolOutcome",
    "ToolSource",
    "ToolSpec",
    "INTERRUPTED",
    "Dangling",
    "Interrupted",
    "Provenance",
    "SourceLike",
    "Unsupported",
    "paired",
    "parts_of",
    "same_source",
    "unsupported",
    "as_data",
    "field",
    "history_messages",
    "items",
    "make_call",
    "result_payload",
    "result_text",
    "strict_for",
    "strict_schema_problem",
    "tool_specs",
]
