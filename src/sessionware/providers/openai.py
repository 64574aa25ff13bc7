"""OpenAI: Chat Completions and Responses.

Tool definitions out, tool calls in, tool results out; a model's messages in
(:func:`messages_from_openai_chat`, :func:`messages_from_openai_responses`)
and a history out (:func:`to_openai_messages` for Chat Completions,
:func:`to_openai_responses_input` for Responses). Everything works on plain
dicts shaped like the API; the SDK is not imported, but its objects are read
(anything with ``model_dump()``).

Imported messages keep the provider's item as their ``source``
(``openai.chat`` or ``openai.responses``), and the export to the same API
sends that item back as it came, so a round trip is exact; everything else
is converted from the message's content parts.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..frozen import thaw
from .calls import RawCall, ToolCall, jsonable
from .common import (
    Dangling,
    History,
    HistoryMessage,
    Interrupted,
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
    result_text,
    same_source,
    strict_for,
    tool_specs,
)
from .common import unsupported as refuse_part
from .errors import ProviderFormatError
from .parts import AudioPart, FilePart, ImagePart, ProviderPart, ReasoningPart, RefusalPart, TextPart, part

PROVIDER = "OpenAI"

# -- tool definitions -----------------------------------------------------------------------------


def to_openai_chat_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Chat-completions ``tools=``: ``{"type": "function", "function": {...}}`` per tool.

    ``strict=None`` turns strict mode on where the schema qualifies; ``True``
    demands it (raising for a tool that does not qualify); ``False`` never.
    """
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        function = {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
            "strict": strict_for(tool, parameters, strict),
        }
        out.append({"type": "function", "function": function})
    return out


def to_openai_responses_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Responses-API ``tools=``: ``{"type": "function", "name", "description", "parameters", "strict"}``."""
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        out.append(
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": parameters,
                "strict": strict_for(tool, parameters, strict),
            }
        )
    return out


# -- tool calls in --------------------------------------------------------------------------------


def from_openai_chat_tool_calls(message: object) -> list[ToolCall]:
    """Calls from a chat completion, a choice, an assistant message or its ``tool_calls`` list.

    Arguments stay the JSON string the model wrote (``ToolCall.arguments_text``),
    so a malformed string is reported as a validation error when executed.
    Non-function tool calls are skipped.
    """
    data = as_data(message)
    if isinstance(data, Mapping) and "choices" in data:
        choices = data["choices"]
        data = as_data(choices[0]) if choices else {}
    if isinstance(data, Mapping) and "message" in data:
        data = as_data(data["message"])
    calls = []
    for item in items(data, "tool_calls", "role", "content"):
        if item.get("type", "function") != "function":
            continue
        function = field(item, "function", PROVIDER)
        calls.append(
            make_call(
                PROVIDER,
                field(item, "id", PROVIDER),
                field(function, "name", PROVIDER),
                field(function, "arguments", PROVIDER),
            )
        )
    return calls


def from_openai_responses_tool_calls(response: object) -> list[ToolCall]:
    """Calls (``function_call`` items) from a Responses-API response or its ``output`` list."""
    return [
        make_call(
            PROVIDER,
            field(item, "call_id", PROVIDER),
            field(item, "name", PROVIDER),
            field(item, "arguments", PROVIDER),
        )
        for item in items(response, "output", "id", "status")
        if item.get("type") == "function_call"
    ]


def chat_tool_call_parts(item: Mapping[str, Any]) -> RawCall | None:
    """The parts of ``{"id", "type": "function", "function": {"name", "arguments"}}``, or ``None`` if not that shape."""
    function = item.get("function")
    if not isinstance(function, Mapping):
        return None
    return RawCall(item.get("id"), function.get("name"), function.get("arguments"))


# -- tool results out -----------------------------------------------------------------------------


def to_openai_chat_tool_messages(results: Iterable[ToolOutcome]) -> list[JsonDict]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per result."""
    return [{"role": "tool", "tool_call_id": r.id, "content": result_text(r)} for r in results]


def to_openai_responses_tool_outputs(results: Iterable[ToolOutcome]) -> list[JsonDict]:
    """One ``{"type": "function_call_output", "call_id", "output"}`` input item per result."""
    return [{"type": "function_call_output", "call_id": r.id, "output": result_text(r)} for r in results]


# -- history in and out: the formats' names and shapes --------------------------------------------

CHAT = "openai.chat"
"""The ``source.provider`` of messages read from Chat Completions."""

RESPONSES = "openai.responses"
"""The ``source.provider`` of messages read from the Responses API."""

CHAT_API = "OpenAI Chat Completions"
RESPONSES_API = "OpenAI Responses"

_ROLES = ("system", "developer", "user", "assistant", "tool")
_IMAGE_DETAILS = ("auto", "low", "high")  # what ImagePart.detail holds; any other detail stays in the source
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
_CHAT_PARTS = "text, image_url, input_audio, file or refusal"
_RESPONSES_PARTS = "input_text, output_text, refusal, input_image, input_file or input_audio"
# what an assistant message param takes; a response message also has annotations, and audio data
_CHAT_ASSISTANT_KEYS = ("role", "content", "name", "refusal", "tool_calls", "audio")


# -- history in: what both formats share ----------------------------------------------------------


def _data_url(url: str) -> tuple[str, str] | None:
    """The media type and base64 data of a ``data:<type>;base64,<data>`` URL, or ``None`` for any other URL."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.rpartition(";")
    if not comma or encoding != "base64" or not media_type:
        return None
    return media_type, data


def _as_data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def _object(value: object, what: str) -> JsonDict:
    if not isinstance(value, dict):
        raise ProviderFormatError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ProviderFormatError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _image(url: object, detail: object, what: str) -> Any:
    """An image part from an image URL: a base64 ``data:`` URL becomes inline data with its media type."""
    url = _text(url, f"{what} url")
    fields: JsonDict = {"type": "image", "detail": detail if detail in _IMAGE_DETAILS else None}
    inline = _data_url(url)
    if inline is None:
        fields["url"] = url
    else:
        fields["media_type"], fields["data"] = inline
    return part(fields, what)


def _file(data: object, file_id: object, url: object, filename: object, what: str) -> Any:
    """A file part; file data is a ``data:`` URL, or bare base64 typed by the filename's extension."""
    fields: JsonDict = {"type": "file", "file_id": file_id, "url": url, "filename": filename}
    if data is not None:
        data = _text(data, f"{what} file_data")
        inline = _data_url(data)
        if inline is None:
            guessed = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
            inline = (guessed or "application/octet-stream", data)
        fields["media_type"], fields["data"] = inline
    return part(fields, what)


def _audio(value: object, what: str) -> Any:
    audio = _object(value, f"{what} input_audio")
    audio_format = audio.get("format")
    media_type = _AUDIO_TYPES.get(audio_format) if isinstance(audio_format, str) else None
    if media_type is None:
        raise ProviderFormatError(f"{what} has audio format {audio_format!r}; expected wav or mp3")
    return part({"type": "audio", "data": audio.get("data"), "media_type": media_type}, what)


def _message(
    role: str,
    content: str | list[Any] | None,
    source: str,
    item: JsonDict,
    *,
    name: object = None,
    tool_calls: Sequence[ToolCall] = (),
    tool_call_id: str | None = None,
) -> JsonDict:
    message: JsonDict = {"role": role, "content": content}
    if name is not None:
        message["name"] = name
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    if tool_call_id is not None:
        message["tool_call_id"] = tool_call_id
    message["source"] = {"provider": source, "item": item}
    return message


def _plain(value: object) -> Any:
    """``value`` (an SDK object, a dict, a frozen value...) as plain JSON, with fields set to ``None`` left out
    as the SDK's own dumps leave them out: an object and its ``model_dump()`` read the same."""
    return _without_none(jsonable(thaw(as_data(value))))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def _check_policy(unsupported: object) -> None:
    if unsupported not in ("error", "drop"):
        raise ProviderFormatError(f"unsupported must be 'error' or 'drop', not {unsupported!r}")


# -- Chat Completions in --------------------------------------------------------------------------


def messages_from_openai_chat(value: object) -> list[JsonDict]:
    """Messages for ``SessionManager.add_messages`` from Chat Completions data.

    ``value`` is a ``ChatCompletion`` (its first choice), a choice, an
    assistant ``ChatCompletionMessage`` (SDK objects or their dicts) or a
    list of request message params. Content parts become
    :mod:`~sessionware.providers.parts` (a ``data:`` image URL becomes inline
    data with its media type); an assistant's ``refusal`` becomes a
    :class:`RefusalPart` and its ``audio`` an :class:`AudioPart` with the
    audio's id and transcript. Each message keeps the message it came from as
    its source (``openai.chat``). Raises :class:`ProviderFormatError` naming
    what cannot be read, including custom tool calls and the deprecated
    ``function_call``, which a history cannot hold.
    """
    data = as_data(value)
    if isinstance(data, Mapping) and "choices" in data:
        choices = data["choices"]
        if not isinstance(choices, list | tuple) or not choices:
            raise ProviderFormatError(f"{CHAT_API} completion has no choices")
        data = as_data(choices[0])
    if isinstance(data, Mapping) and "role" not in data and "message" in data:
        data = as_data(data["message"])
    if isinstance(data, Mapping):
        return [_chat_message(_chat_plain(data), "message")]
    if isinstance(data, list | tuple):
        return [_chat_message(_chat_plain(m), f"messages[{i}]") for i, m in enumerate(data)]
    raise ProviderFormatError(
        f"cannot read {CHAT_API} messages from {type(value).__name__}; "
        "expected a ChatCompletion, a choice, a message or a list of messages"
    )


def _chat_plain(value: object) -> Any:
    """A chat message as plain JSON; ``"content": None`` stays (the usual form of a message that only calls tools)."""
    data = as_data(value)
    plain = _plain(data)
    if isinstance(data, Mapping) and isinstance(plain, dict) and "content" in data and data["content"] is None:
        plain["content"] = None
    return plain


def _chat_message(item: object, path: str) -> JsonDict:
    message = _object(item, f"{CHAT_API} {path}")
    what = f"{CHAT_API} {path}"
    role = message.get("role")
    if role not in _ROLES:
        raise ProviderFormatError(f"{what} has role {role!r}; expected one of {', '.join(_ROLES)}")
    if message.get("function_call") is not None:
        raise ProviderFormatError(f"{what} uses the deprecated function_call; send tool_calls instead")
    content = message.get("content")
    parts: list[Any] | None = None
    if isinstance(content, list):
        parts = [_chat_part(p, f"{what}.content[{i}]") for i, p in enumerate(content)]
    elif content is not None and not isinstance(content, str):
        raise ProviderFormatError(f"{what} content must be a string or a list of parts, not {type(content).__name__}")
    calls: list[ToolCall] = []
    if role == "assistant":
        extra = []
        if message.get("refusal") is not None:
            extra.append(RefusalPart(refusal=_text(message["refusal"], f"{what} refusal")))
        if message.get("audio") is not None:
            audio = _object(message["audio"], f"{what} audio")
            fields = {"type": "audio", "id": audio.get("id"), "transcript": audio.get("transcript")}
            extra.append(part(fields, f"{what} audio"))
        if extra:
            if parts is None:
                parts = [TextPart(text=content)] if isinstance(content, str) and content else []
            parts.extend(extra)
        calls = [_chat_call(c, f"{what}.tool_calls[{i}]") for i, c in enumerate(message.get("tool_calls") or ())]
        if content is None and not parts and not calls:
            raise ProviderFormatError(f"{what} has no content, refusal, audio or tool calls")
    elif content is None:
        raise ProviderFormatError(f"{what} has no content")
    call_id = message.get("tool_call_id")
    if role == "tool" and (not isinstance(call_id, str) or not call_id):
        raise ProviderFormatError(f"{what} is a tool message without a tool_call_id")
    return _message(
        role,
        parts if parts is not None else content,
        CHAT,
        message,
        name=message.get("name"),
        tool_calls=calls,
        tool_call_id=call_id if role == "tool" else None,
    )


def _chat_part(value: object, what: str) -> Any:
    item = _object(value, what)
    kind = item.get("type")
    if kind == "text":
        return part({"type": "text", "text": item.get("text")}, what)
    if kind == "refusal":
        return part({"type": "refusal", "refusal": item.get("refusal")}, what)
    if kind == "image_url":
        image = _object(item.get("image_url"), f"{what} image_url")
        return _image(image.get("url"), image.get("detail"), what)
    if kind == "input_audio":
        return _audio(item.get("input_audio"), what)
    if kind == "file":
        file = _object(item.get("file"), f"{what} file")
        return _file(file.get("file_data"), file.get("file_id"), None, file.get("filename"), what)
    raise ProviderFormatError(f"{what} has type {kind!r}; a Chat Completions content part is {_CHAT_PARTS}")


def _chat_call(value: object, what: str) -> ToolCall:
    item = _object(value, what)
    if item.get("type", "function") != "function":
        raise ProviderFormatError(
            f"{what} is a {item.get('type')!r} tool call; a history holds function calls only "
            "(a custom tool's input is free text, not JSON arguments)"
        )
    function = _object(field(item, "function", CHAT_API), f"{what} function")
    return make_call(
        CHAT_API, field(item, "id", CHAT_API), field(function, "name", CHAT_API), field(function, "arguments", CHAT_API)
    )


# -- Responses in ---------------------------------------------------------------------------------


def messages_from_openai_responses(value: object) -> list[JsonDict]:
    """Messages for ``SessionManager.add_messages`` from Responses data: one message per item.

    ``value`` is a ``Response`` (its ``output`` items; an SDK object or its
    dict), one item, or a list of input or output items. ``message`` items
    keep their role and content parts; a ``reasoning`` item is an assistant
    message with one :class:`ReasoningPart` (summary texts, encrypted content,
    id); a ``function_call`` an assistant message with one tool call (its
    ``call_id``, the arguments text verbatim); a ``function_call_output`` a
    tool message answering ``call_id``; any other item (``web_search_call``,
    ``file_search_call``, ``computer_call``...) an assistant message with one
    :class:`ProviderPart`. Each message keeps its item as its source
    (``openai.responses``): annotations, statuses and ids go back as they came.
    """
    data = as_data(value)
    entries: object = data
    if isinstance(data, Mapping):
        if "type" not in data and "role" not in data:
            if "output" not in data:
                raise ProviderFormatError(f"{RESPONSES_API} data has no 'output' items: {sorted(data)}")
            entries = data["output"]
        else:
            entries = [data]
    if not isinstance(entries, list | tuple):
        raise ProviderFormatError(
            f"cannot read {RESPONSES_API} items from {type(value).__name__}; expected a Response or a list of items"
        )
    return [_responses_item(_plain(item), f"items[{i}]") for i, item in enumerate(entries)]


def _responses_item(value: object, path: str) -> JsonDict:
    what = f"{RESPONSES_API} {path}"
    item = _object(value, what)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise ProviderFormatError(f"{what} is a message with role {role!r}")
        content = item.get("content")
        if isinstance(content, list):
            parts = [_responses_part(p, f"{what}.content[{i}]") for i, p in enumerate(content)]
            return _message(role, parts, RESPONSES, item)
        return _message(role, _text(content, f"{what} content"), RESPONSES, item)
    if kind == "reasoning":
        summary = [_text(s.get("text"), f"{what} summary") for s in _dicts(item.get("summary"), f"{what} summary")]
        texts = [_text(c.get("text"), f"{what} content") for c in _dicts(item.get("content"), f"{what} content")]
        fields = {
            "type": "reasoning",
            "id": item.get("id"),
            "summary": summary,
            "text": "\n".join(texts) if texts else None,
            "encrypted": item.get("encrypted_content"),
        }
        return _message("assistant", [part(fields, what)], RESPONSES, item)
    if kind == "function_call":
        call = make_call(
            RESPONSES_API,
            field(item, "call_id", RESPONSES_API),
            field(item, "name", RESPONSES_API),
            field(item, "arguments", RESPONSES_API),
        )
        return _message("assistant", None, RESPONSES, item, tool_calls=[call])
    if kind == "function_call_output":
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ProviderFormatError(f"{what} is a function_call_output without a call_id")
        output = item.get("output")
        result: str | list[Any]
        if isinstance(output, list):
            result = [_responses_part(p, f"{what}.output[{i}]") for i, p in enumerate(output)]
        else:
            result = _text(output, f"{what} output")
        return _message("tool", result, RESPONSES, item, tool_call_id=call_id)
    if not isinstance(kind, str) or not kind:
        raise ProviderFormatError(f"{what} has no type: {sorted(item)}")
    return _message("assistant", [ProviderPart(provider=RESPONSES, data=item)], RESPONSES, item)


def _dicts(value: object, what: str) -> list[JsonDict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProviderFormatError(f"{what} must be a list, not {type(value).__name__}")
    return [_object(v, what) for v in value]


def _responses_part(value: object, what: str) -> Any:
    item = _object(value, what)
    kind = item.get("type")
    if kind in ("input_text", "output_text"):
        return part({"type": "text", "text": item.get("text")}, what)
    if kind == "refusal":
        return part({"type": "refusal", "refusal": item.get("refusal")}, what)
    if kind == "input_image":
        if item.get("image_url") is None:  # an uploaded file's id: no neutral image part refers to one
            return ProviderPart(provider=RESPONSES, data=item)
        return _image(item["image_url"], item.get("detail"), what)
    if kind == "input_file":
        return _file(item.get("file_data"), item.get("file_id"), item.get("file_url"), item.get("filename"), what)
    if kind == "input_audio":
        return _audio(item.get("input_audio"), what)
    raise ProviderFormatError(f"{what} has type {kind!r}; a Responses content part is {_RESPONSES_PARTS}")


# -- Chat Completions out -------------------------------------------------------------------------


def chat_tool_call(call: ToolCall) -> JsonDict:
    """One assistant ``tool_calls`` entry; the arguments are the model's own text when it wrote text."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json()}}


def to_openai_messages(
    history: History, *, unsupported: Unsupported = "error", dangling: Dangling = "interrupt"
) -> list[JsonDict]:
    """Chat Completions ``messages``: a list of ``ChatCompletionMessageParam`` dicts.

    A message imported from Chat Completions is sent as it came (a response
    message as the request message it stands for: without its annotations,
    its audio by id). Others keep their role (and ``name``); their parts
    become text, ``image_url`` (a URL or a ``data:`` URL), ``file``
    (``file_data`` as a ``data:`` URL, or ``file_id``) and ``input_audio``
    (wav, mp3) parts; an assistant's refusals its ``refusal``, its audio its
    ``audio`` id; tool calls ``tool_calls`` with the arguments as the model
    wrote them; a tool result a ``tool`` message of text (its text parts
    joined). Parts Chat Completions has no place for (reasoning, a file by
    URL, an image in a tool result, another provider's part...) raise
    :class:`ProviderFormatError` naming them, or are left out with
    ``unsupported="drop"`` (a message left with nothing is left out).

    Every tool call is followed by its results: a result that answers no
    earlier call is left out, and a call without a result is answered with
    an error result saying it was interrupted, or left out with
    ``dangling="drop"``.
    """
    _check_policy(unsupported)
    out: list[JsonDict] = []
    for message in paired(history_messages(history), dangling=dangling):
        item = same_source(message, CHAT)
        if item is not None:
            out.append(_chat_request(thaw(item)))
            continue
        converted = _to_chat(message, unsupported)
        if converted is not None:
            out.append(converted)
    return out


def _chat_request(item: JsonDict) -> JsonDict:
    """An imported chat message as a request message: a response message without what requests do not take."""
    if item.get("role") != "assistant":
        return item
    request = {key: value for key, value in item.items() if key in _CHAT_ASSISTANT_KEYS}
    audio = request.get("audio")
    if isinstance(audio, dict) and "id" in audio:
        request["audio"] = {"id": audio["id"]}
    return request


def _to_chat(message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    role = message.role
    if role == "tool":
        texts = []
        for p in parts_of(message):
            if isinstance(p, TextPart):
                texts.append(p.text)
            else:
                refuse_part(CHAT_API, p, policy, " in a tool result (Chat Completions tool messages take text only)")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": "".join(texts)}
    item: JsonDict = {"role": role}
    content = message.content
    if content is None or isinstance(content, str):
        item["content"] = content if role == "assistant" else (content or "")
    elif not content:
        item["content"] = None if role == "assistant" and message.tool_calls else ""
    else:
        where = f" in {'an' if role == 'assistant' else 'a'} {role} message"
        parts: list[JsonDict] = []
        refusals: list[str] = []
        for p in content:
            if isinstance(p, TextPart):
                parts.append({"type": "text", "text": p.text})
            elif isinstance(p, ProviderPart) and p.provider == CHAT:
                parts.append(thaw(p.data))
            elif role == "assistant" and isinstance(p, RefusalPart):
                refusals.append(p.refusal)
            elif role == "assistant" and isinstance(p, AudioPart) and p.id is not None and "audio" not in item:
                item["audio"] = {"id": p.id}
            elif role == "user" and (chat_part := _chat_user_part(p)) is not None:
                parts.append(chat_part)
            else:
                refuse_part(CHAT_API, p, policy, where + _chat_why(p))
        if not parts and not refusals and "audio" not in item and not message.tool_calls:
            return None  # everything it held was left out
        item["content"] = parts if parts or role != "assistant" else None
        if refusals:
            item["refusal"] = "\n".join(refusals)
    if message.name is not None:
        item["name"] = message.name
    if message.tool_calls:
        item["tool_calls"] = [chat_tool_call(call) for call in message.tool_calls]
    return item


def _chat_user_part(p: Any) -> JsonDict | None:
    """A user content part in the Chat Completions shape, or ``None`` if it has none."""
    if isinstance(p, ImagePart):
        url = p.url if p.url is not None else _as_data_url(p.media_type, p.data or "")
        image: JsonDict = {"url": url}
        if p.detail is not None:
            image["detail"] = p.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(p, FilePart) and p.url is None:
        file: JsonDict = {"file_id": p.file_id} if p.file_id is not None else {}
        if p.data is not None:
            file["file_data"] = _as_data_url(p.media_type, p.data)
        if p.filename is not None:
            file["filename"] = p.filename
        return {"type": "file", "file": file}
    if isinstance(p, AudioPart) and p.data is not None and p.media_type in _AUDIO_FORMATS:
        return {"type": "input_audio", "input_audio": {"data": p.data, "format": _AUDIO_FORMATS[p.media_type]}}
    return None


def _chat_why(p: Any) -> str:
    if isinstance(p, ReasoningPart):
        return " (Chat Completions has no place for reasoning)"
    if isinstance(p, FilePart) and p.url is not None:
        return " by url (Chat Completions takes files inline or by file_id)"
    if isinstance(p, AudioPart):
        return " (Chat Completions takes audio from the user inline as wav or mp3, and an assistant's by its id)"
    return ""


# -- Responses out --------------------------------------------------------------------------------


def to_openai_responses_input(
    history: History, *, unsupported: Unsupported = "error", dangling: Dangling = "interrupt"
) -> list[JsonDict]:
    """Responses ``input``: a list of ``ResponseInputItemParam`` dicts.

    An item imported from the Responses API is sent as it came. Other
    messages are converted: system, developer and user messages to
    ``message`` items of ``input_text``, ``input_image`` and ``input_file``
    parts; assistant text to an assistant ``message``; tool calls to
    ``function_call`` items (``call_id``, the arguments as the model wrote
    them); tool results to ``function_call_output`` items; reasoning that
    carries an OpenAI reasoning id to a ``reasoning`` item (summary,
    encrypted content); an ``openai.responses`` provider part to its item.
    Parts the Responses API cannot take (other reasoning, audio, a refusal
    in a message that did not come from it, another provider's part...)
    raise :class:`ProviderFormatError` naming them, or are left out with
    ``unsupported="drop"``. ``name`` has no place in Responses and is left
    out; so is ``is_error`` (a failed result says so in its output).

    Tool calls and results are kept together as in :func:`to_openai_messages`
    (``dangling`` says what to do with a call without a result), and each
    output stays where it was in the history, after its call, so the
    parallel calls of one response stay together as the model gave them.
    """
    _check_policy(unsupported)
    messages = history_messages(history)
    out: list[JsonDict] = []
    for message in _in_history_order(messages, paired(messages, dangling=dangling)):
        item = same_source(message, RESPONSES)
        if item is not None:
            out.append(thaw(item))
        else:
            out.extend(_to_responses(message, unsupported))
    return out


def to_openai_responses_items(message: HistoryMessage, *, unsupported: Unsupported = "error") -> list[JsonDict]:
    """One history message as Responses input items, converted from its content (its source is not used).

    Unlike :func:`to_openai_responses_input`, calls and results are not paired
    across messages: a tool result gives its ``function_call_output`` and an
    assistant message its ``message``, ``reasoning`` and ``function_call``
    items, whatever else the history holds.
    """
    _check_policy(unsupported)
    return _to_responses(message, unsupported)


def _in_history_order(history: Sequence[HistoryMessage], kept: Sequence[HistoryMessage]) -> list[HistoryMessage]:
    """``kept`` (from :func:`paired`, a result right after its call) with each result back where it was in
    ``history``, which is always after its call; a synthetic result stays right after its call."""
    index = {id(message): i for i, message in enumerate(history)}
    placed = {id(message) for message in kept}
    keyed: list[tuple[float, int, HistoryMessage]] = []
    last = -1.0  # where the latest non-result message stands in the history
    for n, message in enumerate(kept):
        position = index.get(id(message))
        if position is not None:
            if message.role != "tool":
                last = position
            keyed.append((position, n, message))
        elif isinstance(message, Interrupted):
            keyed.append((last, n, message))
        else:  # a message paired() trimmed of its unanswered calls stands where its original stood
            last = next(
                (
                    float(i)
                    for i in range(int(last) + 1, len(history))
                    if id(history[i]) not in placed and _trimmed_from(message, history[i])
                ),
                last + 0.5,
            )
            keyed.append((last, n, message))
    return [message for _, _, message in sorted(keyed, key=lambda entry: entry[:2])]


def _trimmed_from(trimmed: HistoryMessage, original: HistoryMessage) -> bool:
    ids = {call.id for call in original.tool_calls}
    return (
        original.role == trimmed.role
        and original.content == trimmed.content
        and bool(ids)
        and all(call.id in ids for call in trimmed.tool_calls)
    )


def _to_responses(message: HistoryMessage, policy: Unsupported) -> list[JsonDict]:
    role = message.role
    if role == "tool":
        output: str | list[JsonDict]
        if isinstance(message.content, str) or message.content is None:
            output = message.content or ""
        else:
            output = []
            for p in message.content:
                converted = _responses_input_part(p)
                if converted is None:
                    refuse_part(RESPONSES_API, p, policy, " in a tool result" + _INPUT_PARTS)
                else:
                    output.append(converted)
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": output}]
    if role != "assistant":
        content = message.content
        if isinstance(content, str) or not content:
            return [{"type": "message", "role": role, "content": content or ""}]
        parts = []
        for p in content:
            converted = _responses_input_part(p)
            if converted is None:
                refuse_part(RESPONSES_API, p, policy, f" in a {role} message" + _INPUT_PARTS)
            else:
                parts.append(converted)
        return [{"type": "message", "role": role, "content": parts}] if parts else []
    return _responses_assistant(message, policy)


_INPUT_PARTS = " (Responses takes text, images and files there)"


def _responses_input_part(p: Any) -> JsonDict | None:
    """A content part as Responses takes it in messages and function outputs, or ``None`` if it cannot."""
    if isinstance(p, TextPart):
        return {"type": "input_text", "text": p.text}
    if isinstance(p, ImagePart):
        url = p.url if p.url is not None else _as_data_url(p.media_type, p.data or "")
        return {"type": "input_image", "image_url": url, "detail": p.detail or "auto"}
    if isinstance(p, FilePart):
        file: JsonDict = {"type": "input_file"}
        if p.url is not None:
            file["file_url"] = p.url
        elif p.file_id is not None:
            file["file_id"] = p.file_id
        else:
            file["file_data"] = _as_data_url(p.media_type, p.data or "")
        if p.filename is not None:
            file["filename"] = p.filename
        return file
    if isinstance(p, ProviderPart) and p.provider == RESPONSES:
        return thaw(p.data)  # type: ignore[no-any-return]
    return None


def _responses_assistant(message: HistoryMessage, policy: Unsupported) -> list[JsonDict]:
    out: list[JsonDict] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            out.append({"type": "message", "role": "assistant", "content": "".join(texts)})
            texts.clear()

    content = message.content
    if isinstance(content, str):
        if content or not message.tool_calls:
            texts.append(content)
            flush()
    else:
        for p in content or ():
            if isinstance(p, TextPart):
                texts.append(p.text)
            elif isinstance(p, ReasoningPart) and p.id is not None and p.signature is None:
                flush()
                out.append(_reasoning_item(p))
            elif isinstance(p, ProviderPart) and p.provider == RESPONSES:
                flush()
                out.append(thaw(p.data))
            else:
                refuse_part(RESPONSES_API, p, policy, " in an assistant message" + _responses_why(p))
        flush()
    out.extend(
        {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments_json()}
        for call in message.tool_calls
    )
    return out


def _reasoning_item(p: ReasoningPart) -> JsonDict:
    item: JsonDict = {
        "type": "reasoning",
        "id": p.id,
        "summary": [{"type": "summary_text", "text": text} for text in p.summary],
    }
    if p.text is not None:
        item["content"] = [{"type": "reasoning_text", "text": p.text}]
    if p.encrypted is not None:
        item["encrypted_content"] = p.encrypted
    return item


def _responses_why(p: Any) -> str:
    if isinstance(p, ReasoningPart):
        return " without an OpenAI reasoning id (Responses takes back only its own reasoning items)"
    if isinstance(p, RefusalPart):
        return " that did not come from Responses (only its output messages, with their ids, hold refusals)"
    return ""


__all__ = [
    "CHAT",
    "RESPONSES",
    "chat_tool_call",
    "chat_tool_call_parts",
    "from_openai_chat_tool_calls",
    "from_openai_responses_tool_calls",
    "messages_from_openai_chat",
    "messages_from_openai_responses",
    "to_openai_chat_tool_messages",
    "to_openai_chat_tools",
    "to_openai_messages",
    "to_openai_responses_input",
    "to_openai_responses_items",
    "to_openai_responses_tool_outputs",
    "to_openai_responses_tools",
]
