"""The 0.1 import path of the PostgreSQL store; prefer ``sessionware.PostgresSessionStore``."""

from .sql.postgres import PostgresSessionStore

__all__ = ["PostgresSessionStore"]
