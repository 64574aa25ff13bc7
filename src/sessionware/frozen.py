"""Deeply immutable JSON values for session snapshots, and the way back to plain dicts and lists."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import GenericAlias
from typing import Annotated, Any, NoReturn, TypeVar, get_args

from pydantic import AfterValidator, GetCoreSchemaHandler, PlainSerializer
from pydantic_core import CoreSchema, core_schema

T = TypeVar("T")

READ_ONLY = (
    "session snapshots are read-only; change a session through SessionManager "
    "(update_session, edit_metadata, add_message, track_tool_invocation)"
)


class FrozenList(tuple[T, ...]):
    """A tuple standing in for a list in a snapshot: equal to a list with the same items.

    List methods (``append``, ``extend``, ...) and item assignment raise
    :class:`TypeError` at once. As a pydantic field, ``FrozenList[Item]``
    validates a sequence of ``Item``.
    """

    __slots__ = ()

    def __new__(cls, items: Iterable[T] = ()) -> FrozenList[T]:
        return super().__new__(cls, (freeze(v) for v in items))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        item = (get_args(source) or (Any,))[0]
        return core_schema.no_info_after_validator_function(
            cls, handler.generate_schema(GenericAlias(tuple, (item, ...)))
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        raise TypeError(READ_ONLY)

    def __delitem__(self, index: Any) -> NoReturn:
        raise TypeError(READ_ONLY)

    def append(self, value: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def extend(self, values: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def insert(self, index: Any, value: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def remove(self, value: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def pop(self, *args: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def clear(self) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def reverse(self) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping whose nested values are frozen too (dicts to FrozenMap, lists to FrozenList).

    Any attempt to change it raises :class:`TypeError` at once; ``to_dict()``
    returns a deep, mutable copy. Compares equal to a dict with the same items.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        frozen: dict[str, Any] = {}
        if data is not None:
            for key, value in data.items():
                frozen[key] = freeze(value)
        self._data = frozen

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def to_dict(self) -> dict[str, Any]:
        """A deep, mutable copy (nested FrozenMaps become dicts, tuples become lists)."""
        return {key: thaw(value) for key, value in self._data.items()}

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        raise TypeError(READ_ONLY)

    def __delitem__(self, key: str) -> NoReturn:
        raise TypeError(READ_ONLY)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_data" and not hasattr(self, "_data"):
            object.__setattr__(self, name, value)
            return
        raise TypeError(READ_ONLY)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def pop(self, *args: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def popitem(self) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def setdefault(self, *args: Any) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)

    def clear(self) -> NoReturn:
        """Refused: snapshots are read-only."""
        raise TypeError(READ_ONLY)


def freeze(value: Any) -> Any:
    """Deeply freeze a JSON value: mappings become :class:`FrozenMap`, lists and tuples :class:`FrozenList`."""
    if isinstance(value, FrozenMap | FrozenList):
        return value
    if isinstance(value, Mapping):
        return FrozenMap(value)
    if isinstance(value, list | tuple):
        return FrozenList(value)
    return value


def thaw(value: Any) -> Any:
    """Deeply copy a (possibly frozen) JSON value into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


FrozenJson = Annotated[Any, AfterValidator(freeze), PlainSerializer(thaw, when_used="always")]
"""Any JSON value, deeply frozen in the model and dumped as plain dicts and lists."""

FrozenObject = Annotated[Mapping[str, Any], AfterValidator(FrozenMap), PlainSerializer(thaw, when_used="always")]
"""A JSON object, held as a :class:`FrozenMap` in the model and dumped as a plain dict."""

__all__ = ["READ_ONLY", "FrozenJson", "FrozenList", "FrozenMap", "FrozenObject", "freeze", "thaw"]
