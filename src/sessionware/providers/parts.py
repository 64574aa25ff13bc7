"""Content parts: what a message holds besides plain text, in one shape for every provider.

A message's ``content`` is a string or a sequence of parts. Each part is a
frozen model with a ``type``:

- :class:`TextPart` (``text``)
- :class:`ImagePart` (``image``): by ``url``, or inline ``data`` (base64) with its ``media_type``
- :class:`FilePart` (``file``): a document by ``url``, inline ``data`` or a provider's ``file_id``
- :class:`AudioPart` (``audio``): inline ``data`` with its ``media_type``, and a ``transcript`` if known
- :class:`RefusalPart` (``refusal``): a model's refusal, kept apart from its text
- :class:`ReasoningPart` (``reasoning``): thinking text or its summary, with the ``signature`` or
  ``encrypted`` content a provider wants back unchanged
- :class:`ProviderPart` (``provider``): anything else a provider sent, kept as it came

Raw bytes given as ``data`` are stored base64 (their media type is
required); no value is turned into a string silently. :func:`part` reads a
part from a model or a mapping of this shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ..frozen import FrozenJson
from .errors import ProviderFormatError


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _base64(value: object) -> object:
    """Raw bytes become base64 text; text must already be valid base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"is not base64 ({exc}); pass bytes to have them encoded") from exc
    return value


class _Inline(_Part):
    """A part that may carry its bytes inline: ``data`` (base64) with its ``media_type``."""

    data: str | None = None
    media_type: str | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _encode(cls, value: object) -> object:
        return _base64(value)

    def decoded(self) -> bytes | None:
        """The inline data decoded, or ``None`` if the part refers to its content elsewhere."""
        return None if self.data is None else base64.b64decode(self.data)


class TextPart(_Part):
    """Text."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(_Inline):
    """An image, by ``url`` or inline ``data``; ``detail`` is OpenAI's resolution hint."""

    type: Literal["image"] = "image"
    url: str | None = None
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image needs exactly one of url or data")
        if self.data is not None and not self.media_type:
            raise ValueError("inline image data needs its media_type (e.g. image/png)")
        return self


class FilePart(_Inline):
    """A document (a PDF, say), by ``url``, inline ``data`` or a provider's ``file_id``."""

    type: Literal["file"] = "file"
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FilePart:
        if sum(v is not None for v in (self.url, self.data, self.file_id)) != 1:
            raise ValueError("a file needs exactly one of url, data or file_id")
        if self.data is not None and not self.media_type:
            raise ValueError("inline file data needs its media_type (e.g. application/pdf)")
        return self


class AudioPart(_Inline):
    """Audio, inline, with its ``media_type`` (``audio/wav``, ``audio/mpeg``) and a ``transcript`` if known."""

    type: Literal["audio"] = "audio"
    transcript: str | None = None
    id: str | None = None
    """A provider's id for audio it produced (OpenAI's ``audio.id``), to refer back to it."""

    @model_validator(mode="after")
    def _source(self) -> AudioPart:
        if self.data is None and self.id is None:
            raise ValueError("audio needs inline data or a provider's id")
        if self.data is not None and not self.media_type:
            raise ValueError("inline audio data needs its media_type (e.g. audio/wav)")
        return self


class RefusalPart(_Part):
    """A model's refusal to answer."""

    type: Literal["refusal"] = "refusal"
    refusal: str


class ReasoningPart(_Part):
    """A model's reasoning: its text or a summary of it, and what the provider wants sent back unchanged.

    ``signature`` (Anthropic's thinking signature, Gemini's thought signature)
    and ``encrypted`` (OpenAI's ``encrypted_content``, Anthropic's redacted
    thinking ``data``) are opaque and kept byte for byte; ``redacted`` marks
    reasoning whose text the provider withheld.
    """

    type: Literal["reasoning"] = "reasoning"
    text: str | None = None
    summary: tuple[str, ...] = ()
    signature: str | None = None
    encrypted: str | None = None
    redacted: bool = False
    id: str | None = None


class ProviderPart(_Part):
    """A part only one provider understands, kept exactly as it came (``data`` is its JSON)."""

    type: Literal["provider"] = "provider"
    provider: str = Field(min_length=1)
    data: FrozenJson


Part = Annotated[
    TextPart | ImagePart | FilePart | AudioPart | RefusalPart | ReasoningPart | ProviderPart,
    Field(discriminator="type"),
]
"""Any content part."""

PART_TYPES = ("text", "image", "file", "audio", "refusal", "reasoning", "provider")

_PART = TypeAdapter[Any](Part)


def part(value: object, path: str = "part") -> Any:
    """A content part from a part model or a mapping of its shape; :class:`ProviderFormatError` naming
    ``path`` when it is neither."""
    if isinstance(value, _Part):
        return value
    if not isinstance(value, Mapping):
        raise ProviderFormatError(f"{path} must be a content part or a mapping, not {type(value).__name__}")
    kind = value.get("type")
    if kind not in PART_TYPES:
        raise ProviderFormatError(f"{path} has type {kind!r}; a part is one of {', '.join(PART_TYPES)}")
    try:
        return _PART.validate_python(dict(value))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors())
        raise ProviderFormatError(f"{path} is not a valid {kind} part: {problems}") from None


def text_of(content: object) -> str:
    """The plain text of a message's content: the string itself, or its text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))  # type: ignore[attr-defined]


__all__ = [
    "PART_TYPES",
    "AudioPart",
    "FilePart",
    "ImagePart",
    "Part",
    "ProviderPart",
    "ReasoningPart",
    "RefusalPart",
    "TextPart",
    "part",
    "text_of",
]
