"""The bridge's own HTTP header names, shared by the bridge that reads them and its clients.

Imports nothing, so that a client command naming a header pays for no server library.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADMIN_TOKEN_HEADER"]

# Where the admin token goes when Authorization is taken by basic auth (docs/security.md).
ADMIN_TOKEN_HEADER: Final = "X-ExESDB-Admin-Token"  # noqa: S105 (a header name)
