"""Anthropic Messages.

Tool definitions out, ``tool_use`` blocks in, ``tool_result`` blocks out, a
response or ``MessageParam`` list in as history messages, and a history out
as ``messages.create`` keyword arguments. Everything works on plain dicts
shaped like the API; the SDK is not imported, but its objects are read
(anything with ``model_dump()``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from .calls import RawCall, ToolCall, jsonable, plain
from .common import (
    Dangling,
    History,
    HistoryMessage,
    JsonDict,
    ToolOutcome,
    ToolSource,
    Unsupported,
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
from .common import unsupported as unsupported_part
from .errors import ProviderFormatError
from .parts import (
    FilePart,
    ImagePart,
    ProviderPart,
    ReasoningPart,
    RefusalPart,
    TextPart,
    part,
)

PROVIDER = "Anthropic"

SOURCE = "anthropic"
"""The ``provider`` of a :class:`~sessionware.agents.Source` (and a ``ProviderPart``) imported from Anthropic."""

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The media types Anthropic takes for inline images."""

PDF = "application/pdf"
PLAIN_TEXT = "text/plain"

# -- tool definitions -----------------------------------------------------------------------------


def to_anthropic_tools(tools: ToolSource, *, strict: bool | None = None) -> list[JsonDict]:
    """Anthropic ``tools=``: ``{"name", "description", "input_schema"}``, plus ``"strict": True`` where it qualifies."""
    out = []
    for tool in tool_specs(tools):
        parameters = tool.parameters()
        definition: JsonDict = {
            "name": tool.name,
            "description": tool.description,
            "input_schema": parameters,
        }
        if strict_for(tool, parameters, strict):
            definition["strict"] = True
        out.append(definition)
    return out


# -- tool calls in --------------------------------------------------------------------------------


def from_anthropic_tool_calls(message: object) -> list[ToolCall]:
    """Calls (``tool_use`` blocks) from an Anthropic message or its ``content`` list."""
    return [
        make_call(
            PROVIDER,
            field(block, "id", PROVIDER),
            field(block, "name", PROVIDER),
            field(block, "input", PROVIDER),
        )
        for block in items(message, "content", "role", "type")
        if block.get("type") == "tool_use"
    ]


def tool_use_parts(block: Mapping[str, Any]) -> RawCall | None:
    """The parts of a ``{"type": "tool_use", "id", "name", "input"}`` block, or ``None`` if not that shape."""
    if block.get("type") != "tool_use":
        return None
    return RawCall(block.get("id"), block.get("name"), block.get("input"))


# -- tool results out -----------------------------------------------------------------------------


def to_anthropic_tool_results(results: Iterable[ToolOutcome]) -> JsonDict:
    """A user message of ``tool_result`` blocks, ``is_error`` set on every result that did not succeed."""
    blocks = [
        {"type": "tool_result", "tool_use_id": r.id, "content": result_text(r), "is_error": not r.ok} for r in results
    ]
    return {"role": "user", "content": blocks}


# -- history in -----------------------------------------------------------------------------------


def messages_from_anthropic(value: object) -> list[JsonDict]:
    """History messages (mappings :meth:`SessionManager.add_messages` takes) from Anthropic data.

    ``value`` is a response ``Message`` (an SDK object or its dict), one
    ``MessageParam`` dict or a list of them. An assistant turn becomes one
    message: ``text`` blocks text parts, ``thinking`` a reasoning part with
    its signature, ``redacted_thinking`` a redacted reasoning part (its
    ``data`` as ``encrypted``), ``tool_use`` its tool calls, and any other
    block (``server_tool_use``, ``web_search_tool_result``, ...) a provider
    part kept as it came. A user turn becomes one tool message per
    ``tool_result`` block (``is_error`` and its content as text or parts),
    then a user message with the other blocks: images (inline or by URL),
    documents (a PDF inline or by URL, plain text, a file id) as file parts.

    Each message keeps its blocks as its ``source`` (``{"provider":
    "anthropic", "item": {"role", "content"}}``), so :func:`to_anthropic_messages`
    gives them back exactly, citations and signatures included. SDK objects are
    read as the SDK sends them back (the fields the API set); a block field that
    is ``None`` is left out, which the API reads the same.
    """
    data = _plain(value)
    if isinstance(data, Mapping):
        turns: list[Any] = [data]
    elif isinstance(data, list):
        turns = data
    else:
        raise ProviderFormatError(
            f"{PROVIDER} messages must be a Message, a MessageParam or a list of them, not {type(value).__name__}"
        )
    out: list[JsonDict] = []
    for index, turn in enumerate(turns):
        out.extend(_read_turn(turn, f"{PROVIDER} message {index}" if isinstance(data, list) else f"{PROVIDER} message"))
    return out


def _plain(value: object) -> Any:
    """``value`` as plain JSON data: SDK objects dumped as the SDK sends them (fields the API set, by API name)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _read_turn(turn: object, path: str) -> list[JsonDict]:
    if not isinstance(turn, Mapping):
        raise ProviderFormatError(f"{path} must be a mapping with role and content, not {type(turn).__name__}")
    role, content = turn.get("role"), turn.get("content")
    if role not in ("user", "assistant", "system"):
        raise ProviderFormatError(f"{path} has role {role!r}; expected 'user', 'assistant' or 'system'")
    if isinstance(content, str):
        return [{"role": role, "content": content, "source": _source(role, content)}]
    if not isinstance(content, list):
        raise ProviderFormatError(f"{path} content must be a str or a list of blocks, not {type(content).__name__}")
    blocks = [_block_data(block, f"{path} content[{i}]") for i, block in enumerate(content)]
    if role == "system":
        return [_system_message(blocks, path)]
    if role == "assistant":
        return [_assistant_message(blocks, path)]
    return _user_messages(blocks, path)


def _block_data(block: object, path: str) -> JsonDict:
    if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
        raise ProviderFormatError(f"{path} must be a content block with a type, not {block!r:.80}")
    return {key: item for key, item in block.items() if item is not None}


def _source(role: str, content: str | list[JsonDict]) -> JsonDict:
    return {"provider": SOURCE, "item": {"role": role, "content": content}}


def _system_message(blocks: list[JsonDict], path: str) -> JsonDict:
    texts = []
    for i, block in enumerate(blocks):
        if block["type"] != "text":
            raise ProviderFormatError(f"{path} content[{i}] is a {block['type']} block; a system turn holds text only")
        texts.append(_text(block, f"{path} content[{i}]"))
    return {"role": "system", "content": "".join(texts), "source": _source("system", blocks)}


def _assistant_message(blocks: list[JsonDict], path: str) -> JsonDict:
    parts: list[Any] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        where = f"{path} content[{i}]"
        kind = block["type"]
        if kind == "tool_use":
            calls.append(make_call(PROVIDER, block.get("id"), block.get("name"), block.get("input", {})))
        elif kind == "tool_result":
            raise ProviderFormatError(f"{where} is a tool_result block; tool results belong in a user turn")
        else:
            parts.append(_content_part(block, where))
    message: JsonDict = {"role": "assistant", "content": parts or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    message["source"] = _source("assistant", blocks)
    return message


def _user_messages(blocks: list[JsonDict], path: str) -> list[JsonDict]:
    out: list[JsonDict] = []
    rest: list[tuple[JsonDict, str]] = []
    for i, block in enumerate(blocks):
        where = f"{path} content[{i}]"
        if block["type"] == "tool_use":
            raise ProviderFormatError(f"{where} is a tool_use block; tool calls belong in an assistant turn")
        if block["type"] != "tool_result":
            rest.append((block, where))
            continue
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise ProviderFormatError(f"{where} is a tool_result without a tool_use_id")
        result = block.get("content", "")
        content: str | list[Any]
        if isinstance(result, str):
            content = result
        elif isinstance(result, list):
            inner = [_block_data(item, f"{where} content[{j}]") for j, item in enumerate(result)]
            content = [_content_part(item, f"{where} content[{j}]") for j, item in enumerate(inner)]
            block = {**block, "content": inner}
        else:
            raise ProviderFormatError(f"{where} content must be a str or a list of blocks, not {type(result).__name__}")
        message: JsonDict = {"role": "tool", "content": content, "tool_call_id": call_id}
        if block.get("is_error") is True:
            message["is_error"] = True
        message["source"] = _source("user", [block])
        out.append(message)
    if rest:
        parts = [_content_part(block, where) for block, where in rest]
        out.append({"role": "user", "content": parts, "source": _source("user", [block for block, _ in rest])})
    return out


def _text(block: Mapping[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise ProviderFormatError(f"{path} is a text block without text")
    return text


def _content_part(block: JsonDict, path: str) -> Any:
    """Our part for one (non tool) block: text, thinking, images, documents; anything else a provider part."""
    kind = block["type"]
    if kind == "text":
        return TextPart(text=_text(block, path))
    if kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str) or not isinstance(signature, str):
            raise ProviderFormatError(f"{path} is a thinking block that needs its thinking text and signature")
        return ReasoningPart(text=thinking, signature=signature)
    if kind == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            raise ProviderFormatError(f"{path} is a redacted_thinking block without its data")
        return ReasoningPart(encrypted=data, redacted=True)
    source = block.get("source")
    if kind in ("image", "document"):
        if not isinstance(source, Mapping) or not isinstance(source.get("type"), str):
            article = "an" if kind == "image" else "a"
            raise ProviderFormatError(f"{path} is {article} {kind} block without a source")
        read = _image_part if kind == "image" else _document_part
        return read(block, source, path)
    return ProviderPart(provider=SOURCE, data=block)


def _image_part(block: JsonDict, source: Mapping[str, Any], path: str) -> Any:
    kind = source["type"]
    if kind == "base64":
        return part({"type": "image", "data": source.get("data"), "media_type": source.get("media_type")}, path)
    if kind == "url":
        return part({"type": "image", "url": source.get("url")}, path)
    return ProviderPart(provider=SOURCE, data=block)  # a file id: Anthropic's own, kept as it came


def _document_part(block: JsonDict, source: Mapping[str, Any], path: str) -> Any:
    kind = source["type"]
    named = {"filename": block["title"]} if isinstance(block.get("title"), str) else {}
    if kind == "base64":
        return part({"type": "file", "data": source.get("data"), "media_type": source.get("media_type"), **named}, path)
    if kind == "url":
        return part({"type": "file", "url": source.get("url"), "media_type": PDF, **named}, path)
    if kind == "text":
        text = source.get("data")
        if not isinstance(text, str):
            raise ProviderFormatError(f"{path} is a plain-text document without its text")
        return part({"type": "file", "data": text.encode(), "media_type": PLAIN_TEXT, **named}, path)
    if kind == "file":
        return part({"type": "file", "file_id": source.get("file_id"), **named}, path)
    return ProviderPart(provider=SOURCE, data=block)  # content-block documents: Anthropic's own shape


# -- history out ----------------------------------------------------------------------------------


def tool_use_block(call: ToolCall) -> JsonDict:
    """A ``tool_use`` block for one assistant tool call."""
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": jsonable(call.arguments or {})}


def to_anthropic_messages(
    history: History, *, unsupported: Unsupported = "error", dangling: Dangling = "interrupt"
) -> JsonDict:
    """Keyword arguments for Anthropic's ``messages.create``: ``{"system": ..., "messages": [...]}``.

    System and developer messages are joined into the top-level ``system``
    prompt (left out when there are none). The rest become ``MessageParam``
    dicts with content blocks. Consecutive turns of the same role are merged
    into one, so tool results that answer one assistant message share one
    user turn, results first. Every tool call is followed by its result; a
    call without one is answered with an error result or left out, as
    ``dangling`` says (:data:`~sessionware.providers.common.Dangling`), and a
    result that answers no call made earlier is left out.

    A message imported from Anthropic (:func:`messages_from_anthropic`) gives
    back its blocks exactly as they came. Other messages map part by part:
    text (empty text is left out, as the API refuses it); images inline
    (JPEG, PNG, GIF, WebP) or by URL; files as ``document`` blocks (a PDF
    inline or by URL, plain text, an Anthropic file id); a refusal as text
    (Anthropic has no refusal block: its own refusals are plain text);
    reasoning with a signature as ``thinking`` and redacted reasoning as
    ``redacted_thinking`` in assistant turns; Anthropic provider parts as
    they came; tool calls as ``tool_use`` and tool results as ``tool_result``
    (``is_error`` on a failure; text, images and documents inside). Audio,
    reasoning without an Anthropic signature (or from a message imported
    from another provider), another provider's parts or file ids, and media
    Anthropic cannot take raise :class:`ProviderFormatError` naming the part,
    or are left out with ``unsupported="drop"``.
    """
    _check_policy(unsupported)
    system: list[str] = []
    turns: list[JsonDict] = []
    for message in paired(history_messages(history), dangling=dangling):
        if message.role in ("system", "developer"):
            text = _system_text(message, unsupported)
            if text:
                system.append(text)
            continue
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message, unsupported)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    out: JsonDict = {"messages": turns}
    if system:
        out["system"] = "\n\n".join(system)
    return out


def _check_policy(policy: str) -> None:
    if policy not in ("error", "drop"):
        raise ProviderFormatError(f"unsupported must be 'error' or 'drop', not {policy!r}")


def _where(message: HistoryMessage, detail: str = "") -> str:
    seq = getattr(message, "seq", None)
    number = f" {seq}" if isinstance(seq, int) else ""
    return f"{detail} in {message.role} message{number}"


def _system_text(message: HistoryMessage, policy: Unsupported) -> str:
    texts = []
    for item in parts_of(message):
        if isinstance(item, TextPart):
            texts.append(item.text)
        else:
            unsupported_part(PROVIDER, item, policy, _where(message))
    return "".join(texts)


def _blocks(message: HistoryMessage, policy: Unsupported) -> list[JsonDict]:
    kept = _source_blocks(message)
    if kept is not None:
        return kept
    if message.role == "tool":
        return [_tool_result(message, policy)]
    blocks = [block for item in parts_of(message) if (block := _block(item, message, policy)) is not None]
    blocks.extend(tool_use_block(call) for call in message.tool_calls)
    return blocks


def _source_blocks(message: HistoryMessage) -> list[JsonDict] | None:
    """The blocks ``message`` was imported with, if it came from Anthropic and they still fit its calls."""
    item = same_source(message, SOURCE)
    if not isinstance(item, Mapping):
        return None
    content = plain(item.get("content"))
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        return None
    uses = [b.get("id") for b in content if b.get("type") == "tool_use"]
    results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
    if uses != [call.id for call in message.tool_calls]:
        return None
    if results != ([message.tool_call_id] if message.role == "tool" else []):
        return None
    return content


def _tool_result(message: HistoryMessage, policy: Unsupported) -> JsonDict:
    content: str | list[JsonDict]
    if message.content is None or isinstance(message.content, str):
        content = message.content or ""
    else:
        content = [inner for item in message.content if (inner := _block(item, message, policy)) is not None]
    block: JsonDict = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}
    if message.is_error:
        block["is_error"] = True
    return block


def _block(item: Any, message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    """One content block for ``item`` of ``message``, or ``None`` (empty text, or an unsupported part dropped)."""
    assistant = message.role == "assistant"
    if isinstance(item, TextPart | RefusalPart):
        text = item.text if isinstance(item, TextPart) else item.refusal
        return {"type": "text", "text": text} if text else None
    if isinstance(item, ProviderPart) and item.provider == SOURCE:
        return plain(item.data)  # type: ignore[no-any-return]
    if isinstance(item, ImagePart) and not assistant:
        if item.url is not None:
            return {"type": "image", "source": {"type": "url", "url": item.url}}
        if item.media_type in IMAGE_MEDIA_TYPES:
            return {"type": "image", "source": {"type": "base64", "media_type": item.media_type, "data": item.data}}
        unsupported_part(PROVIDER, item, policy, _where(message, f" of type {item.media_type}"))
        return None
    if isinstance(item, FilePart) and not assistant:
        return _document(item, message, policy)
    if isinstance(item, ReasoningPart) and assistant:
        return _thinking(item, message, policy)
    unsupported_part(PROVIDER, item, policy, _where(message))
    return None


def _thinking(item: ReasoningPart, message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    if message.source is not None and message.source.provider != SOURCE:
        unsupported_part(PROVIDER, item, policy, _where(message, f" from {message.source.provider}"))
    elif item.redacted and item.encrypted is not None:
        return {"type": "redacted_thinking", "data": item.encrypted}
    elif item.signature is not None and not item.redacted:
        return {"type": "thinking", "thinking": item.text or "", "signature": item.signature}
    else:
        unsupported_part(PROVIDER, item, policy, _where(message, " without an Anthropic signature"))
    return None


def _document(item: FilePart, message: HistoryMessage, policy: Unsupported) -> JsonDict | None:
    source: JsonDict | None = None
    if item.data is not None and item.media_type == PDF:
        source = {"type": "base64", "media_type": PDF, "data": item.data}
    elif item.data is not None and item.media_type == PLAIN_TEXT:
        try:
            source = {"type": "text", "media_type": PLAIN_TEXT, "data": base64.b64decode(item.data).decode()}
        except (binascii.Error, UnicodeDecodeError):
            source = None
    elif item.url is not None and item.media_type in (None, PDF):
        source = {"type": "url", "url": item.url}
    elif item.file_id is not None and (message.source is None or message.source.provider == SOURCE):
        source = {"type": "file", "file_id": item.file_id}
    if source is None:
        what = f" of type {item.media_type}" if item.media_type else " with another provider's file id"
        unsupported_part(PROVIDER, item, policy, _where(message, what))
        return None
    block: JsonDict = {"type": "document", "source": source}
    if item.filename:
        block["title"] = item.filename
    return block


__all__ = [
    "IMAGE_MEDIA_TYPES",
    "SOURCE",
    "from_anthropic_tool_calls",
    "messages_from_anthropic",
    "to_anthropic_messages",
    "to_anthropic_tool_results",
    "to_anthropic_tools",
    "tool_use_block",
    "tool_use_parts",
]
