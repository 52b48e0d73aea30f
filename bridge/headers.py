"""The bridge's own HTTP words (header names, realm, /healthz body), for the bridge and its clients.

Imports nothing, so that a client command naming one pays for no server library.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADMIN_TOKEN_HEADER", "HEALTHZ_BODY", "REALM"]

# Where the admin token goes when Authorization is taken by basic auth (docs/security.md).
ADMIN_TOKEN_HEADER: Final = "X-ExESDB-Admin-Token"  # noqa: S105 (a header name)
# The realm of the bridge's challenges (basic auth, the admin token): the health check tells the
# bridge by it when it cannot verify the certificate.
REALM: Final = "exesdb-bridge"
# What GET /healthz answers while the process runs (docs/http-api.md).
HEALTHZ_BODY: Final = {"status": "ok"}
