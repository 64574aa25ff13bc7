"""The shipped contract suite, run over every backend against the real servers."""

from __future__ import annotations

import pytest

from sessionware import InMemorySessionStore
from sessionware.testing import Advance, FakeClock, StoreContract


class TestEveryBackend(StoreContract):
    """``store`` comes from conftest, parametrized over memory, SQLite, Redis and PostgreSQL.

    Time passes through conftest's ``advance``: the memory store's fake clock
    is stepped, the servers are waited for (three TTLs before an expiry is asserted).
    """

    @pytest.fixture
    def advance(self, advance: Advance) -> Advance:
        return advance


class TestMemoryOnAFakeClock(StoreContract):
    """The recipe of the ``sessionware.testing`` docstring: every test, not only the timed ones, on a fake clock."""

    @pytest.fixture
    def store(self, clock: FakeClock) -> InMemorySessionStore:
        return InMemorySessionStore(clock=clock)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        return clock.sleep
