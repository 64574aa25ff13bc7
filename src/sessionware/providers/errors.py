"""Errors of the provider formats, and of the tool definitions the formats check.

Both classes are re-exported by :mod:`sessionware.tools` (their public home);
they are defined here because the formats raise them and this package imports
neither the tools nor the agents surface.
"""

from __future__ import annotations

from ..errors import SessionwareError


class ToolDefinitionError(SessionwareError, ValueError):
    """A tool, toolbox, policy or middleware was defined or registered the wrong way.

    Also raised when a tool cannot be described in the format asked for (a
    schema that does not qualify for ``strict=True``).
    """


class ProviderFormatError(SessionwareError, ValueError):
    """Provider data could not be read as tool calls, or a result cannot be written in a provider's format."""


__all__ = ["ProviderFormatError", "ToolDefinitionError"]
