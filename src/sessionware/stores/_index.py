"""Argument checks of :class:`~sessionware.store.IndexStore`, shared by every backend."""

from __future__ import annotations

import math

from ..errors import InvalidValueError
from ..keys import TTL, check_key
from ._common import store_ttl

MAX_MEMBER_LENGTH = 256
"""Characters in an index member, at most."""

MAX_MEMBER_BYTES = 512
"""UTF-8 bytes in an index member, at most: a longest key and member still fit one PostgreSQL btree row."""

MAX_PAGE = 2**31 - 1
"""A larger ``limit`` reads as this many (no index holds more in one page)."""


def check_member(member: object, name: str = "member") -> str:
    """Return ``member`` if every backend can store and order it, else raise :class:`InvalidValueError`."""
    if type(member) is not str:
        raise InvalidValueError(name, f"must be a str, not {type(member).__name__}")
    if not member:
        raise InvalidValueError(name, "must not be empty")
    if len(member) > MAX_MEMBER_LENGTH:
        raise InvalidValueError(name, f"is {len(member)} characters, over the limit of {MAX_MEMBER_LENGTH}")
    if "\x00" in member:
        raise InvalidValueError(name, f"{member[:40]!r} contains a NUL character")
    if not member.isascii():
        try:
            size = len(member.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidValueError(name, f"{member[:40]!r} is not valid unicode: {exc.reason}") from exc
        if size > MAX_MEMBER_BYTES:
            raise InvalidValueError(name, f"is {size} bytes in UTF-8, over the limit of {MAX_MEMBER_BYTES}")
    return member


def check_score(score: object, name: str = "score") -> float:
    """A finite int or float as a float (``-0.0`` as ``0.0``), else :class:`InvalidValueError`."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise InvalidValueError(name, f"must be a finite number, not {type(score).__name__}")
    try:
        value = float(score)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise InvalidValueError(name, f"must be a finite number, not {score!r}")
    return value + 0.0


def check_put(key: object, member: object, score: object, ttl: TTL) -> tuple[str, str, float, float | None]:
    """The checked arguments of ``index_put``: key, member, score and the TTL in seconds (``None``: forever)."""
    return check_key(key), check_member(member), check_score(score), store_ttl(ttl)


def check_page(key: object, limit: object, before: object) -> tuple[str, int, tuple[float, str] | None]:
    """The checked arguments of ``index_page``: key, limit (at most :data:`MAX_PAGE`) and the cursor."""
    checked = check_key(key)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidValueError("limit", f"must be an int of at least 1, not {limit!r}")
    cursor: tuple[float, str] | None = None
    if before is not None:
        if not isinstance(before, tuple | list) or len(before) != 2:
            raise InvalidValueError("before", f"must be a (score, member) pair or None, not {before!r}")
        cursor = (check_score(before[0], "before"), check_member(before[1], "before"))
    return checked, min(limit, MAX_PAGE), cursor
