"""Validation of session keys and time-to-live values, shared by every backend."""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from .errors import InvalidKeyError, InvalidValueError

MAX_KEY_LENGTH = 1024
"""Characters in a key, at most."""

MAX_KEY_BYTES = 2048
"""UTF-8 bytes in a key, at most: what every backend indexes (PostgreSQL's btree rows stop near 2,700)."""

TTL = float | int | timedelta | None


def check_key(key: object) -> str:
    """Return ``key`` if every backend can store it, else raise :class:`InvalidKeyError`."""
    if type(key) is not str:
        raise InvalidKeyError(f"session key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("session key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"session key is {len(key)} characters, over the limit of {MAX_KEY_LENGTH}")
    if "\x00" in key:
        raise InvalidKeyError(f"session key {key[:40]!r} contains a NUL character")
    if not key.isascii():
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidKeyError(f"session key {key[:40]!r} is not valid unicode: {exc.reason}") from exc
        if size > MAX_KEY_BYTES:
            raise InvalidKeyError(
                f"session key {key[:20]!r}... is {size} bytes in UTF-8, over the limit of {MAX_KEY_BYTES}"
            )
    return key


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes of ``key``: the text between its first ``{`` and the next ``}`` when that is
    not empty, else the whole key. Keys with one hash tag belong together (one slot, one eviction unit)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def derived_key(key: str, suffix: str) -> str:
    """``key + suffix``, with the end of ``key`` replaced by a digest of it when the whole would be too long.

    Two different keys never share a derived key (the digest covers the whole key), and the result is
    always a valid key when ``key`` is.
    """
    whole = key + suffix
    if len(whole) <= MAX_KEY_LENGTH and (whole.isascii() or len(whole.encode("utf-8")) <= MAX_KEY_BYTES):
        return whole
    digest = "~" + hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    head = key[: MAX_KEY_LENGTH - len(suffix) - len(digest)]
    room = MAX_KEY_BYTES - len((digest + suffix).encode("utf-8"))
    head = head.encode("utf-8")[:room].decode("utf-8", "ignore")
    return head + digest + suffix


def ttl_seconds(ttl: TTL) -> float | None:
    """Normalise a TTL to positive seconds, or ``None`` for no expiry."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidValueError("ttl", f"must be seconds or a timedelta, not {type(ttl).__name__}")
    if not seconds > 0 or seconds == float("inf"):
        raise InvalidValueError("ttl", f"must be a positive, finite duration, not {ttl!r}")
    return float(seconds)


MAX_SECONDS = 1e10
"""About 317 years: the longest duration any option takes (every engine can store it as a timestamp)."""


def check_seconds(name: str, value: object, *, zero: bool = False) -> float:
    """A finite, positive (``zero``: non-negative) number of seconds up to :data:`MAX_SECONDS`, else
    :class:`InvalidValueError` naming the option."""
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        seconds = float(value)
        if math.isfinite(seconds) and (seconds > 0 or (zero and seconds == 0)) and seconds <= MAX_SECONDS:
            return seconds
    kind = "non-negative" if zero else "positive"
    raise InvalidValueError(name, f"must be a {kind} number of seconds up to {MAX_SECONDS:g}, not {value!r}")
