"""The stored shape of sessions, messages and tool invocations, and validation of what callers pass in."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import InvalidValueError, SchemaVersionError, SessionDecodeError
from ..frozen import FrozenList, FrozenMap, thaw
from ..providers.calls import ToolCall
from ..providers.errors import ProviderFormatError
from ..providers.inputs import read_tool_call
from ..providers.parts import part
from ..store import LogEntry
from .models import ROLES, TOOL_STATUSES, Message, Session, Source, ToolInvocation
from .segments import LogChain

RECORD_FORMAT = 1

JsonDict = dict[str, Any]


@dataclass(slots=True)
class SessionRecord:
    """The stored session record: metadata, counters and expiry bookkeeping (never the history).

    ``until`` holds the wall-clock expiry this manager last gave the history
    log (``h``), the tool log (``t``) and the user-index entry (``i``); they are
    refreshed only when they would expire before the record does.

    ``messages`` / ``tools`` are the highest sequence number the record has
    seen in each log (raising them again is harmless, so an update that must
    be repeated counts nothing twice); ``messages_removed`` / ``tools_removed``
    how many entries were popped or cleared. The counts a snapshot shows are
    the differences.
    """

    id: str
    user_id: str
    metadata: JsonDict
    created_at: float
    updated_at: float
    ttl: float | None
    expires_at: float | None
    index: str
    messages: int = 0
    tools: int = 0
    version: int = 1
    until: dict[str, float] = field(default_factory=dict)
    metadata_version: int = 0
    messages_removed: int = 0
    tools_removed: int = 0
    history: LogChain | None = None
    tool_log: LogChain | None = None
    forked_from: JsonDict | None = None

    @property
    def message_count(self) -> int:
        """Messages appended and not popped or cleared (those trimmed by ``max_messages`` included)."""
        return self.messages - self.messages_removed

    @property
    def tool_invocation_count(self) -> int:
        """Tool invocations recorded and not cleared (those trimmed by ``max_tool_invocations`` included)."""
        return self.tools - self.tools_removed

    def log_keys(self, history: str, tools: str) -> list[str]:
        """Every log this session reads (``history`` / ``tools``: its default log keys), for backups."""
        chains = [self.history or LogChain(history), self.tool_log or LogChain(tools)]
        return list(dict.fromkeys(key for chain in chains for key in chain.logs()))

    def to_json(self) -> JsonDict:
        """The dict stored under the record key."""
        return {
            "fmt": RECORD_FORMAT,
            "id": self.id,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "ttl": self.ttl,
            "expires_at": self.expires_at,
            "index": self.index,
            "messages": self.messages,
            "tools": self.tools,
            "version": self.version,
            "until": self.until,
            **({"metadata_version": self.metadata_version} if self.metadata_version else {}),
            **({"messages_removed": self.messages_removed} if self.messages_removed else {}),
            **({"tools_removed": self.tools_removed} if self.tools_removed else {}),
            **({"hc": self.history.to_json()} if self.history is not None else {}),
            **({"tc": self.tool_log.to_json()} if self.tool_log is not None else {}),
            **({"forked_from": self.forked_from} if self.forked_from is not None else {}),
        }

    @classmethod
    def from_json(cls, key: str, data: JsonDict) -> SessionRecord:
        """Parse a stored record; raise :class:`SessionDecodeError` if it is not one."""
        fmt = data.get("fmt")
        if type(fmt) is int and fmt > RECORD_FORMAT:
            raise SchemaVersionError(
                f"session record {key!r} has format {fmt}; this release reads up to {RECORD_FORMAT}"
            )
        try:
            record = cls(
                id=_field(data, "id", str),
                user_id=_field(data, "user_id", str),
                metadata=_field(data, "metadata", dict),
                created_at=_number(data, "created_at"),
                updated_at=_number(data, "updated_at"),
                ttl=None if data.get("ttl") is None else _number(data, "ttl"),
                expires_at=None if data.get("expires_at") is None else _number(data, "expires_at"),
                index=_field(data, "index", str),
                messages=_field(data, "messages", int),
                tools=_field(data, "tools", int),
                version=_field(data, "version", int),
                until={k: float(v) for k, v in _field(data, "until", dict).items()},
                metadata_version=_field(data, "metadata_version", int) if "metadata_version" in data else 0,
                messages_removed=_field(data, "messages_removed", int) if "messages_removed" in data else 0,
                tools_removed=_field(data, "tools_removed", int) if "tools_removed" in data else 0,
                history=LogChain.from_json(_field(data, "hc", dict)) if "hc" in data else None,
                tool_log=LogChain.from_json(_field(data, "tc", dict)) if "tc" in data else None,
                forked_from=_field(data, "forked_from", dict) if "forked_from" in data else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionDecodeError(key, f"not a session record ({exc})") from exc
        if fmt != RECORD_FORMAT:
            raise SessionDecodeError(key, f"not a session record (format {fmt!r})")
        return record

    def snapshot(self, history: Sequence[Message] = (), tools: Sequence[ToolInvocation] = ()) -> Session:
        """A read-only :class:`Session` of this record with the given windows."""
        return Session(
            id=self.id,
            user_id=self.user_id,
            conversation_history=FrozenList(history),
            tool_invocations=FrozenList(tools),
            metadata=FrozenMap(self.metadata),
            created_at=_datetime(self.created_at),
            updated_at=_datetime(self.updated_at),
            expires_at=None if self.expires_at is None else _datetime(self.expires_at),
            ttl=self.ttl,
            message_count=self.message_count,
            tool_invocation_count=self.tool_invocation_count,
            version=self.version,
            forked_from=None if self.forked_from is None else FrozenMap(self.forked_from),
        )


def _field(data: JsonDict, name: str, kind: type) -> Any:
    value = data[name]
    if type(value) is not kind:
        raise TypeError(f"{name} is a {type(value).__name__}, not {kind.__name__}")
    return value


def _number(data: JsonDict, name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} is a {type(value).__name__}, not a number")
    return float(value)


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# -- inputs ----------------------------------------------------------------------------------------


def plain_json(value: Any, path: str) -> Any:
    """Turn a caller's value (pydantic models, tuples, frozen snapshots, datetimes...) into plain JSON."""
    try:
        plain = to_jsonable_python(value, fallback=_fallback)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise InvalidValueError(path, f"cannot be stored as JSON: {exc}") from exc
    _check_finite(plain, path)
    return plain


def _fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return thaw(value)
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError(path, f"is {value!r}; JSON has no non-finite floats")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}[{k!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def metadata_dict(metadata: object, path: str = "metadata") -> JsonDict:
    """Validate session metadata: a mapping with str keys of exactly round-tripping JSON values."""
    if not isinstance(metadata, Mapping):
        raise InvalidValueError(path, f"must be a mapping, not {type(metadata).__name__}")
    plain = thaw(metadata)
    for key in plain:
        if not isinstance(key, str):
            raise InvalidValueError(path, f"has a {type(key).__name__} key {key!r}; keys must be str")
    return plain  # type: ignore[no-any-return]


def _opt_text(value: object, path: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not value:
        raise InvalidValueError(path, f"must be a non-empty str or None, not {value!r:.60}")
    return value


def tool_call_dict(value: object, path: str) -> JsonDict:
    """Normalise one tool call: a :class:`ToolCall`, our own dict shape, or an OpenAI / Anthropic one.

    The shapes are told apart by :func:`sessionware.providers.read_tool_call`;
    arguments given as JSON text are parsed, and must be a JSON object.
    """
    raw_id: object
    name: object
    arguments: object
    if isinstance(value, ToolCall):
        raw_id, name, arguments = value.id, value.name, value.raw_arguments
    else:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_none=True)
        if not isinstance(value, Mapping):
            raise InvalidValueError(path, f"must be a ToolCall or a mapping, not {type(value).__name__}")
        raw_id, name, arguments = read_tool_call(value)
    call_id = _opt_text(raw_id, f"{path}.id")
    if call_id is None:
        raise InvalidValueError(f"{path}.id", "is required")
    if _opt_text(name, f"{path}.name") is None:
        raise InvalidValueError(f"{path}.name", "is required")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise InvalidValueError(f"{path}.arguments", f"is not valid JSON: {exc}") from exc
    if not isinstance(arguments, Mapping):
        raise InvalidValueError(f"{path}.arguments", f"must be a JSON object, not {type(arguments).__name__}")
    return {"id": call_id, "name": name, "arguments": plain_json(arguments, f"{path}.arguments")}


def message_entry(
    role: object,
    content: object,
    *,
    name: object = None,
    tool_call_id: object = None,
    tool_calls: object = None,
    metadata: object = None,
    is_error: object = False,
    source: object = None,
    path: str = "",
) -> JsonDict:
    """Validate one message and return the dict appended to the history log (without its timestamp).

    ``content`` is a str, a sequence of content parts (models or mappings of
    their shape; raw bytes in ``data`` are stored base64) or ``None`` for an
    assistant message that only calls tools; ``source`` is
    ``{"provider": ..., "item": ...}`` or a :class:`~sessionware.agents.models.Source`.
    """
    if role not in ROLES:
        raise InvalidValueError(f"{path}role", f"must be one of {', '.join(ROLES)}, not {role!r:.60}")
    calls: list[JsonDict] = []
    if tool_calls is not None:
        if role != "assistant":
            raise InvalidValueError(f"{path}tool_calls", f"only assistant messages call tools, not {role}")
        if isinstance(tool_calls, str | bytes | Mapping | BaseModel) or not isinstance(tool_calls, Iterable):
            raise InvalidValueError(f"{path}tool_calls", "must be a list of tool calls")
        calls = [tool_call_dict(c, f"{path}tool_calls[{i}]") for i, c in enumerate(tool_calls)]
        ids = [c["id"] for c in calls]
        if len(set(ids)) != len(ids):
            raise InvalidValueError(f"{path}tool_calls", "has duplicate call ids")
    stored: str | list[JsonDict] | None
    if content is None:
        if not calls:
            raise InvalidValueError(f"{path}content", "may be None only for an assistant message with tool_calls")
        stored = None
    elif type(content) is str:
        stored = content
    else:
        stored = content_parts(content, f"{path}content")
    entry: JsonDict = {"role": role, "content": stored}
    if (text := _opt_text(name, f"{path}name")) is not None:
        entry["name"] = text
    call_id = _opt_text(tool_call_id, f"{path}tool_call_id")
    if role == "tool" and call_id is None:
        raise InvalidValueError(f"{path}tool_call_id", "is required for a tool message")
    if role != "tool" and call_id is not None:
        raise InvalidValueError(f"{path}tool_call_id", f"belongs on tool messages only, not {role}")
    if call_id is not None:
        entry["tool_call_id"] = call_id
    if calls:
        entry["tool_calls"] = calls
    if metadata is not None:
        entry["metadata"] = metadata_dict(metadata, f"{path}metadata")
    if is_error:
        if is_error is not True:
            raise InvalidValueError(f"{path}is_error", f"must be a bool, not {is_error!r:.60}")
        if role != "tool":
            raise InvalidValueError(f"{path}is_error", f"marks failed tool results only, not {role} messages")
        entry["is_error"] = True
    if source is not None:
        entry["source"] = source_dict(source, f"{path}source")
    return entry


def content_parts(content: object, path: str) -> list[JsonDict]:
    """Validate a sequence of content parts; return them as the JSON the log stores."""
    if isinstance(content, str | bytes | Mapping | BaseModel) or not isinstance(content, Iterable):
        raise InvalidValueError(path, f"must be a str or a list of content parts, not {type(content).__name__}")
    stored = []
    for i, item in enumerate(content):
        try:
            value = part(thaw(item) if isinstance(item, Mapping) else item, f"{path}[{i}]")
        except ProviderFormatError as exc:
            raise InvalidValueError(f"{path}[{i}]", str(exc).removeprefix(f"{path}[{i}] ")) from None
        stored.append(value.model_dump(mode="json", exclude_none=True))
    return stored


def source_dict(source: object, path: str) -> JsonDict:
    """Validate where a message came from: ``{"provider": str, "item": JSON}``."""
    if isinstance(source, Source):
        return {"provider": source.provider, "item": thaw(source.item)}
    if not isinstance(source, Mapping) or set(source) != {"provider", "item"}:
        raise InvalidValueError(path, 'must be a Source or a mapping {"provider": ..., "item": ...}')
    provider = source["provider"]
    if type(provider) is not str or not provider:
        raise InvalidValueError(f"{path}.provider", f"must be a non-empty str, not {provider!r:.60}")
    return {"provider": provider, "item": plain_json(source["item"], f"{path}.item")}


def tool_entry(
    tool_name: object,
    *,
    call_id: str,
    arguments: object,
    status: object,
    result: object,
    error: object,
    started_at: float,
    duration: object,
) -> JsonDict:
    """Validate one tool invocation and return the dict appended to the tool log (without its timestamp)."""
    if type(tool_name) is not str or not tool_name:
        raise InvalidValueError("tool_name", f"must be a non-empty str, not {tool_name!r:.60}")
    if status not in TOOL_STATUSES:
        raise InvalidValueError("status", f"must be one of {', '.join(TOOL_STATUSES)}, not {status!r:.60}")
    if error is not None and not isinstance(error, Mapping):
        raise InvalidValueError("error", f"must be a mapping or None, not {type(error).__name__}")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise InvalidValueError("duration", f"must be non-negative seconds or None, not {duration!r:.60}")
    args: Any = arguments
    if arguments is not None and not isinstance(arguments, str):
        if isinstance(arguments, BaseModel):
            args = arguments.model_dump(mode="json")
        if not isinstance(args, Mapping):
            raise InvalidValueError("arguments", f"must be a mapping, a str or None, not {type(arguments).__name__}")
        args = plain_json(args, "arguments")
    return {
        "call_id": call_id,
        "tool": tool_name,
        "arguments": args,
        "status": status,
        "result": plain_json(result, "result"),
        "error": None if error is None else plain_json(error, "error"),
        "started_at": started_at,
        "duration": None if duration is None else float(duration),
    }


# -- stored entries to snapshots -------------------------------------------------------------------


_PLAIN_MESSAGE = frozenset({"role", "content", "ts"})
_PLAIN_FIELDS = {"seq", "role", "content", "created_at"}
_NO_METADATA = FrozenMap()
_ROLES = frozenset(ROLES)


def message_from_entry(key: str, entry: LogEntry) -> Message:
    """Turn a history log entry into a :class:`Message`."""
    value = entry.value
    ts = value.get("ts")
    if (
        value.keys() <= _PLAIN_MESSAGE
        and type(value.get("content")) is str
        and value.get("role") in _ROLES
        and type(ts) is float
        and type(entry.seq) is int
    ):
        # A plain text message, the most common entry: nothing left for validation to check or convert. Every
        # field is given, so no default is resolved (the empty metadata is immutable, and shared).
        return Message.model_construct(
            _PLAIN_FIELDS,
            seq=entry.seq,
            role=value["role"],
            content=value["content"],
            created_at=_datetime(ts),
            name=None,
            tool_call_id=None,
            tool_calls=(),
            is_error=False,
            source=None,
            metadata=_NO_METADATA,
        )
    try:
        fields: dict[str, Any] = {}  # optional fields only when present, so the model's defaults apply
        for name in ("name", "tool_call_id"):
            if value.get(name) is not None:
                fields[name] = value[name]
        if value.get("metadata"):
            fields["metadata"] = value["metadata"]
        if value.get("tool_calls"):
            fields["tool_calls"] = tuple(ToolCall(**c) for c in value["tool_calls"])
        if value.get("is_error"):
            fields["is_error"] = True
        if value.get("source") is not None:
            fields["source"] = value["source"]
        return Message(
            seq=entry.seq,
            role=value["role"],
            content=value["content"],
            created_at=_datetime(value["ts"]),
            **fields,
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise SessionDecodeError(key, f"history entry {entry.seq} is not a message ({exc})") from exc


def invocation_from_entry(key: str, entry: LogEntry) -> ToolInvocation:
    """Turn a tool log entry into a :class:`ToolInvocation`."""
    value = entry.value
    try:
        return ToolInvocation(
            seq=entry.seq,
            call_id=value["call_id"],
            tool_name=value["tool"],
            arguments=value.get("arguments"),
            status=value["status"],
            result=value.get("result"),
            error=value.get("error"),
            started_at=_datetime(value["started_at"]),
            duration=value.get("duration"),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise SessionDecodeError(key, f"tool log entry {entry.seq} is not a tool invocation ({exc})") from exc


__all__ = [
    "RECORD_FORMAT",
    "SessionRecord",
    "invocation_from_entry",
    "message_entry",
    "message_from_entry",
    "metadata_dict",
    "plain_json",
    "tool_call_dict",
    "tool_entry",
]
