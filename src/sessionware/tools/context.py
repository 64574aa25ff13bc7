"""The values a call runs with: :class:`ToolContext`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from .errors import ToolDefinitionError


class ToolContext(Mapping[str, Any]):
    """Read-only values a call runs with, readable as ``context["key"]`` or ``context.key``.

    A call's context is the toolbox context, overlaid by the tool's own bound
    values (:func:`~sessionware.tools.with_context`), overlaid by the per-call
    context given to ``toolbox.execute``; middleware may add more (the session
    middleware adds ``session``). Plain containers in it are made read-only all
    the way down (dicts as read-only mappings, lists as tuples, sets as
    frozensets), so no call can change what the next call sees.
    """

    __slots__ = ("_values",)

    def __init__(self, *layers: Mapping[str, Any] | None, **values: Any) -> None:
        merged: dict[str, Any] = {}
        for layer in (*layers, values):
            if not layer:
                continue
            if not isinstance(layer, Mapping):
                raise ToolDefinitionError(f"a tool context must be a mapping, not {type(layer).__name__}")
            for key, value in layer.items():
                if not isinstance(key, str):
                    raise ToolDefinitionError(f"tool context keys must be str, not {type(key).__name__}")
                merged[key] = read_only(value)
        self._values = merged

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the tool context has no value {name!r}") from None

    def __repr__(self) -> str:
        return f"ToolContext({', '.join(sorted(self._values))})"

    def with_values(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> ToolContext:
        """A new context with ``values`` and ``more`` laid over this one."""
        return ToolContext(self._values, values, **more)


def read_only(value: Any) -> Any:
    """``value`` with its plain dicts, lists and sets (nested ones too) replaced by read-only equivalents."""
    kind = type(value)
    if kind is dict:
        return MappingProxyType({k: read_only(v) for k, v in value.items()})
    if kind is list or kind is tuple:
        return tuple(read_only(v) for v in value)
    if kind is set:
        return frozenset(value)
    return value


__all__ = ["ToolContext", "read_only"]
