"""The bridge's own HTTP words (header names, realm, bodies), for the bridge and its clients.

Imports nothing, so that a client command naming one pays for no server library.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADMIN_TOKEN_HEADER", "HEALTHZ_BODY", "PLAIN_HTTP_REFUSAL", "REALM"]

# Where the admin token goes when Authorization is taken by basic auth (docs/security.md).
ADMIN_TOKEN_HEADER: Final = "X-ExESDB-Admin-Token"  # noqa: S105 (a header name)
# The realm of the bridge's challenges (basic auth, the admin token): the health check tells the
# bridge by it when it cannot verify the certificate.
REALM: Final = "exesdb-bridge"
# What GET /healthz answers while the process runs (docs/http-api.md).
HEALTHZ_BODY: Final = {"status": "ok"}
# The body of the 400 a plain HTTP request to the TLS port gets: Go's words, which curl users
# know; the client commands read it as "use https://".
PLAIN_HTTP_REFUSAL: Final = "Client sent an HTTP request to an HTTPS server."
