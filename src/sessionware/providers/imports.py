"""A model's response (or request messages) of any supported provider, as messages for the history.

:func:`messages_from_response` tells the provider from the value itself
(an SDK object's class, or a plain dict's shape) unless ``provider`` names
it, and returns mappings that ``SessionManager.add_messages`` takes; each
keeps the provider's item as its ``source``, so an export to the same
provider gives it back exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from .anthropic import messages_from_anthropic
from .common import JsonDict, as_data
from .errors import ProviderFormatError
from .gemini import messages_from_gemini
from .openai import messages_from_openai_chat, messages_from_openai_responses

Provider = Literal["openai.chat", "openai.responses", "anthropic", "gemini"]
"""The formats a response can be read from."""

READERS: dict[str, Callable[[object], list[JsonDict]]] = {
    "openai.chat": messages_from_openai_chat,
    "openai.responses": messages_from_openai_responses,
    "anthropic": messages_from_anthropic,
    "gemini": messages_from_gemini,
}

_SDK_MODULES = (
    ("openai.types.chat", "openai.chat"),
    ("openai.types.responses", "openai.responses"),
    ("anthropic.types", "anthropic"),
    ("google.genai.types", "gemini"),
)


def provider_of(value: object) -> Provider:
    """The format of ``value``: from an SDK object's module, else from a dict's keys."""
    module = type(value).__module__
    for prefix, provider in _SDK_MODULES:
        if module.startswith(prefix):
            return provider  # type: ignore[return-value]
    data = as_data(value)
    if isinstance(data, Mapping):
        if "choices" in data:
            return "openai.chat"
        if data.get("object") == "response" or ("output" in data and "status" in data):
            return "openai.responses"
        if "candidates" in data:
            return "gemini"
        if data.get("type") == "message" and data.get("role") == "assistant" and isinstance(data.get("content"), list):
            return "anthropic"
    raise ProviderFormatError(
        f"cannot tell which provider a {type(value).__name__} comes from; pass provider= one of {', '.join(READERS)}"
    )


def messages_from_response(value: object, provider: Provider | None = None) -> list[JsonDict]:
    """The messages of a response (or of request messages) of ``provider`` (by default: told from ``value``)."""
    name = provider_of(value) if provider is None else provider
    reader = READERS.get(name)
    if reader is None:
        raise ProviderFormatError(f"unknown provider {name!r}; expected one of {', '.join(READERS)}")
    return reader(value)


__all__ = ["READERS", "Provider", "messages_from_response", "provider_of"]
