"""Encoding session values to bytes and back, refusing anything that would not round-trip."""

from __future__ import annotations

import json
import math
from typing import Any, Protocol, runtime_checkable

from pydantic_core import PydanticSerializationError, from_json, to_json

from .errors import InvalidValueError, SessionDecodeError

JsonDict = dict[str, Any]

_SCALARS = (str, int, float, bool, type(None))


@runtime_checkable
class Codec(Protocol):
    """Turns a session dict into bytes and back."""

    def encode(self, value: JsonDict) -> bytes:
        """Encode ``value``; raise :class:`InvalidValueError` if it would not round-trip."""
        ...

    def decode(self, key: str, data: bytes) -> JsonDict:
        """Decode stored ``data``; raise :class:`SessionDecodeError` naming ``key``."""
        ...


class JsonCodec:
    """Compact UTF-8 JSON, exact round trips or an error.

    Encoding and decoding run in pydantic-core's Rust JSON (already a
    dependency through pydantic), with the standard library as the fallback
    for what it refuses (lone surrogates, very deep nesting). Every encoding
    is decoded again and compared with the value, so non-finite floats,
    tuples, sets, bytes, non-string keys and any other non-JSON type are
    refused with the path of the offending part instead of changing silently.
    """

    __slots__ = ("_verify",)

    def __init__(self, *, verify: bool = True) -> None:
        self._verify = verify

    @property
    def verify(self) -> bool:
        """Whether every encoding is decoded again and compared with the value."""
        return self._verify

    def encode(self, value: JsonDict) -> bytes:
        """Encode a session dict to bytes."""
        data = self.dump(value)
        if self._verify:
            self.check(value, data)
        return data

    def dump(self, value: JsonDict) -> bytes:
        """Encode without checking the round trip: for comparing with stored bytes before deciding to write."""
        if type(value) is not dict:
            raise InvalidValueError("$", f"must be a dict, not {type(value).__name__}")
        try:
            return to_json(value)
        except (PydanticSerializationError, ValueError, RecursionError):
            return _stdlib_encode(value)

    def check(self, value: JsonDict, data: bytes) -> None:
        """Raise :class:`InvalidValueError` naming the offending part if ``data`` does not decode to ``value``."""
        try:
            same = _loads(data) == value
        except (ValueError, RecursionError):
            same = False
        if not same:
            _explain(value, "$", 0)
            raise InvalidValueError("$", "does not survive a JSON round trip")

    def decode(self, key: str, data: bytes) -> JsonDict:
        """Decode stored bytes to a session dict."""
        try:
            value = _loads(data)
        except (ValueError, RecursionError) as exc:
            raise SessionDecodeError(key, f"invalid JSON ({exc})") from exc
        if type(value) is not dict:
            raise SessionDecodeError(key, f"stored JSON is a {type(value).__name__}, not an object")
        return value


_stdlib_dumps = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=lambda o: _refuse(o)
)
_stdlib_loads = json.JSONDecoder(parse_constant=lambda name: _no_constant(name)).decode


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _stdlib_encode(value: JsonDict) -> bytes:
    try:
        return _stdlib_dumps.encode(value).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        _explain(value, "$", 0)
        raise InvalidValueError("$", f"cannot be encoded as JSON: {exc}") from exc


def _loads(data: bytes) -> Any:
    try:
        return from_json(data, allow_inf_nan=False)
    except ValueError:
        # Lone surrogates (escaped by the stdlib encoder) and very deep nesting; a real error raises again here.
        return _stdlib_loads(data.decode("utf-8"))


MAX_DEPTH = 256


def _refuse(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON-compatible")


def _explain(value: object, path: str, depth: int) -> None:
    """Raise :class:`InvalidValueError` naming the first part of ``value`` that cannot round-trip."""
    if depth > MAX_DEPTH:
        raise InvalidValueError(path, f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidValueError(path, f"has a {type(k).__name__} key {k!r}; keys must be str")
            _explain(v, f"{path}[{k!r}]", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _explain(v, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(path, f"is {value!r}; JSON has no non-finite floats")
    elif isinstance(value, tuple):
        raise InvalidValueError(path, "is a tuple; use a list so it reads back the same")
    elif not isinstance(value, _SCALARS):
        raise InvalidValueError(
            path, f"is a {type(value).__name__}; only dict, list, str, int, float, bool and None are stored"
        )


DEFAULT_CODEC = JsonCodec()
