"""What every HTTP route shares, at the edge or in a component: one error shape, one admin guard.

Error answers are JSON objects with ``error`` (a stable code), ``detail`` and, where one is at
fault, ``field``. Admin routes need ``Authorization: Bearer $EXESDB_ADMIN_TOKEN`` (or, when
``Authorization`` carries the web config's basic auth, ``X-ExESDB-Admin-Token``); with no token
configured they answer 403 and say how to enable them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from bridge.headers import ADMIN_TOKEN_HEADER, REALM

__all__ = ["AdminGuard", "Route", "error_response", "unknown_parameter"]

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, detail: str, field: str | None = None) -> web.Response:
    """A JSON error answer."""
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def unknown_parameter(request: web.Request, allowed: Iterable[str]) -> web.Response | None:
    """400 ``invalid`` naming a query parameter not in ``allowed``, or one given twice, or None:
    a misspelt filter (``?alertid=``) would otherwise answer as if no filter had been given, and
    of one given twice (``?state=firing&state=resolved``) only the first would count."""
    names = sorted(allowed)
    unknown = sorted(request.query.keys() - set(names))
    if unknown:
        detail = f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(names)}"
        return error_response(400, "invalid", detail, unknown[0])
    if len(request.query) > len(set(request.query)):
        twice = next(name for name in names if len(request.query.getall(name, ())) > 1)
        return error_response(400, "invalid", f"query parameter {twice!r} given twice", twice)
    return None


class AdminGuard:
    """Lets through only requests that carry the admin token (compared in constant time)."""

    __slots__ = ("_token",)

    def __init__(self, token: SecretStr | None) -> None:
        # Settings trim it (a token read from a file keeps its line break).
        value = token.get_secret_value() if token is not None else ""
        self._token = value.encode() if value else None

    @property
    def enabled(self) -> bool:
        """True when an admin token is configured."""
        return self._token is not None

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` carries the admin token, else the answer to send instead."""
        if self._token is None:
            return error_response(
                403,
                "admin_disabled",
                "admin endpoints are off: set EXESDB_ADMIN_TOKEN to enable them",
            )
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            credential = request.headers.get(ADMIN_TOKEN_HEADER, "")
        credential = credential.strip()
        if not credential or not hmac.compare_digest(
            # surrogateescape: header bytes that are not UTF-8 compare as what they are.
            credential.encode("utf-8", "surrogateescape"),
            self._token,
        ):
            # Which of the two, so that a client sending a stale token is not told to send one.
            detail = (
                "the admin token sent is not the bridge's EXESDB_ADMIN_TOKEN"
                if credential
                else f"send Authorization: Bearer <EXESDB_ADMIN_TOKEN> (or {ADMIN_TOKEN_HEADER}: "
                "<EXESDB_ADMIN_TOKEN> when Authorization carries basic auth)"
            )
            answer = error_response(401, "unauthorized", detail)
            answer.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
            return answer
        return None

    def __call__(self, handler: Route) -> Route:
        """``handler``, run only for requests with the admin token."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            refused = self.refusal(request)
            return refused if refused is not None else await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded
