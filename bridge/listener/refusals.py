"""A request aiohttp's parser refuses: answered 400 naming the problem, never quoting its bytes.

aiohttp answers a request head its parser refuses (a header field over 8 KiB, a malformed request
line, bad chunk framing) 400 in plain text, its body the parser's message, which quotes up to
~100 bytes of the line at fault: an over-long ``Authorization`` header had part of its
credentials sent back, to the client and whatever logs answers on the way. No middleware sees
such a request (it has no route); aiohttp's protocol answers it from its ``handle_error`` (public,
though not documented as a hook: tests/test_listener.py holds each answer). Each
connection's protocol is made here (``NamedRefusals``, aiohttp's own with that one method
replaced), so that the answer is the one error shape, its ``detail`` saying what was wrong by
the kind of error aiohttp raised (``aiohttp.http_exceptions``), never by its message, and each
refusal is counted (its connection closes: ``exesdb_http_connections_closed_total{reason=
"bad_request"}``), as aiohttp logs it at debug level alone. Other errors (a 500 or 504 no
middleware answered) are left to aiohttp.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from aiohttp import http_exceptions, web

from bridge.messages import MAX_TEXT
from bridge.routes import error_response

__all__ = ["LINE_MAX", "NamedRefusals", "named_refusals"]

# The most bytes of a request line aiohttp's parser takes (its max_line_size, 8 190 by default):
# room for the longest alert id's links, ``/alerts/{alert_id}`` and ``/v1/alerts/{alert_id}/ack``,
# MAX_TEXT characters of up to four UTF-8 bytes each, every byte escaped (``%F0``), with 1 KiB
# for the method, the rest of the path, a query and the version.
LINE_MAX: Final = MAX_TEXT * 4 * 3 + 1024
# The most bytes of a header field's name and value together (its max_field_size, left at its
# default).
_FIELD_MAX: Final = 8190

# Each kind of refusal, the most specific first: what its answer says, and the part at fault.
_KINDS: Final[tuple[tuple[type[Exception], str, str], ...]] = (
    (
        http_exceptions.LineTooLong,
        f"the request line is over {LINE_MAX} bytes or a header field over {_FIELD_MAX}",
        "head",
    ),
    (
        http_exceptions.BadHttpMethod,
        "the request does not open with a method (is it TLS, sent to a plain HTTP port?)",
        "request line",
    ),
    (
        http_exceptions.BadStatusLine,
        # A bare LF ends no line for the parser (printf 'GET / HTTP/1.1\n\n' | nc), and the
        # request line is refused for it, however right its three parts.
        "the request line is not METHOD TARGET HTTP/1.1 (or HTTP/1.0), ended by CRLF (\\r\\n)",
        "request line",
    ),
    (http_exceptions.InvalidURLError, "the request target is malformed", "request line"),
    (http_exceptions.InvalidHeader, "a header field is malformed", "head"),
    (
        http_exceptions.PayloadEncodingError,
        "the body's framing is malformed (its chunks, or Content-Length)",
        "body",
    ),
)
_OTHER: Final = (
    "the request head is malformed (a header field, too many of them, one given twice, or Host"
    " missing), or the framing of its body, or bytes follow a request that said Connection:"
    " close",
    "head",
)


class NamedRefusals(web.RequestHandler):
    """aiohttp's protocol for one connection, whose refusals of a request its parser cannot read
    name the problem in the one error shape and quote none of the request's bytes; ``refused``
    is called for each (the guard counts it)."""

    __slots__ = ("_refused",)

    def __init__(
        self,
        manager: web.Server,
        *,
        refused: Callable[[asyncio.BaseTransport | None], object],
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._refused = refused

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, http_exceptions.HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # aiohttp's own first: it logs the refusal (bridge.logs keeps its bytes out) and finds
        # whether an answer is under way already; its answer, with no text, is then replaced.
        super().handle_error(request, status, exc, "")
        # What follows a refused head is no request, and is not parsed: aiohttp would refuse each
        # piece again, keeping each refusal with its traceback, which holds the parser's frames
        # and through them this protocol and the piece read. A cycle only the collector frees,
        # some 500 such requests later (bridge.cli.service): a megabyte each, sent after a head
        # refused, made 460 MB. So is this refusal's own traceback, once logged.
        self.close()
        exc.__traceback__ = None
        detail, field = next(((d, f) for kind, d, f in _KINDS if isinstance(exc, kind)), _OTHER)
        answer = error_response(status, "bad_request", detail, field)
        answer.force_close()
        self._refused(self.transport)
        return answer

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        # What the parser queued and no handler took, let go with the connection (aiohttp keeps
        # it): a refusal among it, of a piece read before handle_error ran, is in a cycle through
        # its traceback as above (aiohttp's frame that queued it holds it), which is cut here.
        # Its queue is aiohttp's private: another version without it (or of another shape) leaves
        # the cycle to the collector, as before, rather than failing every connection's close.
        queued = getattr(self, "_messages", None)
        if not isinstance(queued, deque):
            return
        for item in queued:
            message = item[0] if isinstance(item, tuple) else item
            refusal = getattr(message, "exc", None)  # aiohttp's error in place of a request
            if isinstance(refusal, BaseException):
                refusal.__traceback__ = None
        queued.clear()


def named_refusals(
    server: web.Server,
    refused: Callable[[asyncio.BaseTransport | None], object],
    **handler_args: Any,
) -> Callable[[], web.RequestHandler]:
    """The factory of ``server``'s connection protocols (``NamedRefusals``, on the running
    loop, calling ``refused`` with its transport for each request refused), made with
    ``handler_args``: those ``server`` itself would give aiohttp's (the runner's and the
    application's), which it keeps to itself."""
    loop = asyncio.get_running_loop()

    def make() -> web.RequestHandler:
        return NamedRefusals(server, loop=loop, refused=refused, **handler_args)

    return make
