"""Encoding session values to bytes and back, refusing anything that would not round-trip."""

from __future__ import annotations

import enum
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
    for what it refuses (lone surrogates). Every encoding is checked: only
    plain ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and
    ``None`` (exactly those types, so an ``IntEnum`` or a ``str`` subclass is
    refused rather than read back as a plain int or str), nested at most
    :data:`MAX_DEPTH` levels (which the decoder always reads, without Python
    recursion), and decoded again and compared with the value. Non-finite
    floats, tuples, sets, bytes, non-string keys and any other type are
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
            same = _plain(value) and _loads(data) == value
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


MAX_DEPTH = 200
"""How deeply containers may nest in a stored value (the top-level dict is level 1); pydantic-core's decoder
reads every such value without recursing in Python."""

_EXACT = frozenset({str, int, float, bool, type(None)})


def _plain(value: object) -> bool:
    """Whether ``value`` holds only the exact JSON types, nested at most :data:`MAX_DEPTH` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    pop, push, exact = stack.pop, stack.append, _EXACT
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            return False
        if type(node) is dict:
            for k, v in node.items():
                if type(k) is not str:
                    return False
                t = type(v)
                if t is dict or t is list:
                    push((v, depth + 1))
                elif t not in exact:
                    return False
        else:
            for v in node:  # type: ignore[attr-defined]
                t = type(v)
                if t is dict or t is list:
                    push((v, depth + 1))
                elif t not in exact:
                    return False
    return True


def _refuse(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON-compatible")


def _explain(value: object, path: str, depth: int) -> None:
    """Raise :class:`InvalidValueError` naming the first part of ``value`` that cannot round-trip."""
    if depth >= MAX_DEPTH and type(value) in (dict, list):
        raise InvalidValueError(path, f"is nested deeper than {MAX_DEPTH} levels, the limit")
    if isinstance(value, enum.Enum):
        raise InvalidValueError(
            path,
            f"is the enum member {type(value).__name__}.{value.name}, which would read back as a plain "
            f"{type(value.value).__name__}; store its .value",
        )
    if (
        type(value) not in _EXACT
        and type(value) not in (dict, list, tuple)
        and isinstance(value, (*_SCALARS, dict, list))
    ):
        raise InvalidValueError(
            path,
            f"is a {type(value).__name__}, a subclass that would read back as a plain "
            f"{type(value).__mro__[1].__name__}",
        )
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
