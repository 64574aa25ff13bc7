"""Holding one conversation for a whole agent turn (load, model calls, append), shared by the framework adapters.

A turn hold is the update unit of an extra key beside the session's record
(``<record key>:<tag>``), opened without loading it: in this process by the
store's FIFO lock, and with ``isolation="distributed"`` across processes by a
store lease renewed while the turn runs. Nothing is written under the key;
the hold only keeps the turns of one conversation one after another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from ..agents.manager import SessionManager
from ..errors import InvalidValueError
from ..isolation import Isolation, make_isolation


def checked_manager(manager: object) -> SessionManager:
    """``manager`` if it is a :class:`SessionManager` (what every adapter stores its conversations in)."""
    if not isinstance(manager, SessionManager):
        raise InvalidValueError("manager", f"must be a SessionManager, not {type(manager).__name__}")
    return manager


def turn_isolation(
    manager: SessionManager, isolation: Literal["local", "distributed"] | Isolation, *, lease: float, lock_wait: float
) -> Isolation:
    """The strategy an adapter holds its turns with (``"local"`` or ``"distributed"``), on the manager's store."""
    return make_isolation(manager.store, isolation, lease=lease, lock_wait=lock_wait, allowed=("local", "distributed"))


@asynccontextmanager
async def hold_turn(holds: Isolation, manager: SessionManager, session_id: str, tag: str) -> AsyncIterator[None]:
    """Hold session ``session_id`` for one turn; another holder of the same ``tag`` and session waits."""
    async with holds.open(f"{manager.keys.record(session_id)}:{tag}", load=False):
        yield


__all__ = ["checked_manager", "hold_turn", "turn_isolation"]
