"""The bridge's exceptions, one tree.

    BridgeError
    ├── ConfigError          a setting is missing or wrong (exit status 2)
    ├── MessageError         a message cannot be built (a bad argument names its field)
    │   └── (also a ValueError, so callers of the integration API may catch either)
    └── TransportError       the bus transport failed (connection, protocol)

Inside the pipeline, outcomes are result values (``PublishResult``, ``Rejection``), not
exceptions; these are raised at the edges, to the code that called us.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BridgeError", "ConfigError", "MessageError", "TransportError"]


class BridgeError(Exception):
    """Base of every error the bridge raises."""


class ConfigError(BridgeError):
    """One or more settings are wrong; ``problems`` holds one line per setting, ``warnings``
    what would be warned of besides (about the same file, so that it is mended at once)."""

    def __init__(self, problems: Sequence[str], *, warnings: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(self.problems))


class MessageError(BridgeError, ValueError):
    """A message could not be built from the given arguments."""


class TransportError(BridgeError):
    """The bus transport could not carry a message."""
