"""Message ids: fresh, unguessable, 32 hex characters, made without the envelope's libraries.

The alert outbox names its deliveries and plans with them too, and ``outbox list`` opens it
without msgspec or pydantic (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import secrets

__all__ = ["new_message_id"]


def new_message_id() -> str:
    """A fresh, unguessable message id (32 hex characters)."""
    return secrets.token_hex(16)
