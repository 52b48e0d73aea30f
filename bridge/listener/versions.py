"""HTTP versions other than 1.0 and 1.1 answered 505, as Go's servers answer them.

aiohttp's parser takes a request line naming ``HTTP/0.9`` or ``HTTP/2.0`` (it refuses others,
``HTTP/1.2``, with its own 400), and aiohttp answered it as HTTP/1.1 with a status line naming
that version (``HTTP/2.0 200 OK``), which neither an HTTP/2 client nor an HTTP/0.9 one reads as
meant. Go's ``net/http`` (exporter-toolkit's server, so every exporter's) answers ``HTTP/1.1 505
HTTP Version Not Supported`` and closes the connection. Here such a request is made as an
HTTP/1.1 one that closes its connection (``refuse_other_versions``), so that its answer's status
line says ``HTTP/1.1``, and marked with the version it named; the connection guard answers it
505 (``unsupported_version``) before any other check.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import HttpVersion, HttpVersion10, HttpVersion11, StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage

from bridge.routes import error_response

__all__ = ["refuse_other_versions", "unsupported_version"]

_logger = logging.getLogger(__name__)

_SERVED: Final = frozenset({HttpVersion10, HttpVersion11})
# Set on a request whose line named a version not served: that version.
_NAMED: Final = web.RequestKey("http_version_named", HttpVersion)


def refuse_other_versions(server: web.Server) -> None:
    """Have ``server`` make each request naming a version other than HTTP/1.0 or 1.1 as an
    HTTP/1.1 one closing its connection, marked for ``unsupported_version``, before it serves:
    each connection's protocol takes the request factory as it is when it is made. Installed
    after ``bridge.expect_continue.take_expectations``, so that it takes an ``Expect`` off such a
    request too (aiohttp would answer one of HTTP/1.1 itself, before any middleware)."""
    make = server.request_factory

    def request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        if message.version in _SERVED:
            return make(message, payload, protocol, writer, task)
        as_http11 = message._replace(version=HttpVersion11, should_close=True)
        made = make(as_http11, payload, protocol, writer, task)
        made[_NAMED] = message.version
        return made

    server.request_factory = request


def unsupported_version(request: web.BaseRequest) -> web.Response | None:
    """505 ``http_version_not_supported`` for a request whose line named a version other than
    HTTP/1.0 or 1.1 (its connection closed after it), logged at debug as aiohttp's refusals of
    malformed heads are (anyone reaching the port could flood the log); None for any other."""
    named = request.get(_NAMED)
    if named is None:
        return None
    shown = f"HTTP/{named.major}.{named.minor}"
    _logger.debug("refused an %s request from %s: 505", shown, request.remote)
    answer = error_response(
        505,
        "http_version_not_supported",
        f"{shown} is not served here: send HTTP/1.1 (or HTTP/1.0)",
    )
    answer.force_close()
    return answer
