"""The web config on every request: basic auth before any route, its headers on every answer.

Every path is behind basic auth when users are configured, ``/healthz`` included (as in
exporter-toolkit); what a route checks itself (ingest's signature, the admin token) comes on top.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.routes import error_response
from bridge.webconfig.live import LiveWebConfig

__all__ = ["install"]

# RFC 7617: the realm is required; the charset tells clients to send UTF-8.
_CHALLENGE: Final = 'Basic realm="exesdb-bridge", charset="UTF-8"'


def install(app: web.Application, live: LiveWebConfig) -> None:
    """Put ``live``'s checks in front of every route of ``app`` (before it starts)."""

    @web.middleware
    async def web_config(request: web.Request, handler: Handler) -> web.StreamResponse:
        live.refresh()
        if live.auth.enabled and not await live.auth.check(request.headers.get("Authorization")):
            answer = error_response(
                401, "unauthorized", "send the user and password of basic_auth_users (basic auth)"
            )
            answer.headers["WWW-Authenticate"] = _CHALLENGE
            return answer
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in live.headers:
            response.headers[name] = value

    # First, so that no other middleware runs for a request that is refused.
    app.middlewares.insert(0, web_config)
    app.on_response_prepare.append(add_headers)
