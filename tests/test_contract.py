"""The shipped contract suite, run over every backend against the real servers."""

from sessionware.testing import StoreContract


class TestEveryBackend(StoreContract):
    """``store`` comes from conftest, parametrized over memory, SQLite, Redis and PostgreSQL."""
