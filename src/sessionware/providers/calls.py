"""The provider-neutral tool call every format reads into and writes from, and the JSON helpers it needs.

A :class:`ToolCall` is shared by both surfaces: assistant messages in an
agent's history carry them, and a toolbox executes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic_core import to_jsonable_python


def new_call_id() -> str:
    """A fresh call id, for calls that arrive without one."""
    return f"call_{uuid.uuid4().hex}"


def plain(value: Any) -> Any:
    """A deep copy of ``value`` with every mapping a dict and every list or tuple a list."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _mapping_fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (models dumped, any mapping a dict); raises if it cannot be."""
    return to_jsonable_python(value, fallback=_mapping_fallback)


def decode_object(text: str) -> dict[str, Any] | None:
    """``text`` decoded as a JSON object, or ``None`` when it is not valid JSON or not an object."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


class RawCall(NamedTuple):
    """The id, name and arguments of one call as read from provider data, not yet checked."""

    id: object
    name: object
    arguments: object


class ToolCall(BaseModel):
    """One request to run a tool: its id, the tool's name and the arguments.

    ``arguments`` is the arguments as a JSON object, or ``None`` when the model
    wrote text that is not one (invalid JSON, an array...). ``arguments_text``
    is that text, kept verbatim, when the model wrote its arguments as text
    (OpenAI chat and Responses); ``None`` when they came as an object
    (Anthropic, Gemini, Python dicts). Passing a string as ``arguments`` sets
    both: ``ToolCall(name="f", arguments='{"a": 1}')``.

    A toolbox runs :attr:`raw_arguments` through the tool's schema, so
    malformed text is reported as a validation error, never read as ``{}``.
    In an agent's history the arguments are always an object, and deeply
    frozen.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: Annotated[Mapping[str, Any] | None, PlainSerializer(plain)] = Field(default_factory=dict)
    arguments_text: str | None = None

    if TYPE_CHECKING:  # the constructor also takes the arguments as text, which the validator below splits

        def __init__(
            self,
            *,
            name: str,
            arguments: Mapping[str, Any] | str | None = ...,
            arguments_text: str | None = ...,
            id: str = ...,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _read_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        arguments, text = data.get("arguments"), data.get("arguments_text")
        if isinstance(arguments, str):
            if text is not None and text != arguments:
                raise ValueError("arguments is a string that differs from arguments_text")
            return {**data, "arguments": decode_object(arguments), "arguments_text": arguments}
        if isinstance(text, str) and "arguments" not in data:
            return {**data, "arguments": decode_object(text)}
        if arguments is None and text is None and "arguments" in data:
            return {**data, "arguments": {}}
        return data

    @property
    def raw_arguments(self) -> Mapping[str, Any] | str:
        """The arguments as the model sent them: the text if it wrote text, else the object."""
        if self.arguments_text is not None:
            return self.arguments_text
        return self.arguments if self.arguments is not None else {}

    def arguments_json(self) -> str:
        """The arguments as JSON text: the model's own text when there is one, else the object encoded."""
        if self.arguments_text is not None:
            return self.arguments_text
        return json.dumps(jsonable(self.arguments if self.arguments is not None else {}))


__all__ = ["RawCall", "ToolCall", "decode_object", "jsonable", "new_call_id", "plain"]
