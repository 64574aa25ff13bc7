"""Session store backends. Each persistent backend lives in its own module with its own extra."""

from .memory import InMemorySessionStore

__all__ = ["InMemorySessionStore"]
