"""The web config on every request: rate limit, client names and basic auth before any route.

Every path is behind basic auth when users are configured, ``/healthz`` included (as in
exporter-toolkit); what a route checks itself (ingest's signature, the admin token) comes on top.
Before it, a request over ``rate_limit`` is refused (429; the probes, ``GET /healthz`` and
``/readyz``, are neither limited nor counted), then a client certificate without any
of ``client_allowed_sans`` (the toolkit refuses it in the handshake, which Python's ssl cannot),
then basic auth: 401 for a wrong password, 429 when its check would wait behind too many others.

Its headers go on every answer, never in place of one the answer sets itself (as in the toolkit,
which sets them before the handler runs): a page keeps its strict ``Content-Security-Policy``, the
configured one sent beside it (a browser enforces both), and its ``X-Frame-Options: DENY``, so
the file can add to a page's protection and never weaken it.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from bridge.headers import REALM
from bridge.routes import PROBES, error_response
from bridge.webconfig.basic_auth import Verdict
from bridge.webconfig.live import LiveWebConfig
from bridge.webconfig.tls import client_names

__all__ = ["install"]

# RFC 7617: the realm is required; the charset tells clients to send UTF-8.
_CHALLENGE: Final = f'Basic realm="{REALM}", charset="UTF-8"'


def _probe(request: web.Request) -> bool:
    return request.method in (hdrs.METH_GET, hdrs.METH_HEAD) and request.path in PROBES


def install(app: web.Application, live: LiveWebConfig) -> None:
    """Put ``live``'s checks in front of every route of ``app`` (before it starts)."""

    @web.middleware
    async def web_config(request: web.Request, handler: Handler) -> web.StreamResponse:
        live.refresh()
        # The toolkit's order: the rate limit before anything else. The probes are left out of it
        # (the toolkit serves none): a flood from anyone would otherwise fail the liveness probe
        # and have the bridge restarted.
        if live.limiter is not None and not _probe(request) and not live.limiter.allow():
            return error_response(429, "rate_limited", "over the web config's rate_limit")
        tls = live.config.tls
        if tls is not None and tls.client_allowed_sans:
            transport = request.transport
            peercert = transport.get_extra_info("peercert") if transport is not None else None
            if client_names(peercert).isdisjoint(tls.client_allowed_sans):
                return error_response(
                    403,
                    "forbidden",
                    "the client certificate holds none of the names in client_allowed_sans",
                )
        verdict = (
            await live.auth.check(request.headers.get("Authorization"), request.remote or "")
            if live.auth.enabled
            else Verdict.ACCEPTED
        )
        if verdict is Verdict.BUSY:
            # 429, not 401: the password may be right, and a client (Prometheus, the health
            # check) must not take it for wrong; it tries again at its next scrape or probe.
            answer = error_response(
                429,
                "password_checks_busy",
                "too many basic auth passwords are waiting to be checked; retry later",
            )
            answer.headers["Retry-After"] = "1"
            return answer
        if verdict is Verdict.REFUSED:
            answer = error_response(
                401, "unauthorized", "send the user and password of basic_auth_users (basic auth)"
            )
            answer.headers["WWW-Authenticate"] = _CHALLENGE
            return answer
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in live.headers:
            own = response.headers.getall(name, [])
            if not own:
                response.headers[name] = value
            elif name == hdrs.CONTENT_SECURITY_POLICY and value not in own:
                # A browser enforces every policy sent, so one more can only forbid more (CSP 3,
                # "The effect of multiple policies").
                response.headers.add(name, value)

    # First, so that no other middleware runs for a request that is refused.
    app.middlewares.insert(0, web_config)
    app.on_response_prepare.append(add_headers)
