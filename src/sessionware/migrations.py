"""Changing the shape of stored sessions between releases of an application: numbered migrations.

``Migrations({1: add_cart, 3: rename_lang})`` runs, on a value stored at
version ``v``, every migration numbered above ``v`` in order; a value stored
before migrations existed is version 0. A migration takes the value (a dict)
and returns the new one, or changes it in place and returns ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidValueError, SessionwareError

Migration = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class MigrationError(SessionwareError):
    """A migration failed or returned something that is not a session; nothing was written."""


class Migrations:
    """Numbered migrations, validated once: positive int versions, callables, at least one."""

    __slots__ = ("newest", "steps")

    def __init__(self, migrations: Mapping[int, Migration], *, name: str = "migrations") -> None:
        if not isinstance(migrations, Mapping) or not migrations:
            raise InvalidValueError(name, "must be a non-empty mapping of version numbers to functions")
        for version, step in migrations.items():
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise InvalidValueError(name, f"has version {version!r}; versions are ints from 1")
            if not callable(step):
                raise InvalidValueError(name, f"has {type(step).__name__} for version {version}; expected a function")
        self.steps = sorted(migrations.items())
        self.newest = self.steps[-1][0]

    def apply(self, value: dict[str, Any], version: int, *, key: str) -> dict[str, Any]:
        """``value`` (stored at ``version``) brought to :attr:`newest`; the error names ``key`` and the step."""
        for number, step in self.steps:
            if number <= version:
                continue
            try:
                result = step(value)
            except Exception as exc:
                raise MigrationError(
                    f"migration {number} of session {key!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if result is not None:
                value = result
            if not isinstance(value, dict):
                raise MigrationError(
                    f"migration {number} of session {key!r} returned a {type(value).__name__}, not a dict"
                )
        return value


def stored_version(value: object, *, key: str) -> int:
    """The version a stored value records (0: written before it had migrations)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if value is None:
        return 0
    raise MigrationError(f"session {key!r} records version {value!r}; expected a non-negative int")


__all__ = ["Migration", "MigrationError", "Migrations", "stored_version"]
