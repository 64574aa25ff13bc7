"""Google Gemini.

Function declarations out, ``function_call`` parts in, ``function_response``
parts out, a response or ``Content`` list in as history messages, and a
history out as ``generate_content`` contents and system instruction.
Everything works on plain dicts shaped like the API; the SDK is not imported,
but its objects are read (anything with ``model_dump()``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from .calls import ToolCall, decode_object, jsonable, plain
from .common import (
    Dangling,
    History,
    HistoryMessage,
    JsonDict,
    ToolOutcome,
    ToolSource,
    Unsupported,
    as_data,
    field,
    history_messages,
    items,
    make_call,
    paired,
    parts_of,
    result_payload,
    same_source,
    tool_specs,
)
from .common import unsupported as unsupported_part
from .errors import ProviderFormatError
from .parts import AudioPart, FilePart, ImagePart, ProviderPart, ReasoningPart, RefusalPart, TextPart
from .parts import part as make_part

PROVIDER = "Gemini"

SOURCE = "gemini"
"""The ``provider`` of a :class:`~sessionware.agents.Source` (and a ``ProviderPart``) imported from Gemini."""

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


# -- history in -----------------------------------------------------------------------------------


def messages_from_gemini(value: object, *, history: History = ()) -> list[JsonDict]:
    """History messages (mappings :meth:`SessionManager.add_messages` takes) from Gemini data.

    ``value`` is a ``GenerateContentResponse`` (its first candidate's
    content), one ``Content`` or a list of them (role ``"user"`` or
    ``"model"``), as SDK objects or dicts (snake_case or the REST API's
    camelCase; bytes raw or base64). A model content becomes one assistant
    message: text parts, thought parts as reasoning parts (the
    ``thought_signature`` as base64 ``signature``), ``inline_data`` as
    image, audio or file parts by media type (``data`` base64),
    ``file_data`` as image or file parts by URL, ``function_call`` parts as
    its tool calls, and any other part (code execution, a bare signature...)
    a provider part kept as it came. A user content becomes one tool
    message per ``function_response`` (``is_error`` when its response holds
    an ``error`` and no ``output``), then a user message with the other parts.

    A call without an id gets one starting with :data:`GEMINI_GENERATED_ID_PREFIX`;
    a ``function_response`` without an id answers the earliest unanswered call
    of its name, in ``value`` or in ``history`` (messages already stored).
    Each message keeps its parts as its ``source`` (``{"provider": "gemini",
    "item": {"role", "parts"}}``, as given, raw bytes as base64), so
    :func:`to_gemini_contents` gives them back exactly, thought signatures on
    any part included.
    """
    pending = _unanswered(history_messages(history))
    out: list[JsonDict] = []
    for path, role, parts in _contents(value):
        if role == "model":
            out.append(_model_message(parts, path, pending))
        else:
            out.extend(_user_messages(parts, path, pending))
    return out


def _json(value: object) -> Any:
    """``value`` as JSON data: SDK objects dumped without their unset fields, bytes base64, enums by value."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def _get(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]`` by its snake_case or camelCase name; ``None`` when absent."""
    value = data.get(key)
    return data.get(_camel(key)) if value is None else value


def _contents(value: object) -> list[tuple[str, str, list[JsonDict]]]:
    """(path, role, parts) of each content in ``value``."""
    data = _json(value)
    if isinstance(data, Mapping) and any(
        key in data for key in ("candidates", "prompt_feedback", "promptFeedback", "usage_metadata", "usageMetadata")
    ):
        candidates = data.get("candidates") or []
        if not candidates:
            feedback = _get(data, "prompt_feedback") or {}
            reason = _get(feedback, "block_reason") if isinstance(feedback, Mapping) else None
            blocked = f" (the prompt was blocked: {reason})" if reason else ""
            raise ProviderFormatError(f"{PROVIDER} response has no candidates{blocked}")
        candidate = candidates[0]
        content = candidate.get("content") if isinstance(candidate, Mapping) else None
        if not content:
            reason = _get(candidate, "finish_reason") if isinstance(candidate, Mapping) else None
            raise ProviderFormatError(
                f"{PROVIDER} response's first candidate has no content (finish_reason {reason!r})"
            )
        return [_content(content, "model", f"{PROVIDER} response candidates[0].content")]
    if isinstance(data, Mapping):
        return [_content(data, "user", f"{PROVIDER} content")]
    if isinstance(data, list):
        return [_content(item, "user", f"{PROVIDER} contents[{i}]") for i, item in enumerate(data)]
    raise ProviderFormatError(
        f"{PROVIDER} data must be a GenerateContentResponse, a Content or a list of them, not {type(value).__name__}"
    )


def _content(data: object, default_role: str, path: str) -> tuple[str, str, list[JsonDict]]:
    if not isinstance(data, Mapping) or not ("parts" in data or "role" in data):
        raise ProviderFormatError(f"{path} must be a Content with role and parts, not {data!r:.80}")
    role = data.get("role") or default_role
    if role not in ("user", "model", "function"):
        raise ProviderFormatError(f"{path} has role {role!r}; expected 'user' or 'model'")
    parts = data.get("parts") or []
    if not isinstance(parts, list):
        raise ProviderFormatError(f"{path} parts must be a list, not {type(parts).__name__}")
    return (
        path,
        "model" if role == "model" else "user",
        [_part_data(p, f"{path} parts[{i}]") for i, p in enumerate(parts)],
    )


def _part_data(data: object, path: str) -> JsonDict:
    """A part as JSON (kept as given), its bytes fields (signatures, inline data) checked to be base64."""
    if not isinstance(data, Mapping):
        raise ProviderFormatError(f"{path} must be a Part mapping, not {type(data).__name__}")
    signature = _get(data, "thought_signature")
    if signature is not None:
        _base64(signature, f"{path} thought_signature")
    blob = _get(data, "inline_data")
    if isinstance(blob, Mapping) and blob.get("data") is not None:
        _base64(blob["data"], f"{path} inline_data.data")
    response = _get(data, "function_response")
    if isinstance(response, Mapping) and isinstance(response.get("parts"), list):
        for i, inner in enumerate(response["parts"]):
            _part_data(inner, f"{path} function_response.parts[{i}]")
    return dict(data)


def _base64(value: object, path: str) -> str:
    """Standard base64 of bytes given as standard or URL-safe base64 (how google-genai dumps them to JSON)."""
    if not isinstance(value, str):
        raise ProviderFormatError(f"{path} must be bytes or base64 text, not {type(value).__name__}")
    text = value.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ProviderFormatError(f"{path} is not base64: {value!r:.40}") from None
    return base64.b64encode(raw).decode("ascii")


def _source(role: str, parts: list[JsonDict]) -> JsonDict:
    return {"provider": SOURCE, "item": {"role": role, "parts": parts}}


def _unanswered(history: list[HistoryMessage]) -> list[tuple[str, str]]:
    answered = {message.tool_call_id for message in history if message.role == "tool"}
    return [(call.id, call.name) for message in history for call in message.tool_calls if call.id not in answered]


def _model_message(parts: list[JsonDict], path: str, pending: list[tuple[str, str]]) -> JsonDict:
    content: list[Any] = []
    calls: list[ToolCall] = []
    for i, data in enumerate(parts):
        where = f"{path} parts[{i}]"
        function_call = _get(data, "function_call")
        if _get(data, "function_response") is not None:
            raise ProviderFormatError(f"{where} is a function_response; function responses belong in a user content")
        if function_call is None:
            content.append(_content_part(data, where))
            continue
        if not isinstance(function_call, Mapping):
            raise ProviderFormatError(f"{where} function_call must be a mapping, not {type(function_call).__name__}")
        call_id = function_call.get("id") or f"{GEMINI_GENERATED_ID_PREFIX}{uuid.uuid4().hex}"
        call = make_call(PROVIDER, call_id, function_call.get("name"), function_call.get("args") or {})
        calls.append(call)
        pending.append((call.id, call.name))
    message: JsonDict = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    message["source"] = _source("model", parts)
    return message


def _user_messages(parts: list[JsonDict], path: str, pending: list[tuple[str, str]]) -> list[JsonDict]:
    out: list[JsonDict] = []
    rest: list[tuple[JsonDict, str]] = []
    for i, data in enumerate(parts):
        where = f"{path} parts[{i}]"
        if _get(data, "function_call") is not None:
            raise ProviderFormatError(f"{where} is a function_call; function calls belong in a model content")
        function_response = _get(data, "function_response")
        if function_response is None:
            rest.append((data, where))
            continue
        out.append(_tool_message(data, function_response, where, pending))
    if rest:
        content = [_content_part(data, where) for data, where in rest]
        out.append({"role": "user", "content": content, "source": _source("user", [data for data, _ in rest])})
    return out


def _tool_message(data: JsonDict, function_response: object, path: str, pending: list[tuple[str, str]]) -> JsonDict:
    if not isinstance(function_response, Mapping):
        raise ProviderFormatError(f"{path} function_response must be a mapping, not {type(function_response).__name__}")
    call_id = _answering(pending, function_response.get("id"), function_response.get("name"), path)
    response = function_response.get("response") or {}
    if not isinstance(response, Mapping):
        raise ProviderFormatError(f"{path} function_response.response must be an object, not {type(response).__name__}")
    output = response.get("output")
    text = (
        output if set(response) == {"output"} and isinstance(output, str) else json.dumps(response, ensure_ascii=False)
    )
    media = [
        _content_part(item, f"{path} function_response.parts[{i}]")
        for i, item in enumerate(function_response.get("parts") or [])
    ]
    message: JsonDict = {"role": "tool", "content": [TextPart(text=text), *media] if media else text}
    message["tool_call_id"] = call_id
    if "error" in response and "output" not in response:
        message["is_error"] = True
    message["source"] = _source("user", [data])
    return message


def _answering(pending: list[tuple[str, str]], response_id: object, name: object, path: str) -> str:
    """The id of the call a function response answers: its own id, else the earliest unanswered call of its name."""
    if isinstance(response_id, str) and response_id:
        pending[:] = [call for call in pending if call[0] != response_id]
        return response_id
    if not isinstance(name, str) or not name:
        raise ProviderFormatError(f"{path} is a function_response with neither an id nor a name")
    for index, (call_id, call_name) in enumerate(pending):
        if call_name == name:
            del pending[index]
            return call_id
    return f"{GEMINI_GENERATED_ID_PREFIX}{uuid.uuid4().hex}"  # answers no call we know of: exports leave it out


def _content_part(data: JsonDict, path: str) -> Any:
    """Our part for one (non function) Gemini part; anything we have no part for a provider part."""
    text = _get(data, "text")
    if _get(data, "thought") is True:
        signature = _get(data, "thought_signature")
        return ReasoningPart(
            text=text if isinstance(text, str) else None,
            signature=None if signature is None else _base64(signature, f"{path} thought_signature"),
        )
    if isinstance(text, str):
        return TextPart(text=text)
    blob = _get(data, "inline_data")
    if isinstance(blob, Mapping):
        media_type = _get(blob, "mime_type")
        inline = None if blob.get("data") is None else _base64(blob["data"], f"{path} inline_data.data")
        return make_part({"type": _kind(media_type, inline=True), "data": inline, "media_type": media_type}, path)
    file_data = _get(data, "file_data")
    if isinstance(file_data, Mapping):
        media_type = _get(file_data, "mime_type")
        found = {"type": _kind(media_type, inline=False), "url": _get(file_data, "file_uri")}
        return make_part({**found, "media_type": media_type} if media_type else found, path)
    return ProviderPart(provider=SOURCE, data=data)


def _kind(media_type: object, *, inline: bool) -> str:
    """The part type for media of ``media_type``: images and (inline) audio have their own, the rest are files."""
    major = media_type.split("/")[0] if isinstance(media_type, str) else ""
    if major == "image":
        return "image"
    return "audio" if major == "audio" and inline else "file"


# -- history out ----------------------------------------------------------------------------------


def to_gemini_contents(
    history: History, *, unsupported: Unsupported = "error", dangling: Dangling = "interrupt"
) -> JsonDict:
    """Keyword arguments for Gemini's ``generate_content``: ``{"contents": [...], "system_instruction": {...}}``.

    System and developer messages become the parts of ``system_instruction``
    (left out when there are none); user messages ``"user"`` contents,
    assistant messages ``"model"`` contents, tool calls ``function_call``
    parts and tool results ``function_response`` parts in a ``"user"``
    content (``{"output": ...}``, or ``{"error": ...}`` for a failure; a
    result that is a JSON object is sent as that object). Consecutive
    contents of one role are merged, function responses first. Every tool
    call is followed by its result; a call without one is answered with an
    error result or left out, as ``dangling`` says
    (:data:`~sessionware.providers.common.Dangling`). Gemini pairs calls and
    responses by name; a call's id is sent only when Gemini gave it.

    A message imported from Gemini (:func:`messages_from_gemini`) gives back
    its parts exactly, thought signatures byte for byte. Other messages map
    part by part: text; a refusal as text (Gemini has no refusal part);
    images, files and audio inline (``inline_data``, base64) or by URL
    (``file_data``); reasoning with a signature as a thought part with its
    ``thought_signature`` in model contents; Gemini provider parts as they
    came. Reasoning without a signature (or from a message imported from
    another provider), file ids, audio known only by a provider's id and
    another provider's parts raise :class:`ProviderFormatError` naming the
    part, or are left out with ``unsupported="drop"``.
    """
    _check_policy(unsupported)
    system: list[JsonDict] = []
    contents: list[JsonDict] = []
    calls: dict[str, tuple[str, bool]] = {}  # call id -> (function name, whether Gemini gave the id)
    for message in paired(history_messages(history), dangling=dangling):
        if message.role in ("system", "developer"):
            system.extend(_system_parts(message, unsupported))
            continue
        role = "model" if message.role == "assistant" else "user"
        from_gemini = message.source is not None and message.source.provider == SOURCE
        for call in message.tool_calls:
            calls[call.id] = (call.name, from_gemini and not call.id.startswith(GEMINI_GENERATED_ID_PREFIX))
        parts = _parts(message, calls, unsupported)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    for content in contents:
        if content["role"] == "user":
            content["parts"].sort(key=lambda p: _get(p, "function_response") is None)
    out: JsonDict = {"contents": contents}
    if system:
        out["system_instruction"] = {"parts": system}
    return out


def _check_policy(policy: str) -> None:
    if policy not in ("error", "drop"):
        raise ProviderFormatError(f"unsupported must be 'error' or 'drop', not {policy!r}")


def _where(message: HistoryMessage, detail: str = "") -> str:
    seq = getattr(message, "seq", None)
    number = f" {seq}" if isinstance(seq, int) else ""
    return f"{detail} in {message.role} message{number}"


def _system_parts(message: HistoryMessage, policy: Unsupported) -> list[JsonDict]:
    out = []
    for item in parts_of(message):
        if isinstance(item, TextPart):
            if item.text:
                out.append({"text": item.text})
        else:
            unsupported_part(PROVIDER, item, policy, _where(message))
    return out


def _parts(message: HistoryMessage, calls: Mapping[str, tuple[str, bool]], policy: Unsupported) -> list[JsonDict]:
    kept = _source_parts(message, calls)
    if kept is not None:
        return kept
    if message.role == "tool":
        return [_function_response(message, calls, policy)]
    parts = [p for item in parts_of(message) if (p := _part(item, message, policy)) is not None]
    for call in message.tool_calls:
        function_call: JsonDict = {"name": call.name, "args": jsonable(call.arguments or {})}
        if calls[call.id][1]:
            function_call["id"] = call.id
        parts.append({"function_call": function_call})
    return parts


def _source_parts(message: HistoryMessage, calls: Mapping[str, tuple[str, bool]]) -> list[JsonDict] | None:
    """The parts ``message`` was imported with, if it came from Gemini and they still fit its calls or result."""
    item = same_source(message, SOURCE)
    if not isinstance(item, Mapping):
        return None
    parts = plain(item.get("parts"))
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        return None
    made = [f for p in parts if isinstance(f := _get(p, "function_call"), dict)]
    answers = [f for p in parts if isinstance(f := _get(p, "function_response"), dict)]
    if [f.get("name") for f in made] != [call.name for call in message.tool_calls]:
        return None
    for function_call, call in zip(made, message.tool_calls, strict=True):
        given = function_call.get("id")
        if given != call.id and not (given is None and call.id.startswith(GEMINI_GENERATED_ID_PREFIX)):
            return None
    if message.role != "tool":
        return None if answers else parts
    call_id = message.tool_call_id
    if call_id is None or call_id not in calls or len(answers) != 1:
        return None
    if answers[0].get("name") != calls[call_id][0] or answers[0].get("id") not in (None, call_id):
        return None
    return parts


def _function_response(message: HistoryMessage, calls: Mapping[str, tuple[str, bool]], policy: Unsupported) -> JsonDict:
    call_id = message.tool_call_id or ""
    name, gemini_id = calls.get(call_id, (message.name, False))
    if not name:
        raise ProviderFormatError(f"{PROVIDER} needs the function name of tool result {call_id}{_where(message)}")
    texts: list[str] = []
    media: list[JsonDict] = []
    for item in parts_of(message):
        if isinstance(item, TextPart | RefusalPart):
            texts.append(item.text if isinstance(item, TextPart) else item.refusal)
        elif isinstance(item, ImagePart | FilePart | AudioPart) and (found := _media(item)) is not None:
            media.append(found)
        else:
            unsupported_part(PROVIDER, item, policy, _where(message))
    function_response: JsonDict = {"name": name, "response": _response("".join(texts), message.is_error)}
    if gemini_id:
        function_response["id"] = call_id
    if media:
        function_response["parts"] = media
    return {"function_response": function_response}


def _response(text: str, is_error: bool) -> JsonDict:
    """A tool result's text as a Gemini response object: the object it encodes, else ``{"output"/"error": text}``."""
    decoded = decode_object(text)
    if decoded is not None and (not is_error or "error" in decoded):
        return decoded
    if is_error:
        return {"error": decoded if decoded is not None else text}
    return {"output": text}


def _media(item: ImagePart | FilePart | AudioPart) -> JsonDict | None:
    if item.data is not None:
        return {"inline_data": {"mime_type": item.media_type, "data": item.data}}
    url = getattr(item, "url", None)
    if url is None:
        return None
    file_data: JsonDict = {"file_uri": url}
    if item.media_type:
        file_data["mime_type"] = item.media_type
    return {"file_data": file_data}


def _part(item: Any, message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    """One Gemini part for ``item`` of ``message``, or ``None`` (empty text, or an unsupported part dropped)."""
    if isinstance(item, TextPart | RefusalPart):
        text = item.text if isinstance(item, TextPart) else item.refusal
        return {"text": text} if text else None
    if isinstance(item, ProviderPart) and item.provider == SOURCE:
        return plain(item.data)  # type: ignore[no-any-return]
    if isinstance(item, ImagePart | FilePart | AudioPart):
        found = _media(item)
        if found is None:
            detail = " with a file id" if isinstance(item, FilePart) else " without inline data"
            unsupported_part(PROVIDER, item, policy, _where(message, detail))
        return found
    if isinstance(item, ReasoningPart) and message.role == "assistant":
        return _thought(item, message, policy)
    unsupported_part(PROVIDER, item, policy, _where(message))
    return None


def _thought(item: ReasoningPart, message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    if message.source is not None and message.source.provider != SOURCE:
        unsupported_part(PROVIDER, item, policy, _where(message, f" from {message.source.provider}"))
    elif item.signature is not None and not item.redacted:
        thought: JsonDict = {} if item.text is None else {"text": item.text}
        return {**thought, "thought": True, "thought_signature": item.signature}
    else:
        unsupported_part(PROVIDER, item, policy, _where(message, " without a Gemini thought signature"))
    return None


__all__ = [
    "GEMINI_GENERATED_ID_PREFIX",
    "SOURCE",
    "from_gemini_tool_calls",
    "messages_from_gemini",
    "to_gemini_contents",
    "to_gemini_function_responses",
    "to_gemini_tools",
]
