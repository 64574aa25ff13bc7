"""The Redis backend (``pip install 'sessionware[redis]'``): records as strings, logs as lists, leases and
compare-and-set as Lua scripts loaded from ``scripts/``.

The store talks through a driver (:mod:`.drivers`): sessionware's own pipelined
connection for one server (``RedisSessionStore.from_url("redis://…")``), or any
redis-py client passed in: ``redis.asyncio.Redis`` (Sentinel's ``master_for``
too) or ``redis.asyncio.RedisCluster`` (also ``from_url("redis://…?cluster=true")``).
"""

from .store import RedisSessionStore

__all__ = ["RedisSessionStore"]
