"""What every HTTP route shares, at the edge or in a component: one error shape, one admin guard.

Error answers are JSON objects with ``error`` (a stable code), ``detail`` and, where one is at
fault, ``field``; a JSON body the bridge would not read as sent is refused with 415
(``unsupported_json``), a body field or query parameter a route does not take with 400,
named (``unknown_field``, ``unknown_parameter``) and cut short (``MAX_NAME_SHOWN``), and a body
lacking a field its route requires with 400 naming it as missing (``missing_field``). Admin
routes need ``Authorization: Bearer $EXESDB_ADMIN_TOKEN`` (or, when ``Authorization`` carries
the web config's basic auth, ``X-ExESDB-Admin-Token``); with no token configured they answer
403 and say how to enable them.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from email.message import Message
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr, ValidationError

from bridge.bodies import EXPANDED_CODINGS, JSON_CHARSETS, content_coding
from bridge.choices import meant_said, word_meant
from bridge.headers import ADMIN_TOKEN_HEADER, REALM
from bridge.json_objects import DuplicateKey
from bridge.redaction import clipped

__all__ = [
    "ALERT_ID_SEGMENT",
    "MAX_NAME_SHOWN",
    "PROBES",
    "AdminGuard",
    "Route",
    "admin_refusals",
    "error_body",
    "error_response",
    "key_given_twice",
    "media_type",
    "missing_field",
    "unknown_field",
    "unknown_parameter",
    "unsupported_coding",
    "unsupported_json",
]

_UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
_JSON: Final = "application/json"

# The characters of an unknown name (a body's field, a query parameter) a refusal quotes: a
# body may be one long key, a query one long parameter name.
MAX_NAME_SHOWN: Final = 80
# An alert id as a route's path segment: any character but "/" (an id's "/" arrives as %2F).
# aiohttp's default segment leaves out "{" and "}", which an id may hold (a label set written
# into it): its page and its acknowledgement were answered 404.
ALERT_ID_SEGMENT: Final = "{alert_id:[^/]+}"
# The liveness and readiness probes' paths: kept answerable under load and rate limits.
PROBES: Final = frozenset({"/healthz", "/readyz"})

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(code: str, detail: str, field: str | None = None) -> dict[str, Any]:
    """The JSON object of an error answer, or of one problem an answer lists."""
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return body


def error_response(status: int, code: str, detail: str, field: str | None = None) -> web.Response:
    """A JSON error answer."""
    return web.json_response(error_body(code, detail, field), status=status)


# Longer than any Content-Type a client sends (``application/x-ndjson; charset=utf-8`` is 35
# characters): aiohttp's parse of the header takes time growing with the square of its length,
# some 0.35 s of the loop for 8 KiB of parameters, so a longer one is not parsed.
_CONTENT_TYPE_PARSED: Final = 256


def media_type(request: web.Request) -> str:
    """``request``'s media type as aiohttp reads it (``application/octet-stream`` when none is
    sent), or, for a Content-Type too long to be any of those the bridge takes, words saying
    so (``a Content-Type of 8016 characters``), which match none of them."""
    sent = request.headers.get("Content-Type", "")
    if len(sent) > _CONTENT_TYPE_PARSED:
        return f"a Content-Type of {len(sent)} characters"
    return request.content_type


def unsupported_json(request: web.Request) -> web.Response | None:
    """415 ``unsupported_media_type`` for a body that is not JSON as the bridge reads it (a
    Content-Type other than ``application/json``, or as ``unsupported_coding``), worded as
    ingest's (bridge/http.py); None for one it reads."""
    if (media := media_type(request)) != _JSON:
        # aiohttp reads a missing Content-Type as application/octet-stream: said as missing.
        sent = f"not {media}" if request.headers.get("Content-Type") else "none sent"
        detail = f"the body must be JSON: send Content-Type: {_JSON} ({sent})"
        return error_response(415, _UNSUPPORTED_MEDIA_TYPE, detail)
    return unsupported_coding(request)


def _charsets(content_type: str) -> list[str]:
    """Each ``charset`` parameter of ``content_type``, as sent (quotes taken off)."""
    header = Message()
    header["Content-Type"] = content_type
    params = header.get_params(failobj=[], unquote=True)
    return [str(value) for name, value in params[1:] if name.lower() == "charset"]


def unsupported_coding(request: web.Request) -> web.Response | None:
    """415 ``unsupported_media_type`` for a JSON body in a charset other than UTF-8 or ASCII,
    or in a Content-Encoding the bridge does not expand (those it does then named in
    ``Accept-Encoding``); None for one it reads. Ingest and the ack route both ask."""
    charsets = _charsets(request.headers.get("Content-Type", ""))
    if len(charsets) > 1:
        # aiohttp reads the last one given (in its case): a proxy may read the first.
        shown = ", ".join(repr(name) for name in charsets)
        detail = (
            f"charset is given {len(charsets)} times ({shown}): send charset=utf-8 once, or none"
        )
        return error_response(415, _UNSUPPORTED_MEDIA_TYPE, detail)
    charset = request.charset
    if charset is not None and charset.lower() not in JSON_CHARSETS:
        # JSON is UTF-8 (RFC 8259): a body in another charset would be read wrongly.
        detail = f"JSON is UTF-8: send charset=utf-8 or no charset, not {charset!r}"
        return error_response(415, _UNSUPPORTED_MEDIA_TYPE, detail)
    coding = content_coding(request)
    if coding not in ("", "identity", *EXPANDED_CODINGS):
        # bridge.bodies expands gzip and deflate only: any other body would be read as sent.
        detail = (
            f"Content-Encoding {coding!r} is not one the bridge expands: send gzip, deflate or none"
        )
        answer = error_response(415, _UNSUPPORTED_MEDIA_TYPE, detail)
        answer.headers["Accept-Encoding"] = "gzip, deflate"
        return answer
    return None


def unknown_parameter(request: web.Request, allowed: Iterable[str]) -> web.Response | None:
    """400 ``invalid`` naming a query parameter not in ``allowed``, or one given twice, or None:
    a misspelt filter (``?alertid=``) would otherwise answer as if no filter had been given, and
    of one given twice (``?state=firing&state=resolved``) only the first would count."""
    names = sorted(allowed)
    unknown = sorted(request.query.keys() - set(names))
    if unknown:
        shown = clipped(repr(unknown[0]), MAX_NAME_SHOWN)
        meant = _name_meant(unknown[0], names)
        # As an unknown body field is answered: ?alertid= names alert_id.
        hint = f" ({meant_said(meant)})" if meant is not None else ""
        detail = f"unknown query parameter {shown}{hint}; allowed: {', '.join(names)}"
        return error_response(400, "invalid", detail, clipped(unknown[0], MAX_NAME_SHOWN))
    if len(request.query) > len(set(request.query)):
        twice = next(name for name in names if len(request.query.getall(name, ())) > 1)
        return error_response(400, "invalid", f"query parameter {twice!r} given twice", twice)
    return None


def key_given_twice(exc: DuplicateKey) -> web.Response:
    """400 ``malformed`` naming a key a JSON body gives twice in one object (cut short as an
    unknown field is), as ingest refuses one: ``{"ack_by": "a", "ack_by": "b"}`` would count as
    either name, depending on the parser."""
    shown = clipped(repr(exc.key), MAX_NAME_SHOWN)
    detail = f"the key {shown} is given twice"
    return error_response(400, "malformed", detail, clipped(exc.key, MAX_NAME_SHOWN))


def unknown_field(exc: ValidationError, fields: Iterable[str]) -> web.Response | None:
    """400 ``invalid`` naming the first field of a JSON body that its model (one with
    ``extra="forbid"`` and these ``fields``) refused as unknown, with the field meant when one
    is close, or None when ``exc`` names none. Said before a missing field, as ``{"ackby": ...}``
    is a misspelt ``ack_by``."""
    unknown = next(
        (str(error["loc"][0]) for error in exc.errors() if error["type"] == "extra_forbidden"),
        None,
    )
    if unknown is None:
        return None
    names = list(fields)
    close = _name_meant(unknown, names)
    meant = f"; {meant_said(close)}" if close is not None else ""
    shown = clipped(repr(unknown), MAX_NAME_SHOWN)
    detail = f"unknown field {shown}{meant} (the fields: {', '.join(names)})"
    return error_response(400, "invalid", detail, clipped(unknown, MAX_NAME_SHOWN))


def missing_field(exc: ValidationError, example: str) -> web.Response | None:
    """400 ``invalid`` naming the first field its model requires that a JSON body left out, with
    a body that gives it (``example``, ``{"ack_by": "..."}``), or None when ``exc`` names none:
    ``{}`` is told what to add, not what the field it lacks would have to be. Asked after
    ``unknown_field``, as a misspelt field is the missing one."""
    missing = next(
        (str(error["loc"][0]) for error in exc.errors() if error["type"] == "missing"), None
    )
    if missing is None:
        return None
    return error_response(400, "invalid", f"{missing} is missing: give it, {example}", missing)


def _name_meant(unknown: str, names: list[str]) -> str | None:
    """The one of ``names`` (a body's fields, a route's query parameters) ``unknown`` was likely
    meant as, or None."""
    # Or the name it is the last word of ({"by": ...}, as ``alerts ack --by`` names ack_by;
    # ?id=): too short for difflib to find alike.
    return word_meant(unknown, names) or next(
        (name for name in names if name.endswith(f"_{unknown}")), None
    )


# Why an admin request was answered 401: no token sent, or another than the bridge's.
_ADMIN_REFUSALS: Final = ("missing", "wrong")


def admin_refusals(registry: CollectorRegistry) -> Callable[[str], None]:
    """What counts the admin requests answered 401 in ``registry``, by reason (``missing``,
    ``wrong``): a token guessed at shows on /metrics, where nothing else tells of it."""
    refused = Counter(
        "exesdb_http_admin_refused",
        "Admin requests answered 401, by reason: missing (no token sent) or wrong (another token"
        " than EXESDB_ADMIN_TOKEN).",
        ["reason"],
        registry=registry,
    )
    for reason in _ADMIN_REFUSALS:
        refused.labels(reason)
    return lambda reason: refused.labels(reason).inc()


class AdminGuard:
    """Lets through only requests that carry the admin token (compared in constant time);
    ``refused`` is told why of each answered 401 (``admin_refusals``)."""

    __slots__ = ("_refused", "_token")

    def __init__(
        self, token: SecretStr | None, refused: Callable[[str], None] | None = None
    ) -> None:
        # Settings trim it (a token read from a file keeps its line break).
        value = token.get_secret_value() if token is not None else ""
        self._token = value.encode() if value else None
        self._refused = refused or (lambda reason: None)

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
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        bearer = bearer.strip() if scheme.lower() == "bearer" else ""
        header = request.headers.get(ADMIN_TOKEN_HEADER, "").strip()
        if bearer and header and not hmac.compare_digest(_bytes(bearer), _bytes(header)):
            # Both sent, and not the same: neither is taken over the other, so that a client
            # whose one header is stale learns of it (each still compared in constant time).
            return self._disagree(self._matches(bearer), self._matches(header))
        credential = bearer or header
        if not credential or not self._matches(credential):
            # Which of the two, so that a client sending a stale token is not told to send one.
            detail = (
                "the admin token sent is not the bridge's EXESDB_ADMIN_TOKEN"
                if credential
                else f"send Authorization: Bearer <EXESDB_ADMIN_TOKEN> (or {ADMIN_TOKEN_HEADER}: "
                "<EXESDB_ADMIN_TOKEN> when Authorization carries basic auth)"
            )
            return self._refuse("wrong" if credential else "missing", detail)
        return None

    def _matches(self, credential: str) -> bool:
        """Whether ``credential`` is the admin token (compared in constant time)."""
        assert self._token is not None
        return hmac.compare_digest(_bytes(credential), self._token)

    def _disagree(self, bearer_right: bool, header_right: bool) -> web.Response:
        """401 for ``Authorization: Bearer`` and ``X-ExESDB-Admin-Token`` sent with different
        tokens, saying which (if either) is the admin token; counted as ``wrong``."""
        wrong = [
            name
            for name, right in (
                ("Authorization: Bearer", bearer_right),
                (ADMIN_TOKEN_HEADER, header_right),
            )
            if not right
        ]
        which = (
            f"the {wrong[0]} one is not the bridge's EXESDB_ADMIN_TOKEN"
            if len(wrong) == 1
            else "neither is the bridge's EXESDB_ADMIN_TOKEN"
        )
        detail = (
            f"Authorization: Bearer and {ADMIN_TOKEN_HEADER} carry different tokens ({which}):"
            " send the token in one of them, or the same in both"
        )
        return self._refuse("wrong", detail)

    def _refuse(self, reason: str, detail: str) -> web.Response:
        """401 ``unauthorized`` saying ``detail``, counted under ``reason``."""
        self._refused(reason)
        answer = error_response(401, "unauthorized", detail)
        answer.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
        return answer

    def __call__(self, handler: Route) -> Route:
        """``handler``, run only for requests with the admin token."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            refused = self.refusal(request)
            return refused if refused is not None else await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded


def _bytes(credential: str) -> bytes:
    """A token as sent, to compare: header bytes that are not UTF-8 stay what they are."""
    return credential.encode("utf-8", "surrogateescape")
