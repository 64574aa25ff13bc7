"""The Redis backend (``pip install 'sessionware[redis]'``): records as strings, logs as lists, leases and
compare-and-set as Lua scripts loaded from ``scripts/``."""

from .store import RedisSessionStore

__all__ = ["RedisSessionStore"]
